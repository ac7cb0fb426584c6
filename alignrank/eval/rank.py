"""Rank consistency of scores with localisation quality, per ground truth.

For each (non-crowd) ground truth, its *candidates* are the pre-NMS predictions of its class whose
best same-class ground truth (highest IoU) it is, with IoU >= ``match_iou`` (each candidate counts
for one ground truth only). Over the ground truths with >= 2 candidates we report the mean Kendall
tau-b and Spearman rho between score and IoU (ties handled as scipy does; groups where score or IoU
is constant are left out of the mean, as scipy returns NaN there), and the top-1 gap: how often
the top-scored candidate is not a highest-IoU one, and the mean IoU lost by it.

All groups are evaluated at once on padded (G, K, K) pair tensors, chunked so that
``G * K * K`` stays under ``pair_budget`` (no Python loop over ground truths).

Examples:
    >>> import numpy as np
    >>> s = rank_stats_grouped(np.array([0, 0, 0]), np.array([0.9, 0.5, 0.1]), np.array([0.9, 0.7, 0.6]))
    >>> round(s["kendall_tau"], 3), round(s["spearman_rho"], 3), s["top1_miss_rate"]
    (1.0, 1.0, 0.0)
"""

from __future__ import annotations

import math

import numpy as np

from alignrank.eval.boxes import Detections, GroundTruth, box_iou, group_slices


def assign_candidates(gt: GroundTruth, cands: Detections, match_iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Assign each candidate to its best same-class non-crowd ground truth with IoU >= ``match_iou``.

    Returns:
        ``(cand_index, gt_index, iou)``: (M,) indices into ``cands`` and ``gt`` and the IoU of each pair.
    """
    ci, gi, ious = [], [], []
    gt_by_img = group_slices(gt.image_id[~gt.iscrowd]) if len(gt) else {}
    regular = np.flatnonzero(~gt.iscrowd)
    for img, cidx in group_slices(cands.image_id).items():
        g = gt_by_img.get(img)
        if g is None:
            continue
        gidx = regular[g]  # (G,) indices into gt
        iou = box_iou(cands.bbox[cidx], gt.bbox[gidx])  # (C, G)
        iou = np.where(cands.category_id[cidx, None] == gt.category_id[None, gidx], iou, 0.0)  # same class only
        best = iou.argmax(1)  # (C,)
        best_iou = iou[np.arange(len(cidx)), best]
        keep = best_iou >= match_iou
        ci.append(cidx[keep]), gi.append(gidx[best[keep]]), ious.append(best_iou[keep])
    if not ci:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(ci), np.concatenate(gi), np.concatenate(ious)


def _padded(group: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pad grouped values to (G, K) arrays plus a (G, K) validity mask; groups sorted by key."""
    order = np.argsort(group, kind="stable")
    g = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]  # (G,)
    sizes = np.diff(np.r_[starts, len(g)])  # (G,)
    pos = np.arange(len(g)) - np.repeat(starts, sizes)  # (M,) position within its group
    row = np.repeat(np.arange(len(starts)), sizes)  # (M,)
    k = int(sizes.max())
    mask = np.zeros((len(starts), k), bool)
    mask[row, pos] = True
    out = []
    for v in values:
        a = np.zeros((len(starts), k), np.float64)
        a[row, pos] = v[order]
        out.append(a)
    return (mask, *out)


def _chunk_stats(mask: np.ndarray, s: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, ...]:
    """Kendall tau-b, Spearman rho, top-1 miss and IoU loss of each padded group (G, K)."""
    pair = mask[:, :, None] & mask[:, None, :]  # (G, K, K) both valid
    ds = np.sign(s[:, :, None] - s[:, None, :]) * pair  # (G, K, K) score order of each pair
    dq = np.sign(q[:, :, None] - q[:, None, :]) * pair  # (G, K, K) IoU order of each pair
    # tau-b = sum(sign*sign) / sqrt(#pairs untied in s * #pairs untied in q) (ordered pairs: factor 2 cancels)
    num = (ds * dq).sum((1, 2))  # (G,)
    den = np.sqrt(np.abs(ds).sum((1, 2)) * np.abs(dq).sum((1, 2)))  # (G,)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    # average ranks (1-based, ties averaged): #smaller + (#equal incl. self + 1) / 2
    rs = ((ds > 0).sum(2) + ((ds == 0) & pair).sum(2) * 0.5 + 0.5) * mask  # (G, K)
    rq = ((dq > 0).sum(2) + ((dq == 0) & pair).sum(2) * 0.5 + 0.5) * mask  # (G, K)
    n = mask.sum(1)  # (G,)
    rs_c = (rs - (rs.sum(1) / n)[:, None]) * mask  # (G, K) centred ranks
    rq_c = (rq - (rq.sum(1) / n)[:, None]) * mask
    den_r = np.sqrt((rs_c**2).sum(1) * (rq_c**2).sum(1))  # (G,)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den_r > 0, (rs_c * rq_c).sum(1) / np.where(den_r > 0, den_r, 1), np.nan)
    top = np.where(mask, s, -np.inf).argmax(1)  # (G,) first top-scored candidate
    q_top = q[np.arange(len(q)), top]
    q_best = np.where(mask, q, -np.inf).max(1)  # (G,)
    return tau, rho, (q_top < q_best).astype(np.float64), q_best - q_top


