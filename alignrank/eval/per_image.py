"""Per-image COCO match records of one set of detections, and COCO AP under any reweighting of the images.

pycocotools' ``COCOeval.evaluate`` (bbox, area "all", 100 detections per image and category, IoU
thresholds 0.50:0.05:0.95) runs once; what its ``accumulate`` needs is kept as flat arrays
(:class:`ImageRecords`): per detection its image, category, score and, per IoU threshold, whether it
is a true or a false positive (a detection matched to a crowd region is neither, as in COCO); per image
and category the number of non-crowd ground truths. :func:`weighted_ap` then computes COCO's AP
(101-point interpolated precision, mean over IoU thresholds and over the categories that have ground
truth) for a batch of image weights, vectorized, without matching again. Weight 2 counts an image
twice (as if it were duplicated; exact up to score ties between different images), 0 drops it; with all
weights 1 the result is pycocotools' AP, AP50 and AP75.

The interpolated AP of one category and threshold is computed without a search per recall threshold:
with ``env_j`` the running maximum of precision from detection j to the end and ``c_j`` the number of
recall thresholds ``<= recall_j`` (non-decreasing in j), pycocotools' sum over recall thresholds of
``env[first j with recall_j >= r]`` equals ``sum_j env_j * (c_j - c_{j-1})``. Detections that cannot change
AP under any weighting are not stored: those ignored at every threshold (they repeat the previous
precision/recall point) and those after the last true positive of their category (they add only
points of lower precision at a recall already reached).

Examples:
    >>> from alignrank.eval.coco import CocoGT
    >>> gt = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 7, "name": "a"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0},
    ...                       {"id": 2, "image_id": 2, "category_id": 7, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0}]}
    >>> rec = image_records(CocoGT(gt), Detections([1, 2], [7, 7], [[2, 2, 8, 8], [50, 50, 8, 8]], [0.9, 0.8]))
    >>> [round(float(x), 3) for x in weighted_ap(rec, [[1, 1], [1, 0], [0, 1]])["AP"]]
    [0.505, 1.0, 0.0]
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignrank.eval.boxes import Detections

MAX_DETS = 100  # pycocotools' AP uses maxDets[-1] = 100 per image and category
REC_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1)  # (101,) pycocotools' recall thresholds
RECORDS_FILE = "per_image.npz"


@dataclass
class ImageRecords:
    """Per-image match records of one evaluation (see the module docstring).

    Detections are grouped by category (``cat_start``), in pycocotools' order within a category
    (descending score, stable over images in id order).

    Attributes:
        image_ids: (I,) COCO image ids (sorted, as pycocotools).
        cat_ids: (K,) COCO category ids (sorted).
        iou_thrs: (T,) IoU thresholds.
        det_img: (N,) index into ``image_ids`` of each kept detection.
        det_score: (N,) score.
        tp: (N, T) true positive at each threshold.
        fp: (N, T) false positive at each threshold (not matched, not ignored).
        cat_start: (K + 1,) detections of category k are ``cat_start[k]:cat_start[k + 1]``.
        ngt: (I, K) non-crowd ground truths per image and category.
    """

    image_ids: np.ndarray
    cat_ids: np.ndarray
    iou_thrs: np.ndarray
    det_img: np.ndarray
    det_score: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    cat_start: np.ndarray
    ngt: np.ndarray

    FIELDS = ("image_ids", "cat_ids", "iou_thrs", "det_img", "det_score", "tp", "fp", "cat_start", "ngt")

    def save_npz(self, path: str | Path, **meta: str) -> None:
        """Write atomically to ``path`` (``meta``: strings kept beside the arrays, e.g. source hashes)."""
        from alignrank.io import atomic_write_npz

        atomic_write_npz(path, **{f: getattr(self, f) for f in self.FIELDS}, meta=np.asarray(json.dumps(meta)))

    @classmethod
    def load_npz(cls, path: str | Path) -> "ImageRecords":
        """Read a file written by :meth:`save_npz`."""
        with np.load(path) as z:
            return cls(**{f: z[f] for f in cls.FIELDS})

    @staticmethod
    def load_meta(path: str | Path) -> dict:
        """The ``meta`` strings of a records file ({} when unreadable)."""
        try:
            with np.load(path) as z:
                return json.loads(str(z["meta"]))
        except Exception:  # noqa: BLE001  (a missing or corrupt file is simply rebuilt)
            return {}

    @property
    def num_images(self) -> int:
        return len(self.image_ids)


def _evaluate_img(gt, dets: Detections) -> tuple[list, list, list, np.ndarray]:
    """pycocotools ``evaluate()`` for area "all" and 100 detections: ``(evalImgs, imgIds, catIds, iouThrs)``."""
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt.coco, gt.results(dets), "bbox")
        ev.params.areaRng, ev.params.areaRngLbl, ev.params.maxDets = [[0, 1e10]], ["all"], [MAX_DETS]
        ev.evaluate()
    return ev.evalImgs, list(ev.params.imgIds), list(ev.params.catIds), np.asarray(ev.params.iouThrs)


def image_records(gt, dets: Detections) -> ImageRecords:
    """Match ``dets`` once with pycocotools and keep the per-image records.

    Args:
        gt: A :class:`alignrank.eval.coco.CocoGT` of the split.
        dets: Post-NMS detections (the dataset's own image and category ids).

    Returns:
        :class:`ImageRecords`.
    """
    img_ids = sorted(gt.coco.getImgIds())
    cat_ids = sorted(gt.coco.getCatIds())
    n_img, n_cat = len(img_ids), len(cat_ids)
    ngt = np.zeros((n_img, n_cat), np.int32)
    if not gt.coco.dataset.get("annotations"):
        thrs = np.linspace(0.5, 0.95, 10)
        z = np.zeros((0, len(thrs)), bool)
        return ImageRecords(np.asarray(img_ids), np.asarray(cat_ids), thrs, np.zeros(0, np.int32), np.zeros(0), z, z,
                            np.zeros(n_cat + 1, np.int64), ngt)
    evals, e_img, e_cat, thrs = _evaluate_img(gt, dets)
    assert e_img == img_ids and e_cat == cat_ids  # the order evalImgs is laid out in
    imgs, scores, tps, fps, starts = [], [], [], [], [0]
    for k in range(n_cat):
        k_img, k_score, k_match, k_ig = [], [], [], []
        for i in range(n_img):
            e = evals[k * n_img + i]  # cat-major, image-minor
            if e is None:
                continue
            ngt[i, k] = int(np.count_nonzero(np.asarray(e["gtIgnore"]) == 0))
            d = len(e["dtScores"])
            if d:
                k_img.append(np.full(d, i, np.int32)), k_score.append(np.asarray(e["dtScores"], np.float64))
                k_match.append(np.asarray(e["dtMatches"])[:, :d] > 0), k_ig.append(np.asarray(e["dtIgnore"], bool)[:, :d])
        if k_score:
            score = np.concatenate(k_score)
            order = np.argsort(-score, kind="mergesort")  # as pycocotools' accumulate
            matched = np.concatenate(k_match, axis=1)[:, order].T  # (n, T)
            ig = np.concatenate(k_ig, axis=1)[:, order].T  # (n, T) matched a crowd region (or out of range)
            tp, fp = matched & ~ig, ~matched & ~ig
            hit = np.flatnonzero(tp.any(1))
            keep = np.zeros(len(score), bool)
            if len(hit):
                keep[: hit[-1] + 1] = True  # nothing after the last true positive can change AP
            keep &= (tp | fp).any(1)  # ignored at every threshold: no new precision/recall point
            imgs.append(np.concatenate(k_img)[order][keep]), scores.append(score[order][keep])
            tps.append(tp[keep]), fps.append(fp[keep])
        starts.append(starts[-1] + (len(scores[-1]) if k_score else 0))
    t = len(thrs)
    return ImageRecords(np.asarray(img_ids), np.asarray(cat_ids), thrs, _cat(imgs, 0, np.int32), _cat(scores, 0, np.float64),
                        _cat(tps, (0, t), bool), _cat(fps, (0, t), bool), np.asarray(starts, np.int64), ngt)


def _cat(arrays: list, empty_shape, dtype) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(empty_shape, dtype)


@dataclass
class _Points:
    """The precision/recall points of one category that can matter: its true positives, per threshold.

    Attributes:
        tp_img: (T, M) image index of the i-th true positive at each threshold (M = most true positives
            of any threshold), padding masked out by ``tp_mask``.
        tp_mask: (T, M).
        cut: (T, M) index into the union of true-positive positions (over thresholds) of each point.
        always_fp: sparse (U, I): per union position u, per image, the detections that are false positives at
            EVERY threshold ranked after union position u - 1 and before u (most false positives; shared by
            all thresholds, so they cost one product instead of T).
        other_fp: sparse (T * M, I): the remaining false positives at threshold t ranked after true positive
            i - 1 and before i (row ``t * M + i``), or None.
    """

    tp_img: np.ndarray
    tp_mask: np.ndarray
    cut: np.ndarray
    always_fp: object
    other_fp: object


def _category_points(rec: ImageRecords, k: int) -> _Points | None:
    """:class:`_Points` of category ``k``; None when it has no true positive."""
    from scipy import sparse

    lo, hi = int(rec.cat_start[k]), int(rec.cat_start[k + 1])
    if hi == lo:
        return None
    tp, fp, img = rec.tp[lo:hi], rec.fp[lo:hi], rec.det_img[lo:hi]  # (n, T), (n, T), (n,)
    n_img, n_thr = rec.num_images, tp.shape[1]
    cuts = np.flatnonzero(tp.any(1))  # (U,) positions that are a true positive at some threshold
    always = fp.all(1)  # (n,)
    j = np.flatnonzero(always)
    seg = np.searchsorted(cuts, j)  # (F,) cut positions ranked before each false positive
    ok = seg < len(cuts)  # after the last true positive: no later point, no effect
    always_fp = sparse.csr_matrix((np.ones(int(ok.sum())), (seg[ok], img[j[ok]])), shape=(len(cuts), n_img))
    pos = [np.flatnonzero(tp[:, t]) for t in range(n_thr)]  # detection index of each true positive
    m = max(len(p) for p in pos)
    tp_img = np.zeros((n_thr, m), np.int64)
    tp_mask = np.zeros((n_thr, m), bool)
    cut = np.zeros((n_thr, m), np.int64)
    rows, cols = [], []
    for t, p in enumerate(pos):
        tp_img[t, : len(p)], tp_mask[t, : len(p)] = img[p], True
        c = np.searchsorted(cuts, p)  # (m_t,) exact: p is a subset of cuts
        cut[t, : len(p)], cut[t, len(p):] = c, (c[-1] if len(p) else 0)  # padding repeats the last point
        jt = np.flatnonzero(fp[:, t] & ~always)
        st = np.searchsorted(p, jt)
        okt = st < len(p)
        rows.append(t * m + st[okt]), cols.append(img[jt[okt]])
    r = np.concatenate(rows)
    other_fp = sparse.csr_matrix((np.ones(len(r)), (r, np.concatenate(cols))), shape=(n_thr * m, n_img)) if len(r) else None
    return _Points(tp_img, tp_mask, cut, always_fp, other_fp)


def weighted_ap(rec: ImageRecords, weights, *, max_elems: int = 4_000_000) -> dict[str, np.ndarray]:
    """COCO AP, AP50 and AP75 (fractions) for each row of image weights.

    Only the points at true positives are evaluated (the precision envelope and the recall thresholds
    reached change nowhere else); the false positives between them enter as sparse products of the
    weights with per-image counts, one shared by all thresholds for detections that are false at every
    threshold.

    Args:
        rec: Records of one evaluation.
        weights: (B, I) or (I,) non-negative weight of each image (in ``rec.image_ids`` order).
        max_elems: Bound on the (rows, thresholds, points) block processed at once (memory).

    Returns:
        ``{"AP", "AP50", "AP75"}``, each (B,); NaN for a row where no category has ground truth.
    """
    w = np.asarray(weights, np.float64)
    w = w.reshape(1, -1) if w.ndim == 1 else w  # (B, I)
    if w.shape[1] != rec.num_images:
        raise ValueError(f"weights: {w.shape[1]} images, records have {rec.num_images}")
    b_all, n_cat, n_thr = len(w), len(rec.cat_ids), len(rec.iou_thrs)
    npig = w @ rec.ngt  # (B, K) weighted ground-truth count
    sums = np.zeros((b_all, n_cat, n_thr))  # sum over recall thresholds of interpolated precision
    eps = np.spacing(1)
    for k in range(n_cat):
        pts = _category_points(rec, k)
        if pts is None:
            continue  # no true positive: AP 0 where the category has ground truth
        m = pts.tp_img.shape[1]
        step = max(1, max_elems // (n_thr * m + pts.cut.max() + 1))
        for b0 in range(0, b_all, step):
            wb = w[b0:b0 + step]  # (b, I)
            tp = np.cumsum(wb[:, pts.tp_img] * pts.tp_mask, axis=2)  # (b, T, M) weighted true positives so far
            shared = np.cumsum((pts.always_fp @ wb.T).T, axis=1)  # (b, U) always-false positives before each cut
            fp = shared[:, pts.cut]  # (b, T, M) false positives before each point
            if pts.other_fp is not None:
                fp = fp + np.cumsum((pts.other_fp @ wb.T).T.reshape(len(wb), n_thr, m), axis=2)
            with np.errstate(divide="ignore", invalid="ignore"):
                rc = tp / npig[b0:b0 + step, k, None, None]  # (b, T, M)
            pr = tp / (fp + tp + eps)
            env = np.maximum.accumulate(pr[..., ::-1], axis=2)[..., ::-1]  # (b, T, M) precision envelope
            c = np.searchsorted(REC_THRS, rc, side="right")  # (b, T, M) recall thresholds reached
            sums[b0:b0 + step, k] = (env * np.diff(c, axis=2, prepend=0)).sum(2)
    ap = sums / len(REC_THRS)  # (B, K, T)
    ap[npig <= 0] = np.nan  # pycocotools' -1: category without ground truth
    out = {}
    with _no_mean_warning():
        out["AP"] = np.nanmean(ap.reshape(b_all, -1), axis=1)
        for name, thr in (("AP50", 0.5), ("AP75", 0.75)):
            t = np.flatnonzero(np.isclose(rec.iou_thrs, thr))
            out[name] = np.nanmean(ap[:, :, t[0]], axis=1) if len(t) else np.full(b_all, math.nan)
    return out


@contextlib.contextmanager
def _no_mean_warning():
    """Silence numpy's warning for a row where no category has ground truth (the mean is NaN)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        yield


def ensure_records(eval_dir: str | Path, gt, gt_sha: str) -> Path | None:
    """``eval_dir/per_image.npz`` for ``eval_dir/predictions.json``, rebuilt when either input changed.

    Args:
        eval_dir: A run's evaluation folder (with ``predictions.json``).
        gt: :class:`alignrank.eval.coco.CocoGT` of the split the predictions were made on.
        gt_sha: A hash of the ground-truth file (recorded; a change rebuilds the records).

    Returns:
        The records path, or None when there is no ``predictions.json``.
    """
    from alignrank.io import sha256_file

    eval_dir = Path(eval_dir)
    pred, out = eval_dir / "predictions.json", eval_dir / RECORDS_FILE
    if not pred.is_file():
        return None
    meta = {"predictions_sha256": sha256_file(pred)[:16], "gt_sha256": gt_sha}
    if out.is_file() and ImageRecords.load_meta(out) == meta:
        return out
    dets = Detections.from_coco(json.loads(pred.read_text()))
    image_records(gt, dets).save_npz(out, **meta)
    return out
