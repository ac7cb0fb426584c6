"""RCQ criteria: YOLOv8's box + DFL terms with the two readings of the paper's RCQ-Loss.

* ``rcq_replace`` (:class:`AlignRankLoss`, eq. 8 *replaces* YOLOv8's classification loss): the class term is
  ``cls_gain * (lambda_cal * L_cal + lambda_list * L_list + lambda_rank * L_rank)``.
* ``rcq_augment`` (:class:`AugmentedRCQLoss`, section 3.2's "augments YOLOv8's classification loss"):
  YOLOv8's own BCE towards the assigner's soft targets (normalised by their sum, exactly the stock term)
  plus ``cls_gain * (lambda_list * L_list + lambda_rank * L_rank)``; L_cal, ``lambda_cal``, ``gamma``,
  ``alpha0`` and ``cal_norm`` are not used. The ``rcq`` and ``full`` variants use this reading (the one the
  default experiment's multi-seed evidence supports, docs/fidelity.md); ``rcq_replace`` / ``full_replace`` use eq. 8.

Everything but the classification term is the v8 loss of :mod:`alignrank.loss.v8`: the assigner (TAL by
default; ``loss.rcq_assigner`` may give the RCQ criteria their own, see :func:`rcq_assigner_name`), the IoU
loss (``loss.iou_loss``) and DFL, weighted by the assigner's target scores exactly as YOLOv8 does, so with
TAL + CIoU the ``box_loss`` and ``dfl_loss`` items equal the baseline's on the same predictions.

The group terms run on the assigner's positives (group = the GT each positive is assigned to), with
quality q = IoU(pred box, GT)^alpha * centerness^beta (detached) (see :mod:`alignrank.loss.rcq`); L_cal's
target is q^alpha0. **Choice for the cls gain**: it scales all of L_RCQ (one knob shared with the stock
loss), so with lambda_list = lambda_rank = 0, gamma = 0, alpha0 = 1 and ``cal_norm = quality`` the cls part
of ``rcq_replace`` is YOLOv8's ``cls_gain * BCE / max(sum target, 1)`` with the detached IoU^alpha (x
centerness^beta) in place of TAL's normalised alignment score as soft target. L_cal's divisor is
``loss.cal_norm`` (:data:`CAL_NORMS`): ``quality`` max(sum of targets, 1) (YOLOv8's rule applied to
RCQ's targets), ``positives`` max(number of positives, 1) (GFL's QFL, mmdet's ``avg_factor=num_pos``),
``assigner`` the assigner's target-score sum (the stock term's divisor).

Loss items (ultralytics derives ``loss_names`` from them), each already gain-scaled, so their sum times the
batch size is the loss the trainer back-propagates; a term whose lambda is 0 is not computed (logged 0):
``rcq_replace`` ``box_loss, cal_loss, list_loss, rank_loss, dfl_loss``; ``rcq_augment`` ``box_loss, cls_loss,
list_loss, rank_loss, dfl_loss``.

Examples:
    >>> from alignrank.nn.model import build_model
    >>> m = build_model("rcq_replace", scale="n", nc=3)
    >>> m.init_criterion().loss_names
    ('box_loss', 'cal_loss', 'list_loss', 'rank_loss', 'dfl_loss')
    >>> from alignrank.config.schema import LossParams
    >>> AugmentedRCQLoss(m, LossParams()).loss_names
    ('box_loss', 'cls_loss', 'list_loss', 'rank_loss', 'dfl_loss')
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from alignrank.loss.quality import positive_quality
from alignrank.loss.rcq import calibration_loss_and_logits, listwise_loss, pairwise_rank_loss
from alignrank.loss.registry import register_loss, register_loss_assigner
from alignrank.loss.v8 import AssignedDetectionLoss


@register_loss_assigner("rcq_replace")
@register_loss_assigner("rcq_augment")
def rcq_assigner_name(params) -> str:
    """The assigner of the RCQ criteria: ``loss.rcq_assigner``, or ``loss.assigner`` when it is ``same``.

    Examples:
        >>> from alignrank.config.schema import LossParams
        >>> rcq_assigner_name(LossParams()), rcq_assigner_name(LossParams(rcq_assigner="simota"))
        ('tal', 'simota')
    """
    return params.assigner if params.rcq_assigner == "same" else params.rcq_assigner


def positives(ctx: dict[str, Any], params) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The assigner's positives: flat index of their assigned class, their GT group and their quality.

    Args:
        ctx: The assignment context of :meth:`AssignedDetectionLoss.get_assigned_targets_and_loss`.
        params: ``LossParams`` (alpha, beta).

    Returns:
        pos_index (N,) int64 into ``ctx["pred_scores"].reshape(-1)``, groups (N,) int64 GT id (unique in the
        batch), q (N,) float32 detached quality.
    """
    _, num_anchors, num_classes = ctx["pred_scores"].shape  # (b, A, C)
    bi, ai = ctx["fg_mask"].nonzero(as_tuple=True)  # (N,) image and anchor of each positive
    cls = ctx["target_labels"][bi, ai].long()  # (N,) assigned class
    groups = bi * ctx["n_max_boxes"] + ctx["target_gt_idx"][bi, ai]  # (N,) GT id, unique in the batch
    pos_index = (bi * num_anchors + ai) * num_classes + cls  # (N,) flat index into pred_scores
    stride = ctx["stride_tensor"][ai]  # (N, 1)
    q, _ = positive_quality(
        ctx["pred_bboxes"][bi, ai],  # (N, 4) grid units
        ctx["target_bboxes"][bi, ai] / stride,  # (N, 4) grid units
        ctx["anchor_points"][ai],  # (N, 2) grid units
        alpha=params.alpha,
        beta=params.beta,
    )  # (N,)
    return pos_index, groups, q


