"""benchmarks/gpu_check.sh on a machine without CUDA: one 'skipped: no CUDA' line per check, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def test_without_cuda_every_check_is_skipped():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: run benchmarks/gpu_check.sh itself")
    env = {**os.environ, "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{c}: skipped: no CUDA" for c in ("amp", "sweep", "profile", "ddp")]
