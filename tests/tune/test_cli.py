"""`alignrank tune` with a bad search space: one line, exit code 2, before Ray (or anything) starts."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from tests.conftest import REPO

runner = CliRunner()


@pytest.mark.parametrize("sets, msg", [
    (["tune.space.loss.nope.type=uniform", "tune.space.loss.nope.low=0", "tune.space.loss.nope.high=1"],
     "tune.space: unknown key 'loss.nope'"),
    (["tune.space.loss.margin.low=0.6"], "tune.space.loss.margin: low (0.6) must be <= high (0.5)"),
    (["tune.space.loss.temperature.low=0"], "tune.space.loss.temperature.low: loguniform bounds must be > 0"),
    (["tune.space.loss.lambda_rank.low=-1", "tune.space.loss.lambda_rank.type=uniform"],
     "tune.space.loss.lambda_rank: value -1.0 is out of range"),
    (["tune.space.model.csd_points.type=uniform", "tune.space.model.csd_points.low=1",
      "tune.space.model.csd_points.high=8"], "integer param; use type int"),
    (["tune.space.data.seed.type=int", "tune.space.data.seed.low=0", "tune.space.data.seed.high=3"],
     "not a training setting"),
    (["tune.metric=nope"], "tune.metric: 'nope' is not reported by variant 'full'; use one of: map50_95, "),
    (["tune.metric=train/cal_loss", "tune.variant=baseline"], "tune.metric: 'train/cal_loss' is not reported by "
                                                             "variant 'baseline'"),
])
def test_bad_space_exit_2_one_line_no_ray(sets, msg, monkeypatch):
    import ray

    started = []
    monkeypatch.setattr(ray, "init", lambda *a, **k: started.append(1))
    args = ["tune", "--params", str(REPO / "params.yaml")]
    for s in sets:
        args += ["--set", s]
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert msg in r.output and "Traceback" not in r.output
    assert len([ln for ln in r.output.splitlines() if ln.strip()]) == 1
    assert not started and not ray.is_initialized()


def test_resume_without_a_search_is_a_usage_error(tiny_params, monkeypatch):
    import ray

    from alignrank.errors import UsageError
    from alignrank.tune.search import run_tune, search_status

    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray must not start"))
    assert search_status(tiny_params) == "new"
    with pytest.raises(UsageError, match="no interrupted search"):
        run_tune(tiny_params, resume=True)
