"""Checkpoint records: the sha256 of every checkpoint a run writes, checked before any is loaded.

A ``.pt`` checkpoint is a pickle: loading it can run any code it carries, so a file planted at a run's
predictable path (``<train.out_dir>/<variant>-s<seed>-<key>/weights/last.pt``) must never be loaded.
:class:`~alignrank.engine.trainer.AlignRankTrainer` records each checkpoint it writes (``last.pt``, ``best.pt``,
the exact-resume ``last_exact.pt``, and the stripped ``last.pt``/``best.pt`` at the end of training) in
``<run folder>/checkpoints.json``, atomically and BEFORE the file takes its final name (so a kill in between
leaves a file whose hash is known). Every hash the run wrote stays known (a checkpoint restored from a
copy of one of them, e.g. by Ray Tune, is accepted). Before a checkpoint is loaded (resume, exact resume,
evaluation), :func:`verify` hashes it: unknown -> :class:`~alignrank.errors.CheckpointRefused`, one line
naming the path, the expected and found hashes and the fix; the file is never opened by ``torch.load``.
A record file owned by another user is not trusted either.

:func:`peek` reads the plain top-level fields of a checkpoint (its ``epoch``) without running any of its code.

Examples:
    >>> import tempfile, pathlib, torch
    >>> run = pathlib.Path(tempfile.mkdtemp()); (run / "weights").mkdir()
    >>> torch.save({"epoch": 3, "model": None}, run / "weights" / "last.pt")
    >>> record_file(run / "weights" / "last.pt", epoch=3)["epoch"], peek(run / "weights" / "last.pt")["epoch"]
    (3, 3)
    >>> verify(run / "weights" / "last.pt")["epoch"]
    3
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from alignrank.errors import CheckpointRefused
from alignrank.io import atomic_write_json, read_json, sha256_file

RECORD_NAME = "checkpoints.json"


def record_path(checkpoint: Path) -> Path | None:
    """``<run folder>/checkpoints.json`` of a checkpoint in ``<run folder>/weights/`` (None elsewhere)."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent / RECORD_NAME if checkpoint.parent.name == "weights" else None


def record(run_dir: Path, entries: dict[str, dict]) -> None:
    """Add ``{file name: {"sha256", "epoch"}}`` to the run's record (atomic; every hash stays known)."""
    path = Path(run_dir) / RECORD_NAME
    rec = read_json(path) or {}
    files, known = dict(rec.get("files") or {}), dict(rec.get("known") or {})
    for name, e in entries.items():
        files[name] = {"sha256": e["sha256"], "epoch": e.get("epoch")}
        known[e["sha256"]] = {"file": name, "epoch": e.get("epoch")}
    atomic_write_json(path, {"files": files, "known": known})


def record_file(checkpoint: Path, *, epoch: int | None = None) -> dict:
    """Record a checkpoint file (in ``<run>/weights/``) as written by this run; returns its entry."""
    checkpoint = Path(checkpoint)
    if record_path(checkpoint) is None:
        raise ValueError(f"{checkpoint}: not in a run folder's weights/ (nowhere to record it)")
    entry = {"sha256": sha256_file(checkpoint), "epoch": epoch}
    record(checkpoint.parent.parent, {checkpoint.name: entry})
    return entry


def _refuse(path: Path, expected: str, found: str, why: str) -> CheckpointRefused:
    return CheckpointRefused(
        f"refusing to load {path}: {why} (expected sha256 {expected}, found {found}); a checkpoint is a pickle that "
        f"can run code: if you did not put it there, remove it (or the whole run folder) and re-run to train again")


def verify(checkpoint: Path, *, required: bool = True) -> dict | None:
    """Check that ``checkpoint`` is a file its run recorded; return its entry (``file``, ``epoch``).

    Args:
        checkpoint: A ``.pt`` file in ``<run folder>/weights/``.
        required: Refuse a checkpoint without a record (our pipeline: resume, ``alignrank evaluate``); False:
            return None then (a path a caller of the Python API hands over; one beside a record is still checked).

    Raises:
        CheckpointRefused: Its hash is not one the run recorded, or the record is missing (``required``) or
            is not owned by this user.
    """
    checkpoint = Path(checkpoint)
    rec_path = record_path(checkpoint)
    rec = read_json(rec_path) if rec_path is not None else None
    if rec is None and not required:
        return None
    found = sha256_file(checkpoint)
    if rec is None:
        where = f"{rec_path} is missing" if rec_path else "it is not in a run folder's weights/"
        raise _refuse(checkpoint, "none recorded", found, f"its run has no checkpoint record ({where})")
    owner = rec_path.stat().st_uid
    if owner != os.geteuid():
        raise _refuse(checkpoint, "(not trusted)", found,
                      f"its record {rec_path} belongs to uid {owner}, not to you (uid {os.geteuid()})")
    expected = ((rec.get("files") or {}).get(checkpoint.name) or {}).get("sha256") or "none recorded"
    entry = (rec.get("known") or {}).get(found)
    if entry is None:
        raise _refuse(checkpoint, expected, found, f"it is not a file this run wrote ({rec_path})")
    return entry


class _Stub:
    """Stands in for every class and function a pickle names: nothing of the file's code is imported or run."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Stub":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> "_Stub":
        return _Stub()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _StubUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        return _Stub

    def persistent_load(self, pid: Any) -> None:  # tensor storages (kept outside the pickle)
        return None


def peek(checkpoint: Path) -> dict | None:
    """The top-level dict of a ``torch.save`` checkpoint (zip format), read without running any of its code.

    Every global the pickle names (classes, functions, ``torch`` rebuild helpers) becomes an inert stub and
    tensor data is not read: only plain values (ints, floats, strings, lists, dicts) come out as they are.

    Returns:
        The dict, or None when the file is not a zip checkpoint holding a dict, or cannot be read.
    """
    try:
        with zipfile.ZipFile(checkpoint) as z:
            name = next(n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl"))
            obj = _StubUnpickler(io.BytesIO(z.read(name))).load()
    except Exception:  # noqa: BLE001 - truncated / foreign file: nothing to read
        return None
    return obj if isinstance(obj, dict) else None


__all__ = ["RECORD_NAME", "record", "record_file", "record_path", "verify", "peek"]
