"""A remote zip read through HTTP Range requests: ``data.subset`` images without downloading the whole zip.

:class:`RemoteFile` is a read-only, seekable file over a URL (each read is one ``Range: bytes=a-b`` GET,
retried on transient errors like :func:`alignrank.data.download.download`); :func:`open_remote` wraps it in a
1 MiB read buffer for :mod:`zipfile`, which then reads the end-of-archive record, the central directory (zip64
included) and only the members asked for, each checked against its CRC. For the COCO 2017 subset this fetches
the central directory (about 10 MB for train2017.zip) and the subset's images (about 160 KB each) instead of
the 18 GB zip. A server that ignores ``Range`` (answers 200) raises :class:`NoRanges`: the caller downloads
the whole zip instead.

Usage: ``zipfile.ZipFile(open_remote(url))`` reads a served zip like a local one (tests/data/test_remote_zip.py
serves the coco128 zips on 127.0.0.1).
"""

from __future__ import annotations

import http.client
import io
import re
import time
import urllib.error
import urllib.request

from alignrank.errors import DataError

BUFFER = 1 << 20
BACKOFF = 0.5  # seconds x attempt number between attempts


class NoRanges(Exception):
    """The server does not answer Range requests with 206 (download the whole file instead)."""


class RemoteFile(io.RawIOBase):
    """Read-only, seekable bytes of ``url`` through HTTP Range requests.

    Args:
        url: http(s) URL of the file.
        timeout: Socket timeout per request, seconds.
        retries: Extra attempts per read after a network error or a short answer.

    Raises:
        NoRanges: The server answered the first Range request with a whole-file 200.
        DataError: The file is not there (HTTP 4xx), or a read still fails after the retries.
    """

    def __init__(self, url: str, *, timeout: float = 60.0, retries: int = 3) -> None:
        super().__init__()
        self.url, self.timeout, self.retries = url, timeout, retries
        self.pos = 0
        self.requests = 0
        self.size = self._probe()

    def __str__(self) -> str:  # (archive errors name the URL)
        return self.url

    def _get(self, start: int, end: int):
        req = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end}", "User-Agent": "alignrank-data",
                                                         "Accept-Encoding": "identity"})
        self.requests += 1
        return urllib.request.urlopen(req, timeout=self.timeout)

    def _probe(self) -> int:
        try:
            with self._get(0, 0) as r:
                if r.status != 206:
                    raise NoRanges(f"{self.url}: HTTP {r.status} to a Range request")
                m = re.match(r"bytes\s+\d+-\d+/(\d+)", r.headers.get("Content-Range") or "")
                if not m:
                    raise NoRanges(f"{self.url}: no total size in Content-Range")
                return int(m.group(1))
        except urllib.error.HTTPError as e:
            if e.code in (408, 429) or e.code >= 500:
                raise NoRanges(f"{self.url}: HTTP {e.code}") from None
            raise DataError(f"{self.url}: HTTP {e.code} {e.reason}; check data.url") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise NoRanges(f"{self.url}: {type(e).__name__}") from None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(base + offset, 0)
        return self.pos

    def readinto(self, b) -> int:
        n = min(len(b), self.size - self.pos)
        if n <= 0:
            return 0
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(BACKOFF * attempt)
            try:
                with self._get(self.pos, self.pos + n - 1) as r:
                    data = r.read(n)
                if r.status == 206 and len(data) == n:
                    b[:n] = data
                    self.pos += n
                    return n
                last = OSError(f"HTTP {r.status}, {len(data)} of {n} bytes")
            except urllib.error.HTTPError as e:
                if not (e.code in (408, 429) or e.code >= 500):
                    raise DataError(f"{self.url}: HTTP {e.code} {e.reason} reading bytes {self.pos}-{self.pos + n - 1}; "
                                    f"check data.url") from None
                last = e
            except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
                last = e
        raise DataError(f"{self.url}: bytes {self.pos}-{self.pos + n - 1} still failing after {self.retries + 1} "
                        f"attempt(s) ({last}); check the network and re-run")


class _Named(io.BufferedReader):
    def __str__(self) -> str:
        return str(self.raw)


def open_remote(url: str, *, timeout: float = 60.0, retries: int = 3) -> io.BufferedReader:
    """A buffered (1 MiB) :class:`RemoteFile` of ``url``, ready for :class:`zipfile.ZipFile`."""
    return _Named(RemoteFile(url, timeout=timeout, retries=retries), buffer_size=BUFFER)


__all__ = ["NoRanges", "RemoteFile", "open_remote"]
