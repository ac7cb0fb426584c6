"""The 12 standard COCO box numbers: pycocotools' ``COCOeval`` re-done in vectorized numpy, bit for bit.

:func:`coco_metrics` computes them with the default ``engine="numpy"``: :func:`coco_match` is
``COCOeval.evaluate`` (per image and category: detections by score, stable, top 100; greedy
matching at each IoU threshold and area range by :func:`alignrank.eval.matching.match_groups`;
unmatched detections outside the area range ignored) and :func:`coco_accumulate` /
:func:`coco_summarize` are ``accumulate`` / ``summarize``, with the same floating-point
operations in the same order, so the 12 numbers are *identical* to pycocotools' (tested on the real
coco128 annotations; ``benchmarks/eval_speed.py`` checks it at COCO-val size, where it is several
times faster). pycocotools' quirks are kept: a ground truth with id 0 never counts as matched, and
the IoU of a crowd region divides by the detection's area. ``engine="pycocotools"`` runs
pycocotools itself (the reference).

An empty prediction list gives AP 0 (pycocotools' ``loadRes`` would crash on it); numbers
pycocotools reports as -1 (no ground truth in that area range) are returned as NaN (``null`` in JSON).

Examples:
    >>> gt = {"images": [{"id": 1, "width": 20, "height": 20}], "categories": [{"id": 7, "name": "a"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0}]}
    >>> from alignrank.eval.boxes import Detections
    >>> dets = Detections.from_coco([{"image_id": 1, "category_id": 7, "bbox": [2, 2, 8, 8], "score": 0.9}])
    >>> round(coco_metrics(CocoGT(gt), dets)["AP"], 3), round(coco_metrics(CocoGT(gt), dets, engine="pycocotools")["AP"], 3)
    (1.0, 1.0)
    >>> coco_metrics(CocoGT(gt), Detections.empty())["AP"]
    0.0
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from dataclasses import dataclass
from typing import Literal, Mapping

import numpy as np

from alignrank.eval.boxes import Detections, GroundTruth
from alignrank.eval.matching import match_groups, segments

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
# pycocotools' Params.setDetParams, built the same way (np.arange would differ in the last bit)
IOU_THRS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)  # (T,)
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)  # (R,)
MAX_DETS = (1, 10, 100)
AREA_RNG = np.array([[0**2, 1e5**2], [0**2, 32**2], [32**2, 96**2], [96**2, 1e5**2]])  # (A, 2)
AREA_LBL = ("all", "small", "medium", "large")


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class CocoGT:
    """Ground truth of an instances dict for both engines: flat arrays now, pycocotools' ``COCO`` on first use.

    Args:
        dataset: COCO instances dict (``images``, ``annotations``, ``categories``).
    """

    def __init__(self, dataset: Mapping) -> None:
        self.dataset = dataset
        self.arrays = GroundTruth.from_coco(dataset)
        self._coco = None

    @property
    def coco(self):
        """pycocotools' ``COCO`` of the dataset (built once, from a copy)."""
        if self._coco is None:
            from pycocotools.coco import COCO

            with _quiet():
                self._coco = COCO()
                self._coco.dataset = copy.deepcopy(dict(self.dataset))
                self._coco.dataset.setdefault("annotations", [])
                self._coco.createIndex()
        return self._coco

    def results(self, dets: Detections):
        """A pycocotools results ``COCO`` for ``dets`` (``loadRes``, or an empty one for no detections)."""
        from pycocotools.coco import COCO

        with _quiet():
            if len(dets):
                return self.coco.loadRes(dets.to_coco())
            res = COCO()
            res.dataset = {"images": list(self.coco.dataset["images"]), "annotations": [],
                           "categories": copy.deepcopy(self.coco.dataset.get("categories", []))}
            res.createIndex()
            return res


def coco_eval(gt: CocoGT, dets: Detections, max_dets: tuple[int, int, int] = MAX_DETS):
    """Run pycocotools' ``COCOeval`` (bbox) and return the evaluated object (``.stats`` filled)."""
    from pycocotools.cocoeval import COCOeval

    with _quiet():
        ev = COCOeval(gt.coco, gt.results(dets), "bbox")
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@dataclass
class CocoMatches:
    """Per-detection outcome of :func:`coco_match` (the top-100 detections per image and category).

    Attributes:
        image_ids: (I,) sorted image ids; category_ids: (K,) sorted category ids.
        det: (N,) index of each kept detection in the input.
        img, cat: (N,) its image / category index; rank: (N,) its rank by score in its (image, category).
        score: (N,) its score.
        matched: (N, A, T) counted as matched by accumulate (pycocotools' ``dtMatches != 0``).
        ignored: (N, A, T) pycocotools' ``dtIgnore``.
        n_pos: (K, A) ground truths not ignored per category and area range.
    """

    image_ids: np.ndarray
    category_ids: np.ndarray
    det: np.ndarray
    img: np.ndarray
    cat: np.ndarray
    rank: np.ndarray
    score: np.ndarray
    matched: np.ndarray
    ignored: np.ndarray
    n_pos: np.ndarray


