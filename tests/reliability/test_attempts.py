"""Drill 2 (tracking side): every attempt of a run is its own MLflow run; a dead attempt ends KILLED with its
partial epochs, the finishing attempt holds the final metrics and is the one ``done.json`` names.

The sweep (Ray, SIGKILLed worker) is covered by
``tests/runs/test_sweep.py::test_killed_worker_is_retried_and_resumes_hard_failure_is_reported``; here the
single-process path (``alignrank train`` killed, then re-run) and the marking rule itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.io import atomic_write_json
from alignrank.runs.run import end_dead_attempt
from alignrank.runs.rundir import RunDir
from tests.conftest import REPO
from tests.engine.recording import RecordingTracker

pytestmark = pytest.mark.reliability


class RecordingFactory:
    def __init__(self) -> None:
        self.opened: list[dict] = []
        self.trackers: list[RecordingTracker] = []

    def open(self, **kw):
        self.opened.append(kw)
        self.trackers.append(RecordingTracker(run_id=kw.get("run_id")))
        return self.trackers[-1]


@pytest.mark.parametrize("state, marked", [("running", True), ("failed", False), ("interrupted", False),
                                           ("killed", False), (None, False)])
def test_only_an_attempt_that_died_running_is_marked_killed(tmp_path, state, marked):
    rd = RunDir(tmp_path / "baseline-s0-abc")
    rd.path.mkdir()
    atomic_write_json(rd.run_json, {"mlflow_run_id": "r1", "attempts": 1})
    if state:
        rd.write_status(state=state)
    f = RecordingFactory()
    assert end_dead_attempt(rd, f) == ("r1" if marked else None)
    assert [(o["run_id"], t.ended) for o, t in zip(f.opened, f.trackers)] == ([("r1", ["KILLED"])] if marked else [])
    assert end_dead_attempt(rd, f) is None  # once only: the status now says killed
    if marked:
        assert rd.meta()["mlflow_run_id"] == "r1" and (rd.path / "status.json").is_file()
        assert json.loads((rd.path / "status.json").read_text())["state"] == "killed"


def test_finished_run_is_never_marked(tmp_path):
    rd = RunDir(tmp_path / "r")
    rd.path.mkdir()
    atomic_write_json(rd.run_json, {"mlflow_run_id": "r1"})
    rd.write_status(state="running")
    atomic_write_json(rd.done_json, {"mlflow_run_id": "r1", "metrics": {}})
    f = RecordingFactory()
    assert end_dead_attempt(rd, f) is None and f.opened == []


def test_killed_train_then_rerun_gives_a_killed_and_a_finished_attempt(tiny_data, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = ["train", "--params", str(REPO / "params.yaml"), "--variant", "baseline", "--seed", "0",
            "--set", f"data.root={tiny_data}", "--set", "train.imgsz=64", "--set", "train.epochs=2",
            "--set", "train.batch=8", "--set", "model.scale=n", "--set", "train.val_period=1",  # val/* each epoch
            "--set", f"train.out_dir={tmp_path / 'runs'}"]
    env = {**os.environ, "ALIGNRANK_FAULT": "kill:baseline-s0:1", "PYTHONPATH": str(REPO)}
    code = "import sys; from alignrank.cli import app; app(sys.argv[1:], prog_name='alignrank')"
    p = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == -9, p.stderr[-2000:]  # SIGKILLed after epoch 1: it could not end its MLflow run
    r = CliRunner().invoke(app, args)  # the re-run resumes
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    c = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}")
    runs = {x.data.tags["attempt"]: x for x in c.search_runs([c.get_experiment_by_name("alignrank").experiment_id])}
    assert sorted(runs) == ["1", "2"]
    dead, ok = runs["1"], runs["2"]
    assert dead.info.status == "KILLED" and dead.info.run_name == out["run"]
    assert [m.step for m in c.get_metric_history(dead.info.run_id, "val/map50_95")] == [1]
    assert not any(k.startswith("final/") for k in dead.data.metrics)
    assert ok.info.status == "FINISHED" and ok.info.run_id == out["mlflow_run_id"]
    assert ok.info.run_name == f"{out['run']}-attempt2" and ok.data.tags["run_key"] == dead.data.tags["run_key"]
    assert [m.step for m in c.get_metric_history(ok.info.run_id, "val/map50_95")] == [2]
    assert "final/map50_95" in ok.data.metrics
    done = RunDir(tmp_path / "runs" / out["run"]).done()
    assert done["mlflow_run_id"] == ok.info.run_id and done["attempts"] == 2
