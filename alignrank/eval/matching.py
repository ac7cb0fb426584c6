"""Greedy COCO-style matching of detections to ground truth, vectorized over images, thresholds and area ranges.

:func:`match_groups` is pycocotools' ``COCOeval.evaluateImg`` matching for every (image,
category) group at once: detections in descending score order (stable) take the highest-IoU ground
truth still free with IoU >= the threshold (ties go to the later ground truth, as in pycocotools);
crowd regions can be matched any number of times; ground truths *ignored* in an area range (crowd,
or area outside the range) are matched only when no regular one qualifies, and make the detection
ignored. IoU is pycocotools' ``bbIou`` (crowd: over the detection's area) with the same operations.

Only detections with IoU >= the lowest threshold with some ground truth of their group can match;
their greedy matching runs as one vectorized step per rank over all groups (groups bucketed by their
number of ground truths, padded to a power of two), so the cost is a few numpy calls per rank, not a
Python loop per detection. :func:`greedy_match` is the single-threshold, area-"all" view used for
calibration; :func:`alignrank.eval.coco.coco_match` uses all ten COCO thresholds and four area ranges.

Examples:
    >>> import numpy as np
    >>> from alignrank.eval.boxes import Detections, GroundTruth
    >>> gt = GroundTruth.from_coco({"images": [{"id": 1}], "categories": [{"id": 1}],
    ...     "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 0}]})
    >>> d = Detections([1, 1], [1, 1], [[0, 0, 10, 10], [0, 0, 10, 9]], [0.9, 0.8])
    >>> greedy_match(gt, d, 0.5).tp.tolist()  # the second is a duplicate
    [True, False]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alignrank.eval.boxes import Detections, GroundTruth

ALL_AREAS = np.array([[-np.inf, np.inf]])  # (1, 2): nothing ignored for its area


@dataclass
class GroupMatches:
    """Output of :func:`match_groups`; detections in group order (image, category), by rank within.

    Attributes:
        image_ids: (I,) sorted image ids; category_ids: (K,) sorted category ids.
        det: (N,) index into the input detections of each kept detection.
        group: (N,) its group ``image index * K + category index``; rank: (N,) its rank by score in the group.
        match: (N, A, T) index into the ``GroundTruth`` arrays of the matched box, -1 when none.
        gt_ignored: (G, A) every ground truth's ignore flag per area range (crowd or area out of range).
        gt_group: (G,) group of every ground truth (-1: image or category unknown).
    """

    image_ids: np.ndarray
    category_ids: np.ndarray
    det: np.ndarray
    group: np.ndarray
    rank: np.ndarray
    match: np.ndarray
    gt_ignored: np.ndarray
    gt_group: np.ndarray


def pair_iou(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of row-aligned ``xywh`` pairs (P, 4) with pycocotools' ``bbIou`` operations in its order."""
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])  # (P,)
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    da, ga = d[:, 2] * d[:, 3], g[:, 2] * g[:, 3]
    i = w * h
    u = np.where(crowd, da, da + ga - i)
    ok = (w > 0) & (h > 0)
    return np.where(ok, i / np.where(ok, u, 1.0), 0.0)


