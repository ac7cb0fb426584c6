"""The sweep on a local Ray: tracking (parent + nested), caching, partial re-runs, dying workers, Ctrl-C."""

from __future__ import annotations

import json

import mlflow
import pytest
import ray
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.config import load_params
from alignrank.io import read_json
from alignrank.runs import progress as progress_mod
from alignrank.runs.rundir import RunDir
from alignrank.runs.sweep import list_runs, run_sweep
from tests.conftest import REPO, set_args, tiny_overrides


def sweep_params(tiny_data, tmp_path, **over):
    base = {**tiny_overrides(tiny_data, tmp_path), "train.imgsz": 64, "sweep.variants": ["baseline"],
            "sweep.seeds": [0, 1], "ray.num_cpus": 2, "ray.max_concurrent": 2}
    return load_params(REPO / "params.yaml", {**base, **over})


def runs_of(tmp_path):
    c = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}")
    exp = c.get_experiment_by_name("alignrank")
    return c, {r.info.run_name: r for r in c.search_runs([exp.experiment_id])}


@pytest.fixture(autouse=True)
def _embedded_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_sweep_tracks_nested_runs_reuses_finished_and_reruns_only_new(tiny_data, tmp_path):
    p = sweep_params(tiny_data, tmp_path)
    fingerprint = read_json(tiny_data / "manifest.json")["fingerprint"]
    s = run_sweep(p)
    assert s["failed"] == [] and len(s["trained"]) == 2 and s["cached"] == []
    c, runs = runs_of(tmp_path)
    parent = runs[next(n for n in runs if n.startswith("sweep-"))]
    assert parent.info.status == "FINISHED" and parent.info.run_id == s["parent_run_id"]
    assert "mean/baseline/map50_95" in parent.data.metrics
    for r in s["runs"]:
        child = runs[r["run"]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id and child.info.status == "FINISHED"
        assert child.info.run_id == r["mlflow_run_id"] and child.data.tags["seed"] == str(r["seed"])
        assert [m.step for m in c.get_metric_history(child.info.run_id, "val/map50_95")] == [1]
        assert child.data.params["train.threads"] == "1"  # = ray.cpus_per_run
        (ds,) = child.inputs.dataset_inputs  # the dataset, keyed by its fingerprint
        assert ds.dataset.digest == fingerprint[:36] and json.loads(ds.dataset.profile)["fingerprint"] == fingerprint
        assert json.loads(ds.dataset.source)["uri"] == tiny_data.as_uri()
        assert child.data.tags["mlflow.note.content"].startswith(f"**baseline**, seed {r['seed']}:")
        assert child.data.tags["variant"] == "baseline"  # the UI's group-by
    assert [d.dataset.digest for d in parent.inputs.dataset_inputs] == [fingerprint[:36]]
    assert "x seeds [0, 1]" in parent.data.tags["mlflow.note.content"]
    exps = {e.name: e.experiment_id for e in c.search_experiments()}
    assert set(exps) == {"alignrank", "Default"} and c.search_runs([exps["Default"]]) == []  # MLflow's own, empty
    assert not (tmp_path / "mlruns").exists()
    assert len(runs) == 3
    listed = list_runs(p)
    assert [(r["variant"], r["seed"], r["status"]) for r in listed] == [("baseline", 0, "done"),
                                                                         ("baseline", 1, "done")]
    assert all(RunDir(tmp_path / r["run_dir"]).weights.is_file() for r in listed)
    assert read_json(tmp_path / "runs" / "sweep.json")["parent_run_id"] == s["parent_run_id"]

    again = run_sweep(p)  # nothing to do: no Ray, no MLflow run, seconds; the parent that holds these runs
    assert again["trained"] == [] and len(again["cached"]) == 2 and again["parent_run_id"] == s["parent_run_id"]
    assert not ray.is_initialized() and again["wall_s"] < 10 and len(runs_of(tmp_path)[1]) == 3

    more = run_sweep(sweep_params(tiny_data, tmp_path, **{"sweep.seeds": [0, 1, 2]}))  # a partial re-run
    assert [n.split("-")[1] for n in more["trained"]] == ["s2"] and len(more["cached"]) == 2
    assert more["parent_run_id"] not in (None, s["parent_run_id"])
    fewer = run_sweep(sweep_params(tiny_data, tmp_path, **{"sweep.seeds": [0]}))  # not the runs of the last sweep
    assert fewer["trained"] == [] and fewer["parent_run_id"] is None


@pytest.mark.reliability
def test_killed_worker_is_retried_and_resumes_hard_failure_is_reported(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNRANK_FAULT", "kill:baseline-s0:1,raise:baseline-s1")
    args = ["sweep", "--json", "--params", str(REPO / "params.yaml"), *set_args({
        **tiny_overrides(tiny_data, tmp_path), "train.imgsz": 64, "train.epochs": 2, "sweep.variants": ["baseline"],
        "sweep.seeds": [0, 1], "sweep.max_retries": 1, "ray.num_cpus": 2, "train.val_period": 1})]  # val/* each epoch
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1, r.output  # finished the others, then non-zero
    s = json.loads(r.stdout)
    (done,), (failed,) = s["runs"], s["failed"]
    assert done["run"].startswith("baseline-s0-") and done["status"] == "done"
    meta = RunDir(tmp_path / done["run_dir"]).meta()
    assert meta["attempts"] == 2 and meta["start_state"] == "resume"  # worker SIGKILLed after epoch 1, resumed
    assert failed["run"].startswith("baseline-s1-") and failed["attempts"] == 2
    assert "injected failure" in failed["error"] and "\n" not in failed["error"]
    assert "retrying" in r.stderr and "failed" in r.stderr
    c, runs = runs_of(tmp_path)  # one nested MLflow run per attempt
    parent = runs[next(n for n in runs if n.startswith("sweep-"))]
    killed, finished = runs[done["run"]], runs[f"{done['run']}-attempt2"]
    assert killed.info.status == "KILLED" and killed.data.tags["attempt"] == "1"  # marked by the driver
    assert [m.step for m in c.get_metric_history(killed.info.run_id, "val/map50_95")] == [1]  # its partial epochs
    assert not any(k.startswith("final/") for k in killed.data.metrics)  # the result exists once, on the finished one
    assert finished.info.status == "FINISHED" and finished.info.run_id == done["mlflow_run_id"]
    assert finished.data.tags["attempt"] == "2" and finished.data.tags["run_key"] == killed.data.tags["run_key"]
    assert [m.step for m in c.get_metric_history(done["mlflow_run_id"], "val/map50_95")] == [2]  # resumed epoch
    assert "final/map50_95" in finished.data.metrics
    assert {r.data.tags["mlflow.parentRunId"] for r in (killed, finished)} == {parent.info.run_id}
    assert runs[failed["run"]].info.status == runs[f"{failed['run']}-attempt2"].info.status == "FAILED"
    assert parent.info.status == "FAILED" and len(runs) == 5


@pytest.mark.reliability
def test_ctrl_c_cancels_then_rerun_resumes(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNRANK_FAULT", "hold:baseline-s0:1")  # the run waits after epoch 1 (first attempt)
    p = sweep_params(tiny_data, tmp_path, **{"train.epochs": 2, "sweep.seeds": [0]})
    orig = progress_mod.Progress.poll

    def poll(self):
        orig(self)
        if any(r["epoch"] for r in self.rows.values()):
            raise KeyboardInterrupt  # the user presses Ctrl-C once epoch 1 is saved

    monkeypatch.setattr(progress_mod.Progress, "poll", poll)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(p)
    assert not ray.is_initialized()
    _, runs = runs_of(tmp_path)
    assert runs[next(n for n in runs if n.startswith("sweep-"))].info.status == "KILLED"
    (cancelled,) = [r for n, r in runs.items() if n.startswith("baseline-s0-")]
    assert cancelled.info.status == "KILLED"  # the cancelled attempt is closed at Ctrl-C time
    monkeypatch.setattr(progress_mod.Progress, "poll", orig)
    s = run_sweep(p)
    (run,) = s["runs"]
    assert s["failed"] == [] and run["status"] == "done"
    meta = RunDir(tmp_path / run["run_dir"]).meta()
    assert meta["attempts"] == 2 and meta["start_state"] == "resume"  # the cancelled run resumed from epoch 1
