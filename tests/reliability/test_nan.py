"""Drill 7: a loss that turns NaN stops the run with one clear line; the last good ``last.pt`` stays finite."""

from __future__ import annotations

import mlflow
import pytest
import torch

from alignrank.config import load_params
from alignrank.engine.guards import FiniteLossGuard
from alignrank.errors import RunFailed
from alignrank.io import read_json
from alignrank.runs.run import execute
from alignrank.runs.rundir import RunDir, checkpoint_epoch
from alignrank.tracking.session import direct_factory
from tests.conftest import REPO, tiny_overrides

pytestmark = pytest.mark.reliability


def _finite_checkpoint(path) -> bool:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    mods = [m for m in (ckpt.get("ema"), ckpt.get("model")) if m is not None]
    assert mods, f"{path}: no weights in checkpoint"
    return all(torch.isfinite(v.float()).all() for m in mods for v in m.state_dict().values()
               if isinstance(v, torch.Tensor) and v.is_floating_point())


def test_guard_names_epoch_batch_and_loss_item():
    from types import SimpleNamespace

    g = FiniteLossGuard(run_name="rcq-s0-abc", last="runs/rcq-s0-abc/weights/last.pt")
    g(SimpleNamespace(epoch=1, loss=torch.tensor(2.0), loss_items={"box": torch.tensor(1.0)}))
    with pytest.raises(RunFailed) as e:
        g(SimpleNamespace(epoch=1, loss=torch.tensor(float("inf")), loss_items={"rank": torch.tensor(float("nan"))}))
    msg = str(e.value)
    assert "\n" not in msg and "rcq-s0-abc" in msg and "epoch 2, batch 2" in msg and "(rank)" in msg
    assert "last.pt" in msg


def test_nan_loss_fails_the_run_keeps_finite_last_pt_and_is_not_trained_on(tiny_data, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("ALIGNRANK_FAULT", "nan:baseline-s0:2")  # weights turn NaN at the start of epoch 2
    p = load_params(REPO / "params.yaml", {**tiny_overrides(tiny_data, tmp_path), "train.imgsz": 64,
                                           "train.epochs": 3, "train.variant": "baseline", "train.seed": 0})
    factory = direct_factory(p)
    for attempt in (1, 2):  # deterministic divergence: a retry (resume from epoch 1) fails the same way
        with pytest.raises(RunFailed) as e:
            execute(p, factory)
        msg = str(e.value)
        assert "\n" not in msg and "NaN/inf at epoch 2, batch 1" in msg and "last.pt" in msg
        rd = next(RunDir(d) for d in (tmp_path / "runs").iterdir() if d.is_dir())
        assert rd.done() is None and read_json(rd.metrics_json) is None  # never taken for a finished run
        status = read_json(rd.status_json)
        assert status["state"] == "failed" and "NaN/inf" in status["error"]
        assert checkpoint_epoch(rd.last) == 0 and _finite_checkpoint(rd.last)  # epoch 1's checkpoint, intact
        assert rd.meta()["attempts"] == attempt and rd.state(3) == "resume"
    c = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}")
    runs = {r.data.tags["attempt"]: r for r in c.search_runs([c.get_experiment_by_name("alignrank").experiment_id])}
    assert sorted(runs) == ["1", "2"] and {r.info.status for r in runs.values()} == {"FAILED"}  # one run per attempt
    steps = {a: [m.step for m in c.get_metric_history(r.info.run_id, "val/map50_95")] for a, r in runs.items()}
    assert steps == {"1": [1], "2": []}  # no garbage epoch logged (attempt 2 resumed at epoch 2 and stopped)
    # once the cause is fixed (no fault), the same run resumes from the kept checkpoint and finishes
    monkeypatch.delenv("ALIGNRANK_FAULT")
    out = execute(p, factory)
    assert out["status"] == "done" and RunDir(tmp_path / out["run_dir"]).meta()["start_state"] == "resume"
