"""Zip archives: integrity check (CRC of every member + expected members) and safe extraction.

:func:`safe_extract` checks EVERY member of the archive before writing anything: a member with an
absolute path, a drive letter, a ``..`` component, a backslash, or a symlink (Unix mode in the
external attributes) is refused with a :class:`DataError` naming the archive and the member. Files
are written via a temp name and ``os.replace``, so an interrupted extraction never leaves a
half-written file under its final name. The archive is only read.

Examples:
    >>> import tempfile, zipfile, os
    >>> d = tempfile.mkdtemp(); z = os.path.join(d, "a.zip")
    >>> with zipfile.ZipFile(z, "w") as f: f.writestr("dir/x.txt", "hi")
    >>> verify_zip(z, required=["dir/x.txt"])
    >>> [p.name for p in safe_extract(z, os.path.join(d, "out"), strip=1)]
    ['x.txt']
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterable

from alignrank.errors import DataError


class CorruptArchive(DataError):
    """The archive is truncated, fails its CRC check, or lacks expected members (re-download it)."""


def verify_zip(
    path: str | Path, *, required: Iterable[str] = (), expected_count: tuple[str, int] | None = None
) -> None:
    """Raise :class:`CorruptArchive` unless the zip opens, every CRC matches and expected members exist.

    Args:
        path: Zip file.
        required: Member names that must be present (e.g. every image of the annotation JSON).
        expected_count: ``(suffix, n)``: exactly ``n`` members must end with ``suffix`` (official counts).
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [m for m in required if m not in names]
            if missing:
                raise CorruptArchive(
                    f"{path}: {len(missing)} expected member(s) missing (first: {missing[0]}); "
                    "the archive is incomplete"
                )
            if expected_count is not None:
                suffix, n = expected_count
                got = sum(1 for m in names if m.endswith(suffix))
                if got != n:
                    raise CorruptArchive(f"{path}: {got} '*{suffix}' members, expected {n}; the archive is incomplete")
            bad = zf.testzip()
            if bad is not None:
                raise CorruptArchive(f"{path}: member '{bad}' fails its CRC check; the archive is corrupt")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        raise CorruptArchive(f"{path}: not a readable zip ({e}); the file is truncated or corrupt") from None


def _unsafe(info: zipfile.ZipInfo) -> str | None:
    """Why the member is unsafe to extract, or None."""
    name = info.filename
    if "\\" in name or "\0" in name:
        return "has a backslash or NUL in its name"
    p = PurePosixPath(name)
    if p.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if ".." in p.parts:
        return "escapes the target folder with '..'"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    return None


def check_members(zf: zipfile.ZipFile, path: str | Path) -> None:
    """Raise :class:`DataError` if any member of the open archive ``zf`` is unsafe."""
    for info in zf.infolist():
        why = _unsafe(info)
        if why:
            raise DataError(
                f"{path}: archive member '{info.filename}' {why}; refusing to extract (corrupt or malicious archive)"
            )


def safe_extract(
    path: str | Path, dest: str | Path, members: Iterable[str] | None = None, *, strip: int = 0
) -> list[Path]:
    """Extract ``members`` (default: all files) of zip ``path`` under ``dest``, refusing unsafe archives.

    Args:
        path: Zip file (only read).
        dest: Target folder (created).
        members: Member names to extract; None = every file member.
        strip: Leading path components removed from each member name (``train2017/x.jpg`` -> ``x.jpg``).

    Returns:
        Paths of the extracted files, in member order.

    Raises:
        DataError: an unsafe member (checked over the whole archive first), or a requested member is absent.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    out: list[Path] = []
    with zipfile.ZipFile(path) as zf:
        check_members(zf, path)
        infos = {i.filename: i for i in zf.infolist()}
        names = [n for n, i in infos.items() if not i.is_dir()] if members is None else list(members)
        for name in names:
            info = infos.get(name)
            if info is None:
                raise DataError(f"{path}: member '{name}' not in the archive")
            parts = PurePosixPath(name).parts[strip:]
            if not parts:
                raise DataError(f"{path}: member '{name}' has no name left after stripping {strip} component(s)")
            target = root.joinpath(*parts)
            if root not in target.resolve().parents:
                raise DataError(f"{path}: archive member '{name}' escapes the target folder; refusing to extract")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            with zf.open(info) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, target)
            out.append(target)
    return out
