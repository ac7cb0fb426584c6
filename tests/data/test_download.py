"""Resumable download against a loopback server: Range resume, 416-complete, corrupt re-fetch/refusal, cache."""

from __future__ import annotations

import os
import zipfile

import pytest

from alignrank.data.archive import verify_zip
from alignrank.data.download import download, is_verified
from alignrank.errors import DataError
from alignrank.io import sha256_file

pytestmark = [pytest.mark.network, pytest.mark.reliability]


@pytest.fixture
def payload_zip(www):
    (www / "zips").mkdir()
    z = www / "zips" / "val2017.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("val2017/000000000001.jpg", os.urandom(300_000))
    return z


def test_interrupted_download_resumes_with_range(server, payload_zip, tmp_path):
    server.cut_once["zips/val2017.zip"] = 123_456
    dest = tmp_path / "dl" / "val2017.zip"
    download(f"{server.url}/zips/val2017.zip", dest, retries=2, timeout=5, verify=verify_zip, progress=False)
    reqs = server.requests_for("zips/val2017.zip")
    assert [r["range"] for r in reqs] == [None, "bytes=123456-"]
    assert sha256_file(dest) == sha256_file(payload_zip)
    assert not dest.with_name("val2017.zip.part").exists() and is_verified(dest)


def test_complete_part_file_gets_416_and_is_kept(server, payload_zip, tmp_path):
    dest = tmp_path / "val2017.zip"
    dest.with_name("val2017.zip.part").write_bytes(payload_zip.read_bytes())
    download(f"{server.url}/zips/val2017.zip", dest, retries=0, timeout=5, verify=verify_zip, progress=False)
    assert [r["range"] for r in server.requests] == [f"bytes={payload_zip.stat().st_size}-"]
    assert sha256_file(dest) == sha256_file(payload_zip)


def test_corrupt_download_is_detected_and_fetched_again(server, payload_zip, tmp_path):
    server.corrupt["zips/val2017.zip"] = 1
    dest = tmp_path / "val2017.zip"
    download(f"{server.url}/zips/val2017.zip", dest, retries=1, timeout=5, verify=verify_zip, progress=False)
    assert [r["range"] for r in server.requests] == [None, None]  # the corrupt bytes were not resumed from
    assert sha256_file(dest) == sha256_file(payload_zip)


def test_always_corrupt_is_refused_and_nothing_kept(server, payload_zip, tmp_path):
    server.corrupt["zips/val2017.zip"] = 99
    dest = tmp_path / "val2017.zip"
    with pytest.raises(DataError, match=r"refused: still corrupt after 3 download\(s\).*CRC"):
        download(f"{server.url}/zips/val2017.zip", dest, retries=2, timeout=5, verify=verify_zip, progress=False)
    assert len(server.requests) == 3
    assert not dest.exists() and not dest.with_name("val2017.zip.part").exists()


def test_verified_file_is_not_fetched_again_but_a_corrupted_cache_is(server, payload_zip, tmp_path):
    dest = tmp_path / "val2017.zip"
    url = f"{server.url}/zips/val2017.zip"
    download(url, dest, retries=0, timeout=5, verify=verify_zip, progress=False)
    download(url, dest, retries=0, timeout=5, verify=verify_zip, progress=False)
    assert len(server.requests) == 1
    data = bytearray(dest.read_bytes())
    data[5000:5010] = b"\0" * 10  # bit rot on disk: size kept, marker stale (mtime)
    dest.write_bytes(bytes(data))
    os.utime(dest, ns=(1, 1))
    download(url, dest, retries=0, timeout=5, verify=verify_zip, progress=False)
    assert len(server.requests) == 2 and sha256_file(dest) == sha256_file(payload_zip)


def test_server_that_keeps_dropping_fails_after_retries_keeping_the_part(server, payload_zip, tmp_path):
    dest = tmp_path / "val2017.zip"
    url = f"{server.url}/zips/val2017.zip"
    server.cut_once["zips/val2017.zip"] = 1000
    with pytest.raises(DataError, match="download failed after 1 attempt.*re-run"):
        download(url, dest, retries=0, timeout=5, verify=verify_zip, progress=False)
    assert dest.with_name("val2017.zip.part").stat().st_size == 1000  # kept for the next run to resume
    download(url, dest, retries=0, timeout=5, verify=verify_zip, progress=False)
    assert server.requests[-1]["range"] == "bytes=1000-" and sha256_file(dest) == sha256_file(payload_zip)


def test_404_fails_at_once_naming_the_url(server, tmp_path):
    with pytest.raises(DataError, match=r"/zips/nope.zip: HTTP 404.*check data.url"):
        download(f"{server.url}/zips/nope.zip", tmp_path / "nope.zip", retries=3, timeout=5, progress=False)
    assert len(server.requests) == 1
