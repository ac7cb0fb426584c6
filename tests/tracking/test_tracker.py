"""RunTracker on a SQLite store in tmp_path: batching, reopen, nesting, clean stdout, bounded failures."""

from __future__ import annotations

import mlflow
import pytest

from alignrank.config import load_params
from alignrank.errors import TrackingError
from alignrank.tracking import client
from alignrank.tracking.client import PARENT_TAG
from alignrank.tracking.session import TrackerFactory, open_tracker
from alignrank.tracking.store import local_store, resolve_tracking_uri


def start(uri: str, experiment: str = "e", artifact_root: str | None = None, **kw):
    """A run opened straight in the store at ``uri`` (what ``alignrank train`` does)."""
    return TrackerFactory(uri=uri, experiment=experiment, artifact_root=artifact_root).open(**kw)


@pytest.fixture
def uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_logs_everything_in_batches(uri, tmp_path, capsys):
    t = start(uri, run_name="r", artifact_root=str(tmp_path / "art"))
    params = {f"p.{i}": i for i in range(250)}  # > 100: several batches
    t.log_params(params)
    t.set_tags({"variant": "full", "seed": 3})
    metrics = {f"m/{i}": float(i) for i in range(1500)}  # > 1000: two batches
    t.log_metrics(metrics, step=2)
    f = tmp_path / "best.pt"
    f.write_bytes(b"weights")
    t.log_artifact(f, "weights")
    t.end("FINISHED")
    t.end("FINISHED")  # idempotent
    assert "View run" not in capsys.readouterr().out  # MLflow's links go to stderr, CLI stdout stays JSON

    c = mlflow.MlflowClient(uri)
    run = c.get_run(t.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "r"
    assert len(run.data.params) == 250 and run.data.params["p.7"] == "7"
    assert run.data.tags["variant"] == "full" and run.data.tags["seed"] == "3"
    assert len(run.data.metrics) == 1500 and c.get_metric_history(t.run_id, "m/1499")[0].step == 2
    assert [a.path for a in c.list_artifacts(t.run_id, "weights")] == ["weights/best.pt"]
    exp = c.get_experiment_by_name("e")
    assert exp.artifact_location == (tmp_path / "art" / "e").resolve().as_uri()


def test_reopen_and_nesting(uri):
    parent = start(uri, run_name="sweep")
    child = start(uri, run_name="c", parent_run_id=parent.run_id)
    child.log_metrics({"x": 1.0}, step=1)
    child.end("KILLED")
    again = start(uri, run_id=child.run_id)  # a resumed run
    assert again.run_id == child.run_id
    again.log_metrics({"x": 2.0}, step=2)
    again.end()
    c = mlflow.MlflowClient(uri)
    run = c.get_run(child.run_id)
    assert run.data.tags[PARENT_TAG] == parent.run_id and run.info.status == "FINISHED"
    assert [m.value for m in sorted(c.get_metric_history(child.run_id, "x"), key=lambda m: m.step)] == [1.0, 2.0]
    fresh = start(uri, run_id="0" * 32, run_name="new")  # unknown id
    assert fresh.run_id != "0" * 32


@pytest.mark.reliability
def test_unreachable_server_is_one_line_tracking_error(monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block exits: nothing listens there
    monkeypatch.setattr(client, "RETRY_ATTEMPTS", 2)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(TrackingError) as e:
        start(f"http://127.0.0.1:{port}", run_name="r")
    msg = str(e.value)
    assert "\n" not in msg and f"127.0.0.1:{port}" in msg and "MLFLOW_TRACKING_URI" in msg


def test_uri_resolution_and_embedded_store_under_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    p = load_params(None)
    db, art = local_store()
    assert db == tmp_path / "outputs" / "mlflow" / "mlflow.db" and art == tmp_path / "outputs" / "mlflow" / "artifacts"
    assert resolve_tracking_uri(p) == f"sqlite:///{db}"
    assert resolve_tracking_uri(load_params(None, {"mlflow.tracking_uri": "http://h:1"})) == "http://h:1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:2")
    assert resolve_tracking_uri(load_params(None, {"mlflow.tracking_uri": "http://h:1"})) == "http://env:2"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    t = open_tracker(p, run_name="x")
    t.end()
    assert db.is_file() and not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()
    exp = mlflow.MlflowClient(f"sqlite:///{db}").get_experiment_by_name(p.mlflow.experiment)
    assert exp.artifact_location == (art / p.mlflow.experiment).as_uri()
