"""``simota``: YOLOX's SimOTA assignment (Ge et al. 2021), vectorized over batch x GTs x anchors.

For GT g and anchor a (pixels):

* candidate(g, a) = anchor point inside the GT box OR inside the centre square of half-side
  ``loss.simota_radius`` strides around the GT centre (per-GT candidates; other anchors never match g);
* cost(g, a) = sum_k BCE(p_ak, onehot_g) + 3 * (-log(IoU(pred_a, g) + 1e-8)) + 1e5 * [not (in box and
  in centre region)], with p the predicted class probabilities (YOLOX's classification cost, summed over
  classes, without the objectness factor that YOLOv8 does not have);
* dynamic k_g = clamp(floor(sum of the top-10 candidate IoUs of g), min 1); g takes its k_g cheapest
  candidates;
* an anchor claimed by several GTs goes to the cheapest one.

The class target is one-hot times the IoU of the predicted box with its GT (YOLOX's).

Examples:
    >>> from alignrank.config.schema import LossParams
    >>> build_simota(num_classes=3, stride=[8.0, 16.0, 32.0], params=LossParams()).radius
    2.5
"""

from __future__ import annotations

import torch
from torch import nn

from alignrank.loss.assigners.common import assigned_targets, empty_assignment, points_in_boxes
from alignrank.loss.assigners.registry import register_assigner
from alignrank.loss.iou import box_iou


class SimOTAAssigner(nn.Module):
    """SimOTA with per-GT candidates, dynamic k and cheapest-GT conflict resolution.

    Args:
        num_classes: Number of classes C.
        radius: Centre-region half-side in strides (``loss.simota_radius``).
        candidate_k: IoUs summed for the dynamic k (YOLOX: 10).
        iou_weight: Weight of the -log IoU cost (YOLOX: 3).
        outside_cost: Cost added outside box AND centre region (YOLOX: 1e5).
    """

    def __init__(
        self,
        num_classes: int,
        radius: float = 2.5,
        candidate_k: int = 10,
        iou_weight: float = 3.0,
        outside_cost: float = 1e5,
    ):
        super().__init__()
        self.num_classes, self.radius = num_classes, radius
        self.candidate_k, self.iou_weight, self.outside_cost = candidate_k, iou_weight, outside_cost

    @torch.no_grad()
    def forward(self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, anc_strides=None):
        """Assign anchors to GTs.

        Args:
            pd_scores: (b, A, C) predicted class probabilities (sigmoid).
            pd_bboxes: (b, A, 4) predicted xyxy boxes, pixels.
            anc_points: (A, 2) anchor points, pixels.
            gt_labels: (b, n, 1) GT classes.
            gt_bboxes: (b, n, 4) xyxy GT boxes, pixels.
            mask_gt: (b, n, 1) 1 for real GTs, 0 for padding.
            anc_strides: (A,) or (A, 1) stride of each anchor (required).

        Returns:
            target_labels (b, A), target_bboxes (b, A, 4), target_scores (b, A, C), fg_mask (b, A),
            target_gt_idx (b, A).
        """
        b, n = gt_bboxes.shape[:2]
        if n == 0:
            return empty_assignment(pd_scores, pd_bboxes, self.num_classes)
        if anc_strides is None:
            raise ValueError("SimOTAAssigner needs anc_strides (the stride of each anchor)")
        strides = anc_strides.reshape(-1).to(gt_bboxes.dtype)  # (A,)
        num_anchors = anc_points.shape[0]
        valid = mask_gt.reshape(b, n).bool()  # (b, n)

        in_box = points_in_boxes(anc_points, gt_bboxes)  # (b, n, A)
        centre = (gt_bboxes[..., :2] + gt_bboxes[..., 2:]) / 2  # (b, n, 2)
        half = self.radius * strides  # (A,)
        in_ctr = ((anc_points[:, 0] - centre[..., 0, None]).abs() < half) & (
            (anc_points[:, 1] - centre[..., 1, None]).abs() < half
        )  # (b, n, A)
        cand = (in_box | in_ctr) & valid[..., None]  # (b, n, A)
        bi, gi, ai = cand.nonzero(as_tuple=True)  # (P,) each

        # Costs of the candidate pairs only, scattered into dense (b, n, A) maps (inf = not a candidate)
        iou = box_iou(gt_bboxes[bi, gi], pd_bboxes[bi, ai]).squeeze(-1).clamp_(0).float()  # (P,)
        p = pd_scores.float().clamp(1e-6, 1 - 1e-6)  # (b, A, C)
        neg = -torch.log1p(-p).sum(-1)  # (b, A) sum_k -log(1 - p_k): BCE of every class against 0
        pc = p[bi, ai, gt_labels[bi, gi, 0].long()]  # (P,) probability of the GT's class
        cls_cost = neg[bi, ai] - pc.log() + torch.log1p(-pc)  # (P,) sum_k BCE(p_k, onehot)
        outside = (~(in_box & in_ctr))[bi, gi, ai]  # (P,) not in box AND centre region
        cost_v = cls_cost + self.iou_weight * -torch.log(iou + 1e-8) + self.outside_cost * outside
        cost = torch.full((b, n, num_anchors), float("inf"), device=gt_bboxes.device)  # (b, n, A)
        cost[bi, gi, ai] = cost_v
        ious = torch.zeros((b, n, num_anchors), device=gt_bboxes.device)  # (b, n, A)
        ious[bi, gi, ai] = iou

        # Dynamic k per GT, then its k cheapest candidates
        kk = min(self.candidate_k, num_anchors)
        dyn_k = ious.topk(kk, dim=-1).values.sum(-1).floor().clamp_(min=1).long()  # (b, n)
        top_cost, top_idx = cost.topk(kk, dim=-1, largest=False)  # (b, n, kk) ascending
        keep = (torch.arange(kk, device=cost.device) < dyn_k[..., None]) & top_cost.isfinite()  # (b, n, kk)
        match = torch.zeros((b, n, num_anchors), dtype=torch.bool, device=cost.device)
        match.scatter_(-1, top_idx, keep)  # (b, n, A)

        # Anchors matched by several GTs keep the cheapest one
        fg_mask = match.any(1)  # (b, A)
        target_gt_idx = cost.masked_fill(~match, float("inf")).argmin(1)  # (b, A)
        target_gt_idx = target_gt_idx.masked_fill_(~fg_mask, 0)
        score = ious.gather(1, target_gt_idx[:, None]).squeeze(1)  # (b, A) IoU of the pred box with its GT
        labels, boxes, scores = assigned_targets(gt_labels, gt_bboxes, target_gt_idx, fg_mask, self.num_classes, score)
        return labels, boxes, scores.to(pd_scores.dtype), fg_mask, target_gt_idx


@register_assigner("simota")
def build_simota(*, num_classes: int, stride: list[float], params) -> SimOTAAssigner:
    """SimOTA with the centre radius ``loss.simota_radius`` (strides)."""
    return SimOTAAssigner(num_classes=num_classes, radius=params.simota_radius)
