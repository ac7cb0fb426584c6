"""Helpers shared by the assigners: empty result, points-in-boxes, pairwise IoU, target tensors."""

from __future__ import annotations

import torch


def empty_assignment(pd_scores: torch.Tensor, pd_bboxes: torch.Tensor, num_classes: int) -> tuple:
    """The no-GT result, as ``TaskAlignedAssigner`` returns it (everything background)."""
    return (
        torch.full_like(pd_scores[..., 0], num_classes),
        torch.zeros_like(pd_bboxes),
        torch.zeros_like(pd_scores),
        torch.zeros_like(pd_scores[..., 0], dtype=torch.bool),
        torch.zeros_like(pd_scores[..., 0]),
    )


def points_in_boxes(points: torch.Tensor, boxes: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """(b, n, A) bool: anchor point (A, 2) strictly inside xyxy box (b, n, 4)."""
    x, y = points[:, 0], points[:, 1]  # (A,)
    x1, y1, x2, y2 = (boxes[..., i, None] for i in range(4))  # each (b, n, 1)
    return (x - x1 > eps) & (y - y1 > eps) & (x2 - x > eps) & (y2 - y > eps)


def pairwise_iou(boxes: torch.Tensor, anchors: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """(b, n, A) IoU of xyxy GT boxes (b, n, 4) with xyxy anchor boxes (A, 4), few temporaries."""
    gx1, gy1, gx2, gy2 = (boxes[..., i, None] for i in range(4))  # (b, n, 1)
    ax1, ay1, ax2, ay2 = anchors.unbind(-1)  # (A,)
    inter = (gx2.minimum(ax2) - gx1.maximum(ax1)).clamp_(0) * (gy2.minimum(ay2) - gy1.maximum(ay1)).clamp_(0)
    union = (gx2 - gx1) * (gy2 - gy1) + ((ax2 - ax1) * (ay2 - ay1)) - inter + eps  # (b, n, A)
    return inter.div_(union)


def assigned_targets(
    gt_labels: torch.Tensor,
    gt_bboxes: torch.Tensor,
    target_gt_idx: torch.Tensor,
    fg_mask: torch.Tensor,
    num_classes: int,
    score: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gather labels/boxes of the assigned GT and the soft class target ``one_hot * score``.

    Args:
        gt_labels: (b, n, 1) class ids.
        gt_bboxes: (b, n, 4) xyxy boxes.
        target_gt_idx: (b, A) assigned GT index (0 for background).
        fg_mask: (b, A) bool foreground.
        num_classes: C.
        score: (b, A) soft target value of each anchor (e.g. the predicted box's IoU with its GT).

    Returns:
        target_labels (b, A) int64, target_bboxes (b, A, 4), target_scores (b, A, C) float.
    """
    b, n = gt_bboxes.shape[:2]
    flat = target_gt_idx + torch.arange(b, device=gt_bboxes.device)[:, None] * n  # (b, A) index into b*n
    target_labels = gt_labels.long().flatten()[flat].clamp_(0)  # (b, A)
    target_bboxes = gt_bboxes.reshape(-1, 4)[flat]  # (b, A, 4)
    target_scores = torch.zeros((*target_labels.shape, num_classes), dtype=score.dtype, device=score.device)
    target_scores.scatter_(2, target_labels.unsqueeze(-1), (score * fg_mask).unsqueeze(-1).to(score.dtype))  # (b, A, C)
    return target_labels, target_bboxes, target_scores
