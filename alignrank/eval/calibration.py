"""Detection calibration: ECE with equal-mass bins, D-ECE with equal-width bins (netcal), reliability diagram.

Each detection is labelled TP/FP by greedy COCO-style matching (:func:`greedy_match`, per image and
class, descending score) at ``match_iou``; detections matched to crowd regions are left out, as
pycocotools leaves them out of precision. Two binnings of the same (score, TP) pairs:

* **ECE** (:func:`detection_ece`): detections sorted by score and cut into ``bins`` bins of (near)
  equal count; ``ECE = sum_b n_b / N * |mean score_b - TP rate_b|``. Robust when scores crowd into
  a narrow range (every bin holds data).
* **D-ECE** (:func:`detection_dece`): the Detection ECE of Kueppers et al. (CVPRW 2020) exactly as
  ``netcal.metrics.ECE(bins, detection=True)`` computes it with the confidence as the only box
  feature: ``bins`` equal-width bins over [0, 1] (numpy histogram edges: half-open, the last one
  closed), scores clipped to [eps, 1 - eps], empty bins skipped, same weighted sum. This is the
  number the detection-calibration literature reports; cross-checked against netcal 1.4.0 in
  ``tests/eval/test_calibration.py``.

Examples:
    >>> import numpy as np
    >>> s = np.array([0.8] * 10 + [0.3] * 10); t = np.array([1] * 8 + [0] * 2 + [1] * 3 + [0] * 7)
    >>> round(detection_ece(s, t, bins=2)["ece"], 6), round(detection_dece(s, t, bins=10)["dece"], 6)
    (0.0, 0.0)
"""

from __future__ import annotations

import math

import numpy as np

from alignrank.eval.boxes import Detections, GroundTruth
from alignrank.eval.matching import greedy_match

_EMPTY_MASS = {"ece": math.nan, "mce": math.nan, "bin_conf": [], "bin_acc": [], "bin_count": [], "bin_lo": [],
               "bin_hi": []}


def detection_ece(score: np.ndarray, tp: np.ndarray, bins: int = 15) -> dict:
    """ECE of ``score`` against the 0/1 outcome ``tp`` with equal-mass bins.

    Args:
        score: (N,) confidences.
        tp: (N,) 1 when the detection is a true positive.
        bins: Number of equal-count bins (fewer when N < bins).

    Returns:
        ``{"ece", "mce", "bin_conf", "bin_acc", "bin_count", "bin_lo", "bin_hi"}`` (per-bin lists;
        ``bin_lo`` / ``bin_hi`` are the lowest / highest score in the bin).
    """
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    tp = np.asarray(tp, dtype=np.float64).reshape(-1)
    if len(score) == 0:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in _EMPTY_MASS.items()}
    order = np.argsort(score, kind="stable")
    parts = [p for p in np.array_split(order, min(bins, len(score))) if len(p)]
    conf = np.array([score[p].mean() for p in parts])  # (B,)
    acc = np.array([tp[p].mean() for p in parts])  # (B,)
    count = np.array([len(p) for p in parts])  # (B,)
    gap = np.abs(conf - acc)
    return {
        "ece": float((count / count.sum() * gap).sum()),
        "mce": float(gap.max()),
        "bin_conf": conf.tolist(),
        "bin_acc": acc.tolist(),
        "bin_count": count.tolist(),
        "bin_lo": [float(score[p].min()) for p in parts],
        "bin_hi": [float(score[p].max()) for p in parts],
    }


def detection_dece(score: np.ndarray, tp: np.ndarray, bins: int = 15) -> dict:
    """D-ECE of ``score`` against ``tp`` with ``bins`` equal-width bins over [0, 1] (netcal's definition).

    Args:
        score: (N,) confidences in [0, 1].
        tp: (N,) 1 when the detection is a true positive.
        bins: Number of equal-width bins.

    Returns:
        ``{"dece", "dece_bin_lo", "dece_bin_hi", "dece_bin_conf", "dece_bin_acc", "dece_bin_count"}``:
        the D-ECE (NaN without detections) and, for each non-empty bin, its edges, mean (clipped)
        score, TP rate and count.
    """
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    tp = np.asarray(tp, dtype=np.float64).reshape(-1)
    out = {"dece": math.nan, "dece_bin_lo": [], "dece_bin_hi": [], "dece_bin_conf": [], "dece_bin_acc": [],
           "dece_bin_count": []}
    if len(score) == 0:
        return out
    eps = np.finfo(np.float64).eps
    s = np.clip(score, eps, 1.0 - eps)  # netcal clips so that 0 and 1 fall inside the outer bins
    edges = np.linspace(0.0, 1.0, bins + 1)  # (B + 1,) netcal's bounds
    idx = np.minimum(np.searchsorted(edges, s, side="right") - 1, bins - 1)  # (N,) np.histogram's bin of each score
    count = np.bincount(idx, minlength=bins)  # (B,)
    full = count > 0
    conf = np.bincount(idx, s, minlength=bins)[full] / count[full]  # (B',) non-empty bins only
    acc = np.bincount(idx, tp, minlength=bins)[full] / count[full]
    n = count[full]
    out.update({
        "dece": float((n / n.sum() * np.abs(acc - conf)).sum()),
        "dece_bin_lo": edges[:-1][full].tolist(),
        "dece_bin_hi": edges[1:][full].tolist(),
        "dece_bin_conf": conf.tolist(),
        "dece_bin_acc": acc.tolist(),
        "dece_bin_count": n.tolist(),
    })
    return out


