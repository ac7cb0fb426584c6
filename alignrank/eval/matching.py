"""Greedy COCO-style matching of detections to ground truth at one IoU threshold.

A faithful single-threshold port of pycocotools' ``COCOeval.evaluateImg`` (area range "all"): per
image and category, detections in descending score order (stable) take the highest-IoU ground truth
still free (ties go to the later ground truth, as in pycocotools); crowd regions can be matched any
number of times and make the detection *ignored* rather than a true positive, and a detection that
found a regular ground truth never falls back to a crowd region.

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

from alignrank.eval.boxes import Detections, GroundTruth, box_iou, group_slices


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


def _pair_keys(image_id: np.ndarray, category_id: np.ndarray, ncat: int) -> np.ndarray:
    return image_id.astype(np.int64) * ncat + category_id.astype(np.int64)


def greedy_match(gt: GroundTruth, dets: Detections, iou_thr: float) -> Matches:
    """Match ``dets`` to ``gt`` per image and category at ``iou_thr`` (pycocotools rules).

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
    ncat = int(max(dets.category_id.max(initial=0), gt.category_id.max(initial=0))) + 1
    gt_groups = group_slices(_pair_keys(gt.image_id, gt.category_id, ncat))
    thr = min(iou_thr, 1 - 1e-10)
    for key, didx in group_slices(_pair_keys(dets.image_id, dets.category_id, ncat)).items():
        gidx = gt_groups.get(key)
        if gidx is None:
            continue
        didx = didx[np.argsort(-dets.score[didx], kind="mergesort")]  # highest score first
        gidx = gidx[np.argsort(gt.iscrowd[gidx], kind="mergesort")]  # crowd (ignored) last
        crowd = gt.iscrowd[gidx]  # (G,)
        ious = box_iou(dets.bbox[didx], gt.bbox[gidx], crowd)  # (D, G)
        taken = np.zeros(len(gidx), bool)
        for row, d in enumerate(didx):
            iou = ious[row]
            free = (~taken | crowd) & (iou >= thr)  # (G,)
            for pool in (free & ~crowd, free & crowd):  # a regular match wins over any crowd match
                if pool.any():
                    cand = np.where(pool, iou, -1.0)
                    m = len(cand) - 1 - int(np.argmax(cand[::-1]))  # last maximum, as pycocotools
                    break
            else:
                continue
            out.gt_index[d], out.iou[d] = gidx[m], iou[m]
            if crowd[m]:
                out.ignored[d] = True
            else:
                out.tp[d] = True
                taken[m] = True
    return out
