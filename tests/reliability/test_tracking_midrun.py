"""Drill 3: the tracking server goes away mid-run: training goes on, records are spooled in the run folder,
``alignrank sync`` replays them once the server is back, every metric arrives exactly once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.config import with_overrides
from alignrank.errors import TrackingError
from alignrank.tracking import client, records, tracker
from alignrank.tracking.client import StoreClient, is_unreachable
from alignrank.tracking.records import SPOOL_NAME, read
from alignrank.tracking.session import TrackerFactory
from alignrank.tracking.tracker import RunTracker
from tests.conftest import REPO
from tests.tracking.test_tracker import start

pytestmark = pytest.mark.reliability
MLFLOW = Path(sys.executable).with_name("mlflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real ``mlflow server`` on 127.0.0.1 (own process group, always killed in teardown)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.port, self.proc = tmp, free_port(), None
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 300.0) -> None:  # (a loaded CI machine needs well over a minute)
        log = open(self.tmp / "server.log", "ab")
        self.proc = subprocess.Popen(
            [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{self.tmp / 'm.db'}",
             "--artifacts-destination", str(self.tmp / "art"), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"], cwd=self.tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.time()
        while time.time() - t0 < timeout:
            assert self.proc.poll() is None, (self.tmp / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"mlflow server not healthy after {timeout}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the server's own group (uvicorn child included)
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def server(tmp_path):
    d = tmp_path / "mlflow-server"
    d.mkdir()
    s = Server(d)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def fast_fail(monkeypatch):
    monkeypatch.setattr(client, "RETRY_ATTEMPTS", 2)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setattr(tracker, "RECHECK_S", 3600.0)  # no re-probe mid-run: the end-of-run flush and sync replay
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def history(c, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in c.get_metric_history(run_id, key))


def test_server_killed_mid_run_spools_then_sync_logs_every_metric_once(tiny_params, tmp_path, server, fast_fail):
    from alignrank.runs.run import execute
    from alignrank.tracking.session import direct_factory

    server.start()
    p = with_overrides(tiny_params, {"train.variant": "baseline", "train.epochs": 2, "train.imgsz": 64,
                                    "train.val_period": 1, "mlflow.tracking_uri": server.uri})  # val/* every epoch

    def kill_after_epoch_1(epoch, metrics):
        if epoch == 1:
            server.stop()  # the server dies while the run trains on

    out = execute(p, direct_factory(p), report=kill_after_epoch_1)
    assert out["status"] == "done"  # the run is not failed because of tracking
    rd = Path(out["run_dir"])
    done = json.loads((rd / "done.json").read_text())
    rid = done["mlflow_run_id"]
    records = read(rd / SPOOL_NAME)
    kinds = [r["kind"] for r in records]
    assert {r["run_id"] for r in records} == {rid} and kinds[-1] == "end" and "artifact" in kinds
    steps = [r["payload"]["step"] for r in records if r["kind"] == "metrics"]
    assert steps == [2, 2]  # epoch 2 and the final metrics (logged at step = epochs)
    assert any("val/map50_95" in r["payload"]["metrics"] for r in records if r["kind"] == "metrics")

    server.start()  # back on the same port and store
    c = mlflow.MlflowClient(server.uri)
    assert [s for s, _ in history(c, rid, "val/map50_95")] == [1] and c.get_run(rid).info.status == "RUNNING"
    backup = tmp_path / "spool.bak"
    shutil.copy(rd / SPOOL_NAME, backup)
    args = ["sync", "--params", str(REPO / "params.yaml"), "--set", f"train.out_dir={p.train.out_dir}",
            "--set", f"mlflow.tracking_uri={server.uri}"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["failed"] == [] and [x["records"] for x in s["synced"]] == [len(records)]
    assert not (rd / SPOOL_NAME).exists()  # removed after success

    def snapshot():
        run = c.get_run(rid)
        return run.info.status, {k: history(c, rid, k) for k in run.data.metrics}, sorted(
            a.path for a in c.list_artifacts(rid) + c.list_artifacts(rid, "weights"))

    status, metrics, artifacts = snapshot()
    assert status == "FINISHED" and "weights/best.pt" in artifacts and "params.yaml" in artifacts
    assert [s_ for s_, _ in metrics["val/map50_95"]] == [1, 2]  # every epoch exactly once
    assert [s_ for s_, _ in metrics["final/map50_95"]] == [2]
    assert all(len({st for st, _ in h}) == len(h) for h in metrics.values())  # no (key, step) twice

    shutil.copy(backup, rd / SPOOL_NAME)  # replaying the same records again duplicates nothing
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert snapshot() == (status, metrics, artifacts) and not (rd / SPOOL_NAME).exists()
    nothing = CliRunner().invoke(app, args)
    assert nothing.exit_code == 0 and json.loads(nothing.stdout)["synced"] == []


def test_sync_with_the_server_still_down_is_one_line_and_keeps_the_spool(tmp_path, fast_fail):
    out = tmp_path / "runs"
    records.append(out / "r1" / SPOOL_NAME, {"run_id": "x", "kind": "end", "payload": {"status": "FINISHED",
                                                                                        "timestamp": 1}})
    r = CliRunner().invoke(app, ["sync", "--params", str(REPO / "params.yaml"), "--set", f"train.out_dir={out}",
                                 "--set", f"mlflow.tracking_uri=http://127.0.0.1:{free_port()}"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert "not reachable" in line and "alignrank sync" in line and (out / "r1" / SPOOL_NAME).is_file()


class FlakyStore:
    """Delivery double: records reach a real store until ``down``; then it fails like an unreachable server."""

    def __init__(self, uri: str) -> None:
        self.store, self.down = StoreClient(uri), False

    def deliver(self, rec: dict) -> None:
        if self.down:
            try:
                raise ConnectionRefusedError(111, "Connection refused")
            except ConnectionRefusedError as e:
                raise TrackingError("MLflow at x: log failed (Connection refused)") from e
        self.store.apply(rec)


def test_spooling_tracker_goes_offline_then_replays_once(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    flaky = FlakyStore(uri)
    run_id = flaky.store.open_run(experiment="e", run_name="r", artifact_root=str(tmp_path / "art"))
    path = tmp_path / "run" / SPOOL_NAME
    t = RunTracker(run_id, flaky.deliver, spool=path, uri=uri, stream=None)
    monkeypatch.setattr(client, "reachable", lambda uri, timeout=0: not flaky.down)
    t.log_params({"a": 1})
    t.log_metrics({"m": 1.0}, step=1)
    flaky.down = True
    t.log_metrics({"m": 2.0}, step=2)  # fails -> spooled, training goes on
    flaky.down = False  # a later call stays spooled (no re-probe before RECHECK_S): order is kept
    t.log_metrics({"m": 3.0}, step=3)
    t.log_params({"a": 1})
    assert [r["kind"] for r in read(path)] == ["metrics", "metrics", "params"]
    t.end("FINISHED")  # ends through the spool, then flushes it once (the store answers)
    assert not path.exists()
    c = mlflow.MlflowClient(uri)
    assert history(c, t.run_id, "m") == [(1, 1.0), (2, 2.0), (3, 3.0)] and c.get_run(t.run_id).info.status == "FINISHED"


def test_replay_twice_adds_nothing_and_refused_values_still_raise(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    run = start(uri, run_name="r")
    path = tmp_path / SPOOL_NAME
    recs = [{"run_id": run.run_id, "kind": "metrics", "payload": {"metrics": {"m": 1.5, "n": float("nan")},
                                                                    "step": 4, "timestamp": 1000}},
            {"run_id": run.run_id, "kind": "params", "payload": {"params": {"p": "1"}}},
            {"run_id": run.run_id, "kind": "end", "payload": {"status": "KILLED", "timestamp": 2000}}]
    for _ in range(2):
        for r in recs:
            records.append(path, r)
        assert StoreClient(uri).replay(path) == 3 and not path.exists()
    c = mlflow.MlflowClient(uri)
    assert history(c, run.run_id, "m") == [(4, 1.5)] and len(c.get_metric_history(run.run_id, "n")) == 1
    assert c.get_run(run.run_id).info.status == "KILLED"
    records.append(path, {"run_id": run.run_id, "kind": "params", "payload": {"params": {"p": "2"}}})
    with pytest.raises(TrackingError):
        StoreClient(uri).replay(path)  # a changed param is a real error, not a connection problem
    assert path.is_file()  # kept
    t = TrackerFactory(uri=uri, experiment="e").open(run_id=run.run_id, spool_dir=tmp_path / "x")
    t.log_params({"q": 1})
    with pytest.raises(TrackingError):
        t.log_params({"q": 2})  # not spooled: only an unreachable store is
    assert not (tmp_path / "x" / SPOOL_NAME).exists()


def test_unreachable_is_told_from_other_errors():
    import requests

    try:
        try:
            raise requests.exceptions.ConnectionError("refused")
        except requests.exceptions.ConnectionError:
            raise RuntimeError("API request failed") from None  # MLflow's REST client wraps it like this
    except RuntimeError as e:
        wrapped = e
    err = TrackingError("MLflow: log metrics failed")
    assert is_unreachable(err) is False
    err.__cause__ = wrapped
    assert is_unreachable(err) is True
    err.__cause__ = RuntimeError("HTTPConnectionPool(host='127.0.0.1'): Max retries exceeded with url")
    assert is_unreachable(err) is True
    err.__cause__ = ValueError("INVALID_PARAMETER_VALUE: changing param values is not allowed")
    assert is_unreachable(err) is False
