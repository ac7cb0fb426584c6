"""Evaluation figures of the report (PNG, matplotlib Agg): the TIDE error breakdown per variant.

:func:`tide_bars` draws tidecv's summary bars: for each variant a panel of horizontal bars, one per
error type (Cls, Loc, Both, Dupe, Bkg, Miss, then the special FP / FN), of the dAP in AP50 points
(mean over seeds, each seed a dot), annotated with the mean number of errors. All panels share the
dAP axis so variants compare at a glance.

Examples:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tide.png"
    >>> tide_bars({"baseline": {0: {"tide_dAP_cls": 0.05, "tide_n_cls": 12}}}, p); p.is_file()
    True
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np

from alignrank.eval.tide import ERROR_TYPES
from alignrank.io import atomic_savefig

LABELS = {"cls": "Cls", "loc": "Loc", "both": "Both", "dupe": "Dupe", "bkg": "Bkg", "miss": "Miss",
          "fp": "FalsePos", "fn": "FalseNeg"}
COLORS = {"cls": "#e6194b", "loc": "#3cb44b", "both": "#4363d8", "dupe": "#f58231", "bkg": "#911eb4",
          "miss": "#42d4f4", "fp": "#808080", "fn": "#404040"}  # one fixed colour per error type


def _finite(seeds: Mapping, key: str, scale: float = 1.0) -> np.ndarray:
    vals = [(m or {}).get(key) for m in seeds.values()]
    return np.asarray([float(v) * scale for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)
                       and math.isfinite(v)], dtype=np.float64)


def tide_bars(runs: Mapping[str, Mapping[int, Mapping]], path: Path) -> None:
    """TIDE dAP bars per error type, one panel per variant (``runs``: ``{variant: {seed: metrics}}``).

    Args:
        runs: Metrics with the ``tide_*`` numbers of :func:`alignrank.eval.tide.tide_errors` (fractions).
        path: PNG to write (atomically).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    types = list(ERROR_TYPES) + ["fp", "fn"]
    y = np.r_[np.arange(len(ERROR_TYPES)), len(ERROR_TYPES) + 0.6 + np.arange(2)]  # gap before the special errors
    n = max(1, len(runs))
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n + 0.6, 3.4), squeeze=False, sharex=True, sharey=True)
    top = 0.0
    for i, (v, seeds) in enumerate(runs.items()):
        ax = axes[0, i]
        for k, e in enumerate(types):
            vals = _finite(seeds, f"tide_dAP_{e}", 100.0)
            if not len(vals):
                continue
            mu = float(vals.mean())
            top = max(top, mu, float(vals.max()))
            ax.barh(y[k], mu, color=COLORS[e], alpha=0.8, height=0.7, hatch="//" if e in ("fp", "fn") else None)
            if len(vals) > 1:
                ax.scatter(vals, np.full(len(vals), y[k]), color="k", s=8, zorder=3)
            counts = _finite(seeds, f"tide_n_{e}")
            if len(counts):
                ax.annotate(f"n={counts.mean():.0f}", (max(mu, float(vals.max())), y[k]), xytext=(4, 0), textcoords="offset points",
                            va="center", fontsize=7)
        ap = _finite(seeds, "tide_AP50", 100.0)
        ax.set_title(f"{v}  (AP50 {ap.mean():.1f}, {len(seeds)} seed{'s' * (len(seeds) != 1)})" if len(ap) else v,
                     fontsize=9)
        ax.set_xlabel("dAP (AP50 points)")
        ax.grid(axis="x", lw=0.4, alpha=0.5)
    axes[0, 0].set_yticks(y, [LABELS[e] for e in types])
    axes[0, 0].invert_yaxis()
    axes[0, 0].set_xlim(0, max(1.0, top) * 1.25)  # room for the count labels
    fig.suptitle("TIDE: AP50 gained by fixing each error type", fontsize=10)
    fig.tight_layout()
    try:
        atomic_savefig(path, fig)
    finally:
        plt.close(fig)
