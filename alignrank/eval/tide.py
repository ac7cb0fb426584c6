"""TIDE-style error breakdown (Bolya et al., ECCV 2020), a re-implementation of ``tidecv``'s rules.

Per image, predictions (top ``max_dets`` by score) are matched greedily in descending score to the
highest-IoU unused ground truth of their class with IoU >= ``t_f``. Every prediction left unmatched
is a *negative* and gets the first error that applies, in tidecv's order:

* **Loc** (BoxError): ``t_b <= IoU <= t_f`` with a ground truth of its class;
* **Cls** (ClassError): ``IoU >= t_f`` with a ground truth of another class;
* **Dupe**: ``IoU >= t_f`` with a same-class ground truth already matched by a higher-scored prediction;
* **Bkg**: ``IoU <= t_b`` with every ground truth;
* **Both** (OtherError): anything else (wrong class and poorly localised).

**Miss**: ground truths never matched and not the target of a fixable Loc/Cls error.

Crowd regions (tidecv's rule, followed exactly): an unmatched prediction with crowd IoU > ``t_f``
with a same-class crowd region is *ignored*: it is no false positive in any AP, but it is still
classified and counted as an error above (so counts include predictions that pycocotools ignores),
and a Loc/Cls one can still be the prediction that fixes its target ground truth (it then enters
the fixed AP as a true positive, and that ground truth is no Miss).

The dAP of an error type is the AP@t_f gained by fixing only that type (tidecv's
``fix_main_errors``, non-progressive): Loc/Cls become true positives of the target ground truth
(only the highest-scored error per still-unmatched ground truth; the others are removed), Dupe,
Bkg and Both are removed, Miss removes the missed ground truths from the count; a negative gain is
reported as 0, as tidecv does. ``FalsePos`` and ``FalseNeg`` are tidecv's special errors (perfect
precision / perfect recall). AP is tidecv's own: 101-point interpolated AP@t_f per class (recall
points ``i / 100``), averaged over classes that have ground truth *or* predictions (a class with only
false positives counts as AP 0, unlike pycocotools).

Cross-checked against ``tidecv`` 1.0.1 on the real coco128 annotations, crowd regions included
(``tests/eval/test_tide_tidecv.py``): equal counts, dAP within 1e-9 (in %).

Deviations from tidecv: numbers are fractions in [0, 1] (tidecv prints x100); boxes only (no masks);
ties in score keep input order within an image; an evaluation with no class at all gives NaN
instead of a ZeroDivisionError; no per-image ignored-class lists (LVIS).

Examples:
    >>> from alignrank.eval.boxes import Detections, GroundTruth
    >>> gt = GroundTruth.from_coco({"images": [{"id": 1}], "categories": [{"id": 1}, {"id": 2}],
    ...     "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 0}]})
    >>> r = tide_errors(gt, Detections([1], [2], [[0, 0, 10, 10]], [0.9]))
    >>> r["tide_n_cls"], r["tide_dAP_cls"]
    (1, 1.0)
"""

from __future__ import annotations

import math

import numpy as np

from alignrank.eval.boxes import Detections, GroundTruth, box_iou, group_slices
from alignrank.eval.matching import segments

ERROR_TYPES = ("cls", "loc", "both", "dupe", "bkg", "miss")
_CLS, _LOC, _BOTH, _DUPE, _BKG, _MISS = range(6)


def class_ap(cls: np.ndarray, score: np.ndarray, tp: np.ndarray, num_gt: dict[int, int]) -> float:
    """tidecv's mAP: 101-point interpolated AP per class, mean over non-empty classes (fraction).

    Args:
        cls: (N,) class of each scored prediction.
        score: (N,) scores.
        tp: (N,) true-positive flags.
        num_gt: Ground-truth count per class (classes with 0 ground truth and predictions count AP 0).
    """
    cls, score, tp = np.asarray(cls), np.asarray(score, np.float64), np.asarray(tp, bool)
    rec_thr = np.arange(101) / 100  # tidecv's recall points (i / 100, not linspace: they differ in the last bit)
    order = np.lexsort((-score, cls))  # by class, score descending, input order for ties
    cls, tp = cls[order], tp[order]
    start, size = segments(cls)
    seg = dict(zip(cls[start].tolist(), zip(start.tolist(), size.tolist())))
    aps = []
    for c in sorted(set(num_gt) | set(seg)):
        n_gt = num_gt.get(c, 0)
        s0, n = seg.get(c, (0, 0))
        if n_gt == 0:
            if n:
                aps.append(0.0)
            continue
        t = tp[s0 : s0 + n]
        tps, fps = np.cumsum(t), np.cumsum(~t)  # (n,)
        prec = tps / np.maximum(tps + fps, 1)
        rec = tps / n_gt
        prec = np.maximum.accumulate(prec[::-1])[::-1]  # precision envelope
        idx = np.searchsorted(rec, rec_thr, side="left")  # (101,)
        y = np.where(idx < len(prec), prec[np.minimum(idx, len(prec) - 1)] if len(prec) else 0.0, 0.0)
        aps.append(float(y.mean()))
    return float(np.mean(aps)) if aps else math.nan


