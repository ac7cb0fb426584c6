"""``atss``: Adaptive Training Sample Selection (Zhang et al. 2020), vectorized over batch x GTs x anchors.

For each GT: take the ``loss.atss_topk`` anchors closest to its centre (centre distance) on EACH level;
their IoUs with the GT set the threshold mean + std (unbiased std, as in the reference implementation);
positives are those candidates with IoU >= threshold whose anchor point lies inside the GT box. The IoU
here is between the GT and the ANCHOR BOX, a square of side 5 * stride centred on the anchor point (the
YOLOv6 ATSS convention for anchor-free heads; it does not depend on the predictions, as in ATSS). An
anchor claimed by several GTs goes to the one with the highest anchor IoU. The class target is one-hot
times the IoU of the predicted box with its GT (as YOLOv6's ATSS assigner).

Examples:
    >>> from alignrank.config.schema import LossParams
    >>> build_atss(num_classes=3, stride=[8.0, 16.0, 32.0], params=LossParams()).topk
    9
"""

from __future__ import annotations

import torch
from torch import nn

from alignrank.loss.assigners.common import assigned_targets, empty_assignment, pairwise_iou, points_in_boxes
from alignrank.loss.assigners.registry import register_assigner
from alignrank.loss.iou import box_iou


class ATSSAssigner(nn.Module):
    """ATSS with anchor boxes of side ``anchor_scale * stride``.

    Args:
        num_classes: Number of classes C.
        topk: Closest anchors per level per GT (``loss.atss_topk``).
        anchor_scale: Anchor box side in strides (YOLOv6: 5).
    """

    def __init__(self, num_classes: int, topk: int = 9, anchor_scale: float = 5.0):
        super().__init__()
        self.num_classes, self.topk, self.anchor_scale = num_classes, topk, anchor_scale

    @torch.no_grad()
    def forward(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, anc_strides=None):
        """Assign anchors to GTs (same arguments and returns as ``SimOTAAssigner.forward``).

        ``anc_strides`` (A,) is required: the anchors of one level are contiguous with one stride.
        """
        b, n = gt_bboxes.shape[:2]
        if n == 0:
            return empty_assignment(pd_scores, pd_bboxes, self.num_classes)
        if anc_strides is None:
            raise ValueError("ATSSAssigner needs anc_strides (the stride of each anchor)")
        strides = anc_strides.reshape(-1).to(gt_bboxes.dtype)  # (A,)
        num_anchors = anc_points.shape[0]
        valid = mask_gt.reshape(b, n).bool()  # (b, n)

        half = (self.anchor_scale / 2 * strides)[:, None]  # (A, 1)
        anchor_boxes = torch.cat((anc_points - half, anc_points + half), -1)  # (A, 4)
        overlaps = pairwise_iou(gt_bboxes, anchor_boxes)  # (b, n, A)
        centre = (gt_bboxes[..., :2] + gt_bboxes[..., 2:]) / 2  # (b, n, 2)
        dx = anc_points[:, 0] - centre[..., 0, None]  # (b, n, A)
        dy = anc_points[:, 1] - centre[..., 1, None]  # (b, n, A)
        dist = dx.pow(2) + dy.pow(2)  # (b, n, A) squared centre distance

        # Candidates: top-k closest per level (a loop over the few levels, not over boxes)
        _, level_sizes = torch.unique_consecutive(strides, return_counts=True)
        cand_idx, start = [], 0
        for size in level_sizes.tolist():
            k = min(self.topk, size)
            cand_idx.append(dist[..., start : start + size].topk(k, dim=-1, largest=False).indices + start)  # (b, n, k)
            start += size
        cand_idx = torch.cat(cand_idx, -1)  # (b, n, K) K = sum of per-level k
        cand_iou = overlaps.gather(-1, cand_idx)  # (b, n, K)
        thr = cand_iou.mean(-1) + cand_iou.std(-1).nan_to_num_(0.0)  # (b, n) adaptive IoU threshold (std 0 if K = 1)
        is_cand = torch.zeros((b, n, num_anchors), dtype=torch.bool, device=gt_bboxes.device)
        is_cand.scatter_(-1, cand_idx, True)  # (b, n, A)
        inside = points_in_boxes(anc_points, gt_bboxes)  # (b, n, A)
        pos = is_cand & (overlaps >= thr[..., None]) & inside & valid[..., None]  # (b, n, A)

        # Anchors claimed by several GTs keep the highest anchor IoU
        fg_mask = pos.any(1)  # (b, A)
        target_gt_idx = overlaps.masked_fill(~pos, -1.0).argmax(1).masked_fill_(~fg_mask, 0)  # (b, A)
        bi, ai = fg_mask.nonzero(as_tuple=True)  # (N,)
        score = torch.zeros((b, num_anchors), device=gt_bboxes.device)  # (b, A)
        pos_gt = gt_bboxes[bi, target_gt_idx[bi, ai]].float()  # (N, 4)
        score[bi, ai] = box_iou(pd_bboxes[bi, ai].float(), pos_gt).squeeze(-1).clamp_(0)
        labels, boxes, scores = assigned_targets(gt_labels, gt_bboxes, target_gt_idx, fg_mask, self.num_classes, score)
        return labels, boxes, scores.to(pd_scores.dtype), fg_mask, target_gt_idx


@register_assigner("atss")
def build_atss(*, num_classes: int, stride: list[float], params) -> ATSSAssigner:
    """ATSS with ``loss.atss_topk`` candidates per level."""
    return ATSSAssigner(num_classes=num_classes, topk=params.atss_topk)
