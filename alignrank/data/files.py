"""Small file helpers of the data stage: atomic writes, hashing, hard-link-or-copy, content fingerprint.

Examples:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_text(d / "a.txt", "hi")
    >>> (d / "a.txt").read_text()
    'hi'
    >>> len(fingerprint(d, ["*.txt"]))
    64
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

CHUNK = 1 << 20
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: files get the usual 0o666 & ~umask, not mkstemp's 0o600


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomic UTF-8 text write (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> None:
    """Atomic, deterministic JSON write (key order kept, compact unless ``indent``)."""
    sep = (",", ": ") if indent else (",", ":")
    atomic_write_text(path, json.dumps(obj, indent=indent, separators=sep, ensure_ascii=False) + "\n")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link ``src`` to ``dst`` (same file system), else copy it; never writes to ``src``."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def fingerprint(root: str | Path, patterns: Iterable[str]) -> str:
    """sha256 over the sorted relative paths and bytes of the files under ``root`` matching ``patterns``.

    Args:
        root: Folder the relative paths are taken from.
        patterns: Glob patterns relative to ``root`` (e.g. ``images/*/*.jpg``).

    Returns:
        Hex digest; independent of where ``root`` lives and of file times.
    """
    root = Path(root)
    files = sorted({p for pat in patterns for p in root.glob(pat) if p.is_file()})
    h = hashlib.sha256()
    for p in files:
        rel = p.relative_to(root).as_posix().encode()
        h.update(len(rel).to_bytes(8, "little") + rel)
        h.update(p.stat().st_size.to_bytes(8, "little"))
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                h.update(block)
    return h.hexdigest()
