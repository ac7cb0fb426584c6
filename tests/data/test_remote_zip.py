"""data.subset from the COCO 2017 zips through HTTP Range requests: only the central directory and the subset's
members are fetched (loopback server), the images are the zip's bytes, and a server without ranges gets the whole
zip downloaded as before."""

from __future__ import annotations

import re
import zipfile

import pytest

from alignrank.config import load_params
from alignrank.data import remote_zip
from alignrank.data.build import run_data
from alignrank.data.remote_zip import NoRanges, RemoteFile, open_remote
from alignrank.errors import DataError
from tests.conftest import REPO
from tests.data.checks import assert_labels_match_json

pytestmark = [pytest.mark.network]


def _params(root, url, **extra):
    over = {"data.source": "coco2017", "data.root": str(root), "data.url": url, "data.retries": 1, "data.timeout": 10}
    return load_params(REPO / "params.yaml", {**over, **{f"data.{k}": v for k, v in extra.items()}})


def _bytes_asked(requests: list[dict], path: str) -> int:
    total = 0
    for r in requests:
        if r["path"] == path:
            a, b = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", r["range"]).groups())  # (every read is a range)
            total += b - a + 1
    return total


def test_subset_reads_only_its_members(coco128_www, serve, tmp_path):
    srv = serve(coco128_www)
    root = tmp_path / "data"
    s = run_data(_params(root, srv.url, subset=8))
    assert s["counts"]["train"]["images"] == 8 and s["counts"]["val"]["images"] == 8
    assert not (tmp_path / "downloads" / "train2017.zip").exists()  # never downloaded
    for split in ("train", "val"):
        path = f"zips/{split}2017.zip"
        size = (coco128_www / path).stat().st_size
        assert _bytes_asked(srv.requests, path) < size / 2
        with zipfile.ZipFile(coco128_www / path) as zf:
            for img in (root / "images" / split).iterdir():
                assert img.read_bytes() == zf.read(f"{split}2017/{img.name}")
        assert_labels_match_json(root, split)


def test_no_range_support_downloads_the_zip(coco128_www, serve, tmp_path, monkeypatch):
    def no_ranges(self):
        raise NoRanges(f"{self.url}: HTTP 200 to a Range request")

    monkeypatch.setattr(RemoteFile, "_probe", no_ranges)
    s = run_data(_params(tmp_path / "data", serve(coco128_www).url, subset=4))
    assert s["counts"]["train"]["images"] == 4 and (tmp_path / "downloads" / "train2017.zip").is_file()


def test_remote_file_reads_and_refuses(coco128_www, serve, monkeypatch):
    monkeypatch.setattr(remote_zip, "BACKOFF", 0.0)
    srv = serve(coco128_www)
    local = (coco128_www / "zips" / "val2017.zip").read_bytes()
    with open_remote(f"{srv.url}/zips/val2017.zip") as f:
        f.seek(-100, 2)
        assert f.read() == local[-100:]
        f.seek(1000)
        assert f.read(10) == local[1000:1010] and f.tell() == 1010
        with zipfile.ZipFile(f) as zf:
            assert len(zf.namelist()) == 33 and str(f) == f"{srv.url}/zips/val2017.zip"
    with pytest.raises(DataError, match="HTTP 404"):
        RemoteFile(f"{srv.url}/zips/nothing.zip")
