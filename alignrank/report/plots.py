"""Report figures (PNG, matplotlib Agg): AP per variant with seed spread, score-vs-IoU scatter,
reliability diagrams and training curves.

Examples:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "ap.png"
    >>> ap_per_variant({"baseline": {0: 40.0, 1: 41.0}, "full": {0: 43.0}}, p); p.is_file()
    True
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from alignrank.io import atomic_savefig


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    plt = _plt()
    try:
        atomic_savefig(path, fig)
    finally:
        plt.close(fig)


def ap_per_variant(ap: Mapping[str, Mapping[int, float]], path: Path, metric: str = "AP (%)") -> None:
    """Bar of the mean per variant with each seed as a dot and a ±1 std error bar."""
    plt = _plt()
    variants = list(ap)
    fig, ax = plt.subplots(figsize=(1.4 + 1.1 * len(variants), 3.6))
    for i, v in enumerate(variants):
        vals = np.asarray([x for x in ap[v].values() if x is not None and math.isfinite(x)], dtype=np.float64)
        if not len(vals):
            continue
        ax.bar(i, vals.mean(), color=f"C{i}", alpha=0.35, width=0.6)
        if len(vals) > 1:
            ax.errorbar(i, vals.mean(), yerr=vals.std(ddof=1), color="k", capsize=4, lw=1)
        ax.scatter(np.full(len(vals), i) + np.linspace(-0.12, 0.12, len(vals)), vals, color=f"C{i}", zorder=3, s=18)
    ax.set_xticks(range(len(variants)), variants)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per variant (dots: seeds)", fontsize=9)
    _save(fig, path)


def _rank_title(v: str, score: np.ndarray, iou: np.ndarray, stats: Mapping | None) -> str:
    """Panel title: the tables' per-ground-truth mean Kendall tau / Spearman rho when given, else pooled ones."""
    tau, rho = (stats or {}).get("kendall_tau"), (stats or {}).get("spearman_rho")
    if isinstance(tau, (int, float)) and isinstance(rho, (int, float)) and math.isfinite(tau) and math.isfinite(rho):
        return f"{v}  (per-GT mean τ={tau:.3f}, ρ={rho:.3f}; n={len(score)})"
    if len(score) > 1 and np.std(score) > 0 and np.std(iou) > 0:
        from scipy.stats import kendalltau, spearmanr

        return (f"{v}  (pooled τ={kendalltau(iou, score).statistic:.3f}, ρ={spearmanr(iou, score).statistic:.3f}; "
                f"n={len(score)})")
    return f"{v}  (n={len(score)})"


def score_iou_scatter(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path,
                      stats: Mapping[str, Mapping[str, float]] | None = None) -> None:
    """Score vs IoU of the matched pre-NMS candidates, one panel per variant.

    Args:
        pairs: ``{variant: (score, iou)}``.
        path: PNG to write.
        stats: ``{variant: {"kendall_tau", "spearman_rho"}}``, the tables' rank-consistency numbers
            (mean over ground truths and seeds) shown in each title; without them the title shows
            Kendall tau / Spearman rho of the pooled points, labelled "pooled".
    """
    from alignrank.eval.calibration import score_axis_limit

    plt = _plt()
    n = max(1, len(pairs))
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.4), squeeze=False, sharey=True)
    all_iou = [q for _, q in pairs.values() if len(q)]
    x_lo = float(np.floor(min(float(np.min(q)) for q in all_iou) * 20) / 20) if all_iou else 0.5
    y_hi = score_axis_limit(*[s for s, _ in pairs.values()]) if any(len(s) for s, _ in pairs.values()) else 1.0
    for i, (v, (score, iou)) in enumerate(pairs.items()):
        ax = axes[0, i]
        ax.scatter(iou, score, s=3, alpha=0.3, color=f"C{i}", rasterized=True)
        ax.set_title(_rank_title(v, np.asarray(score), np.asarray(iou), (stats or {}).get(v)), fontsize=7)
        ax.set_xlabel("IoU with its ground truth (0-1)")
        ax.set_xlim(x_lo, 1.0), ax.set_ylim(0, y_hi)
    axes[0, 0].set_ylabel("score (model confidence, 0-1)")
    _save(fig, path)


