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


def score_iou_scatter(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """Score vs IoU of the matched pre-NMS candidates, one panel per variant."""
    plt = _plt()
    n = max(1, len(pairs))
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), squeeze=False, sharey=True)
    for i, (v, (score, iou)) in enumerate(pairs.items()):
        ax = axes[0, i]
        ax.scatter(iou, score, s=3, alpha=0.3, color=f"C{i}", rasterized=True)
        if len(score) > 1 and np.std(score) > 0 and np.std(iou) > 0:
            ax.set_title(f"{v}  (Pearson {np.corrcoef(iou, score)[0, 1]:.2f}, n={len(score)})", fontsize=8)
        else:
            ax.set_title(f"{v}  (n={len(score)})", fontsize=8)
        ax.set_xlabel("IoU with its ground truth")
        ax.set_xlim(0.45, 1.0), ax.set_ylim(0, 1)
    axes[0, 0].set_ylabel("score")
    _save(fig, path)


def reliability_grid(rel: Mapping[str, Mapping[int, Mapping]], path: Path) -> None:
    """Reliability diagrams: one panel per variant, one line per seed."""
    plt = _plt()
    n = max(1, len(rel))
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.3), squeeze=False, sharey=True)
    for i, (v, seeds) in enumerate(rel.items()):
        ax = axes[0, i]
        ax.plot([0, 1], [0, 1], "--", color="0.6", lw=1)
        eces = []
        for j, (seed, r) in enumerate(sorted(seeds.items())):
            if r.get("bin_conf"):
                ax.plot(r["bin_conf"], r["bin_acc"], "o-", ms=3, lw=1, color=f"C{i}", alpha=0.5 + 0.5 / (j + 1),
                        label=f"seed {seed}")
            if isinstance(r.get("ece"), (int, float)):
                eces.append(r["ece"])
        ax.set_title(f"{v}  ECE={np.mean(eces):.3f}" if eces else v, fontsize=9)
        ax.set_xlabel("score"), ax.set_xlim(0, 1), ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper left")
    axes[0, 0].set_ylabel("fraction TP")
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
