"""One writer for the embedded SQLite store: >= 4 concurrent Ray 'runs' log many metrics, none is lost."""

from __future__ import annotations

import mlflow
import pytest
import ray

from alignrank.config import load_params
from alignrank.errors import TrackingError
from alignrank.tracking.session import tracking_session
from alignrank.tracking.store import local_store
from tests.conftest import REPO

N_RUNS, N_STEPS, N_KEYS = 4, 20, 20


@pytest.fixture
def local_ray():
    from alignrank.runs.cluster import ensure_local_token

    ensure_local_token()
    ray.init(address="local", num_cpus=N_RUNS, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield
    ray.shutdown()


@ray.remote(num_cpus=1)
def fake_run(factory, parent_id: str, i: int, art_dir: str) -> str:
    """A trivial 'training run': per-epoch metrics + an artifact through the tracker a real run uses."""
    from pathlib import Path

    t = factory.open(run_name=f"run{i}", parent_run_id=parent_id, tags={"variant": "fake", "seed": i})
    t.log_params({"train.seed": i})
    for step in range(1, N_STEPS + 1):
        t.log_metrics({f"m/{k}": i * 10_000 + step * 100 + k for k in range(N_KEYS)}, step=step)
    f = Path(art_dir) / f"pred{i}.json"
    f.write_text(f'{{"run": {i}}}')
    t.log_artifact(f, "predictions")
    t.end("FINISHED")
    return t.run_id


def test_concurrent_runs_every_metric_arrives(local_ray, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    p = load_params(None)
    with tracking_session(p) as factory:
        assert factory.writer is not None and factory.uri.startswith("sqlite:")
        parent = factory.open(run_name="sweep")
        ids = ray.get([fake_run.remote(factory, parent.run_id, i, str(tmp_path)) for i in range(N_RUNS)], timeout=300)
        parent.end()
    db, _ = local_store()
    c = mlflow.MlflowClient(f"sqlite:///{db}")
    exp = c.get_experiment_by_name(p.mlflow.experiment)
    runs = c.search_runs([exp.experiment_id])
    assert len(runs) == N_RUNS + 1  # no duplicates, nothing else logged (ultralytics' own MLflow callback is off)
    for i, rid in enumerate(ids):
        run = c.get_run(rid)
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent.run_id
        for k in range(N_KEYS):
            hist = sorted(c.get_metric_history(rid, f"m/{k}"), key=lambda m: m.step)
            assert [(m.step, m.value) for m in hist] == [(s, i * 10_000 + s * 100 + k) for s in range(1, N_STEPS + 1)]
        assert [a.path for a in c.list_artifacts(rid, "predictions")] == [f"predictions/pred{i}.json"]


@pytest.mark.reliability
def test_writer_errors_reach_the_worker_as_tracking_error(local_ray, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    p = load_params(None)
    with tracking_session(p) as factory:
        t = factory.open(run_name="r")
        t.log_params({"a": 1})
        with pytest.raises(TrackingError) as e:
            t.log_params({"a": 2})  # MLflow refuses to change a logged param
        assert "\n" not in str(e.value)
        t.end()
