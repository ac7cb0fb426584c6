"""Zip archives: integrity check (CRC of every member + expected members) and safe extraction.

:func:`safe_extract` checks EVERY member of the archive before writing anything: a member with an
absolute path, a drive letter, a ``..`` component, a backslash, or a symlink (Unix mode in the
external attributes) is refused with a :class:`DataError` naming the archive and the member. So is a
member to extract that would inflate beyond ``max_bytes`` or by more than ``max_ratio`` times its
compressed size (a "zip bomb": 2 MiB that inflates to 2 GB): checked on the declared sizes BEFORE anything
is written, and enforced again while streaming, since the headers can lie. Files are written via a temp
name and ``os.replace``, so an interrupted or refused extraction never leaves a file under its final name.
The archive is only read.

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
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterable

from alignrank.errors import DataError

MAX_MEMBER_BYTES = 1 << 30  # largest member extracted (COCO's instances_train2017.json is 448 MB)
MAX_RATIO = 100  # most a member may inflate (JPEGs ~1x, COCO's JSON ~4x; bombs 1000x and more) ...
RATIO_FROM_BYTES = 1 << 20  # ... once it inflates beyond 1 MiB (a small file of zeros compresses 1000x harmlessly)
_CHUNK = 1 << 20


class CorruptArchive(DataError):
    """The archive is truncated, fails its CRC check, or lacks expected members (re-download it)."""


class ArchiveBomb(DataError):
    """A member would inflate beyond the size or compression-ratio cap (corrupt or malicious archive)."""


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


def _inflation_limit(info: zipfile.ZipInfo, max_bytes: int, max_ratio: float) -> tuple[int, str]:
    """``(bytes, why)``: most the member may inflate to: ``max_bytes``, and ``max_ratio`` x its compressed size
    (but at least 1 MiB)."""
    by_ratio = max(RATIO_FROM_BYTES, int(max_ratio * info.compress_size))
    if by_ratio < max_bytes:
        return by_ratio, f"{max_ratio:g}x its compressed size, at least {RATIO_FROM_BYTES}"
    return max_bytes, f"{max_bytes} bytes"


def _bomb(path: str | Path, info: zipfile.ZipInfo, size: str, why: str) -> ArchiveBomb:
    return ArchiveBomb(
        f"{path}: archive member '{info.filename}' inflates to {size} bytes from {info.compress_size} "
        f"(limit: {why}); refusing to extract (corrupt or malicious archive)"
    )


def _copy_capped(src, dst, limit: int) -> int:
    """Copy ``src`` to ``dst`` in chunks; returns the bytes copied, or -1 as soon as ``limit`` is exceeded."""
    n = 0
    while chunk := src.read(_CHUNK):
        n += len(chunk)
        if n > limit:
            return -1
        dst.write(chunk)
    return n


def safe_extract(
    path: str | Path,
    dest: str | Path,
    members: Iterable[str] | None = None,
    *,
    strip: int = 0,
    max_bytes: int = MAX_MEMBER_BYTES,
    max_ratio: float = MAX_RATIO,
) -> list[Path]:
    """Extract ``members`` (default: all files) of zip ``path`` under ``dest``, refusing unsafe archives.

    Args:
        path: Zip file (only read).
        dest: Target folder (created).
        members: Member names to extract; None = every file member.
        strip: Leading path components removed from each member name (``train2017/x.jpg`` -> ``x.jpg``).
        max_bytes: Largest size a member may inflate to.
        max_ratio: Most a member larger than 1 MiB may inflate relative to its compressed size.

    Returns:
        Paths of the extracted files, in member order.

    Raises:
        DataError: an unsafe member (checked over the whole archive first), or a requested member is absent.
        ArchiveBomb: a member to extract declares, or streams, more than the caps allow (nothing of it kept).
        CorruptArchive: a member fails to inflate or its CRC check.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    out: list[Path] = []
    with zipfile.ZipFile(path) as zf:
        check_members(zf, path)
        infos = {i.filename: i for i in zf.infolist()}
        names = [n for n, i in infos.items() if not i.is_dir()] if members is None else list(members)
        for name in names:  # every member to extract is checked before anything is written
            info = infos.get(name)
            if info is None:
                raise DataError(f"{path}: member '{name}' not in the archive")
            limit, why = _inflation_limit(info, max_bytes, max_ratio)
            if info.file_size > limit:
                raise _bomb(path, info, str(info.file_size), why)
        for name in names:
            info = infos[name]
            parts = PurePosixPath(name).parts[strip:]
            if not parts:
                raise DataError(f"{path}: member '{name}' has no name left after stripping {strip} component(s)")
            target = root.joinpath(*parts)
            if root not in target.resolve().parents:
                raise DataError(f"{path}: archive member '{name}' escapes the target folder; refusing to extract")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            limit = info.file_size  # (<= the caps, checked above)
            try:
                with zf.open(info) as src, open(tmp, "wb") as dst:
                    copied = _copy_capped(src, dst, limit)  # the headers can lie: count what really comes out
                if copied < 0:
                    raise _bomb(path, info, f"more than its declared {limit}", "the declared size")
            except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                tmp.unlink(missing_ok=True)
                raise CorruptArchive(f"{path}: member '{name}' does not inflate ({e}); the archive is corrupt") from None
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            os.replace(tmp, target)
            out.append(target)
    return out
