"""v8-style detection loss with a registered assigner and IoU loss (the ``v8`` loss for ablations).

``build_v8_loss`` returns ultralytics' stock ``v8DetectionLoss`` itself when ``loss.assigner == tal`` and
``loss.iou_loss == ciou`` (the baseline is stock YOLOv8, bit for bit), and otherwise
:class:`AssignedDetectionLoss`: the same loss (stock BCE classification, DFL, gains) whose assigner and
IoU term come from the registries, so assigner / IoU ablations work for the baseline and csd variants.
:class:`AssignedDetectionLoss` re-states ``get_assigned_targets_and_loss`` once (same steps and order as
the stock method) with two hooks: every assigner receives the anchor strides, and the classification
term is :meth:`AssignedDetectionLoss.classification_loss` (overridden by the RCQ criterion).

Gains (box, cls, dfl) come from ``model.args`` as in ultralytics (the trainer sets it from params); a
bare model without ``args`` gets ultralytics' default config with the gains of ``LossParams``.

Examples:
    >>> from alignrank.nn.model import build_model
    >>> from alignrank.config.schema import LossParams
    >>> m = build_model("baseline", scale="n", nc=3)
    >>> type(build_v8_loss(m, LossParams())).__name__
    'v8DetectionLoss'
    >>> type(build_v8_loss(m, LossParams(assigner="atss"))).__name__
    'AssignedDetectionLoss'
"""

from __future__ import annotations

from typing import Any

import torch
from ultralytics.utils.loss import BboxLoss, v8DetectionLoss
from ultralytics.utils.tal import bbox2dist, make_anchors

from alignrank.loss.assigners import build_assigner
from alignrank.loss.iou import get_iou


def ensure_loss_args(model, params) -> None:
    """Give a bare model (no trainer yet) ultralytics' default ``args`` with our loss gains.

    The trainer later replaces ``model.args`` with its own (built from the same params).
    """
    if getattr(model, "args", None) is None:
        from ultralytics.cfg import get_cfg
        from ultralytics.utils import DEFAULT_CFG

        gains = {} if params is None else {"box": params.box, "cls": params.cls, "dfl": params.dfl}
        model.args = get_cfg(DEFAULT_CFG, gains)


class IoUBboxLoss(BboxLoss):
    """ultralytics' ``BboxLoss`` (DFL / L1 part unchanged) with a registered IoU metric instead of CIoU.

    Args:
        reg_max: DFL bins.
        iou_loss: Name in :data:`alignrank.loss.iou.IOU_LOSSES` (``ciou`` | ``diou`` | ``siou``).
    """

    def __init__(self, reg_max: int = 16, iou_loss: str = "ciou"):
        super().__init__(reg_max)
        self.iou_loss, self.iou_fn = iou_loss, get_iou(iou_loss)

    def forward(
        self,
        pred_dist,
        pred_bboxes,
        anchor_points,
        target_bboxes,
        target_scores,
        target_scores_sum,
        fg_mask,
        imgsz,
        stride,
    ):
        """Return (IoU loss, DFL loss), each weighted by the target scores and normalised like the stock one."""
        fg = fg_mask.nonzero(as_tuple=True)
        weight = target_scores[fg].sum(-1, keepdim=True)  # (N, 1)
        iou = self.iou_fn(pred_bboxes[fg], target_bboxes[fg])  # (N, 1)
        loss_iou = ((1.0 - iou) * weight).sum() / target_scores_sum
        if self.dfl_loss:
            target_ltrb = bbox2dist(anchor_points, target_bboxes, self.dfl_loss.reg_max - 1)  # (b, A, 4)
            loss_dfl = self.dfl_loss(pred_dist[fg].view(-1, self.dfl_loss.reg_max), target_ltrb[fg]) * weight
            return loss_iou, loss_dfl.sum() / target_scores_sum
        args = (pred_dist, pred_bboxes, anchor_points, target_bboxes, target_scores, target_scores_sum, fg_mask)
        _, loss_l1 = super().forward(*args, imgsz, stride)  # L1 path of the stock loss (its CIoU term is discarded)
        return loss_iou, loss_l1


