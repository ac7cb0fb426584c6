"""A run's output folder ``<train.out_dir>/<variant>-s<seed>-<key>/`` and its state files.

Layout (ultralytics writes ``weights/`` and ``results.csv``; we write the JSON files atomically with :mod:`alignrank.io`):

* ``run.json``     - run key, its payload, MLflow run id, attempts (written at start)
* ``params.yaml``  - the resolved params of the run (also an MLflow artifact)
* ``status.json``  - live state for the progress view (state, epoch, latest metric, pid, host)
* ``metrics.json`` - final metrics, written when training returns (lets a retry skip to tracking)
* ``done.json``    - the completion marker, written LAST: a run with it is never recomputed
* ``checkpoints.json`` - sha256 (and epoch) of every checkpoint the trainer wrote; a ``last.pt`` whose hash
  is not in it is never loaded (:mod:`alignrank.engine.checkpoints`)

Examples:
    >>> import tempfile
    >>> rd = RunDir(Path(tempfile.mkdtemp()) / "baseline-s0-abc")
    >>> rd.state(epochs=3)
    'fresh'
    >>> _ = atomic_write_json(rd.done_json, {"metrics": {"map50_95": 0.1}})
    >>> rd.state(epochs=3)
    'done'
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignrank.engine.checkpoints import peek, verify
from alignrank.io import atomic_write_json, read_json


def checkpoint_epoch(path: Path) -> int | None:
    """0-based epoch stored in an ultralytics checkpoint (-1 once stripped), None if unreadable.

    Read without running any code of the file (:func:`alignrank.engine.checkpoints.peek`): it may be one no
    run of ours wrote.
    """
    ckpt = peek(path)
    e = ckpt.get("epoch", -1) if ckpt is not None else None
    return e if isinstance(e, int) and not isinstance(e, bool) else None


@dataclass(frozen=True)
class RunDir:
    """Paths and state of one run folder."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    weights = property(lambda self: self.path / "weights" / "best.pt")
    last = property(lambda self: self.path / "weights" / "last.pt")
    run_json = property(lambda self: self.path / "run.json")
    params_yaml = property(lambda self: self.path / "params.yaml")
    status_json = property(lambda self: self.path / "status.json")
    metrics_json = property(lambda self: self.path / "metrics.json")
    done_json = property(lambda self: self.path / "done.json")

    def done(self) -> dict | None:
        """Contents of ``done.json`` (None while the run is not finished)."""
        return read_json(self.done_json)

    def meta(self) -> dict:
        """Contents of ``run.json`` ({} if absent)."""
        return read_json(self.run_json) or {}

    def state(self, epochs: int) -> str:
        """``done`` | ``finalize`` (trained, tracking unfinished) | ``resume`` (valid last.pt) | ``fresh``.

        Raises:
            CheckpointRefused: ``last.pt`` is not a file this run recorded (see :mod:`alignrank.engine.checkpoints`).
        """
        if self.done() is not None:
            return "done"
        if read_json(self.metrics_json) is not None:
            return "finalize"
        if self.last.is_file():
            e = verify(self.last).get("epoch")  # never unpickled unless its hash is one this run wrote
            if isinstance(e, int) and 0 <= e and e + 1 < epochs:
                return "resume"
        return "fresh"

    def reset(self) -> None:
        """Remove partial outputs of a run that cannot resume (corrupt/finished last.pt, stale CSV)."""
        shutil.rmtree(self.path / "weights", ignore_errors=True)
        for f in ("results.csv", "metrics.json"):
            (self.path / f).unlink(missing_ok=True)

    def write_status(self, **fields: Any) -> None:
        """Merge ``fields`` into ``status.json`` (atomic)."""
        atomic_write_json(self.status_json, {**(read_json(self.status_json) or {}), **fields})
