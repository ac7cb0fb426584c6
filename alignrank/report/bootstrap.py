"""Paired bootstrap confidence intervals of a mean difference (variant - baseline, paired by seed).

Examples:
    >>> r = paired_bootstrap([0.0, 0.0, 0.0], n_resamples=1000)
    >>> (r["lo"], r["hi"], r["significant"])
    (0.0, 0.0, False)
    >>> paired_bootstrap([2.1, 1.9, 2.0, 2.2], n_resamples=1000)["significant"]
    True
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def paired_bootstrap(diffs: Sequence[float], n_resamples: int = 10000, ci: float = 0.95, seed: int = 0,
                     min_n: int = 3) -> dict:
    """Percentile bootstrap CI of the mean of paired differences.

    Args:
        diffs: Per-seed differences (variant - baseline); NaNs are dropped.
        n_resamples: Bootstrap resamples (seeds drawn with replacement).
        ci: Confidence level.
        seed: RNG seed (results are reproducible).
        min_n: Fewest seeds for "significant" (with 2 seeds the bootstrap CI is just the range of two
            numbers, which says nothing about seed noise).

    Returns:
        ``{"mean", "lo", "hi", "n", "significant"}``; significant when the CI excludes 0 and n >= min_n. NaN fields when no pair.
    """
    d = np.asarray([x for x in diffs if x is not None and math.isfinite(x)], dtype=np.float64)
    n = len(d)
    if n == 0:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0, "significant": False}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))  # (B, n) resampled seed indices
    means = d[idx].mean(1)  # (B,)
    a = (1 - ci) / 2
    lo, hi = (float(v) for v in np.quantile(means, [a, 1 - a]))
    return {"mean": float(d.mean()), "lo": lo, "hi": hi, "n": n, "significant": bool(n >= min_n and (lo > 0 or hi < 0))}
