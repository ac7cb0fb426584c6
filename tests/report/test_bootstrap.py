"""Paired bootstrap CIs on constructed data."""

from __future__ import annotations

import numpy as np
import pytest

from alignrank.report.bootstrap import paired_bootstrap


def test_identical_seeds_give_ci_0_0():
    r = paired_bootstrap([0.0] * 4, n_resamples=500)
    assert (r["mean"], r["lo"], r["hi"], r["significant"]) == (0.0, 0.0, 0.0, False)


def test_clear_gain_is_significant_and_noise_is_not():
    gain = paired_bootstrap([2.0, 2.3, 1.8, 2.1, 2.2], n_resamples=2000)
    assert gain["significant"] and 1.8 <= gain["lo"] < gain["mean"] < gain["hi"] <= 2.3
    noise = paired_bootstrap([1.0, -1.2, 0.8, -0.9], n_resamples=2000)
    assert not noise["significant"] and noise["lo"] < 0 < noise["hi"]
    loss = paired_bootstrap([-0.5, -0.6, -0.4], n_resamples=2000)
    assert loss["significant"] and loss["hi"] < 0


def test_seeded_reproducible_level_and_degenerate_cases():
    d = np.random.default_rng(1).normal(0.3, 1.0, 6)
    a, b = paired_bootstrap(d, 1000, seed=3), paired_bootstrap(d, 1000, seed=3)
    assert a == b
    wide, narrow = paired_bootstrap(d, 4000, ci=0.99), paired_bootstrap(d, 4000, ci=0.5)
    assert wide["lo"] < narrow["lo"] < narrow["hi"] < wide["hi"]
    one = paired_bootstrap([3.0], 100)
    assert one["n"] == 1 and not one["significant"]  # one seed cannot show seed noise
    two = paired_bootstrap([2.0, 2.1], n_resamples=1000)
    assert two["lo"] > 0 and not two["significant"]  # a CI from two numbers is just their range
    none = paired_bootstrap([float("nan")], 100)
    assert none["n"] == 0 and np.isnan(none["mean"])


@pytest.mark.parametrize("n", [2, 3])
def test_ci_bounds_are_resample_means(n):
    r = paired_bootstrap([1.0, 3.0, 5.0][:n], 1000)
    assert 1.0 <= r["lo"] <= r["hi"] <= max([1.0, 3.0, 5.0][:n])
