"""Paired t interval and p-value against scipy.stats; Holm against a worked example and its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from alignrank.report.stats import holm, paired_t


@pytest.mark.parametrize("seed,n", [(0, 2), (1, 3), (2, 5), (3, 12)])
def test_paired_t_equals_scipy(seed, n):
    rng = np.random.default_rng(seed)
    base = rng.normal(40, 2, n)
    var = base + rng.normal(0.7, 0.5, n)
    r = paired_t(list(var - base), ci=0.9)
    tt = stats.ttest_rel(var, base)
    lo, hi = stats.t.interval(0.9, n - 1, loc=np.mean(var - base), scale=stats.sem(var - base))
    assert r["n"] == n and r["p"] == pytest.approx(tt.pvalue, rel=1e-10)
    assert (r["lo"], r["hi"]) == (pytest.approx(lo, rel=1e-10), pytest.approx(hi, rel=1e-10))
    assert r["sd"] == pytest.approx(np.std(var - base, ddof=1))


def test_paired_t_degenerate_inputs():
    assert paired_t([])["n"] == 0 and math.isnan(paired_t([])["mean"])
    one = paired_t([1.5, None, float("nan")])
    assert one["n"] == 1 and one["mean"] == 1.5 and math.isnan(one["lo"]) and math.isnan(one["p"])
    same = paired_t([0.3, 0.3, 0.3])
    assert (same["lo"], same["hi"], same["p"], same["sd"]) == (0.3, 0.3, 0.0, 0.0)
    assert paired_t([0.0, 0.0])["p"] == 1.0
    two = paired_t([2.0, 2.1])  # two seeds: t(1) = 12.7, the interval is wide, not the range
    assert two["lo"] < 1.5 and two["hi"] > 2.6


def test_holm_worked_example_and_definition():
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") -> 0.03 0.06 0.06 0.02
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    adj = holm([0.2, float("nan"), 0.01])  # NaN is no test: m = 2
    assert adj[0] == pytest.approx(0.2) and math.isnan(adj[1]) and adj[2] == pytest.approx(0.02)
    assert holm([]) == []
    p = np.random.default_rng(0).random(27) ** 3
    a = np.asarray(holm(p))
    order = np.argsort(p)  # definition: running max of (m - i) p_(i), capped at 1
    ref = np.minimum(np.maximum.accumulate(p[order] * (27 - np.arange(27))), 1)
    assert np.allclose(a[order], ref) and (a >= p).all()
