"""Drill 4: a full disk while writing a result file raises, keeps the previous file whole and leaves no
temp file (so no half-written file is ever taken for a finished one)."""

from __future__ import annotations

import errno
import json
import os

import pytest

from alignrank import io as aio
from alignrank.runs import rundir
from alignrank.tune import report as tune_report

pytestmark = pytest.mark.reliability

WRITERS = {  # every result-file writer in alignrank/ goes through alignrank.io (profile/*, report/*: directly)
    "io.atomic_write_json": lambda p: aio.atomic_write_json(p, {"new": 1}),
    "tune.report.atomic_write_text": lambda p: tune_report.atomic_write_text(p, json.dumps({"new": 1})),
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
    aio.atomic_write_json(rd.metrics_json, {"map50_95": 0.1})
    monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(OSError):
        aio.atomic_write_json(rd.done_json, {"metrics": {"map50_95": 0.1}})
    monkeypatch.undo()
    assert rd.done() is None and rd.state(epochs=3) == "finalize"


def test_every_result_writer_uses_the_one_atomic_helper():
    """No private temp+replace writer is left in alignrank/ (checkpoints, downloads, extraction: own streams)."""
    import re
    from pathlib import Path

    import alignrank

    pkg = Path(alignrank.__file__).parent
    own_stream = {"io.py", "engine/trainer.py", "data/archive.py", "data/download.py", "env.py",
                  "profile/onnx_export.py", "tune/trial.py"}
    offenders = [str(f.relative_to(pkg)) for f in pkg.rglob("*.py")
                 if str(f.relative_to(pkg)) not in own_stream
                 and re.search(r"os\.replace\(|mkstemp\(|json\.dump\(", f.read_text())]
    assert offenders == []


@pytest.mark.parametrize("code", [errno.EACCES, errno.ENOSPC])
def test_run_whose_done_json_cannot_be_written_stays_unfinished(code, tiny_params, monkeypatch):
    """Through engine.run.train (finalize path: no training): unwritable done.json -> one-line error naming it,
    no done.json, no temp file, the run is finalized (not retrained) on the next call."""
    from alignrank.runs import run as run_mod
    from alignrank.tracking.base import NullTracker

    key = run_mod.run_key(tiny_params)
    rd = rundir.RunDir(run_mod.run_dir(tiny_params, key))
    aio.atomic_write_json(rd.metrics_json, {"map50_95": 0.25})  # trained; tracking/marker not yet written
    real = os.replace

    def replace(src, dst, *a, **k):
        if str(dst).endswith("done.json"):
            raise (PermissionError if code == errno.EACCES else OSError)(code, os.strerror(code))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(aio.OutputWriteError) as e:
        run_mod.train(tiny_params, NullTracker(), key=key)
    monkeypatch.undo()
    assert str(e.value).startswith(f"cannot write {rd.done_json}: ") and "\n" not in str(e.value)
    assert e.value.errno == code and rd.done() is None and rd.state(tiny_params.train.epochs) == "finalize"
    assert not [p.name for p in rd.path.iterdir() if p.name.endswith(".tmp")]
    assert run_mod.train(tiny_params, NullTracker(), key=key) == {"map50_95": 0.25}  # finalized, not retrained
    assert rd.done()["metrics"] == {"map50_95": 0.25}
