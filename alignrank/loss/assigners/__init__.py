"""Label assigners selectable by ``loss.assigner``: ``tal`` (YOLOv8's), ``simota`` (YOLOX), ``atss``.

Every assigner is an ``nn.Module`` called as ``assigner(pd_scores, pd_bboxes, anc_points, gt_labels,
gt_bboxes, mask_gt, anc_strides=...)`` with ultralytics' padded GT layout and returns the same tensors as
ultralytics' ``TaskAlignedAssigner``: ``(target_labels (b, A), target_bboxes (b, A, 4), target_scores
(b, A, C), fg_mask (b, A) bool, target_gt_idx (b, A))``, so the loss code is shared.

Examples:
    >>> sorted(ASSIGNERS)
    ['atss', 'simota', 'tal']
"""

from __future__ import annotations

from alignrank.loss.assigners import atss, simota, tal  # noqa: F401,E402  (register the assigners)
from alignrank.loss.assigners.registry import ASSIGNERS, build_assigner, register_assigner

__all__ = ["ASSIGNERS", "build_assigner", "register_assigner"]
