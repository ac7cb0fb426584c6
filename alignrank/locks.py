"""Locks between jobs on one folder (a run folder, a dataset), with the holder named when one is busy.

Built on the ``filelock`` package: :class:`filelock.FileLock` (one holder at a time) or
:class:`filelock.ReadWriteLock` (many readers or one writer; SQLite). The operating system drops a lock
when its process dies, so a killed job never leaves its folder locked. Every holder also writes
``<lock file>.holders/<host>.<pid>.<random>.json`` (pid, host, since) while it holds the lock, so a second
job is told who holds it, in one line::

    busy: /proj/outputs/runs/full-s0-ab12 is locked by pid 4242 on host node1 since 2024-05-01 10:00:03; ...

``wait`` (``train.lock_wait``): ``0`` fails at once with that line (:class:`~alignrank.errors.Busy`), ``> 0``
waits up to that many seconds, ``< 0`` waits as long as it takes (one "waiting" line is logged first).
A process that already holds a lock in the same mode gets it again at once (nested holds are counted). A
reader that cannot create or open the lock file (read-only disk, another user's file) reads unlocked, with a
warning; a writer gets the ``OSError``.

Examples:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with hold(d, d / ".lock", wait=0):
    ...     [h["pid"] == os.getpid() for h in holders(d / ".lock")]
    [True]
    >>> holders(d / ".lock")
    []
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Iterator, Literal

from alignrank.errors import Busy
from alignrank.io import atomic_write_json, read_json

LOGGER = logging.getLogger("alignrank.locks")
Mode = Literal["exclusive", "read", "write"]
FIX = "wait for that job to finish, or set train.lock_wait (seconds to wait; -1 = no limit)"
_HELD: dict[tuple[str, str], tuple[object, Path | None, int]] = {}  # (lock file, mode) -> (lock, holder file, depth)


def _holders_dir(lock_file: Path) -> Path:
    return lock_file.with_name(lock_file.name + ".holders")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holders(lock_file: Path) -> list[dict]:
    """The recorded holders of ``lock_file`` (``pid``, ``host``, ``since``), oldest first; records of dead
    processes on this host are removed."""
    d, host, out = _holders_dir(Path(lock_file)), socket.gethostname(), []
    for f in sorted(d.glob("*.json")) if d.is_dir() else []:
        h = read_json(f)
        if not h or not isinstance(h.get("pid"), int):
            continue
        if h.get("host") == host and not pid_alive(h["pid"]):
            f.unlink(missing_ok=True)  # its process died holding the lock (the OS has dropped the lock itself)
            continue
        out.append(h)
    return sorted(out, key=lambda h: h.get("since", 0))


def busy_line(folder: Path, lock_file: Path) -> str:
    """``busy: <folder> is locked by pid P on host H since T; <fix>`` (the oldest recorded holder)."""
    hs = holders(lock_file)
    if not hs:
        return f"busy: {folder} is locked by another process (not yet recorded); {FIX}"
    h = hs[0]
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.get("since", 0)))
    more = f" (and {len(hs) - 1} other job(s))" if len(hs) > 1 else ""
    return f"busy: {folder} is locked by pid {h['pid']} on host {h.get('host')} since {since}{more}; {FIX}"


def _lock(lock_file: Path, mode: Mode):
    import filelock

    if mode == "exclusive":
        return filelock.FileLock(str(lock_file), is_singleton=True, preserve_lock_file=True)
    return filelock.ReadWriteLock(str(lock_file))


def _acquire(lock, mode: Mode, timeout: float | None) -> None:
    """Acquire; ``timeout`` None = do not block, < 0 = no limit. Raises ``filelock.Timeout``."""
    kw = {"blocking": False} if timeout is None else {"timeout": timeout}
    if mode == "exclusive":
        lock.acquire(**kw)
    elif mode == "read":
        lock.acquire_read(**kw)
    else:
        lock.acquire_write(**kw)


def _record(lock_file: Path, mode: Mode) -> Path:
    d = _holders_dir(lock_file)
    if mode in ("exclusive", "write"):  # alone now: any record left is a dead holder's (e.g. on another host)
        for f in d.glob("*.json") if d.is_dir() else []:
            f.unlink(missing_ok=True)
    f = d / f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.json"
    atomic_write_json(f, {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "mode": mode})
    return f


@contextlib.contextmanager
def hold(folder: Path, lock_file: Path, *, wait: float, mode: Mode = "exclusive") -> Iterator[None]:
    """Hold the lock of ``folder`` (kept in ``lock_file``) for the ``with`` block.

    Args:
        folder: The folder the lock protects (named in the busy line).
        lock_file: Where the lock lives (its folder is created).
        wait: Seconds to wait for another holder: 0 = fail at once, < 0 = no limit.
        mode: ``exclusive`` (one holder), or ``read`` (shared) / ``write`` (alone) of a read-write lock.

    Raises:
        Busy: Another job holds it (and did not release it within ``wait``): one line naming the holder.
    """
    import filelock

    lock_file = Path(lock_file)
    key = (str(lock_file), mode)
    if key in _HELD:  # nested in this process
        lock, rec, depth = _HELD[key]
        _HELD[key] = (lock, rec, depth + 1)
        try:
            yield
        finally:
            lock, rec, depth = _HELD[key]
            _HELD[key] = (lock, rec, depth - 1)
        return
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock(lock_file, mode)
        _acquire(lock, mode, None)
    except filelock.Timeout:
        line = busy_line(folder, lock_file)
        if wait == 0:
            raise Busy(line) from None
        LOGGER.warning(f"waiting ({'no limit' if wait < 0 else f'up to {wait:g} s'}): {line.split(';')[0]}")
        try:
            _acquire(lock, mode, wait if wait > 0 else -1)
        except filelock.Timeout:
            raise Busy(busy_line(folder, lock_file) + f" (waited {wait:g} s)") from None
    except OSError as e:
        if mode != "read":
            raise
        # a reader of a folder it cannot lock (read-only disk, another user's lock file) reads without the lock
        LOGGER.warning(f"cannot lock {folder} for reading ({e}); going on without the lock")
        yield
        return
    rec = None
    try:
        rec = _record(lock_file, mode)
        _HELD[key] = (lock, rec, 1)
        yield
    finally:
        _HELD.pop(key, None)
        if rec is not None:
            rec.unlink(missing_ok=True)
        lock.release()


__all__ = ["hold", "holders", "busy_line", "pid_alive", "FIX"]
