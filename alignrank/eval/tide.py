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

Everything is vectorized over images (pairs of each prediction with the boxes of its image; the greedy
matching is :func:`alignrank.eval.matching.match_groups` with tidecv's first-maximum tie rule), no
Python loop per image or prediction.

Cross-checked against ``tidecv`` 1.0.1 on the real coco128 annotations, crowd regions included
(``tests/eval/test_tide_tidecv.py``): equal counts, dAP within 1e-9 (in %).

Deviations from tidecv: numbers are fractions in [0, 1] (tidecv prints x100); boxes only (no masks);
ties in score keep input order within an image; ``t_f`` is capped at 1 - 1e-10 (as pycocotools); an evaluation with no class at all gives NaN
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

from alignrank.eval.boxes import Detections, GroundTruth
from alignrank.eval.matching import match_groups, pair_iou, segments

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


def _pairs(p_key: np.ndarray, g_key: np.ndarray, g_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (prediction, ground truth) pairs with equal keys, grouped by prediction, ground truths in ``g_idx`` order.

    Returns:
        ``(p, g, start)``: (Q,) prediction and ground-truth index of each pair, and the first pair of
        every prediction that has one (for ``reduceat``).
    """
    order = np.argsort(g_key[g_idx], kind="stable")
    gs, ks = g_idx[order], g_key[g_idx][order]  # ground truths sorted by key, given order within
    lo = np.searchsorted(ks, p_key, side="left")
    n = np.searchsorted(ks, p_key, side="right") - lo  # (P,)
    p = np.repeat(np.arange(len(p_key)), n)
    first = np.cumsum(n) - n
    g = gs[lo[p] + np.arange(len(p)) - first[p]]
    return p, g, first[n > 0]


def _first_max(v: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per run of pairs (``start``): the maximum of ``v`` and the first pair reaching it (numpy's argmax rule)."""
    mx = np.maximum.reduceat(v, start)  # (S,)
    run = np.repeat(np.arange(len(start)), np.diff(np.r_[start, len(v)]))
    pos = np.where(v == mx[run], np.arange(len(v)), len(v))
    return mx, np.minimum.reduceat(pos, start)


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
    img_ids = np.unique(gt.image_ids)
    cats = np.unique(np.r_[gt.category_id, dets.category_id, gt.category_ids]).astype(np.int64)
    K = max(len(cats), 1)

    def img_index(ids: np.ndarray) -> np.ndarray:
        i = np.minimum(np.searchsorted(img_ids, ids), max(len(img_ids) - 1, 0))
        return np.where((img_ids[i] == ids) if len(img_ids) else np.zeros(len(ids), bool), i, -1)

    # predictions: on the ground truth's images, the top max_dets per image by score (ties: input order)
    d_img = img_index(dets.image_id)
    known = np.flatnonzero(d_img >= 0)
    order = known[np.lexsort((-dets.score[known], d_img[known]))]
    start, size = segments(d_img[order])
    p = order[(np.arange(len(order)) - np.repeat(start, size)) < max_dets]  # (P,) image-major, score descending
    p_img, p_cls, p_score, p_box = d_img[p], dets.category_id[p], dets.score[p], dets.bbox[p]
    p_ck = np.searchsorted(cats, p_cls)  # (P,) class index
    P = len(p)

    # ground truth: regular boxes (matched, classified against) and crowd regions (ignore regions)
    g_img = img_index(gt.image_id)
    g_ck = np.searchsorted(cats, gt.category_id)
    reg = np.flatnonzero(~gt.iscrowd & (g_img >= 0))  # dataset order
    crowd = np.flatnonzero(gt.iscrowd & (g_img >= 0))
    num_gt: dict[int, int] = {}
    for c in gt.category_id[reg].tolist():
        num_gt[c] = num_gt.get(c, 0) + 1

    # greedy matching per image and class in score order, to the first best free box with IoU >= t_f
    sub = GroundTruth(gt.image_ids, gt.category_ids, gt.image_id[reg], gt.category_id[reg], gt.bbox[reg],
                      np.zeros(len(reg), bool), gt.area[reg], gt.ann_id[reg])
    m = match_groups(sub, Detections(dets.image_id[p], p_cls, p_box, p_score), [t_f], first_max=True)
    hit = m.match[:, 0, 0] >= 0
    used = np.zeros(P, np.int64)  # 1 TP, 0 FP, -1 ignored
    used[m.det[hit]] = 1
    g_used = np.zeros(len(gt), bool)
    g_used[reg[m.match[hit, 0, 0]]] = True

    # crowd regions: unmatched predictions with crowd IoU > t_f with a same-class region are ignored
    q, c, _ = _pairs(p_img * K + p_ck, g_img * K + g_ck, crowd)
    in_crowd = np.zeros(P, bool)
    in_crowd[q[pair_iou(p_box[q], gt.bbox[c], np.ones(len(q), bool)) > t_f]] = True
    used[(used == 0) & in_crowd] = -1

    # errors of every negative (FP or ignored), against the regular boxes of its image
    err = np.full(P, -1, np.int64)
    target = np.full(P, -1, np.int64)  # index into gt of a Loc/Cls error's box
    neg = used <= 0
    q, g, first = _pairs(p_img, g_img, reg)
    has = np.zeros(P, bool)
    has[q[first]] = True  # the image has regular boxes
    err[neg & ~has] = _BKG
    if len(q):
        iou = pair_iou(p_box[q], gt.bbox[g], np.zeros(len(q), bool))
        same = p_ck[q] == g_ck[g]
        owner = q[first]  # (S,) prediction of each run of pairs
        loc_v, loc_at = _first_max(np.where(same, iou, 0.0), first)
        cls_v, cls_at = _first_max(np.where(same, 0.0, iou), first)
        dup_v = np.maximum.reduceat(np.where(same & g_used[g], iou, 0.0), first)
        all_v = np.maximum.reduceat(iou, first)
        for code, ok, at in ((_LOC, (loc_v >= t_b) & (loc_v <= t_f), loc_at), (_CLS, cls_v >= t_f, cls_at),
                             (_DUPE, dup_v >= t_f, None), (_BKG, all_v <= t_b, None)):
            sel = neg[owner] & (err[owner] < 0) & ok
            err[owner[sel]] = code
            if at is not None:
                target[owner[sel]] = g[at[sel]]
    err[neg & (err < 0)] = _BOTH

    # Loc/Cls errors at a still-unmatched box: only the first (highest-scored) one per box is fixable
    fixable = np.isin(err, (_LOC, _CLS)) & (target >= 0)
    fixable &= ~g_used[np.maximum(target, 0)]
    keep = np.zeros(P, bool)
    if fixable.any():
        _, at = np.unique(target[fixable], return_index=True)  # predictions are in score order within an image
        keep[np.flatnonzero(fixable)[at]] = True
    usable = np.zeros(len(gt), bool)
    usable[target[fixable]] = True
    fix_cls = np.where(err == _CLS, gt.category_id[np.maximum(target, 0)], p_cls)

    tp_cls, tp_score = p_cls[used == 1], p_score[used == 1]
    e_code, e_cls, e_score = err[neg], p_cls[neg], p_score[neg]
    e_fixcls, e_keep, e_ign = fix_cls[neg], keep[neg], used[neg] < 0
    fn_cls = gt.category_id[reg][~g_used[reg]]
    miss_cls = gt.category_id[reg][~g_used[reg] & ~usable[reg]]

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