def _image_errors(p_cls, p_box, g_cls, g_box, c_cls, c_box, t_f, t_b):
    """Match one image and classify its negatives (tidecv ``TIDEExample`` + ``TIDERun._eval_image``).

    Returns:
        used (P,) in {1 TP, 0 FP, -1 ignored in a crowd region}, err (P,) error code of every
        negative (FP or ignored; -1 for TPs), target (P,) ground truth of Loc/Cls errors (-1 none),
        g_used (G,) matched ground truths.
    """
    P, G = len(p_cls), len(g_cls)
    used = np.zeros(P, np.int64)
    err = np.full(P, -1, np.int64)
    target = np.full(P, -1, np.int64)
    g_used = np.zeros(G, bool)
    if G:
        iou = box_iou(p_box, g_box)  # (P, G)
        same = p_cls[:, None] == g_cls[None, :]  # (P, G)
        cls_iou = iou * same
        buf = cls_iou.copy()
        for i in np.flatnonzero(cls_iou.max(1) >= t_f).tolist():  # greedy, highest score first; others never match
            j = int(np.argmax(buf[i]))
            if buf[i, j] >= t_f:
                used[i], g_used[j] = 1, True
                buf[:, j] = 0
    if len(c_cls):  # crowd regions: same-class unmatched predictions with crowd IoU > t_f are ignored
        ciou = box_iou(p_box, c_box, np.ones(len(c_cls), bool))  # (P, C)
        hit = ((ciou > t_f) & (p_cls[:, None] == c_cls[None, :])).any(1)
        used[(used == 0) & hit] = -1
    neg = used <= 0  # tidecv classifies ignored predictions too
    if not G:
        err[neg] = _BKG
        return used, err, target, g_used
    noncls_iou = iou * ~same
    used_cls = cls_iou * g_used[None, :]
    loc_j, cls_j, dup_j = cls_iou.argmax(1), noncls_iou.argmax(1), used_cls.argmax(1)  # (P,)
    r = np.arange(P)
    is_loc = (cls_iou[r, loc_j] >= t_b) & (cls_iou[r, loc_j] <= t_f)
    is_cls = noncls_iou[r, cls_j] >= t_f
    is_dup = used_cls[r, dup_j] >= t_f
    is_bkg = iou.max(1) <= t_b
    for code, hit, j in ((_LOC, is_loc, loc_j), (_CLS, is_cls, cls_j), (_DUPE, is_dup, None), (_BKG, is_bkg, None)):
        sel = neg & (err < 0) & hit
        err[sel] = code
        if j is not None:
            target[sel] = j[sel]
    err[neg & (err < 0)] = _BOTH
    return used, err, target, g_used


