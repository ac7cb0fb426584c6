"""Detection calibration: expected calibration error with equal-mass bins, and a reliability diagram.

Each detection is labelled TP/FP by greedy COCO-style matching (:func:`greedy_match`, per image and
class, descending score) at ``match_iou``; detections matched to crowd regions are left out, as
pycocotools leaves them out of precision. Detections are sorted by score and cut into ``bins``
bins of (near) equal count; ``ECE = sum_b n_b / N * |mean score_b - TP rate_b|``.

Examples:
    >>> import numpy as np
    >>> s = np.array([0.8] * 10 + [0.3] * 10); t = np.array([1] * 8 + [0] * 2 + [1] * 3 + [0] * 7)
    >>> round(detection_ece(s, t, bins=2)["ece"], 6)
    0.0
"""

from __future__ import annotations

import math

import numpy as np

from alignrank.eval.boxes import Detections, GroundTruth
from alignrank.eval.matching import greedy_match


def detection_ece(score: np.ndarray, tp: np.ndarray, bins: int = 15) -> dict:
    """ECE of ``score`` against the 0/1 outcome ``tp`` with equal-mass bins.

    Args:
        score: (N,) confidences.
        tp: (N,) 1 when the detection is a true positive.
        bins: Number of equal-count bins (fewer when N < bins).

    Returns:
        ``{"ece", "mce", "bin_conf", "bin_acc", "bin_count", "bin_lo", "bin_hi"}`` (per-bin lists).
    """
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    tp = np.asarray(tp, dtype=np.float64).reshape(-1)
    if len(score) == 0:
        return {"ece": math.nan, "mce": math.nan, "bin_conf": [], "bin_acc": [], "bin_count": [], "bin_lo": [], "bin_hi": []}
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


def calibration(gt: GroundTruth, dets: Detections, match_iou: float = 0.5, bins: int = 15) -> dict:
    """Detection ECE of ``dets`` (post-NMS predictions) against ``gt``; see :func:`detection_ece`."""
    m = greedy_match(gt, dets, match_iou)
    keep = ~m.ignored
    out = detection_ece(dets.score[keep], m.tp[keep], bins)
    out["num_dets"] = int(keep.sum())
    return out


def reliability_figure(rel: dict, title: str = "reliability"):
    """Matplotlib figure of a reliability diagram (Agg backend; the caller saves and closes it)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    conf, acc = np.asarray(rel.get("bin_conf", [])), np.asarray(rel.get("bin_acc", []))
    ax.plot([0, 1], [0, 1], "--", color="0.6", lw=1, label="perfect")
    if len(conf):
        lo, hi = np.asarray(rel["bin_lo"]), np.asarray(rel["bin_hi"])
        ax.bar(lo, acc, width=np.maximum(hi - lo, 0.005), align="edge", alpha=0.35, color="C0", edgecolor="C0")
        ax.plot(conf, acc, "o-", color="C0", label="TP rate per bin")
    ece = rel.get("ece")
    ax.set_title(f"{title}  ECE={ece:.3f}" if isinstance(ece, float) and math.isfinite(ece) else title, fontsize=9)
    ax.set_xlabel("score (bin mean)")
    ax.set_ylabel("fraction TP")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
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