def rank_stats_grouped(group: np.ndarray, score: np.ndarray, iou: np.ndarray, pair_budget: int = 4_000_000) -> dict[str, float]:
    """Rank-consistency statistics of grouped (score, IoU) pairs (one group per ground truth).

    Args:
        group: (M,) group id (ground truth) of each candidate.
        score: (M,) candidate scores.
        iou: (M,) candidate IoU with its ground truth.
        pair_budget: Max ``G * K * K`` elements evaluated at once.

    Returns:
        ``kendall_tau``, ``spearman_rho`` (means over groups where defined), ``top1_miss_rate``,
        ``top1_iou_gap`` (means over groups with >= 2 candidates), ``rank_gts`` (number of such groups)
        and ``rank_cands_per_gt`` (their mean size). NaN when no group has 2 candidates.
    """
    nan = {"kendall_tau": math.nan, "spearman_rho": math.nan, "top1_miss_rate": math.nan, "top1_iou_gap": math.nan,
           "rank_gts": 0, "rank_cands_per_gt": math.nan}
    group, score, iou = (np.asarray(a).reshape(-1) for a in (group, score, iou))
    if len(group) < 2:
        return nan
    _, inv, counts = np.unique(group, return_inverse=True, return_counts=True)
    keep = counts[inv] >= 2
    if not keep.any():
        return nan
    size = counts[inv][keep]  # (M',) size of each kept candidate's group
    # process groups in order of size so each chunk pads to a similar K
    order = np.lexsort((inv[keep], size))
    g, s, q, sz = inv[keep][order], score[keep][order], iou[keep][order], size[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    taus, rhos, miss, gap = [], [], [], []
    i = 0
    while i < len(starts):
        k = int(sz[starts[i]])
        j = min(len(starts), i + max(1, pair_budget // (k * k)))  # groups i..j-1, all of size <= K of group j-1
        while j > i + 1 and int(sz[starts[j - 1]]) ** 2 * (j - i) > pair_budget:
            j = max(i + 1, (i + j) // 2)
        lo, hi = starts[i], (starts[j] if j < len(starts) else len(g))
        mask, ps, pq = _padded(g[lo:hi], s[lo:hi], q[lo:hi])
        t, r, m, d = _chunk_stats(mask, ps, pq)
        taus.append(t), rhos.append(r), miss.append(m), gap.append(d)
        i = j
    tau, rho, miss, gap = (np.concatenate(x) for x in (taus, rhos, miss, gap))
    return {
        "kendall_tau": float(np.nanmean(tau)) if np.isfinite(tau).any() else math.nan,
        "spearman_rho": float(np.nanmean(rho)) if np.isfinite(rho).any() else math.nan,
        "top1_miss_rate": float(miss.mean()),
        "top1_iou_gap": float(gap.mean()),
        "rank_gts": int(len(tau)),
        "rank_cands_per_gt": float(counts[counts >= 2].mean()),
    }


def rank_consistency(gt: GroundTruth, cands: Detections, match_iou: float = 0.5,
                     pair_budget: int = 4_000_000) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Rank consistency of pre-NMS candidates against the ground truth.

    Args:
        gt: Ground truth.
        cands: Pre-NMS candidates (dataset ids).
        match_iou: IoU for a candidate to belong to a ground truth.
        pair_budget: See :func:`rank_stats_grouped`.

    Returns:
        ``(stats, score, iou)``: the statistics and the matched candidates' (score, IoU) pairs (for plots).
    """
    ci, gi, iou = assign_candidates(gt, cands, match_iou)
    stats = rank_stats_grouped(gi, cands.score[ci], iou, pair_budget)
    return stats, cands.score[ci], iou
