"""Metric names: the ONE table mapping ultralytics' metric keys to MLflow-safe names and short aliases.

Ultralytics names validation metrics like ``metrics/mAP50-95(B)``; MLflow rejects parentheses. Every
metric we log goes through :func:`sanitize`: first this table, then a generic clean-up (lower case,
characters outside ``[a-z0-9_./ -]`` become ``_``). :func:`aliases` adds the short names Ray Tune and
the result tables use (``map50_95``, ``map50``, ``precision``, ``recall``, ``fitness``).

Examples:
    >>> sanitize("metrics/mAP50-95(B)")
    'val/map50_95'
    >>> sanitize("train/box_loss"), sanitize("lr/pg0")
    ('train/box_loss', 'lr/pg0')
    >>> aliases({"val/map50_95": 0.5, "train/box_loss": 1.0})["map50_95"]
    0.5
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

# ultralytics key -> MLflow name. Keep short names (after "val/") stable: tune and report read them.
METRIC_NAMES: dict[str, str] = {
    "metrics/mAP50-95(B)": "val/map50_95",
    "metrics/mAP50(B)": "val/map50",
    "metrics/precision(B)": "val/precision",
    "metrics/recall(B)": "val/recall",
    "fitness": "val/fitness",
}

# MLflow name -> short alias (reported to Ray Tune every epoch; written to done.json).
ALIASES: dict[str, str] = {v: v.split("/", 1)[1] for v in METRIC_NAMES.values()}

_BAD = re.compile(r"[^a-z0-9_./ -]")


def sanitize(name: str) -> str:
    """MLflow-safe metric name for an ultralytics metric key (table first, then generic clean-up)."""
    if name in METRIC_NAMES:
        return METRIC_NAMES[name]
    out = _BAD.sub("_", name.strip().lower().replace("-", "_"))
    return re.sub(r"_+", "_", out).strip("_") or "metric"


def sanitize_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """Sanitized names and plain floats; non-numeric values are dropped (NaN/inf are kept)."""
    out: dict[str, float] = {}
    for k, v in (metrics or {}).items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        out[sanitize(str(k))] = f
    return out


def aliases(metrics: Mapping[str, float]) -> dict[str, float]:
    """``metrics`` plus short aliases (``map50_95`` for ``val/map50_95`` ...)."""
    out = dict(metrics)
    for long, short in ALIASES.items():
        if long in metrics:
            out[short] = metrics[long]
    return out


def finite(metrics: Mapping[str, float]) -> dict[str, float]:
    """Only the finite values (for JSON files; MLflow gets everything)."""
    return {k: v for k, v in metrics.items() if isinstance(v, float) and math.isfinite(v)}


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The int/float values (not bools) as floats.

    Examples:
        >>> numeric({"a": 1, "b": True, "c": "x", "d": 0.5})
        {'a': 1.0, 'd': 0.5}
    """
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
