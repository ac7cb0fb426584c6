"""A real 2-node Ray cluster on 127.0.0.1 (head + worker node processes); a tiny sweep runs on it by address.

Only the processes this test starts are stopped (their own process groups, then any leftover child by
pid), never ``ray stop``, which would stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import ray

from alignrank.config import load_params
from alignrank.dist.sweep import run_sweep
from tests.conftest import REPO, tiny_overrides

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args], stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop(procs: list[subprocess.Popen]) -> None:
    kids = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            kids += psutil.Process(p.pid).children(recursive=True)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)  # the group each `ray start` leads (start_new_session=True)
        _, alive = psutil.wait_procs(kids, timeout=15)
        for k in alive:
            with contextlib.suppress(psutil.Error):
                k.send_signal(sig)
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=15)


def _wait_nodes(address: str, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    ray.init(address=address, log_to_driver=False)
    try:
        while time.monotonic() < deadline:
            if sum(node["Alive"] for node in ray.nodes()) >= n:
                return
            time.sleep(1)
        raise TimeoutError(f"cluster at {address}: {n} nodes did not come up in {timeout}s")
    finally:
        ray.shutdown()


@pytest.fixture
def two_node_cluster(tmp_path):
    tmp = Path(tempfile.mkdtemp(prefix="arc", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port = _free_port()
    address = f"127.0.0.1:{port}"
    procs = []
    try:
        procs.append(_start(["--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                             "--node-ip-address=127.0.0.1", f"--temp-dir={tmp}"], tmp_path / "head.log"))
        deadline = time.monotonic() + 120
        while True:  # the GCS accepts connections once the head is up
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            assert procs[0].poll() is None and time.monotonic() < deadline, (tmp_path / "head.log").read_text()[-2000:]
            time.sleep(0.5)
        procs.append(_start([f"--address={address}", "--num-cpus=1", "--node-ip-address=127.0.0.1"],
                            tmp_path / "worker.log"))
        _wait_nodes(address, 2)
        yield address
    finally:
        _stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)


def test_sweep_runs_on_a_two_node_cluster_by_address(two_node_cluster, tiny_data, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    p = load_params(REPO / "params.yaml", {
        **tiny_overrides(tiny_data, tmp_path), "train.imgsz": 64, "sweep.variants": ["baseline"],
        "sweep.seeds": [0, 1], "ray.address": two_node_cluster, "ray.cpus_per_run": 1, "ray.max_concurrent": 2,
    })
    s = run_sweep(p)
    assert s["failed"] == [] and len(s["runs"]) == 2 and all(r["status"] == "done" for r in s["runs"])
    assert len({r["node_id"] for r in s["runs"]}) == 2  # 1 CPU per node, 2 concurrent runs: both nodes worked
    assert not ray.is_initialized()  # the sweep disconnected; the cluster itself is the fixture's