class AssignedDetectionLoss(v8DetectionLoss):
    """YOLOv8's loss with the assigner ``params.assigner`` and the IoU loss ``params.iou_loss``.

    Args:
        model: De-paralleled detection model (its ``args`` hold the box/cls/dfl gains).
        params: ``LossParams``.
        assigner: Registered assigner name (None: ``params.assigner``); ``assigner_name`` records it.
    """

    def __init__(self, model: torch.nn.Module, params, assigner: str | None = None) -> None:
        ensure_loss_args(model, params)
        super().__init__(model, tal_topk=params.tal_topk)
        self.params = params
        self.assigner_name = params.assigner if assigner is None else assigner
        self.assigner = build_assigner(self.assigner_name, num_classes=self.nc, stride=self.stride.tolist(), params=params)
        if params.iou_loss != "ciou":
            self.bbox_loss = IoUBboxLoss(self.reg_max, params.iou_loss).to(self.device)

    def classification_loss(self, ctx: dict[str, Any]) -> list[torch.Tensor]:
        """Gain-scaled classification term(s), one per name between ``box_loss`` and ``dfl_loss``.

        Stock YOLOv8: BCE against the assigner's soft targets, / max(sum of targets, 1), times the cls gain.
        """
        bce = self.bce(ctx["pred_scores"], ctx["target_scores"].to(ctx["pred_scores"].dtype))  # (b, A, C)
        if self.class_weights is not None:
            bce *= self.class_weights
        return [bce.sum() / ctx["target_scores_sum"] * self.hyp.cls]

    def get_assigned_targets_and_loss(
        self, preds: dict[str, torch.Tensor], batch: dict[str, Any], **assign_kwargs
    ) -> tuple:
        """Assign, then box + classification + DFL; same returns as the stock method (loss items by name)."""
        pred_distri = preds["boxes"].permute(0, 2, 1).contiguous()  # (b, A, 4 * reg_max)
        pred_scores = preds["scores"].permute(0, 2, 1).contiguous()  # (b, A, C)
        anchor_points, stride_tensor = make_anchors(preds["feats"], self.stride, 0.5)  # (A, 2), (A, 1) grid units
        dtype = pred_scores.dtype
        batch_size = pred_scores.shape[0]
        imgsz = torch.tensor(preds["feats"][0].shape[2:], device=self.device, dtype=dtype) * self.stride[0]

        targets = torch.cat((batch["batch_idx"].view(-1, 1), batch["cls"].view(-1, 1), batch["bboxes"]), 1)
        targets = self.preprocess(targets.to(self.device), batch_size, scale_tensor=imgsz[[1, 0, 1, 0]])  # (b, n, 5)
        gt_labels, gt_bboxes = targets.split((1, 4), 2)  # (b, n, 1) cls, (b, n, 4) xyxy pixels
        mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0.0)  # (b, n, 1)

        pred_bboxes = self.bbox_decode(anchor_points, pred_distri)  # (b, A, 4) xyxy grid units
        probs = pred_scores.detach().sigmoid()  # (b, A, C)
        target_labels, target_bboxes, target_scores, fg_mask, target_gt_idx = self.assigner(
            probs,
            (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
            anchor_points * stride_tensor,
            gt_labels,
            gt_bboxes,
            mask_gt,
            anc_strides=stride_tensor,
            **assign_kwargs,
        )
        target_scores_sum = target_scores.sum().clamp_(min=1)

        ctx = dict(
            pred_scores=pred_scores,
            probs=probs,
            pred_bboxes=pred_bboxes,
            anchor_points=anchor_points,
            stride_tensor=stride_tensor,
            target_labels=target_labels,
            target_bboxes=target_bboxes,
            target_scores=target_scores,
            target_scores_sum=target_scores_sum,
            fg_mask=fg_mask,
            target_gt_idx=target_gt_idx,
            n_max_boxes=gt_bboxes.shape[1],
        )
        cls_terms = self.classification_loss(ctx)
        loss_box, loss_dfl = self.bbox_loss(
            pred_distri,
            pred_bboxes,
            anchor_points,
            target_bboxes / stride_tensor,
            target_scores,
            target_scores_sum,
            fg_mask,
            imgsz,
            stride_tensor,
        )
        terms = [loss_box * self.hyp.box, *cls_terms, loss_dfl * self.hyp.dfl]
        loss = torch.stack([t.float() for t in terms])  # (len(loss_names),)
        return (
            (fg_mask, target_gt_idx, target_bboxes, anchor_points, stride_tensor),
            loss,
            dict(zip(self.loss_names, loss.detach())),
        )


def build_v8_loss(model, params=None):
    """Stock ``v8DetectionLoss`` for (tal, ciou); :class:`AssignedDetectionLoss` for other assigners / IoUs."""
    ensure_loss_args(model, params)
    if params is None or (params.assigner == "tal" and params.iou_loss == "ciou"):
        return v8DetectionLoss(model, tal_topk=10 if params is None else params.tal_topk)
    return AssignedDetectionLoss(model, params)
