"""Small file helpers of the data stage: hard-link-or-copy, the dataset's content fingerprint and file table.

Examples:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("hi")
    >>> len(fingerprint(d, ["*.txt"]))
    64
    >>> hash_files(d, ["*.txt"])[1]["a.txt"][0]
    2
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Iterable

CHUNK = 1 << 20
FINGERPRINT_PATTERNS = ("images/*/*", "labels/*/*.txt", "annotations/*.json")  # what a dataset's fingerprint covers


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link ``src`` to ``dst`` (same file system), else copy it; never writes to ``src``."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def hash_files(root: str | Path, patterns: Iterable[str]) -> tuple[str, dict[str, list]]:
    """The dataset fingerprint and each file's ``[size, sha256]``, in one read of the files.

    The fingerprint is sha256 over the sorted relative paths, sizes and bytes of the files under ``root``
    matching ``patterns``; it does not depend on where ``root`` lives or on file times.

    Args:
        root: Folder the relative paths are taken from.
        patterns: Glob patterns relative to ``root`` (e.g. ``images/*/*.jpg``).

    Returns:
        ``(fingerprint, {relative posix path: [size, sha256 hex]})``.
    """
    root = Path(root)
    files = sorted({p for pat in patterns for p in root.glob(pat) if p.is_file()})
    h = hashlib.sha256()
    table: dict[str, list] = {}
    for p in files:
        rel = p.relative_to(root).as_posix()
        size = p.stat().st_size
        h.update(len(rel.encode()).to_bytes(8, "little") + rel.encode())
        h.update(size.to_bytes(8, "little"))
        one = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                h.update(block)
                one.update(block)
        table[rel] = [size, one.hexdigest()]
    return h.hexdigest(), table


def fingerprint(root: str | Path, patterns: Iterable[str]) -> str:
    """The dataset fingerprint of :func:`hash_files` (hex digest)."""
    return hash_files(root, patterns)[0]
