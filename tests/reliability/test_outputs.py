"""Drill 4: a full disk while writing a result file raises, keeps the previous file whole and leaves no
temp file (so no half-written file is ever taken for a finished one)."""

from __future__ import annotations

import errno
import json
import os

import pytest

from alignrank.data import files as data_files
from alignrank.dist import tune_report
from alignrank.engine import rundir
from alignrank.eval import io as eval_io
from alignrank.profile import loss_bench
from alignrank.profile import stage as profile_stage

pytestmark = pytest.mark.reliability

WRITERS = {  # every result-file writer in alignrank/ (done/metrics/status/run.json, manifest, tables, ...)
    "engine.rundir.atomic_write_json": lambda p: rundir.atomic_write_json(p, {"new": 1}),
    "data.files.atomic_write_json": lambda p: data_files.atomic_write_json(p, {"new": 1}),
    "eval.io.atomic_write_json": lambda p: eval_io.atomic_write_json(p, {"new": 1}),
    "dist.tune_report._write_atomic": lambda p: tune_report._write_atomic(p, json.dumps({"new": 1})),
    "profile.stage._atomic_json": lambda p: profile_stage._atomic_json(p, {"new": 1}),
    "profile.loss_bench._write_json": lambda p: loss_bench._write_json(p, {"new": 1}),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_full_disk_keeps_previous_file_and_leaves_no_temp(name, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    target = out / "done.json"
    target.write_text('{"old": 1}\n')

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError) as e:
        WRITERS[name](target)
    assert e.value.errno == errno.ENOSPC
    assert json.loads(target.read_text()) == {"old": 1} and [p.name for p in out.iterdir()] == ["done.json"]
    monkeypatch.undo()
    WRITERS[name](target)  # space again: the write goes through
    assert json.loads(target.read_text()) == {"new": 1} and [p.name for p in out.iterdir()] == ["done.json"]


def test_run_that_cannot_write_done_json_is_not_finished(tmp_path, monkeypatch):
    """done.json is the completion marker: if writing it fails the run stays unfinished (re-run finalizes)."""
    rd = rundir.RunDir(tmp_path / "baseline-s0-abc")
    rundir.atomic_write_json(rd.metrics_json, {"map50_95": 0.1})
    monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(OSError):
        rundir.atomic_write_json(rd.done_json, {"metrics": {"map50_95": 0.1}})
    monkeypatch.undo()
    assert rd.done() is None and rd.state(epochs=3) == "finalize"