def tide_errors(gt: GroundTruth, dets: Detections, t_f: float = 0.5, t_b: float = 0.1, max_dets: int = 100) -> dict:
    """TIDE error counts and dAP of fixing each error type (see the module docstring).

    Args:
        gt: Ground truth (crowd regions are ignore regions).
        dets: Post-NMS predictions.
        t_f: Foreground IoU threshold.
        t_b: Background IoU threshold.
        max_dets: Predictions kept per image (highest scores; tidecv's COCO default 100).

    Returns:
        ``tide_AP50`` (TIDE's own AP at ``t_f``), ``tide_n_<type>`` counts, ``tide_dAP_<type>`` for
        cls, loc, both, dupe, bkg, miss, and ``tide_dAP_fp`` / ``tide_dAP_fn`` (special errors).
    """
    regular = ~gt.iscrowd
    gt_groups = group_slices(gt.image_id)
    det_groups = group_slices(dets.image_id)
    num_gt: dict[int, int] = {}
    for c in gt.category_id[regular].tolist():
        num_gt[c] = num_gt.get(c, 0) + 1
    none = np.zeros(0, np.int64)
    tp_cls, tp_score = [], []  # true positives
    e_code, e_cls, e_score, e_fixcls, e_keep, e_ign = [], [], [], [], [], []  # negatives (FP or ignored)
    miss_cls, fn_cls = [], []
    for img in gt.image_ids.tolist():
        gidx = gt_groups.get(img, none)
        reg, crowd = gidx[regular[gidx]], gidx[~regular[gidx]]
        didx = det_groups.get(img, none)
        didx = didx[np.argsort(-dets.score[didx], kind="stable")][:max_dets]
        p_cls, p_score = dets.category_id[didx], dets.score[didx]
        g_cls = gt.category_id[reg]
        used, err, target, g_used = _image_errors(p_cls, dets.bbox[didx], g_cls, gt.bbox[reg],
                                                  gt.category_id[crowd], gt.bbox[crowd], t_f, t_b)
        tp_cls.append(p_cls[used == 1]), tp_score.append(p_score[used == 1])
        neg = np.flatnonzero(used <= 0)
        # Loc/Cls errors at a still-unmatched ground truth: only the first (highest-scored) one is fixable
        fixable = np.isin(err, (_LOC, _CLS)) & (target >= 0)
        if len(reg):
            fixable &= ~g_used[np.maximum(target, 0)]
        keep = np.zeros(len(err), bool)
        if fixable.any():
            _, first = np.unique(target[fixable], return_index=True)
            keep[np.flatnonzero(fixable)[first]] = True
        usable = np.zeros(len(reg), bool)
        usable[target[fixable]] = True
        fix_cls = np.where(err == _CLS, g_cls[np.maximum(target, 0)], p_cls) if len(reg) else p_cls
        e_code.append(err[neg]), e_cls.append(p_cls[neg]), e_score.append(p_score[neg])
        e_fixcls.append(fix_cls[neg]), e_keep.append(keep[neg]), e_ign.append(used[neg] < 0)
        fn_cls.append(g_cls[~g_used])
        miss_cls.append(g_cls[~g_used & ~usable])

    def cat(xs: list, dt) -> np.ndarray:
        return np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)

    tp_cls, tp_score = cat(tp_cls, np.int64), cat(tp_score, np.float64)
    e_code, e_cls, e_score = cat(e_code, np.int64), cat(e_cls, np.int64), cat(e_score, np.float64)
    e_fixcls, e_keep, e_ign = cat(e_fixcls, np.int64), cat(e_keep, bool), cat(e_ign, bool)
    miss_cls, fn_cls = cat(miss_cls, np.int64), cat(fn_cls, np.int64)

    def ap_with(fix: int | None) -> float:
        fixed = e_code == fix
        keep = np.where(fixed, e_keep, ~e_ign)  # fixed errors survive only as true positives; ignored ones never as FPs
        cls = np.r_[np.where(fixed, e_fixcls, e_cls)[keep], tp_cls]
        tp = np.r_[fixed[keep], np.ones(len(tp_cls), bool)]
        score = np.r_[e_score[keep], tp_score]
        n = dict(num_gt)
        if fix == _MISS:
            for c in miss_cls.tolist():
                n[c] -= 1
        return class_ap(cls, score, tp, n)

    base = ap_with(None)
    out = {"tide_AP50": base}
    for code, name in enumerate(ERROR_TYPES):
        out[f"tide_n_{name}"] = int((e_code == code).sum()) if code != _MISS else int(len(miss_cls))
    for code, name in enumerate(ERROR_TYPES):
        out[f"tide_dAP_{name}"] = max(ap_with(code) - base, 0.0) if math.isfinite(base) else math.nan
    # special errors: perfect precision (FPs scored 0, TPs 1) and perfect recall (no false negatives)
    all_cls = np.r_[e_cls[~e_ign], tp_cls]
    all_tp = np.r_[np.zeros(int((~e_ign).sum()), bool), np.ones(len(tp_cls), bool)]
    out["tide_dAP_fp"] = class_ap(all_cls, all_tp.astype(np.float64), all_tp, num_gt) - base
    n_fn = dict(num_gt)
    for c in fn_cls.tolist():
        n_fn[c] -= 1
    out["tide_dAP_fn"] = class_ap(all_cls, np.r_[e_score[~e_ign], tp_score], all_tp, n_fn) - base
    return out
