"""Ray set-up from params: task resources, fail-fast addresses, env forwarding, Ray Client guard."""

from __future__ import annotations

import socket

import pytest

from alignrank.config import load_params
from alignrank.errors import UsageError
from alignrank.runs.cluster import check_reachable, task_options, worker_env
from alignrank.runs.sweep import run_params, run_sweep


def test_task_options_and_threads_follow_ray_params():
    p = load_params(None, {"ray.cpus_per_run": 2, "ray.gpus_per_run": 0.5})
    assert task_options(p) == {"num_cpus": 2.0, "num_gpus": 0.5, "max_retries": 0, "retry_exceptions": False}
    rp = run_params(p, "csd", 3)
    assert (rp.train.variant, rp.train.seed, rp.train.threads) == ("csd", 3, 2)
    assert rp.train.out_dir.startswith("/") and rp.data.root.startswith("/")
    assert run_params(load_params(None, {"ray.cpus_per_run": 0.5}), "rcq", 0).train.threads == 1


def test_unreachable_or_malformed_address_fails_fast_in_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UsageError, match=f"ray.address '127.0.0.1:{port}': cannot connect"):
        check_reachable(f"127.0.0.1:{port}", timeout=2)
    with pytest.raises(UsageError, match="expected null, 'auto', 'host:port'"):
        check_reachable("nonsense")
    check_reachable("auto")  # resolved by Ray itself


def test_worker_env_forwards_our_settings_only(monkeypatch):
    monkeypatch.setenv("ALIGNRANK_FAULT", "raise:x")
    monkeypatch.setenv("SOME_SECRET", "no")
    env = worker_env()
    assert env["ALIGNRANK_FAULT"] == "raise:x" and "SOME_SECRET" not in env and "ALIGNRANK_ROOT" in env


def test_ray_client_with_embedded_store_is_refused(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(UsageError, match="set mlflow.tracking_uri"):
        run_sweep(load_params(None, {"ray.address": "ray://127.0.0.1:10001"}))


def test_gpu_device_without_reserved_gpus_is_refused():
    with pytest.raises(UsageError, match="ray.gpus_per_run=0"):
        run_sweep(load_params(None, {"train.device": "cuda", "ray.gpus_per_run": 0}))
