"""Recorded tracker calls: ONE JSON-lines format for the spool and the relay.

A record is one tracker call, ``{"run_id": ..., "kind": ..., "payload": {...}}``, built by
:class:`~alignrank.tracking.tracker.RunTracker` with explicit step and timestamps, so sending it twice
logs nothing twice. The kinds the store understands (:meth:`~alignrank.tracking.client.StoreClient.apply`):

* ``create`` (a run created while the store was unreachable: experiment, run_name, parent_run_id, tags,
  artifact_root, start_time), ``params`` (``{"params": {key: str}}``), ``tags`` (``{"tags": ...}``),
  ``metrics`` (``{"metrics": {key: float}, "step", "timestamp"}``), ``artifact`` (``{"path", "artifact_path"}``),
  ``input`` (a dataset the run reads: ``{"name", "digest", "source", "profile", "context"}``),
  ``end`` (``{"status", "timestamp"}``).

Two files hold records: a run's **spool** (``<run folder>/tracking_spool.jsonl``: what could not reach
the store, replayed later) and a seed child's **relay** (its calls, forwarded by the trial; it also carries
``report`` / ``final`` / ``error`` records of the child itself). Every append is one line written under an
exclusive lock and fsynced; a torn last line (a kill mid-append) is ignored when read.

Examples:
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / SPOOL_NAME
    >>> append(p, record("r1", "end", status="KILLED", timestamp=1))
    >>> read(p)
    [{'run_id': 'r1', 'kind': 'end', 'payload': {'status': 'KILLED', 'timestamp': 1}}]
    >>> read_from(p, 0)[1] == p.stat().st_size
    True
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, Optional

from alignrank.errors import TrackingError

SPOOL_NAME = "tracking_spool.jsonl"
OFFLINE_PREFIX = "offline-"  # provisional run id of a run created while the store was unreachable


def record(run_id: Optional[str], kind: str, **payload: Any) -> dict:
    """One record: ``{"run_id", "kind", "payload"}``."""
    return {"run_id": run_id, "kind": kind, "payload": payload}


def new_offline_id() -> str:
    """A provisional run id for a run created while the store is unreachable."""
    return OFFLINE_PREFIX + uuid.uuid4().hex


def is_offline_id(run_id: Optional[str]) -> bool:
    """True for the provisional id of a run created while the store was unreachable."""
    return bool(run_id) and str(run_id).startswith(OFFLINE_PREFIX)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[IO[str]]:
    """``path`` opened for append+read under an exclusive lock (re-opened if a replay removed it meanwhile)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        f = open(path, "a+", encoding="utf-8")
        fcntl.flock(f, fcntl.LOCK_EX)
        if os.fstat(f.fileno()).st_nlink > 0:  # still the live file (not unlinked by a replay)
            break
        f.close()
    try:
        yield f
    finally:
        f.close()  # releases the lock


def append(path: Path, rec: Mapping[str, Any]) -> None:
    """Append one record as a JSON line and fsync it."""
    line = json.dumps(dict(rec), allow_nan=True, default=str) + "\n"
    with _locked(Path(path)) as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _parse(lines: list[bytes], path: Path, *, last_may_be_torn: bool) -> list[dict]:
    out = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        try:
            out.append(json.loads(ln))
        except (json.JSONDecodeError, UnicodeDecodeError):
            if last_may_be_torn and i == len(lines) - 1:
                continue
            raise TrackingError(f"{path}:{i + 1}: corrupt record; fix or remove that line and re-run "
                                f"`alignrank sync`") from None
    return out


def read(path: Path) -> list[dict]:
    """Every record of ``path`` in order ([] if absent). A torn last line (killed mid-append) is ignored."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    return _parse(data.splitlines(), Path(path), last_may_be_torn=True)


def read_from(path: Path, offset: int) -> tuple[list[dict], int]:
    """The complete records after byte ``offset`` and the offset after them (a file being appended to)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a line still being written is read next time
    return _parse(data[:end].splitlines(), Path(path), last_may_be_torn=False), offset + end


@contextlib.contextmanager
def consumed(path: Path) -> Iterator[list[dict]]:
    """The records of ``path`` under its lock; the file is removed when the block succeeds (kept on error).

    An appender waiting on the lock meanwhile re-opens a fresh file once it is removed.
    """
    with _locked(Path(path)):
        yield read(path)
        os.unlink(path)
