"""Run-folder states decide reuse / finalize / resume / restart; JSON writes are atomic."""

from __future__ import annotations

import os

import pytest
import torch

from alignrank.engine.checkpoints import record_file
from alignrank.errors import CheckpointRefused
from alignrank.io import atomic_write_json, read_json, resolve_path
from alignrank.runs.rundir import RunDir


def _ckpt(rd: RunDir, epoch: int) -> None:
    rd.last.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epoch, "model": None}, rd.last)
    record_file(rd.last, epoch=epoch)  # as the trainer records every checkpoint it writes


@pytest.mark.parametrize("epoch, state", [(0, "resume"), (1, "resume"), (2, "fresh"), (-1, "fresh")])
def test_last_checkpoint_resumes_only_mid_training(tmp_path, epoch, state):
    rd = RunDir(tmp_path / "baseline-s0-k")
    _ckpt(rd, epoch)  # epochs=3: 0-based epoch 2 is the last one (finished), -1 = stripped (finished)
    assert rd.state(epochs=3) == state


@pytest.mark.reliability
def test_damaged_checkpoint_is_refused_and_reset_clears_partial_outputs(tmp_path):
    rd = RunDir(tmp_path / "r")
    _ckpt(rd, 0)
    rd.last.write_bytes(rd.last.read_bytes()[:20])  # damaged after it was written (writes are atomic)
    (rd.path / "results.csv").write_text("epoch\n1\n")
    with pytest.raises(CheckpointRefused, match="refusing to load .*last.pt"):
        rd.state(epochs=3)  # its hash is not the recorded one: never unpickled
    rd.reset()
    assert not rd.last.exists() and not (rd.path / "results.csv").exists()


def test_finalize_and_done_take_precedence(tmp_path):
    rd = RunDir(tmp_path / "r")
    _ckpt(rd, 0)
    atomic_write_json(rd.metrics_json, {"map50_95": 0.1})
    assert rd.state(epochs=3) == "finalize"
    atomic_write_json(rd.done_json, {"metrics": {"map50_95": 0.1}})
    assert rd.state(epochs=3) == "done" and rd.done()["metrics"]["map50_95"] == 0.1


@pytest.mark.reliability
def test_atomic_write_never_leaves_partial_file(tmp_path, monkeypatch):
    f = tmp_path / "done.json"
    atomic_write_json(f, {"a": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_json(f, {"a": 2})
    assert read_json(f) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["done.json"]
    f.write_text("{broken")
    assert read_json(f) is None


def test_status_merges_fields(tmp_path):
    rd = RunDir(tmp_path / "r")
    rd.write_status(state="running", epoch=1)
    rd.write_status(epoch=2)
    assert read_json(rd.status_json) == {"state": "running", "epoch": 2}
    assert resolve_path("x") == tmp_path / "x" and resolve_path(tmp_path / "y") == tmp_path / "y"
