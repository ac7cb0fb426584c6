"""Is the dataset under ``data.root`` still what the data stage wrote? Checked against the files themselves.

The stage records every file of the fingerprint (``images/``, ``labels/``, ``annotations/``) with its size
and sha256 in ``<data.root>/files.json`` (no times: the folder stays byte-identical for the same params).
:func:`changed_files` compares the files on disk with it: a file whose size and mtime equal those last
seen with the recorded content is taken as unchanged (fast path: one ``stat`` per file); any other file
is hashed. What was seen is kept in ``<parent>/.<root name>.alignrank/stat.json``, beside the dataset
(outside it, so writing it never changes the stage's output), by whoever checked last.

A file added, removed, or whose bytes differ makes the dataset "changed": the data stage rebuilds it,
and training refuses it (:func:`verified_fingerprint`), so a run is never keyed by a fingerprint that
does not describe the images and labels it was trained on. (An edit that keeps both the size and the
mtime of a file, e.g. ``touch -d`` back to the old time, is not seen; content is hashed only when they
change.)

Examples:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "d"
    >>> (root / "labels" / "train").mkdir(parents=True)
    >>> _ = (root / "labels" / "train" / "1.txt").write_text("0 0.5 0.5 0.1 0.1\\n")
    >>> _ = record_files(root)
    >>> changed_files(root)
    []
    >>> _ = (root / "labels" / "train" / "1.txt").write_text("0 0.5 0.5 0.9 0.1\\n")
    >>> changed_files(root)
    ['labels/train/1.txt']
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from alignrank.data.files import FINGERPRINT_PATTERNS, hash_files
from alignrank.errors import DataError
from alignrank.io import atomic_write_json, read_json, sha256_file

FILES_NAME = "files.json"
STAT_NAME = "stat.json"


def side_dir(root: Path) -> Path:
    """The folder beside ``root`` holding what is not part of the dataset: locks, the stat cache."""
    return root.parent / f".{root.name}.alignrank"


def _scan(root: Path) -> dict[str, os.stat_result]:
    """``{relative path: stat}`` of the files matching the fingerprint patterns (as ``Path.glob`` matches them;
    ``os.scandir``: one ``stat`` per file)."""
    out: dict[str, os.stat_result] = {}

    def walk(folder: str, rel: str, parts: list[str]) -> None:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        for e in entries:
            if not fnmatch.fnmatchcase(e.name, parts[0]):
                continue
            if len(parts) == 1:
                if e.is_file():
                    out[rel + e.name] = e.stat()
            elif e.is_dir():
                walk(e.path, rel + e.name + "/", parts[1:])

    for pat in FINGERPRINT_PATTERNS:
        walk(str(root), "", pat.split("/"))
    return out


def _remember(root: Path, seen: dict[str, list], cached: dict | None = None) -> None:
    """Store ``seen`` (``rel -> [size, mtime_ns, sha256]``) as the stat cache unless it equals ``cached``; best
    effort (a read-only disk keeps the slow path)."""
    path = side_dir(root) / STAT_NAME
    if seen == cached:
        return
    try:
        atomic_write_json(path, {"files": seen}, indent=None)
    except OSError:
        pass


def write_file_table(folder: Path) -> str:
    """Write ``<folder>/files.json`` (size and sha256 of every fingerprinted file); return the fingerprint."""
    fp, table = hash_files(folder, FINGERPRINT_PATTERNS)
    atomic_write_json(folder / FILES_NAME, {"fingerprint": fp, "files": table}, indent=None)
    return fp


def remember_stats(root: Path) -> None:
    """Cache the sizes and mtimes of ``root``'s files as those of their recorded content (the data stage, on the
    dataset it has just written: the next check is one ``stat`` per file)."""
    table = (read_json(root / FILES_NAME) or {}).get("files") or {}
    current = _scan(root)
    seen = {rel: [size, current[rel].st_mtime_ns, sha] for rel, (size, sha) in table.items()
            if rel in current and current[rel].st_size == size}
    _remember(root, seen)


def record_files(root: Path) -> str:
    """:func:`write_file_table` then :func:`remember_stats` on a dataset in place; returns the fingerprint."""
    fp = write_file_table(root)
    remember_stats(root)
    return fp


def changed_files(root: Path) -> list[str] | None:
    """Relative paths that differ from what the data stage recorded (added, removed or other bytes), sorted.

    Returns:
        ``[]`` when the dataset is as written; None when it has no usable ``files.json`` (an older stage).
    """
    ref = (read_json(root / FILES_NAME) or {}).get("files")
    if not isinstance(ref, dict):
        return None
    cache = (read_json(side_dir(root) / STAT_NAME) or {}).get("files") or {}
    current = _scan(root)
    changed = sorted(set(current) ^ set(ref))
    seen = {}
    for rel in sorted(set(current) & set(ref)):
        size, sha = ref[rel]
        st = current[rel]
        hit = cache.get(rel)
        if hit == [st.st_size, st.st_mtime_ns, sha]:  # as last seen with the recorded content
            seen[rel] = hit
        elif st.st_size != size or sha256_file(root / rel) != sha:
            changed.append(rel)
        else:  # touched, same bytes
            seen[rel] = [st.st_size, st.st_mtime_ns, sha]
    if not changed:
        _remember(root, seen, cache)
    return sorted(changed)


def verified_fingerprint(root: Path) -> str:
    """The fingerprint in ``manifest.json`` once the files are checked to be those it describes.

    Raises:
        DataError: No dataset, no fingerprint, or files that differ from what the data stage wrote
            (one line naming the first one and the fix: run ``alignrank data``).
    """
    if not (root / "dataset.yaml").is_file():
        raise DataError(f"{root / 'dataset.yaml'}: dataset not found; build it with `alignrank data` "
                        f"(or `dvc repro data`)")
    fp = (read_json(root / "manifest.json") or {}).get("fingerprint")
    if not fp:
        raise DataError(f"{root / 'manifest.json'}: missing or without 'fingerprint'; rebuild the dataset with "
                        f"`alignrank data`")
    changed = changed_files(root)
    if changed is None:
        raise DataError(f"{root}: written by an earlier version of the data stage (no {FILES_NAME}), its files "
                        f"cannot be checked; rebuild it with `alignrank data`")
    if (read_json(root / FILES_NAME) or {}).get("fingerprint") != fp:
        raise DataError(f"{root}: {FILES_NAME} and manifest.json disagree; rebuild the dataset with `alignrank data`")
    if changed:
        raise DataError(f"{root}: {len(changed)} file(s) differ from what the data stage wrote (first: {changed[0]}), "
                        f"so its fingerprint no longer describes them; run `alignrank data` to rebuild the dataset "
                        f"(edits under it are not kept: change the source data or params instead)")
    return str(fp)


__all__ = ["FILES_NAME", "side_dir", "write_file_table", "remember_stats", "record_files", "changed_files",
           "verified_fingerprint"]