def segments(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each run of equal values in sorted ``keys``."""
    start = np.r_[0, np.flatnonzero(np.diff(keys)) + 1] if len(keys) else np.zeros(0, np.int64)
    return start, np.diff(np.r_[start, len(keys)])


def match_groups(gt: GroundTruth, dets: Detections, iou_thrs, area_rng: np.ndarray = ALL_AREAS,
                 max_det: int | None = None, first_max: bool = False) -> GroupMatches:
    """Match ``dets`` to ``gt`` per image and category at each threshold and area range (pycocotools rules).

    Args:
        gt: Ground truth; only boxes on its images and of its categories take part (as pycocotools).
        dets: Detections (any order); those on unknown images or categories are left out.
        iou_thrs: (T,) IoU thresholds (a match needs IoU >= min(threshold, 1 - 1e-10)).
        area_rng: (A, 2) area ranges; a ground truth outside one is ignored in it.
        max_det: Detections kept per group by score (None: all).
        first_max: Equal IoU goes to the earlier ground truth (tidecv's ``argmax``) instead of the later (pycocotools).

    Returns:
        :class:`GroupMatches`.
    """
    thr = np.minimum(np.asarray(iou_thrs, np.float64).reshape(-1), 1 - 1e-10)  # (T,)
    area_rng = np.asarray(area_rng, np.float64).reshape(-1, 2)
    T, A = len(thr), len(area_rng)
    img_ids, cat_ids = np.unique(gt.image_ids), np.unique(gt.category_ids)
    K = len(cat_ids)

    def group_of(image_id, category_id) -> np.ndarray:
        i = np.minimum(np.searchsorted(img_ids, image_id), max(len(img_ids) - 1, 0))
        k = np.minimum(np.searchsorted(cat_ids, category_id), max(K - 1, 0))
        ok = (img_ids[i] == image_id) & (cat_ids[k] == category_id) if len(img_ids) and K else np.zeros(len(i), bool)
        return np.where(ok, i * K + k, -1)

    gt_group = group_of(gt.image_id, gt.category_id)
    gt_ign = gt.iscrowd[:, None] | (gt.area[:, None] < area_rng[:, 0]) | (gt.area[:, None] > area_rng[:, 1])  # (G, A)
    g_sorted = np.flatnonzero(gt_group >= 0)
    g_sorted = g_sorted[np.argsort(gt_group[g_sorted], kind="stable")]  # by group, dataset order within
    g_key = gt_group[g_sorted]

    d_all = group_of(dets.image_id, dets.category_id)
    cand = np.flatnonzero(d_all >= 0)
    order = np.lexsort((-dets.score[cand], d_all[cand]))  # by group, score descending, input order for ties
    cand, d_key = cand[order], d_all[cand[order]]
    start, size = segments(d_key)
    rank = np.arange(len(cand)) - np.repeat(start, size)  # (N0,) rank within the group
    if max_det is not None:
        cand, d_key, rank = cand[rank < max_det], d_key[rank < max_det], rank[rank < max_det]
    N = len(cand)
    match = np.full((N, A, T), -1, np.int64)

    # IoU of every detection with every ground truth of its group (pairs grouped by detection)
    lo = np.searchsorted(g_key, d_key, side="left")
    n_g = np.searchsorted(g_key, d_key, side="right") - lo  # (N,)
    p_det = np.repeat(np.arange(N), n_g)  # (P,)
    p_pos = np.arange(len(p_det)) - np.repeat(np.cumsum(n_g) - n_g, n_g)  # (P,) position of the gt in its group
    p_gt = g_sorted[lo[p_det] + p_pos]
    p_iou = pair_iou(dets.bbox[cand[p_det]], gt.bbox[p_gt], gt.iscrowd[p_gt])
    best = np.zeros(N)
    has = n_g > 0
    if has.any():
        best[has] = np.maximum.reduceat(p_iou, (np.cumsum(n_g) - n_g)[has])
    can = best >= (thr.min() if T else np.inf)  # the others never match
    m_det = np.flatnonzero(can)  # (M,) group order, rank order within
    if len(m_det):
        keep = can[p_det]
        pairs = (p_det[keep], p_pos[keep], p_iou[keep])
        bucket = np.ceil(np.log2(n_g[m_det])).astype(np.int64)  # padded to 2^b ground truths
        for b in np.unique(bucket):
            _match_bucket(m_det[bucket == b], 2 ** int(b), d_key, lo, n_g, pairs, g_sorted, gt.iscrowd, gt_ign, thr,
                          match, first_max)
    return GroupMatches(img_ids, cat_ids, cand, d_key, rank, match, gt_ign, gt_group)


def _match_bucket(dets_b, gpad, d_key, lo, n_g, pairs, g_sorted, iscrowd, gt_ign, thr, match, first_max) -> None:
    """Greedy matching of the matchable detections ``dets_b`` whose groups have <= ``gpad`` ground truths."""
    A, T = gt_ign.shape[1], len(thr)
    _, first, count = np.unique(d_key[dets_b], return_index=True, return_counts=True)
    by_count = np.argsort(-count, kind="stable")  # most matchable detections first: active groups are a prefix
    first, count = first[by_count], count[by_count]
    nb = len(first)
    slot = np.arange(gpad)
    valid = slot[None, :] < n_g[dets_b[first]][:, None]  # (nb, gpad)
    gi = g_sorted[np.where(valid, lo[dets_b[first]][:, None] + slot[None, :], 0)]  # (nb, gpad) gt index (pad: any)
    crowd = iscrowd[gi] & valid  # (nb, gpad)
    ign = np.moveaxis(gt_ign[gi], 2, 1)  # (nb, A, gpad)
    p_det, p_pos, p_iou = pairs
    r_of = np.full(len(n_g), -1, np.int64)
    r_of[dets_b] = np.arange(len(dets_b))
    rows = np.full((len(dets_b), gpad), -1.0)  # IoU rows, -1 in the padding
    sel = r_of[p_det] >= 0
    rows[r_of[p_det[sel]], p_pos[sel]] = p_iou[sel]
    taken = np.zeros((nb, A, T, gpad), bool)
    for s in range(int(count.max())):
        n = int((count > s).sum())
        d = dets_b[first[:n] + s]  # (n,) the s-th matchable detection of each active group
        io = rows[r_of[d]][:, None, None, :]  # (n, 1, 1, gpad)
        ok = (~taken[:n] | crowd[:n, None, None, :]) & (io >= thr[None, None, :, None])  # (n, A, T, gpad)
        ig = ign[:n, :, None, :]  # (n, A, 1, gpad)
        reg = ok & ~ig
        pool = np.where(reg.any(-1, keepdims=True), reg, ok & ig)  # a regular match wins over an ignored one
        val = np.where(pool, io, -1.0)
        top = (val == val.max(-1, keepdims=True)) & pool
        last = np.argmax(top, -1) if first_max else gpad - 1 - np.argmax(top[..., ::-1], -1)  # (n, A, T) pycocotools: last
        ii, aa, tt = np.nonzero(pool.any(-1))
        jj = last[ii, aa, tt]
        taken[ii, aa, tt, jj] = True
        match[d[ii], aa, tt] = gi[ii, jj]


@dataclass
class Matches:
    """Per-detection outcome of :func:`greedy_match` (aligned with the input detections).

    Attributes:
        tp: (N,) matched a regular ground truth.
        ignored: (N,) matched a crowd region (pycocotools drops these from precision/recall).
        gt_index: (N,) index into the ``GroundTruth`` arrays of the matched box, -1 when none.
        iou: (N,) IoU with the matched box (0 when none).
    """

    tp: np.ndarray
    ignored: np.ndarray
    gt_index: np.ndarray
    iou: np.ndarray


def greedy_match(gt: GroundTruth, dets: Detections, iou_thr: float) -> Matches:
    """Match all ``dets`` to ``gt`` per image and category at ``iou_thr`` (pycocotools rules, area "all").

    Args:
        gt: Ground truth (crowd regions flagged).
        dets: Detections (any order).
        iou_thr: IoU threshold (a match needs IoU >= threshold).

    Returns:
        :class:`Matches` aligned with ``dets``.
    """
    n = len(dets)
    out = Matches(np.zeros(n, bool), np.zeros(n, bool), np.full(n, -1, np.int64), np.zeros(n))
    if n == 0 or len(gt) == 0:
        return out
    m = match_groups(gt, dets, [iou_thr])
    hit = m.match[:, 0, 0] >= 0
    d, g = m.det[hit], m.match[hit, 0, 0]
    out.gt_index[d] = g
    out.iou[d] = pair_iou(dets.bbox[d], gt.bbox[g], gt.iscrowd[g])
    out.ignored[d] = gt.iscrowd[g]
    out.tp[d] = ~gt.iscrowd[g]
    return out
