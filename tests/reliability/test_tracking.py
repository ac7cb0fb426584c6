"""Drills 3 and 8: a dead tracking server fails fast before training; no credentials in params or messages;
the MLflow UI we start listens on 127.0.0.1 only."""

from __future__ import annotations

import re
import socket

import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.config import ParamsError, load_params
from alignrank.tracking import client
from tests.conftest import REPO, set_args, tiny_overrides

pytestmark = pytest.mark.reliability


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block exits: nothing listens there


@pytest.fixture
def fast_fail(monkeypatch):
    monkeypatch.setattr(client, "RETRY_ATTEMPTS", 2)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def _args(command, tiny_data, tmp_path, **over):
    return [command, "--params", str(REPO / "params.yaml"),
            *set_args({**tiny_overrides(tiny_data, tmp_path), "train.imgsz": 64, **over})]


def test_dead_server_at_start_is_one_line_before_any_training(tiny_data, tmp_path, monkeypatch, fast_fail):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    port = dead_port()
    r = CliRunner().invoke(app, _args("train", tiny_data, tmp_path, **{"mlflow.tracking_uri": f"http://127.0.0.1:{port}"}))
    assert r.exit_code == 1, r.output
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert f"127.0.0.1:{port}" in line and "MLFLOW_TRACKING_URI" in line and "Traceback" not in r.output
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.rglob("*.pt"))  # nothing trained


def test_dead_server_at_start_of_a_sweep_trains_nothing(tiny_data, tmp_path, monkeypatch, fast_fail):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    port = dead_port()
    r = CliRunner().invoke(app, _args("sweep", tiny_data, tmp_path, **{
        "mlflow.tracking_uri": f"http://127.0.0.1:{port}", "sweep.variants": ["baseline"], "sweep.seeds": [0],
        "ray.num_cpus": 1}))
    assert r.exit_code == 1, r.output
    assert any(ln.startswith("error: MLflow at http://127.0.0.1:") for ln in r.stderr.splitlines()), r.stderr
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(p.is_dir() for p in runs.iterdir())  # no run folder: nothing started


@pytest.mark.parametrize("uri", ["http://bob:s3cret@127.0.0.1:5000", "https://token@mlflow.example:443/x",
                                 "databricks://user:pw@host"])
def test_credentials_in_params_are_refused_naming_the_key_and_the_fix(uri):
    with pytest.raises(ParamsError) as e:
        load_params(None, {"mlflow.tracking_uri": uri})
    msg = str(e.value)
    assert msg.startswith("mlflow.tracking_uri:") and "MLFLOW_TRACKING_PASSWORD" in msg and "s3cret" not in msg


def test_plain_uris_are_accepted():
    for uri in ("http://127.0.0.1:5000", "sqlite:////tmp/a@b/mlflow.db", "file:///tmp/x"):
        assert load_params(None, {"mlflow.tracking_uri": uri}).mlflow.tracking_uri == uri


def test_credentials_from_the_environment_never_reach_messages_or_logs(tiny_data, tmp_path, monkeypatch, fast_fail):
    port = dead_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://bob:s3cret@127.0.0.1:{port}")
    r = CliRunner().invoke(app, _args("train", tiny_data, tmp_path))
    assert r.exit_code == 1 and "s3cret" not in r.output and "***@127.0.0.1" in r.stderr, r.output


def test_the_mlflow_ui_we_start_binds_to_loopback_only():
    lines = [ln for ln in (REPO / "Makefile").read_text().splitlines() if re.search(r"mlflow\s+(ui|server)", ln)]
    assert lines, "Makefile: no mlflow ui/server target found"
    for ln in lines:
        assert re.search(r"--host\s+127\.0\.0\.1\b", ln) and "0.0.0.0" not in ln, ln
    py = [p for p in (REPO / "alignrank").rglob("*.py") if re.search(r"mlflow\W+(ui|server)\b.*--host", p.read_text())]
    for p in py:
        assert "127.0.0.1" in p.read_text(), f"{p}: starts an MLflow server on a non-loopback host"
