"""Sample sizes: normal formula, exact paired-t power (published values), images needed."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from alignrank.report.power import images_needed, n_normal, seeds_needed, t_power


def test_normal_formula():
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert n_normal(1.3, 0.5, 0.05, 0.8) == pytest.approx((z * 1.3 / 0.5) ** 2)
    assert n_normal(1.3, -0.5) == n_normal(1.3, 0.5)


@pytest.mark.parametrize("d,n", [(0.2, 199), (0.5, 34), (0.8, 15)])
def test_seeds_needed_matches_published_paired_t_sizes(d, n):
    # one-sample / paired t test, two-sided alpha 0.05, power 0.8 (Cohen 1988; G*Power)
    assert seeds_needed(sd=1.0, delta=d) == n
    assert seeds_needed(sd=2.0, delta=2 * d) == n  # only delta / sd matters
    assert t_power(n, 1.0, d) >= 0.8 > t_power(n - 1, 1.0, d)
    assert n >= math.ceil(n_normal(1.0, d))


def test_seeds_needed_edges():
    assert seeds_needed(0.0, 1.0) == 2
    assert seeds_needed(float("nan"), 1.0) is None and seeds_needed(1.0, 0.0) is None
    assert seeds_needed(1000.0, 0.001) is None  # beyond the cap
    assert seeds_needed(1.0, 1.0, alpha=0.01, power=0.9) > seeds_needed(1.0, 1.0)


def test_images_needed_scales_with_se_squared():
    assert images_needed(0.5, 500, 1.0) == math.ceil(500 * n_normal(0.5, 1.0))
    assert images_needed(1.0, 500, 1.0) == math.ceil(500 * n_normal(1.0, 1.0))  # 4x the images for 2x the se
    assert 4 * images_needed(0.5, 500, 1.0) - 4 <= images_needed(1.0, 500, 1.0) <= 4 * images_needed(0.5, 500, 1.0)
    assert images_needed(float("nan"), 500, 1.0) is None and images_needed(0.01, 10, 5.0) == 1
