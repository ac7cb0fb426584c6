"""Drill 3, second half: a run that STARTS while the tracking server is down (a later run of a sweep, a
retry) is created offline, trains, and reaches MLflow once, nested under its sweep, when the server is back."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.config import load_params
from alignrank.errors import TrackingError
from alignrank.io import read_json
from alignrank.runs.rundir import RunDir
from alignrank.tracking import client, tracker
from alignrank.tracking.client import OFFLINE_TAG, PARENT_TAG, StoreClient
from alignrank.tracking.records import SPOOL_NAME, is_offline_id, read
from alignrank.tracking.session import TrackerFactory
from alignrank.tracking.tracker import RunTracker
from tests.conftest import REPO, tiny_overrides
from tests.reliability.test_tracking_midrun import free_port, history
from tests.tracking.test_tracker import start

pytestmark = pytest.mark.reliability


def store(tmp_path: Path) -> tuple[str, RunTracker]:
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    return uri, start(uri, run_name="sweep", artifact_root=str(tmp_path / "art"))


def offline(path: Path, uri: str, parent: str, tmp_path: Path) -> RunTracker:
    """A sweep's run opened while the server does not answer (``client.reachable`` patched to False)."""
    factory = TrackerFactory(uri=uri, experiment="e", artifact_root=str(tmp_path / "art"))
    return factory.open(run_name="r", parent_run_id=parent, tags={"seed": 0}, spool_dir=path.parent, offline_ok=True)


def test_offline_created_run_is_replayed_once_nested_and_found_by_its_id(tmp_path, monkeypatch):
    uri, parent = store(tmp_path)
    monkeypatch.setattr(client, "reachable", lambda uri, timeout=0: False)  # the server is down
    path = tmp_path / "run" / SPOOL_NAME
    t = offline(path, uri, parent.run_id, tmp_path)
    assert is_offline_id(t.run_id)
    t.log_params({"a": 1})
    t.log_metrics({"m": 1.0}, step=1)
    t.log_metrics({"m": 2.0}, step=2)
    (tmp_path / "w.txt").write_text("x")
    t.log_artifact(tmp_path / "w.txt")
    t.end("FINISHED")  # still down: everything stays in the spool, training was never blocked
    assert [r["kind"] for r in read(path)] == ["create", "params", "metrics", "metrics", "artifact", "end"]
    c = mlflow.MlflowClient(uri)
    exp = c.get_experiment_by_name("e").experiment_id
    assert len(c.search_runs([exp])) == 1  # only the parent
    with pytest.raises(TrackingError, match="alignrank sync"):
        start(uri, run_id=t.run_id)  # never an empty stand-in run

    backup = tmp_path / "spool.bak"
    shutil.copy(path, backup)
    first = StoreClient(uri)
    assert first.replay(path) == 6 and not path.exists()
    shutil.copy(backup, path)
    assert StoreClient(uri).replay(path) == 6  # a second replay of the same records creates nothing new

    runs = c.search_runs([exp])
    assert len(runs) == 2
    (child,) = [r for r in runs if r.info.run_id != parent.run_id]
    assert first.ids == {t.run_id: child.info.run_id}
    assert child.data.tags[PARENT_TAG] == parent.run_id and child.data.tags[OFFLINE_TAG] == t.run_id
    assert child.info.run_name == "r" and child.data.tags["seed"] == "0" and child.data.params == {"a": "1"}
    assert history(c, child.info.run_id, "m") == [(1, 1.0), (2, 2.0)] and child.info.status == "FINISHED"
    assert [a.path for a in c.list_artifacts(child.info.run_id)] == ["w.txt"]
    assert start(uri, run_id=t.run_id).run_id == child.info.run_id


def test_offline_run_goes_online_when_the_server_is_back(tmp_path, monkeypatch):
    uri, parent = store(tmp_path)
    up = {"v": False}
    monkeypatch.setattr(client, "reachable", lambda uri, timeout=0: up["v"])
    monkeypatch.setattr(tracker, "RECHECK_S", 0.0)
    path = tmp_path / "run" / SPOOL_NAME
    t = offline(path, uri, parent.run_id, tmp_path)
    t.log_metrics({"m": 1.0}, step=1)
    assert path.is_file()
    up["v"] = True
    t.log_metrics({"m": 2.0}, step=2)  # probe answers: replay (creates the run), then log directly
    assert not path.exists() and not t.offline  # delivered straight to the store again
    t.end("FINISHED")
    c = mlflow.MlflowClient(uri)
    rid = StoreClient(uri).real_id(t.run_id)
    assert history(c, rid, "m") == [(1, 1.0), (2, 2.0)] and c.get_run(rid).info.status == "FINISHED"
    assert c.get_run(rid).data.tags[OFFLINE_TAG] == t.run_id and not path.exists()


