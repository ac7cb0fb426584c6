"""tune.space -> Ray Tune samplers, checks that fail before any trial, sampled config -> trial params."""

from __future__ import annotations

import pytest

from alignrank.config import ParamsError, load_params
from alignrank.tune.space import check_space, sampled_overrides, search_space, trial_params
from tests.conftest import REPO


def _params(space: dict, **over):
    return load_params(REPO / "params.yaml", {"tune.space": space, **over})


def test_default_space_is_the_six_rcq_settings():
    p = load_params(REPO / "params.yaml")
    assert set(search_space(p)) == {"loss.lambda_cal", "loss.lambda_list", "loss.lambda_rank", "loss.temperature",
                                    "loss.margin", "loss.eps"}


def test_each_distribution_samples_in_its_bounds_with_the_param_type():
    from ray.tune.search.sample import Categorical, Float, Integer

    p = _params({
        "loss.margin": {"type": "uniform", "low": 0.1, "high": 0.3},
        "loss.temperature": {"type": "loguniform", "low": 0.05, "high": 2.0},
        "model.csd_points": {"type": "int", "low": 2, "high": 3},
        "model.dyn_kernels": {"type": "choice", "values": [2, 8]},
        "loss.box": {"type": "int", "low": 5, "high": 6},  # int distribution on a float param: cast to float
    })
    space = search_space(p)
    assert isinstance(space["loss.margin"], Float) and isinstance(space["model.csd_points"], Integer)
    assert isinstance(space["model.dyn_kernels"], Categorical)
    for _ in range(50):
        cfg = {k: d.sample() for k, d in space.items()}
        ov = sampled_overrides(p, cfg)
        assert 0.1 <= ov["loss.margin"] <= 0.3 and 0.05 <= ov["loss.temperature"] <= 2.0
        assert ov["model.csd_points"] in (2, 3) and type(ov["model.csd_points"]) is int  # inclusive high
        assert ov["model.dyn_kernels"] in (2, 8) and type(ov["model.dyn_kernels"]) is int
        assert type(ov["loss.box"]) is float
    seen = {search_space(p)["model.csd_points"].sample() for _ in range(200)}
    assert seen == {2, 3}


def test_loguniform_samples_are_log_spread():
    p = _params({"loss.temperature": {"type": "loguniform", "low": 0.001, "high": 1.0}})
    xs = [search_space(p)["loss.temperature"].sample() for _ in range(400)]
    below = sum(x < 0.01 for x in xs) / len(xs)  # log-uniform: P(x < 0.01) = 1/3; uniform would give 0.009
    assert 0.2 < below < 0.47


@pytest.mark.parametrize("space, msg", [
    ({"loss.margin": {"type": "uniform", "low": -0.1, "high": 0.5}},
     "tune.space.loss.margin: value -0.1 is out of range"),
    ({"loss.temperature": {"type": "uniform", "low": 0.0, "high": 1.0}}, "tune.space.loss.temperature: value 0.0"),
    ({"model.csd_points": {"type": "uniform", "low": 1, "high": 8}}, "integer param; use type int"),
    ({"model.csd_points": {"type": "choice", "values": [2, 2.5]}}, "2.5 is not an integer"),
    ({"model.csd_points": {"type": "int", "low": 1, "high": 99}}, "value 99 is out of range"),
    ({}, "empty search space"),
])
def test_space_errors_are_one_line_naming_the_key(space, msg):
    p = load_params(REPO / "params.yaml", {"tune.space": space})
    with pytest.raises(ParamsError) as e:
        check_space(p)
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_trial_params_apply_sampled_values_variant_epochs_seed(tmp_path):
    p = load_params(REPO / "params.yaml", {"tune.variant": "rcq", "tune.epochs": 3})
    tp = trial_params(p, {"loss.margin": 0.33, "loss.lambda_rank": 2.0}, seed=7, out_dir=tmp_path / "t")
    assert (tp.loss.margin, tp.loss.lambda_rank) == (0.33, 2.0)
    assert (tp.train.variant, tp.train.epochs, tp.train.seed) == ("rcq", 3, 7)
    assert tp.train.out_dir == str(tmp_path / "t")
    assert tp.loss.temperature == p.loss.temperature  # not searched: unchanged
    assert sampled_overrides(p, {"loss.margin": 0.2, "epoch": 4, "unrelated": 1}) == {"loss.margin": 0.2}
