"""Drill 8: MLflow credentials never pass through anything Ray logs, yet Ray workers still authenticate.

A real ``mlflow server`` sits behind a loopback proxy that answers 401 unless a request carries the expected
credentials. A tiny sweep (password, Basic auth) and a tiny tune (token, Bearer auth) run against the proxy
with a private Ray temp folder; afterwards no file under that folder, the outputs or the MLflow store holds
a credential, while a non-secret marker forwarded the same way IS in Ray's logs (the search looks in the
right place).
"""

from __future__ import annotations

import base64
import collections
import http.client
import http.server
import os
import secrets
import shutil
import tempfile
import threading
from pathlib import Path

import mlflow
import pytest

from alignrank.config import load_params
from alignrank.runs.cluster import worker_env
from tests.conftest import REPO, tiny_overrides

pytestmark = pytest.mark.reliability


class AuthProxy:
    """``http://127.0.0.1:<port>`` -> the MLflow server, only for requests whose Authorization is accepted."""

    def __init__(self, upstream: str) -> None:
        self.accept: set[str] = set()
        self.seen: collections.Counter = collections.Counter()
        host, port = upstream.split("//", 1)[1].split(":")
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                ok = self.headers.get("Authorization") in proxy.accept
                proxy.seen["ok" if ok else "refused"] += not self.path.startswith("/health")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not ok:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(host, int(port), timeout=120)
                conn.request(self.command, self.path, body=body, headers={
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization", "connection")})
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, *a) -> None:
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.srv.server_address[1]}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


def files_holding(roots: list[Path], needles: list[str]) -> list[str]:
    """``path: needle`` for every regular file under ``roots`` that contains one of ``needles``."""
    found = []
    for root in roots:
        for f in root.rglob("*"):
            if f.is_file() and not f.is_symlink():
                data = f.read_bytes()
                found += [f"{f}: {n}" for n in needles if n.encode() in data]
    return found


def test_worker_env_holds_no_credential_and_the_factory_carries_them_unshown(monkeypatch):
    from alignrank.tracking.session import direct_factory

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0k")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://bob:s3cret@127.0.0.1:5000")  # (refused in params, not in env)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    monkeypatch.setenv("ALIGNRANK_FAULT", "raise:x")
    env = worker_env()
    assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30" and env["ALIGNRANK_FAULT"] == "raise:x"
    assert not {"MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"} & set(env)
    f = direct_factory(load_params(None))
    assert f.credentials == {"MLFLOW_TRACKING_TOKEN": "t0k", "MLFLOW_TRACKING_PASSWORD": "pw",
                             "MLFLOW_TRACKING_URI": "http://bob:s3cret@127.0.0.1:5000"}
    assert "t0k" not in repr(f) and "pw'" not in repr(f) and "s3cret" not in repr(f) and "***@127.0.0.1" in repr(f)


def test_credentials_never_reach_ray_logs_or_outputs_and_workers_still_authenticate(tiny_data, tmp_path, server,
                                                                                     monkeypatch):
    from alignrank.runs.sweep import run_sweep
    from alignrank.tune.search import run_tune

    password, token = "pw-" + secrets.token_hex(12), "tok-" + secrets.token_hex(12)
    basic = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    plain = "plain-" + secrets.token_hex(12)  # a forwarded setting that is not a credential
    ray_tmp = Path(tempfile.mkdtemp(prefix="ars", dir="/tmp"))  # short: Ray's socket paths have a length limit
    server.start()
    proxy = AuthProxy(server.uri)
    try:
        monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
        monkeypatch.setenv("ALIGNRANK_DRILL_PROBE", plain)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.uri)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        env = worker_env()
        assert env["ALIGNRANK_DRILL_PROBE"] == plain and env["MLFLOW_TRACKING_URI"] == proxy.uri
        assert not {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"} & set(env)

        # a sweep: the worker's MLflow client must send the password (Basic auth) or the proxy refuses it
        proxy.accept = {basic}
        over = {**tiny_overrides(tiny_data, tmp_path), "train.imgsz": 64, "sweep.variants": ["baseline"],
                "sweep.seeds": [0], "ray.num_cpus": 1, "ray.max_concurrent": 1}
        s = run_sweep(load_params(REPO / "params.yaml", over))
        assert s["failed"] == [] and len(s["trained"]) == 1
        c = mlflow.MlflowClient(server.uri)  # straight to the server, past the proxy
        child = c.get_run(s["runs"][0]["mlflow_run_id"])  # created and logged by the Ray worker
        assert child.info.status == "FINISHED" and "final/map50_95" in child.data.metrics
        assert proxy.seen["ok"] > 0 and proxy.seen["refused"] == 0

        # a tune search: token only (Bearer auth), trials are Ray actors
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
        proxy.accept, proxy.seen = {f"Bearer {token}"}, collections.Counter()
        t = run_tune(load_params(REPO / "params.yaml", {
            **tiny_overrides(tiny_data, tmp_path), "train.imgsz": 64, "tune.variant": "baseline",
            "tune.num_samples": 1, "tune.epochs": 1, "tune.max_concurrent": 1, "tune.scheduler": "none",
            "tune.search": "random", "ray.num_cpus": 1}))
        assert t["trials"] == 1 and not t["failed"]
        trials = [r for r in c.search_runs([c.get_experiment_by_name("alignrank").experiment_id])
                  if r.data.tags.get("kind") == "tune-trial"]
        assert len(trials) == 1 and "final/map50_95" in trials[0].data.metrics  # logged by the trial's worker
        assert proxy.seen["ok"] > 0 and proxy.seen["refused"] == 0
    finally:
        proxy.close()
        server.stop()
        found = files_holding([ray_tmp, tmp_path], [password, token, basic.split()[1], plain])
        shutil.rmtree(ray_tmp, ignore_errors=True)
    leaks = [f for f in found if not f.endswith(plain)]
    assert leaks == [], leaks
    assert any("session_" in f for f in found), "the forwarded non-secret setting is in no Ray log: wrong place?"
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == token  # the driver's environment is restored after Ray started