def coco_match(gt: GroundTruth, dets: Detections, max_det: int = MAX_DETS[-1]) -> CocoMatches:
    """pycocotools' ``COCOeval.evaluate`` (bbox, ten IoU thresholds, four area ranges), vectorized.

    Matching is :func:`alignrank.eval.matching.match_groups` on the top ``max_det`` detections per
    image and category; then pycocotools' bookkeeping: a detection matched to an ignored ground
    truth is ignored, an unmatched one outside the area range too, and a match to a ground truth
    with id 0 does not count (pycocotools tests the stored id for truth).
    """
    m = match_groups(gt, dets, IOU_THRS, AREA_RNG, max_det)
    K, A = len(m.category_ids), len(AREA_RNG)
    n_pos = np.zeros((K, A), np.int64)
    known = m.gt_group >= 0
    for a in range(A):
        n_pos[:, a] = np.bincount(m.gt_group[known & ~m.gt_ignored[:, a]] % K, minlength=K) if K else 0
    d_area = dets.bbox[m.det, 2] * dets.bbox[m.det, 3]
    d_out = (d_area[:, None] < AREA_RNG[:, 0]) | (d_area[:, None] > AREA_RNG[:, 1])  # (N, A)
    matched = m.match >= 0  # (N, A, T)
    g = np.maximum(m.match, 0)
    g_ign = m.gt_ignored[g, np.arange(A)[None, :, None]] if len(gt) else np.zeros(matched.shape, bool)
    counted = matched & (gt.ann_id[g] != 0) if len(gt) else matched
    ignored = (matched & g_ign) | (~counted & d_out[:, :, None])
    return CocoMatches(m.image_ids, m.category_ids, m.det, m.group // max(K, 1), m.group % max(K, 1), m.rank,
                       dets.score[m.det], counted, ignored, n_pos)


def coco_accumulate(m: CocoMatches) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' ``accumulate``: precision (T, R, K, A, M) and recall (T, K, A, M), -1 where undefined."""
    T, R, K, A, M = len(IOU_THRS), len(REC_THRS), len(m.category_ids), len(AREA_RNG), len(MAX_DETS)
    precision, recall = -np.ones((T, R, K, A, M)), -np.ones((T, K, A, M))
    order = np.lexsort((m.rank, m.img, -m.score, m.cat))  # pycocotools: image order, rank, then stable by -score
    cat, rank = m.cat[order], m.rank[order]
    tps = np.ascontiguousarray((m.matched & ~m.ignored)[order].transpose(1, 2, 0))  # (A, T, N) sorted
    fps = np.ascontiguousarray((~m.matched & ~m.ignored)[order].transpose(1, 2, 0))
    start, size = segments(cat)
    seg = dict(zip(cat[start].tolist(), zip(start.tolist(), size.tolist())))
    for k in range(K):
        s0, n0 = seg.get(k, (0, 0))
        for a in range(A):
            npig = int(m.n_pos[k, a])
            if npig == 0:  # no ground truth to recall (pycocotools also skips a category with no image records)
                continue
            for mi, max_det in enumerate(MAX_DETS):
                cols = slice(s0, s0 + n0) if max_det >= MAX_DETS[-1] else s0 + np.flatnonzero(rank[s0 : s0 + n0] < max_det)
                tp_sum = np.cumsum(tps[a][:, cols], axis=1).astype(dtype=float)  # (T, nd)
                fp_sum = np.cumsum(fps[a][:, cols], axis=1).astype(dtype=float)
                nd = tp_sum.shape[1]
                rc = tp_sum / npig
                pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
                recall[:, k, a, mi] = rc[:, -1] if nd else 0
                if not nd:
                    precision[:, :, k, a, mi] = 0.0
                    continue
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision envelope
                for t in range(T):
                    inds = np.searchsorted(rc[t], REC_THRS, side="left")
                    q = np.zeros(R)
                    ok = inds < nd
                    q[ok] = pr[t, inds[ok]]
                    precision[t, :, k, a, mi] = q
    return precision, recall


def coco_summarize(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """pycocotools' ``summarizeDets``: the 12 numbers (-1 where nothing is defined)."""

    def one(ap: bool, iou_thr: float | None = None, area: str = "all", max_dets: int = 100) -> float:
        aind = [i for i, lbl in enumerate(AREA_LBL) if lbl == area]
        mind = [i for i, md in enumerate(MAX_DETS) if md == max_dets]
        s = precision if ap else recall
        if iou_thr is not None:
            s = s[np.where(iou_thr == IOU_THRS)[0]]
        s = s[:, :, :, aind, mind] if ap else s[:, :, aind, mind]
        return -1.0 if len(s[s > -1]) == 0 else float(np.mean(s[s > -1]))

    return np.array([one(True), one(True, 0.5), one(True, 0.75), one(True, area="small"), one(True, area="medium"),
                     one(True, area="large"), one(False, max_dets=1), one(False, max_dets=10), one(False),
                     one(False, area="small"), one(False, area="medium"), one(False, area="large")])


def coco_metrics(gt: CocoGT, dets: Detections, engine: Literal["numpy", "pycocotools"] = "numpy") -> dict[str, float]:
    """The 12 standard COCO numbers (fractions in [0, 1]; NaN where pycocotools reports -1).

    Args:
        gt: Ground truth.
        dets: Detections with the dataset's own image and category ids.
        engine: ``numpy`` (:func:`coco_match`, identical numbers, faster) or ``pycocotools``.

    Returns:
        ``{"AP": ..., "AP50": ..., ..., "ARl": ...}`` in :data:`STAT_NAMES` order.
    """
    if not len(gt.dataset.get("annotations") or []):
        return {k: math.nan for k in STAT_NAMES}
    if engine == "pycocotools":
        stats = np.asarray(coco_eval(gt, dets).stats, dtype=np.float64)
    else:
        stats = coco_summarize(*coco_accumulate(coco_match(gt.arrays, dets)))
    return {k: (float(v) if v > -1 else math.nan) for k, v in zip(STAT_NAMES, stats)}
