"""A real 2-node Ray cluster on 127.0.0.1 (head + worker node processes); a tiny sweep runs on it by address.

Only the processes this test starts are stopped (their own process groups, then any leftover child by
pid), never ``ray stop``, which would stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
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

from tests.conftest import REPO, set_args, tiny_overrides

RAY = str(Path(sys.executable).with_name("ray"))
# Token auth on every side, with the cluster's token in the environment (RAY_AUTH_TOKEN) rather than in
# ~/.ray/auth_token, so the test writes nothing into the user's home. A driver that joins by explicit
# address sends the token only with RAY_AUTH_MODE=token, read when the process starts Ray (so the driver
# runs as a fresh `alignrank sweep` process, as a user would run it; see docs/cluster.md).
AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args], stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **AUTH})


def _stop(procs: list[subprocess.Popen]) -> None:
    """TERM then KILL the process group each `ray start` leads, and any child that left it (by pid)."""
    kids = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            kids += psutil.Process(p.pid).children(recursive=True)
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 15)):
        for p in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)
        for k in psutil.wait_procs(kids, timeout=grace)[1]:
            with contextlib.suppress(psutil.Error):
                k.send_signal(sig)
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=15)


WAIT_NODES = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
deadline = time.monotonic() + 120
while sum(n["Alive"] for n in ray.nodes()) < 2:
    assert time.monotonic() < deadline, "worker node did not join"
    time.sleep(1)
"""


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
        subprocess.run([sys.executable, "-c", WAIT_NODES, address], env={**os.environ, **AUTH}, check=True,
                       timeout=180, capture_output=True)
        yield address
    finally:
        _stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)


def test_sweep_runs_on_a_two_node_cluster_by_address(two_node_cluster, tiny_data, tmp_path):
    sets = {**tiny_overrides(tiny_data, tmp_path), "train.imgsz": 64, "sweep.variants": "[baseline]",
            "sweep.seeds": "[0,1]", "ray.address": two_node_cluster, "ray.cpus_per_run": 1, "ray.max_concurrent": 2}
    cmd = [sys.executable, "-m", "alignrank.cli", "sweep", "--json", "--params", str(REPO / "params.yaml"), *set_args(sets)]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    r = subprocess.run(cmd, env={**env, **AUTH, "ALIGNRANK_ROOT": str(tmp_path)}, cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["failed"] == [] and len(s["runs"]) == 2 and all(x["status"] == "done" for x in s["runs"])
    assert len({x["node_id"] for x in s["runs"]}) == 2  # 1 CPU per node, 2 concurrent runs: both nodes trained
    assert (tmp_path / "outputs" / "mlflow" / "mlflow.db").is_file()  # tracked by the driver-node writer