def reliability_grid(rel: Mapping[str, Mapping[int, Mapping]], path: Path) -> None:
    """Reliability diagrams, one column per variant: TP rate per equal-mass bin (one line per seed) on top,
    detections per equal-width bin (the D-ECE bins, log scale) below; axes end just above the data."""
    from alignrank.eval.calibration import score_axis_limit

    plt = _plt()
    n = max(1, len(rel))
    fig, axes = plt.subplots(2, n, figsize=(3.3 * n, 4.6), squeeze=False, sharex=True, sharey="row",
                             gridspec_kw={"height_ratios": [3, 1.2]})
    rs = [r for seeds in rel.values() for r in seeds.values()]
    xmax = score_axis_limit(*[r.get("bin_hi", []) for r in rs], *[r.get("dece_bin_hi", []) for r in rs]) if rs else 1.0
    ymax = score_axis_limit(xmax, *[r.get("bin_acc", []) for r in rs])
    for i, (v, seeds) in enumerate(rel.items()):
        ax, axc = axes[0, i], axes[1, i]
        ax.plot([0, 1], [0, 1], "--", color="0.6", lw=1)
        eces, deces = [], []
        for j, (seed, r) in enumerate(sorted(seeds.items())):
            alpha = 0.5 + 0.5 / (j + 1)
            if r.get("bin_conf"):
                ax.plot(r["bin_conf"], r["bin_acc"], "o-", ms=3, lw=1, color=f"C{i}", alpha=alpha, label=f"seed {seed}")
            lo, hi, cnt = (r.get(k) or [] for k in ("dece_bin_lo", "dece_bin_hi", "dece_bin_count"))
            if not cnt:  # results without D-ECE bins: the equal-mass bins' extent
                lo, hi, cnt = (r.get(k) or [] for k in ("bin_lo", "bin_hi", "bin_count"))
            if cnt:
                edges = np.r_[lo, hi[-1]]
                axc.stairs(cnt, edges if np.all(np.diff(edges) > 0) else np.arange(len(cnt) + 1), color=f"C{i}",
                           alpha=alpha, lw=1.2)
            for key, acc in (("ece", eces), ("dece", deces)):
                if isinstance(r.get(key), (int, float)) and math.isfinite(r[key]):
                    acc.append(r[key])
        stats = [f"ECE={np.mean(eces):.3f}" if eces else "", f"D-ECE={np.mean(deces):.3f}" if deces else ""]
        ax.set_title(f"{v}  {' '.join(x for x in stats if x)}".strip(), fontsize=8)
        ax.set_xlim(0, xmax), ax.set_ylim(0, ymax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left")
        axc.set_yscale("log")
        axc.set_xlabel("score (model confidence, 0-1)")
    axes[0, 0].set_ylabel("fraction TP (equal-mass bins)")
    axes[1, 0].set_ylabel("detections / bin")
    fig.tight_layout()
    _save(fig, path)


def read_results_csv(path: Path) -> dict[str, np.ndarray]:
    """Columns of an ultralytics ``results.csv`` (header names stripped) as float arrays."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        return {}
    head = [h.strip() for h in rows[0]]
    cols: dict[str, list] = {h: [] for h in head}
    for r in rows[1:]:
        for h, x in zip(head, r):
            try:
                cols[h].append(float(x))
            except ValueError:
                cols[h].append(math.nan)
    return {h: np.asarray(v, dtype=np.float64) for h, v in cols.items()}


CURVE_KEYS = (("metrics/mAP50-95(B)", "val mAP50-95"), ("train/box_loss", "train box loss"), ("train/cls_loss", "train cls loss"))


def training_curves(curves: Mapping[str, Mapping[int, Mapping[str, np.ndarray]]], path: Path,
                    keys: Sequence[tuple[str, str]] = CURVE_KEYS) -> None:
    """Per-epoch curves from each run's ``results.csv``: one panel per key, colour = variant, line = seed."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for k, (col, label) in enumerate(keys):
        ax = axes[0, k]
        for i, (v, seeds) in enumerate(curves.items()):
            for j, (seed, c) in enumerate(sorted(seeds.items())):
                if col in c and "epoch" in c:
                    ax.plot(c["epoch"], c[col], styles[j % 4], color=f"C{i}", lw=1.2, label=f"{v} s{seed}")
        ax.set_xlabel("epoch"), ax.set_title(label, fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        axes[0, 0].legend(fontsize=7)
    _save(fig, path)
