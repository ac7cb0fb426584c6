"""Drill 4 end to end: the disk under a training run fills up (a real, tiny tmpfs) -> one-line error, exit 1,
no half-written checkpoint or result taken for a finished one; with space again the re-run resumes and finishes."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from alignrank.io import read_json
from alignrank.runs.rundir import RunDir, checkpoint_epoch
from tests.conftest import REPO, set_args, tiny_overrides

pytestmark = pytest.mark.reliability
ALIGNRANK = Path(sys.executable).with_name("alignrank")


def mount_tmpfs(mnt: Path, options: str):
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs here ({r.stderr.strip() or 'mount failed'}): needs root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 MiB tmpfs (needs root or CAP_SYS_ADMIN: skipped otherwise), unmounted afterwards."""
    yield from mount_tmpfs(tmp_path / "disk", "size=256m")


@pytest.fixture
def read_only_disk(tmp_path):
    """A read-only tmpfs (chmod does not deny root; a read-only mount does)."""
    yield from mount_tmpfs(tmp_path / "ro", "ro,size=1m")


def train_args(tiny_data, tmp_path, out: Path, **over) -> list[str]:
    return [str(ALIGNRANK), "train", "--params", str(REPO / "params.yaml"), *set_args({
        **tiny_overrides(tiny_data, tmp_path), "train.out_dir": str(out), "train.imgsz": 64,
        "train.variant": "baseline", **over})]


def fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e


def test_disk_full_mid_training_is_one_line_keeps_last_checkpoint_and_rerun_resumes(tiny_data, tmp_path, tiny_disk):
    out = tiny_disk / "runs"
    args = train_args(tiny_data, tmp_path, out, **{"train.epochs": 6})
    filler, stop = tiny_disk / "filler.bin", threading.Event()

    def fill_after_epoch_1():
        while not stop.wait(0.05):
            if any((read_json(f) or {}).get("epoch", 0) >= 1 for f in out.glob("*/status.json")):
                fill(filler)  # the disk fills up while the run trains on
                return

    t = threading.Thread(target=fill_after_epoch_1, daemon=True)
    t.start()
    try:
        r = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    finally:
        stop.set()
        t.join(timeout=30)
    assert filler.is_file(), "the disk was never filled: the drill did not happen\n" + r.stderr[-3000:]
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert "No space left on device (ENOSPC)" in line and "free disk space" in line and str(out) in line
    (run,) = [RunDir(d) for d in out.iterdir() if d.is_dir()]
    assert run.done() is None and read_json(run.metrics_json) is None  # nothing taken for finished
    assert not list(run.path.rglob("*.tmp")) and not list(run.path.rglob(".*.tmp*"))  # no partial temp file left
    epoch = checkpoint_epoch(run.last)
    assert epoch is not None and 0 <= epoch < 5  # the previous, whole checkpoint (loads, not truncated)

    filler.unlink()  # space again: the same command resumes from that checkpoint and finishes
    again = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    meta = run.meta()
    assert meta["start_state"] == "resume" and meta["attempts"] == 2
    assert run.done()["metrics"] and checkpoint_epoch(run.weights) is not None
    third = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)  # cached: no retrain
    assert third.returncode == 0 and json.loads(third.stdout)["cached"] is True and run.meta()["attempts"] == 2


def test_read_only_output_folder_is_one_line_before_training(tiny_data, tmp_path, read_only_disk):
    r = subprocess.run(train_args(tiny_data, tmp_path, read_only_disk / "runs"), capture_output=True, text=True,
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert "Read-only file system (EROFS)" in line and str(read_only_disk) in line and "writable disk" in line
