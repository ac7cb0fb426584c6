"""Fixtures of the data tests: a loopback HTTP server and the coco128 subset zipped in the official layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignrank.data import download as download_mod
from tests.conftest import SHARED_COCO128
from tests.data.checks import write_coco_zips
from tests.data.loopback import LoopbackServer


@pytest.fixture
def www(tmp_path) -> Path:
    d = tmp_path / "www"
    d.mkdir()
    return d


@pytest.fixture
def serve(monkeypatch):
    """``serve(folder) -> LoopbackServer`` on 127.0.0.1 (closed after the test); no back-off between retries."""
    monkeypatch.setattr(download_mod, "BACKOFF", 0.0)
    servers = []

    def start(folder: Path) -> LoopbackServer:
        servers.append(LoopbackServer(folder))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def server(serve, www) -> LoopbackServer:
    """A loopback server over the test's ``www`` folder."""
    return serve(www)


@pytest.fixture(scope="session")
def coco128_www(tmp_path_factory) -> Path:
    """coco128 as images.cocodataset.org lays it out: first 96 images = train2017, last 32 = val2017."""
    ann = SHARED_COCO128 / "annotations" / "instances_train2017.json"
    if not ann.is_file():
        pytest.skip(f"real-data test: {SHARED_COCO128} is absent (needs ../shared/data/coco128)")
    full = json.loads(ann.read_text())
    images = sorted(full["images"], key=lambda im: im["id"])
    parts = {"train": images[:96], "val": images[96:]}
    jsons = {}
    for split, ims in parts.items():
        ids = {im["id"] for im in ims}
        jsons[split] = {**full, "images": ims, "annotations": [a for a in full["annotations"] if a["image_id"] in ids]}
    www = tmp_path_factory.mktemp("coco128_www")
    src = SHARED_COCO128 / "train2017"
    write_coco_zips(www, jsons, {"train": src, "val": src})
    return www
