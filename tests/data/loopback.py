"""A loopback (127.0.0.1) HTTP file server with Range support and injectable faults, for download tests.

Python's ``SimpleHTTPRequestHandler`` ignores ``Range``; this handler answers ``bytes=a-`` / ``bytes=a-b``
with 206 + ``Content-Range`` (416 past the end), logs every request's path and Range header, and can

* ``cut_once[path] = n``: on the next request of ``path``, announce the full length, send ``n`` bytes, drop
  the connection;
* ``corrupt[path] = k``: serve ``path`` with flipped bytes in its middle for the next ``k`` requests.

Examples:
    >>> import tempfile, urllib.request
    >>> root = Path(tempfile.mkdtemp()); _ = (root / "a.bin").write_bytes(b"0123456789")
    >>> srv = LoopbackServer(root)
    >>> opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    >>> with opener.open(urllib.request.Request(f"{srv.url}/a.bin", headers={"Range": "bytes=4-"})) as r:
    ...     r.status, r.read()
    (206, b'456789')
    >>> srv.requests
    [{'path': 'a.bin', 'range': 'bytes=4-'}]
    >>> srv.close()
"""

from __future__ import annotations

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        srv = self.server.owner
        rel = unquote(urlparse(self.path).path).lstrip("/")
        rng = self.headers.get("Range")
        with srv.lock:
            srv.requests.append({"path": rel, "range": rng})
            cut = srv.cut_once.pop(rel, None)
            corrupt = srv.corrupt.get(rel, 0) > 0
            if corrupt:
                srv.corrupt[rel] -= 1
        f = (srv.root / rel).resolve()
        if srv.root not in f.parents or not f.is_file():
            self.send_error(404, "not found")
            return
        data = f.read_bytes()
        if corrupt:
            mid = len(data) // 2
            data = data[:mid] + bytes(b ^ 0xFF for b in data[mid : mid + 64]) + data[mid + 64 :]
        total, start, end, status = len(data), 0, len(data) - 1, 200
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m:
            start = int(m.group(1))
            end = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
            if start >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start : end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        self.end_headers()
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "LoopbackServer"


class LoopbackServer:
    """Serve the files under ``root`` on ``http://127.0.0.1:<free port>`` from a daemon thread."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.requests: list[dict] = []
        self.cut_once: dict[str, int] = {}
        self.corrupt: dict[str, int] = {}
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def requests_for(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