def test_only_a_sweep_run_starts_offline_and_a_dead_attempt_ends_through_its_spool(tiny_params, tmp_path,
                                                                                     monkeypatch):
    from alignrank.runs.key import run_dir, run_key
    from alignrank.runs.run import end_dead_attempt, open_attempt
    from alignrank.tracking.session import TrackerFactory

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    factory = TrackerFactory(uri=f"http://127.0.0.1:{free_port()}", experiment="e")  # nothing listens there
    rd = RunDir(run_dir(tiny_params, run_key(tiny_params)))
    rd.path.mkdir(parents=True)
    t0 = time.time()
    with pytest.raises(TrackingError, match="MLFLOW_TRACKING_URI"):  # `alignrank train`: fail before training
        open_attempt(factory, rd, run_name="r", parent_run_id=None, tags={})
    t = open_attempt(factory, rd, run_name="r", parent_run_id="p0", tags={"attempt": "1"})  # a sweep's run
    assert time.time() - t0 < 20 and is_offline_id(t.run_id) and t.offline
    (create,) = read(rd.path / SPOOL_NAME)
    assert create["kind"] == "create" and create["payload"]["parent_run_id"] == "p0"

    rd.run_json.write_text(json.dumps({"mlflow_run_id": t.run_id}))  # the worker died mid-run, offline
    rd.write_status(state="running")
    assert end_dead_attempt(rd, factory) == t.run_id
    assert [(r["kind"], r["payload"].get("status")) for r in read(rd.path / SPOOL_NAME)][-1] == ("end", "KILLED")
    assert read_json(rd.status_json)["state"] == "killed"


def test_server_down_mid_sweep_later_runs_start_offline_then_sync_logs_everything_once(tiny_data, tmp_path, server,
                                                                                       monkeypatch):
    """A real Ray sweep (2 runs, one at a time) against a real ``mlflow server`` killed during the first run."""
    from alignrank.runs.sweep import run_sweep

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # workers inherit it: a dead server fails fast
    server.start()
    over = {**tiny_overrides(tiny_data, tmp_path), "train.imgsz": 64, "train.epochs": 2, "train.val_period": 1,
            "sweep.variants": ["baseline"], "sweep.seeds": [0, 1], "ray.num_cpus": 2, "ray.max_concurrent": 1,
            "mlflow.tracking_uri": server.uri}
    p = load_params(REPO / "params.yaml", over)
    out = tmp_path / "runs"
    stop = threading.Event()

    def kill_after_first_epoch():
        while not stop.wait(0.2):
            if any((read_json(f) or {}).get("epoch", 0) >= 1 for f in out.glob("*/status.json")):
                server.stop()  # the server dies while the first run trains; the second starts without it
                return

    killer = threading.Thread(target=kill_after_first_epoch, daemon=True)
    killer.start()
    try:
        s = run_sweep(p)
    finally:
        stop.set()
        killer.join(timeout=10)
    assert server.proc is None, "the server was never stopped: the drill did not happen"
    assert s["failed"] == [] and len(s["trained"]) == 2  # tracking trouble failed no run
    ids = [r["mlflow_run_id"] for r in s["runs"]]
    assert sum(is_offline_id(i) for i in ids) == 1  # the second run started offline
    spools = sorted(out.rglob(SPOOL_NAME))
    assert out / SPOOL_NAME in spools and len(spools) == 3  # parent + both runs kept their records locally

    server.start()  # back on the same port and store
    r = CliRunner().invoke(app, ["sync", "--params", str(REPO / "params.yaml"),
                                 "--set", f"train.out_dir={out}", "--set", f"mlflow.tracking_uri={server.uri}"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["failed"] == [] and not list(out.rglob(SPOOL_NAME))

    c = mlflow.MlflowClient(server.uri)
    exp = c.get_experiment_by_name(p.mlflow.experiment).experiment_id
    runs = {x.info.run_name: x for x in c.search_runs([exp])}
    assert len(runs) == 3  # parent + one per run: nothing duplicated, no stand-in run
    parent = c.get_run(s["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.metrics["runs_done"] == 2
    for run in s["runs"]:
        rid = start(server.uri, experiment=p.mlflow.experiment,
                    run_id=run["mlflow_run_id"]).run_id  # an offline id resolves to its run
        child = runs[run["run"]]  # (snapshot taken before the reopen above)
        assert child.info.status == "FINISHED" and child.info.run_id == rid and child.data.tags[PARENT_TAG] == parent.info.run_id
        assert [st for st, _ in history(c, rid, "val/map50_95")] == [1, 2]  # every epoch exactly once
        assert [st for st, _ in history(c, rid, "final/map50_95")] == [2]
        assert child.data.params["train.seed"] == str(run["seed"])
        assert "weights/best.pt" in [a.path for a in c.list_artifacts(rid, "weights")]


@pytest.mark.parametrize("code, up", [(200, True), (401, True), (404, True), (503, False), (None, False)])
def test_any_http_answer_counts_as_reachable_but_a_gateway_error_or_no_answer_does_not(code, up):
    """A server behind an auth proxy answers /health with 401: it is up, runs must not go offline."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(code)
            self.end_headers()

        def log_message(self, *a):
            pass

    if code is None:
        assert client.reachable(f"http://127.0.0.1:{free_port()}", timeout=2) is False
        return
    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        assert client.reachable(f"http://127.0.0.1:{srv.server_address[1]}", timeout=5) is up
    finally:
        srv.shutdown()
