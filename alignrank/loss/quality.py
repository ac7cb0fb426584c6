"""Localisation quality of the positives: q = IoU(pred, GT)^alpha * centerness^beta (detached).

Examples:
    >>> import torch
    >>> gt = torch.tensor([[0.0, 0.0, 4.0, 2.0]])
    >>> round(float(centerness(torch.tensor([[1.0, 1.0]]), gt)), 4)  # sqrt(1/3 * 1/1)
    0.5774
    >>> float(quality(torch.tensor([0.5]), torch.tensor([0.25]), alpha=1.0, beta=0.5))
    0.25
"""

from __future__ import annotations

import torch

from alignrank.loss.iou import box_iou


def centerness(points: torch.Tensor, boxes: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """FCOS centerness of anchor points w.r.t. their GT boxes.

    Args:
        points: (N, 2) anchor points (x, y).
        boxes: (N, 4) xyxy GT boxes in the same units.
        eps: Guard against 0/0 for degenerate boxes.

    Returns:
        (N,) ``sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b))``, 0 for points outside the box.
    """
    lt = points - boxes[:, :2]  # (N, 2) l, t
    rb = boxes[:, 2:] - points  # (N, 2) r, b
    lt, rb = lt.clamp(min=0), rb.clamp(min=0)  # outside the box -> a zero distance -> centerness 0
    ratio = lt.minimum(rb) / (lt.maximum(rb) + eps)  # (N, 2) x-ratio, y-ratio
    return ratio.prod(-1).sqrt()  # (N,)


def quality(iou: torch.Tensor, ctr: torch.Tensor | None, *, alpha: float, beta: float) -> torch.Tensor:
    """q = IoU^alpha * centerness^beta, detached and clamped to [0, 1]; ``beta == 0`` ignores ``ctr``."""
    q = iou.detach().float().clamp(0, 1).pow(alpha)  # (N,)
    if beta != 0 and ctr is not None:
        q = q * ctr.detach().float().clamp(0, 1).pow(beta)
    return q


def positive_quality(
    pred_boxes: torch.Tensor,
    gt_boxes: torch.Tensor,
    points: torch.Tensor,
    *,
    alpha: float,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quality of each positive from its predicted box, its GT and its anchor point (all detached).

    Args:
        pred_boxes: (N, 4) xyxy predicted boxes of the positives.
        gt_boxes: (N, 4) xyxy assigned GT boxes (same units).
        points: (N, 2) anchor points of the positives (same units).
        alpha: IoU exponent.
        beta: Centerness exponent (0 = IoU only, centerness is not computed).

    Returns:
        (q, iou): both (N,) float32, detached.
    """
    with torch.no_grad():
        iou = box_iou(pred_boxes.float(), gt_boxes.float()).squeeze(-1).clamp(0, 1)  # (N,)
        ctr = centerness(points.float(), gt_boxes.float()) if beta != 0 else None
        return quality(iou, ctr, alpha=alpha, beta=beta), iou
