"""``AlignRankLoss``: YOLOv8's box + DFL terms with RCQ-Loss as the classification term (``rcq`` loss).

Everything but the classification term is the v8 loss of :mod:`alignrank.loss.v8`: the chosen assigner
(``loss.assigner``, TAL by default), the chosen IoU loss (``loss.iou_loss``) and DFL, weighted by the
assigner's target scores exactly as YOLOv8 does, so with TAL + CIoU the ``box_loss`` and ``dfl_loss``
items equal the baseline's on the same predictions. The classification term is

    cls_gain * L_RCQ,  L_RCQ = lambda_cal * L_cal + lambda_list * L_list + lambda_rank * L_rank

on the positives of the assigner (group = the GT each positive is assigned to), with quality
q = IoU(pred box, GT)^alpha * centerness^beta (detached) and L_cal's target q^alpha0 (see
:mod:`alignrank.loss.rcq`). **Choice for the cls gain**: it scales all of L_RCQ (one knob shared with the
stock loss), so with lambda_list = lambda_rank = 0, gamma = 0 and alpha0 = 1 the cls part is YOLOv8's
``cls_gain * BCE / max(sum target, 1)`` with the detached IoU^alpha (x centerness^beta) in place of TAL's
normalised alignment score as soft target, i.e. a quality-focal version of the stock term for gamma > 0.

Loss items (ultralytics derives ``loss_names`` from them): ``box_loss, cal_loss, list_loss, rank_loss,
dfl_loss``, each already gain-scaled (cal = cls * lambda_cal * L_cal, ...), so their sum times the batch
size is the loss the trainer back-propagates. A term whose lambda is 0 is not computed (logged as 0).

Examples:
    >>> from alignrank.nn.model import build_model
    >>> m = build_model("rcq", scale="n", nc=3)
    >>> m.init_criterion().loss_names
    ('box_loss', 'cal_loss', 'list_loss', 'rank_loss', 'dfl_loss')
"""

from __future__ import annotations

from typing import Any

import torch

from alignrank.loss.quality import positive_quality
from alignrank.loss.rcq import calibration_loss_and_logits, listwise_loss, pairwise_rank_loss
from alignrank.loss.registry import register_loss
from alignrank.loss.v8 import AssignedDetectionLoss


class AlignRankLoss(AssignedDetectionLoss):
    """RCQ-Loss criterion (a ``v8DetectionLoss`` subclass; only the classification term differs).

    Args:
        model: De-paralleled detection model.
        params: ``LossParams`` (alpha, beta, alpha0, gamma, temperature, margin, eps, lambda_*, pair_budget,
            assigner, iou_loss, tal_topk, ...).
    """

    def __init__(self, model: torch.nn.Module, params) -> None:
        super().__init__(model, params)
        self.loss_names = ("box_loss", "cal_loss", "list_loss", "rank_loss", "dfl_loss")

    def classification_loss(self, ctx: dict[str, Any]) -> list[torch.Tensor]:
        """[cls * lambda_cal * L_cal, cls * lambda_list * L_list, cls * lambda_rank * L_rank]."""
        p = self.params
        pred_scores = ctx["pred_scores"]  # (b, A, C)
        _, num_anchors, num_classes = pred_scores.shape
        bi, ai = ctx["fg_mask"].nonzero(as_tuple=True)  # (N,) image and anchor of each positive
        cls = ctx["target_labels"][bi, ai].long()  # (N,) assigned class
        groups = bi * ctx["n_max_boxes"] + ctx["target_gt_idx"][bi, ai]  # (N,) GT id, unique in the batch
        pos_index = (bi * num_anchors + ai) * num_classes + cls  # (N,) flat index into pred_scores
        stride = ctx["stride_tensor"][ai]  # (N, 1)
        q, _ = positive_quality(
            ctx["pred_bboxes"][bi, ai],  # (N, 4) grid units
            ctx["target_bboxes"][bi, ai] / stride,  # (N, 4) grid units
            ctx["anchor_points"][ai],  # (N, 2) grid units
            alpha=p.alpha,
            beta=p.beta,
        )  # (N,)
        probs = ctx["probs"] if ctx["probs"].dtype == torch.float32 else None
        cal, s = calibration_loss_and_logits(pred_scores, pos_index, q.pow(p.alpha0), gamma=p.gamma, probs=probs)
        zero = cal.new_zeros(())
        lst = listwise_loss(s, q, groups, p.temperature) if p.lambda_list > 0 else zero
        rank = pairwise_rank_loss(s, q, groups, p.margin, p.eps, p.pair_budget) if p.lambda_rank > 0 else zero
        gain = self.hyp.cls
        return [cal * (gain * p.lambda_cal), lst * (gain * p.lambda_list), rank * (gain * p.lambda_rank)]


@register_loss("rcq")
def build_rcq_loss(model, params=None) -> AlignRankLoss:
    """The RCQ criterion of the ``rcq`` and ``full`` variants (``LossParams`` defaults when None)."""
    if params is None:
        from alignrank.config.fields import build
        from alignrank.config.schema import LossParams

        params = build(LossParams, {}, "loss")
    return AlignRankLoss(model, params)
