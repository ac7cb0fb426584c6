"""Significance over seeds: the paired t interval of a mean difference and Holm's step-down adjustment.

With 2-5 seeds a percentile bootstrap over seeds is the range of a handful of numbers; the paired t
interval ``mean ± t_{1-a/2, n-1} * sd / sqrt(n)`` is the interval that is valid for few pairs (under
normal per-seed differences) and widens honestly when n is small. Its two-sided p-value is the paired
t test's (``scipy.stats.ttest_rel``). When a table tests many comparisons at once, :func:`holm`
adjusts the p-values so that the chance of any false "significant" in the family stays <= alpha.

Examples:
    >>> r = paired_t([2.1, 1.9, 2.0, 2.2], ci=0.95)
    >>> round(r["lo"], 3), round(r["hi"], 3), r["n"]
    (1.845, 2.255, 4)
    >>> holm([0.01, 0.04, 0.03, 0.005])
    [0.03, 0.06, 0.06, 0.02]
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def finite(values: Sequence[float | None]) -> np.ndarray:
    """The finite entries of ``values`` (None and NaN dropped) as a float array."""
    return np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)


def paired_t(diffs: Sequence[float | None], ci: float = 0.95) -> dict:
    """Paired t interval and two-sided p-value of the mean of per-seed differences (variant - baseline).

    Args:
        diffs: Per-seed differences; None/NaN are dropped.
        ci: Confidence level.

    Returns:
        ``{"mean", "sd", "lo", "hi", "p", "n"}``: mean, sample sd (ddof 1), the interval
        ``mean ± t_{(1+ci)/2, n-1} sd / sqrt(n)`` and the p-value of H0 "mean difference = 0".
        With one difference: NaN interval, sd and p. With sd = 0 the interval is the point and p is 0
        (a non-zero mean) or 1 (all zero).
    """
    from scipy import stats

    d = finite(diffs)
    n = len(d)
    nan = math.nan
    if n == 0:
        return {"mean": nan, "sd": nan, "lo": nan, "hi": nan, "p": nan, "n": 0}
    mean = float(d.mean())
    if n == 1:
        return {"mean": mean, "sd": nan, "lo": nan, "hi": nan, "p": nan, "n": 1}
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return {"mean": mean, "sd": 0.0, "lo": mean, "hi": mean, "p": 0.0 if mean != 0 else 1.0, "n": n}
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf((1 + ci) / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean / se), n - 1))
    return {"mean": mean, "sd": sd, "lo": mean - half, "hi": mean + half, "p": p, "n": n}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in input order.

    Sort the m finite p-values ascending, multiply the i-th (0-based) by ``m - i``, take the running
    maximum and cap at 1. NaN entries are not tests: they stay NaN and do not count in m.

    Args:
        pvalues: Raw p-values of one family of comparisons.

    Returns:
        Adjusted p-values (compare each with alpha).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m:
        order = ok[np.argsort(p[ok], kind="mergesort")]  # (m,) indices, ascending p
        adj = np.maximum.accumulate(p[order] * (m - np.arange(m)))  # (m,)
        out[order] = np.minimum(adj, 1.0)
    return [float(x) for x in out]
