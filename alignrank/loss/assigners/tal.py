"""``tal``: ultralytics' ``TaskAlignedAssigner`` (YOLOv8's own, alpha 0.5, beta 6, top-k ``loss.tal_topk``).

The subclass only accepts (and ignores) the ``anc_strides`` keyword the other assigners need, so the
criterion calls every assigner the same way; the assignment is the stock one, bit for bit.

Examples:
    >>> from alignrank.config.schema import LossParams
    >>> a = build_tal(num_classes=3, stride=[8.0, 16.0, 32.0], params=LossParams())
    >>> a.topk, a.alpha, a.beta
    (10, 0.5, 6.0)
"""

from __future__ import annotations

from ultralytics.utils.tal import TaskAlignedAssigner

from alignrank.loss.assigners.registry import register_assigner


class TALAssigner(TaskAlignedAssigner):
    """ultralytics' task-aligned assigner with the shared call signature."""

    def forward(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, anc_strides=None):
        """Stock ``TaskAlignedAssigner.forward``; ``anc_strides`` is unused."""
        return super().forward(pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt)


@register_assigner("tal")
def build_tal(*, num_classes: int, stride: list[float], params) -> TALAssigner:
    """YOLOv8's assigner with the settings of ``v8DetectionLoss`` (alpha 0.5, beta 6.0)."""
    return TALAssigner(topk=params.tal_topk, num_classes=num_classes, alpha=0.5, beta=6.0, stride=stride)
