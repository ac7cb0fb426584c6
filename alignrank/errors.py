"""Expected errors: one clear line naming the thing and the fix (the CLI prints no traceback).

Examples:
    >>> str(DataError("data/x.json: malformed JSON at line 3; re-download the file"))
    'data/x.json: malformed JSON at line 3; re-download the file'
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class AlignRankError(RuntimeError):
    """Base of expected, user-facing failures (exit code 1)."""

    exit_code = 1


class UsageError(AlignRankError):
    """Wrong params or CLI usage (exit code 2)."""

    exit_code = 2


class DataError(AlignRankError):
    """Bad or missing input data."""


class TrackingError(AlignRankError):
    """The experiment tracker (MLflow) is unreachable or refused a write."""


class RunFailed(AlignRankError):
    """A training run failed (after its retries)."""


class Busy(AlignRankError):
    """Another job holds the lock of a folder (a run folder, a dataset): ``busy: <folder> is locked by ...``."""


class CheckpointRefused(AlignRankError):
    """A checkpoint whose sha256 its run did not record: never loaded (a ``.pt`` file is a pickle)."""


_FIX = {
    errno.ENOSPC: "free disk space (or point the output folder to another disk) and re-run",
    errno.EDQUOT: "free space under your disk quota and re-run",
    errno.EACCES: "make the folder writable (or point the output folder elsewhere) and re-run",
    errno.EPERM: "make the folder writable (or point the output folder elsewhere) and re-run",
    errno.EROFS: "the file system is read-only: point the output folder to a writable disk and re-run",
}


class OutputWriteError(AlignRankError, OSError):
    """A result file could not be written; an ``OSError`` with the original ``errno`` (exit code 1)."""

    def __init__(self, message: str, code: int | None = None, filename: str | None = None) -> None:
        super().__init__(message)
        self.errno, self.strerror, self.filename = code, message, filename

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):  # pickled across Ray workers with errno and filename
        return type(self), (self.strerror, self.errno, self.filename)


def write_error(path: str | Path, e: OSError) -> OSError:
    """``e`` as a one-line :class:`OutputWriteError` naming ``path`` when it is a disk/permission error.

    For errors written by code that is not ours (ultralytics' checkpoints and ``results.csv``); any
    other ``OSError`` (or one already converted) is returned unchanged.

    >>> str(write_error("/runs/r/results.csv", OSError(errno.ENOSPC, "No space left on device"))).split(";")[0]
    'cannot write /runs/r/results.csv: No space left on device (ENOSPC)'
    """
    if isinstance(e, OutputWriteError) or e.errno not in _FIX:
        return e
    return disk_error(Path(e.filename) if e.filename else Path(path), e)


def disk_error(path: Path, e: OSError) -> OutputWriteError:
    """The one-line :class:`OutputWriteError` for an ``OSError`` raised while writing ``path``."""
    reason = os.strerror(e.errno) if e.errno else str(e)
    code = f" ({errno.errorcode[e.errno]})" if e.errno in errno.errorcode else ""
    fix = _FIX.get(e.errno, "check the folder exists and is writable, then re-run")
    return OutputWriteError(f"cannot write {path}: {reason}{code}; {fix} (previous file kept)", e.errno, str(path))