def calibration(gt: GroundTruth, dets: Detections, match_iou: float = 0.5, bins: int = 15) -> dict:
    """ECE and D-ECE of ``dets`` (post-NMS predictions) against ``gt`` with ``bins`` bins each.

    Returns:
        :func:`detection_ece`'s and :func:`detection_dece`'s keys and ``num_dets`` (crowd matches left out).
    """
    m = greedy_match(gt, dets, match_iou)
    keep = ~m.ignored
    out = detection_ece(dets.score[keep], m.tp[keep], bins)
    out.update(detection_dece(dets.score[keep], m.tp[keep], bins))
    out["num_dets"] = int(keep.sum())
    return out


def score_axis_limit(*values, step: float = 0.05) -> float:
    """Upper end of a score / TP-rate axis scaled to the data: the largest value + 5 %, rounded up to ``step``, <= 1."""
    flat = [float(v) for vals in values for v in np.asarray(vals, dtype=np.float64).reshape(-1) if math.isfinite(v)]
    hi = max(flat, default=1.0)
    return float(min(1.0, max(step, math.ceil(hi * 1.05 / step - 1e-9) * step)))


def _fmt(x) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and math.isfinite(x) else "n/a"


def reliability_figure(rel: dict, title: str = "reliability"):
    """Reliability diagram with a detection-count panel (matplotlib, Agg; the caller saves and closes it).

    Top: TP rate per equal-width bin (bars, the D-ECE bins) and per equal-mass bin (points, the ECE
    bins) against the mean score, with the diagonal of perfect calibration. Bottom: detections per
    equal-width bin (log scale, counts written on the bars). Axes end just above the data.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax, axc) = plt.subplots(2, 1, figsize=(4.6, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    conf, acc = np.asarray(rel.get("bin_conf", [])), np.asarray(rel.get("bin_acc", []))
    lo, hi = np.asarray(rel.get("dece_bin_lo", [])), np.asarray(rel.get("dece_bin_hi", []))
    w_acc, w_count = np.asarray(rel.get("dece_bin_acc", [])), np.asarray(rel.get("dece_bin_count", []))
    if not len(lo):  # results written before D-ECE existed: show the equal-mass bins' extent and counts
        lo, hi = np.asarray(rel.get("bin_lo", [])), np.asarray(rel.get("bin_hi", []))
        w_acc, w_count = acc, np.asarray(rel.get("bin_count", []))
    xmax = score_axis_limit(rel.get("bin_hi", []), hi, conf)  # the highest score and the last bar's edge
    ymax = score_axis_limit(xmax, acc, w_acc)
    ax.plot([0, 1], [0, 1], "--", color="0.5", lw=1, label="perfect calibration")
    if len(lo):
        width = np.maximum(hi - lo, 0.004)
        ax.bar(lo, w_acc, width=width, align="edge", alpha=0.3, color="C0", edgecolor="C0",
               label="TP rate, equal-width bins (D-ECE)")
        axc.bar(lo, w_count, width=width, align="edge", color="0.55", edgecolor="0.3")
        for x, n in zip(lo + width / 2, w_count):
            axc.annotate(f"{int(n)}", (x, n), xytext=(0, 1), textcoords="offset points", ha="center", va="bottom",
                         fontsize=6)
        axc.set_yscale("log")
        axc.set_ylim(0.8, max(w_count.max(), 1) * 4)
    if len(conf):
        ax.plot(conf, acc, "o-", color="C1", ms=4, lw=1.2, label="TP rate, equal-mass bins (ECE)")
    ax.set_title(f"{title}\nECE {_fmt(rel.get('ece'))} (equal-mass), D-ECE {_fmt(rel.get('dece'))} (equal-width), "
                 f"n={rel.get('num_dets', int(np.sum(rel.get('bin_count', []))))}", fontsize=8)
    ax.set_ylabel("fraction of detections that are TP")
    ax.set_xlim(0, xmax), ax.set_ylim(0, ymax)
    ax.legend(loc="upper left", fontsize=7)
    axc.set_xlabel("score (model confidence, 0-1)")
    axc.set_ylabel("detections per bin")
    fig.tight_layout()
    return fig


def save_reliability(rel: dict, path, title: str = "reliability") -> None:
    """Write the reliability diagram of ``rel`` (from :func:`calibration`) as a PNG, atomically."""
    import matplotlib.pyplot as plt

    from alignrank.io import atomic_savefig

    fig = reliability_figure(rel, title)
    try:
        atomic_savefig(path, fig)
    finally:
        plt.close(fig)
