"""All evaluation numbers of one set of predictions: COCO, rank consistency, calibration, TIDE, NMS-free.

``AP*`` are the one-to-many branch's detections after NMS; ``nms_free_AP*`` its top-k candidates without NMS;
``o2o_AP*`` an NMS-free model's one-to-one detections (no NMS; NaN without that branch).

Examples:
    >>> gt = {"images": [{"id": 1, "width": 20, "height": 20}], "categories": [{"id": 1, "name": "a"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0}]}
    >>> r = evaluate_detections(gt, Detections([1], [1], [[2, 2, 8, 8]], [0.9]))
    >>> round(r.metrics["AP"], 3), r.metrics["tide_n_bkg"]
    (1.0, 0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from alignrank.config.schema import EvalParams
from alignrank.eval.boxes import Detections
from alignrank.eval.calibration import calibration
from alignrank.eval.coco import STAT_NAMES, CocoGT, coco_metrics
from alignrank.eval.nms_free import NMS_FREE_KEYS, ONE2ONE_KEYS, nms_free_ap, one2one_ap
from alignrank.eval.rank import rank_consistency
from alignrank.eval.tide import ERROR_TYPES, tide_errors

RANK_KEYS = ("kendall_tau", "spearman_rho", "top1_miss_rate", "top1_iou_gap", "rank_gts", "rank_cands_per_gt")


@dataclass
class EvalResult:
    """Numbers and plot data of one evaluation.

    Attributes:
        metrics: Flat ``{name: number}`` (COCO's 12, rank, calibration, TIDE, NMS-free, counts).
        reliability: Per-bin data of the reliability diagram.
        score: (M,) scores of candidates matched to a ground truth (score-vs-IoU scatter).
        iou: (M,) their IoU.
    """

    metrics: dict
    reliability: dict
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    iou: np.ndarray = field(default_factory=lambda: np.zeros(0))


def evaluate_detections(
    gt_dataset: Mapping,
    preds: Detections,
    candidates: Detections | None = None,
    params: EvalParams | None = None,
    *,
    coco_gt: CocoGT | None = None,
    one2one: Detections | None = None,
) -> EvalResult:
    """Evaluate post-NMS ``preds`` (and pre-NMS ``candidates``) against a COCO instances dict.

    Args:
        gt_dataset: COCO instances dict of the split (original ids).
        preds: Post-NMS predictions: COCO metrics, calibration (ECE) and TIDE.
        candidates: Pre-NMS candidates: rank consistency and NMS-free AP. When None, rank consistency
            uses ``preds`` and the NMS-free numbers are NaN (top-k of post-NMS predictions would only
            repeat AP, at the cost of a second COCO evaluation).
        params: ``eval`` params (match IoU, ECE bins, NMS-free top-k).
        coco_gt: A prebuilt :class:`CocoGT` of ``gt_dataset`` (saves rebuilding it).
        one2one: An NMS-free model's one-to-one detections: ``o2o_AP*`` (NaN when None).

    Returns:
        :class:`EvalResult`.
    """
    p = params or EvalParams()
    cands = preds if candidates is None else candidates
    cgt = coco_gt or CocoGT(gt_dataset)
    gt = cgt.arrays
    m: dict = dict(coco_metrics(cgt, preds))
    rank, score, iou = rank_consistency(gt, cands, p.match_iou)
    m.update(rank)
    cal = calibration(gt, preds, p.match_iou, p.ece_bins)
    m.update({"ece": cal["ece"], "mce": cal["mce"], "dece": cal["dece"]})
    m.update(tide_errors(gt, preds, t_f=0.5, t_b=0.1))
    if candidates is not None:
        m.update(nms_free_ap(cgt, candidates, p.nms_free_topk))
    else:
        m.update({k: math.nan for k in NMS_FREE_KEYS})
    m.update(one2one_ap(cgt, one2one) if one2one is not None else {k: math.nan for k in ONE2ONE_KEYS})
    m.update({"num_images": int(len(gt.image_ids)), "num_gts": int((~gt.iscrowd).sum()),
              "num_preds": int(len(preds)), "num_candidates": int(len(cands))})
    return EvalResult(metrics=m, reliability=cal, score=score, iou=iou)


def format_table(metrics: Mapping) -> str:
    """A plain-text table of the main numbers (AP-like values in %)."""

    def fmt(v, pct=True):
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "n/a"
        return f"{100 * v:6.2f}" if pct else (f"{v:7.4f}" if isinstance(v, float) else f"{v:>7}")

    rows = [("COCO, one-to-many branch with NMS (pycocotools' numbers, %)", None)] + [(k, fmt(metrics.get(k))) for k in STAT_NAMES]
    rows += [("rank consistency", None)] + [(k, fmt(metrics.get(k), False)) for k in RANK_KEYS]
    rows += [("calibration", None), ("ece (equal-mass)", fmt(metrics.get("ece"), False)),
             ("mce (equal-mass)", fmt(metrics.get("mce"), False)), ("dece (equal-width)", fmt(metrics.get("dece"), False))]
    rows += [("one-to-many branch, top-k without NMS (%; needs pre-NMS candidates)", None)]
    rows += [(k, fmt(metrics.get(k))) for k in NMS_FREE_KEYS]
    rows += [("one-to-one branch, NMS-free detections (%; NMS-free models only)", None)]
    rows += [(k, fmt(metrics.get(k))) for k in ONE2ONE_KEYS]
    rows += [("TIDE (dAP in %, count)", None), ("tide_AP50", fmt(metrics.get("tide_AP50")))]
    for e in ERROR_TYPES:
        rows.append((f"  {e}", f"{fmt(metrics.get(f'tide_dAP_{e}'))}  n={metrics.get(f'tide_n_{e}', 'n/a')}"))
    rows += [("  fp / fn (special)", f"{fmt(metrics.get('tide_dAP_fp'))} / {fmt(metrics.get('tide_dAP_fn'))}")]
    width = max(len(k) for k, _ in rows) + 2
    return "\n".join(f"{k}" if v is None else f"  {k:<{width}}{v}" for k, v in rows)
