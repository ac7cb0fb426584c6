"""The ONE atomic writer of result files: temp file in the same folder + fsync + ``os.replace``.

Readers never see a half-written file: the target is either the previous file or the new one. On any
error the temp file is removed and the previous file is left whole; an ``OSError`` (read-only folder,
full disk, ...) is re-raised as :class:`OutputWriteError`, still an ``OSError`` with the same ``errno``,
whose one-line message names the path and the fix.

Examples:
    >>> import tempfile, pathlib, json
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> _ = atomic_write_json(p, {"AP": 0.5})
    >>> json.loads(p.read_text())["AP"]
    0.5
    >>> sorted(x.name for x in p.parent.iterdir())
    ['m.json']
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from alignrank.errors import AlignRankError

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: files get the usual 0o666 & ~umask, not mkstemp's 0o600

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
    return _error(Path(e.filename) if e.filename else Path(path), e)


def _error(path: Path, e: OSError) -> OutputWriteError:
    reason = os.strerror(e.errno) if e.errno else str(e)
    code = f" ({errno.errorcode[e.errno]})" if e.errno in errno.errorcode else ""
    fix = _FIX.get(e.errno, "check the folder exists and is writable, then re-run")
    return OutputWriteError(f"cannot write {path}: {reason}{code}; {fix} (previous file kept)", e.errno, str(path))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creates the parent folder).

    Args:
        path: Target file.
        data: Its new contents.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OutputWriteError: The folder is not writable, the disk is full, ... (previous file kept, no temp left).

    Examples:
        >>> import tempfile, pathlib
        >>> atomic_write_bytes(pathlib.Path(tempfile.mkdtemp()) / "a.bin", b"x").read_bytes()
        b'x'
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as e:  # Ctrl-C included: never leave the temp file behind
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, OutputWriteError):
            raise _error(path, e) from e
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomic UTF-8 text write (see :func:`atomic_write_bytes`).

    Examples:
        >>> import tempfile, pathlib
        >>> atomic_write_text(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hi").read_text()
        'hi'
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = False,
                      compact: bool = False, default: Any = None, allow_nan: bool = True,
                      ensure_ascii: bool = True) -> Path:
    """Atomic JSON write, newline-terminated.

    Args:
        path: Target file.
        obj: JSON-serialisable object.
        indent: Indentation (None = one line).
        sort_keys: Sort object keys.
        compact: No spaces after ``,`` / ``:`` (with ``indent=None``: the smallest file).
        default: ``json.dumps`` fallback for other objects (e.g. ``str``).
        allow_nan: Write NaN/inf as ``NaN``/``Infinity`` (else ``ValueError`` before anything is written).
        ensure_ascii: Escape non-ASCII characters.

    Examples:
        >>> import tempfile, pathlib
        >>> atomic_write_json(pathlib.Path(tempfile.mkdtemp()) / "a.json", {"b": 1}, indent=None).read_text()
        '{"b": 1}\\n'
    """
    sep = (",", ":") if compact else ((",", ": ") if indent is not None else None)
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default, allow_nan=allow_nan,
                      ensure_ascii=ensure_ascii, separators=sep)
    return atomic_write_text(path, text + "\n")


def atomic_write_yaml(path: str | Path, obj: Any, *, header: str = "", sort_keys: bool = False) -> Path:
    """Atomic YAML write (``yaml.safe_dump``), after an optional ``header`` (e.g. comment lines).

    Examples:
        >>> import tempfile, pathlib
        >>> atomic_write_yaml(pathlib.Path(tempfile.mkdtemp()) / "a.yaml", {"b": 1}, header="# hi\\n").read_text()
        '# hi\\nb: 1\\n'
    """
    import yaml

    return atomic_write_text(path, header + yaml.safe_dump(obj, sort_keys=sort_keys))


def atomic_write_npz(path: str | Path, **arrays: Any) -> Path:
    """Atomic compressed ``.npz`` write (``np.savez_compressed``).

    Examples:
        >>> import tempfile, pathlib, numpy as np
        >>> p = atomic_write_npz(pathlib.Path(tempfile.mkdtemp()) / "a.npz", x=np.arange(3))
        >>> np.load(p)["x"].tolist()
        [0, 1, 2]
    """
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_savefig(path: str | Path, fig: Any, **kwargs: Any) -> Path:
    """Atomic PNG of a matplotlib figure (defaults: dpi 110, tight bounding box; ``kwargs`` override)."""
    buf = io.BytesIO()
    fig.savefig(buf, **{"format": "png", "dpi": 110, "bbox_inches": "tight", **kwargs})
    return atomic_write_bytes(path, buf.getvalue())
