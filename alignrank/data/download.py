"""Resumable, verified HTTP download (stdlib ``urllib``): ``.part`` file + HTTP Range, retries, tqdm bar.

:func:`download` fetches ``url`` into ``dest``:

* bytes go to ``<dest>.part``; after a dropped connection, a short body or a timeout the next attempt
  asks for the rest with ``Range: bytes=<have>-`` (a server that answers 200 instead of 206 restarts
  the file from zero);
* the finished ``.part`` is checked by ``verify`` (e.g. :func:`alignrank.data.archive.verify_zip`); a
  corrupt file is deleted and downloaded again, up to ``retries`` more attempts in all, after which a
  :class:`DataError` refuses it;
* only a verified file is moved (``os.replace``) to ``dest``, and ``<dest>.ok`` records its size, mtime
  and the verification key, so a re-run neither re-downloads nor re-verifies it. An existing ``dest``
  without a matching ``.ok`` is verified again (and re-fetched if corrupt).

HTTP 4xx other than 408/429 fails at once (wrong ``data.url``); other errors are retried.

Examples:
    >>> import tempfile
    >>> download("http://127.0.0.1:9/x.zip", tempfile.mkdtemp() + "/x.zip", retries=0, timeout=5)  # nothing listens
    Traceback (most recent call last):
    ...
    alignrank.errors.DataError: http://127.0.0.1:9/x.zip: download failed after 1 attempt(s) (URLError: ...); check data.url and the network, then re-run (the partial file x.zip.part resumes)
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from alignrank.errors import DataError
from alignrank.io import atomic_write_text

LOGGER = logging.getLogger("alignrank.data")
CHUNK = 1 << 16
BACKOFF = 0.5  # seconds x attempt number between attempts


class _Retry(Exception):
    """A transient failure: try again (resuming the .part file)."""


def _marker(dest: Path) -> Path:
    return dest.with_name(dest.name + ".ok")


def _stamp(dest: Path, key: str) -> dict:
    st = dest.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "key": key}


def is_verified(dest: str | Path, key: str = "") -> bool:
    """True when ``dest`` exists and its ``.ok`` marker matches its size, mtime and ``key``."""
    dest = Path(dest)
    try:
        return dest.is_file() and json.loads(_marker(dest).read_text()) == _stamp(dest, key)
    except (OSError, ValueError):
        return False


def _write_marker(dest: Path, key: str) -> None:
    atomic_write_text(_marker(dest), json.dumps(_stamp(dest, key)))


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``(start, total)`` of ``bytes a-b/N`` or ``bytes */N``."""
    m = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _fetch(url: str, part: Path, *, timeout: float, progress: bool) -> None:
    """One attempt: append the missing bytes of ``url`` to ``part``; raise :class:`_Retry` when short."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "alignrank-data", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            _, total = _content_range(e.headers.get("Content-Range"))
            if total == have:
                return  # the .part is already complete
            part.unlink(missing_ok=True)
            raise _Retry(f"HTTP 416 for bytes={have}- (server size {total}); restarting the file") from None
        if e.code in (408, 429) or e.code >= 500:
            raise _Retry(f"HTTP {e.code} {e.reason}") from None
        raise DataError(f"{url}: HTTP {e.code} {e.reason}; check data.url") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise _Retry(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from None
    with resp:
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink(missing_ok=True)
                raise _Retry(f"server answered range start {start}, asked {have}; restarting the file")
            mode = "ab"
        else:
            have, mode, total = 0, "wb", length
        if total is None and length is not None:
            total = have + length
        try:
            with open(part, mode) as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=part.name[:-5],
                disable=not progress or None, leave=False,
            ) as bar:
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            raise _Retry(f"connection lost after {part.stat().st_size} bytes ({type(e).__name__})") from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Retry(f"connection closed after {size} of {total} bytes")


def download(
    url: str,
    dest: str | Path,
    *,
    retries: int = 3,
    timeout: float = 60.0,
    verify: Callable[[Path], None] | None = None,
    verify_key: str = "",
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` with resume, retries and verification (see the module docstring).

    Args:
        url: http(s) URL.
        dest: Final path; ``<dest>.part`` and ``<dest>.ok`` live beside it.
        retries: Extra attempts after the first (on a network error, short body or corrupt file).
        timeout: Socket timeout per request, seconds.
        verify: Raises :class:`DataError` when the file is corrupt (deleted and re-fetched).
        verify_key: Identifies what ``verify`` checks (stored in the ``.ok`` marker).
        progress: Show a tqdm bar (also off with ``TQDM_DISABLE=1``).

    Returns:
        ``dest``.

    Raises:
        DataError: After the last attempt, naming the URL, the last error and the fix.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if is_verified(dest, verify_key):
        return dest
    if dest.is_file():
        try:
            if verify:
                verify(dest)
            _write_marker(dest, verify_key)
            return dest
        except DataError as e:
            LOGGER.warning(f"{dest.name}: cached file is corrupt ({e}); downloading it again")
            dest.unlink()
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    corrupt = 0
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(BACKOFF * attempt)
        try:
            _fetch(url, part, timeout=timeout, progress=progress)
        except _Retry as e:
            last = e
            LOGGER.warning(f"{dest.name}: attempt {attempt + 1}/{retries + 1} interrupted: {e}; resuming")
            continue
        try:
            if verify:
                verify(part)
        except DataError as e:
            last, corrupt = e, corrupt + 1
            part.unlink(missing_ok=True)
            LOGGER.warning(f"{dest.name}: attempt {attempt + 1}/{retries + 1} gave a corrupt file ({e}); "
                           "downloading again")
            continue
        os.replace(part, dest)
        _write_marker(dest, verify_key)
        return dest
    if corrupt and isinstance(last, DataError):
        raise DataError(
            f"{url}: refused: still corrupt after {retries + 1} download(s) ({last}); check data.url / the mirror"
        )
    raise DataError(
        f"{url}: download failed after {retries + 1} attempt(s) ({last}); check data.url and the network, "
        f"then re-run (the partial file {part.name} resumes)"
    )