def _norm_quality(ctx: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
    """max(sum of L_cal's targets, 1): YOLOv8's rule applied to RCQ's targets."""
    return target.detach().float().sum().clamp(min=1)


def _norm_positives(ctx: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
    """max(number of positives, 1): GFL's quality focal loss (mmdet ``avg_factor=num_total_pos``)."""
    return target.new_tensor(float(max(target.numel(), 1)), dtype=torch.float32)


def _norm_assigner(ctx: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
    """The assigner's target-score sum (max 1): the divisor of YOLOv8's stock classification term."""
    return ctx["target_scores_sum"].detach().float()


CAL_NORMS: dict[str, Callable[[dict[str, Any], torch.Tensor], torch.Tensor]] = {
    "quality": _norm_quality,
    "positives": _norm_positives,
    "assigner": _norm_assigner,
}  # loss.cal_norm -> divisor of L_cal


def group_terms(s: torch.Tensor, q: torch.Tensor, groups: torch.Tensor, params, gain: float) -> list[torch.Tensor]:
    """[gain * lambda_list * L_list, gain * lambda_rank * L_rank] on the positives' logits ``s`` (N,).

    A term whose lambda is 0 is not computed (logged as 0).
    """
    zero = s.new_zeros(())
    lst = listwise_loss(s, q, groups, params.temperature, scale=params.list_scale) if params.lambda_list > 0 else zero
    rank = pairwise_rank_loss(s, q, groups, params.margin, params.eps, params.pair_budget) if params.lambda_rank > 0 else zero
    return [lst * (gain * params.lambda_list), rank * (gain * params.lambda_rank)]


class AlignRankLoss(AssignedDetectionLoss):
    """The ``rcq_replace`` criterion: eq. 8 (L_cal + L_list + L_rank) replaces YOLOv8's classification term.

    Args:
        model: De-paralleled detection model.
        params: ``LossParams`` (alpha, beta, alpha0, gamma, cal_norm, temperature, list_scale, margin, eps,
            lambda_*, pair_budget, assigner / rcq_assigner, iou_loss, tal_topk, ...).
    """

    def __init__(self, model: torch.nn.Module, params) -> None:
        super().__init__(model, params, assigner=rcq_assigner_name(params))
        self.loss_names = ("box_loss", "cal_loss", "list_loss", "rank_loss", "dfl_loss")

    def classification_loss(self, ctx: dict[str, Any]) -> list[torch.Tensor]:
        """[cls * lambda_cal * L_cal, cls * lambda_list * L_list, cls * lambda_rank * L_rank]."""
        p = self.params
        pos_index, groups, q = positives(ctx, p)
        target = q.pow(p.alpha0)  # (N,) L_cal's target at each positive's class
        probs = ctx["probs"] if ctx["probs"].dtype == torch.float32 else None
        norm = CAL_NORMS[p.cal_norm](ctx, target)
        cal, s = calibration_loss_and_logits(ctx["pred_scores"], pos_index, target, gamma=p.gamma, probs=probs, norm=norm)
        gain = self.hyp.cls
        return [cal * (gain * p.lambda_cal), *group_terms(s, q, groups, p, gain)]


class AugmentedRCQLoss(AssignedDetectionLoss):
    """The ``rcq_augment`` criterion: YOLOv8's stock classification term plus L_list and L_rank.

    Args:
        model: De-paralleled detection model.
        params: ``LossParams`` (alpha, beta, temperature, list_scale, margin, eps, lambda_list, lambda_rank,
            pair_budget, assigner / rcq_assigner, iou_loss, tal_topk, ...).
    """

    def __init__(self, model: torch.nn.Module, params) -> None:
        super().__init__(model, params, assigner=rcq_assigner_name(params))
        self.loss_names = ("box_loss", "cls_loss", "list_loss", "rank_loss", "dfl_loss")

    def classification_loss(self, ctx: dict[str, Any]) -> list[torch.Tensor]:
        """[stock cls term, cls * lambda_list * L_list, cls * lambda_rank * L_rank]."""
        pos_index, groups, q = positives(ctx, self.params)
        s = ctx["pred_scores"].reshape(-1)[pos_index].float()  # (N,) logits of the positives' classes
        return [*super().classification_loss(ctx), *group_terms(s, q, groups, self.params, self.hyp.cls)]


def _loss_params(params):
    """``params`` or the ``LossParams`` defaults when None."""
    if params is not None:
        return params
    from alignrank.config.fields import build
    from alignrank.config.schema import LossParams

    return build(LossParams, {}, "loss")


@register_loss("rcq_replace")
def build_rcq_loss(model, params=None) -> AlignRankLoss:
    """RCQ-Loss (eq. 8) as the classification loss: the ``rcq_replace`` and ``full_replace`` variants."""
    return AlignRankLoss(model, _loss_params(params))


@register_loss("rcq_augment")
def build_rcq_augment_loss(model, params=None) -> AugmentedRCQLoss:
    """YOLOv8's classification loss plus L_list and L_rank: the ``rcq`` and ``full`` variants."""
    return AugmentedRCQLoss(model, _loss_params(params))
