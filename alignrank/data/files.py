"""Small file helpers of the data stage: hard-link-or-copy and the dataset's content fingerprint.

Examples:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("hi")
    >>> len(fingerprint(d, ["*.txt"]))
    64
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Iterable

CHUNK = 1 << 20


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
