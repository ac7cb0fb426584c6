"""The COCO 2017 path for real: coco128 zipped like images.cocodataset.org, served on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import zipfile

import pytest

from alignrank.config import load_params
from alignrank.data.build import run_data
from alignrank.errors import DataError
from alignrank.io import sha256_file
from tests.conftest import REPO
from tests.data.checks import assert_labels_match_json, bad_source, write_coco_zips

pytestmark = [pytest.mark.network, pytest.mark.reliability]


def coco_params(root, url, **extra):
    over = {"data.source": "coco2017", "data.root": str(root), "data.url": url, "data.retries": 2, "data.timeout": 10}
    return load_params(REPO / "params.yaml", {**over, **{f"data.{k}": v for k, v in extra.items()}})


def test_coco128_loopback_end_to_end(coco128_www, serve, tmp_path):
    from pycocotools.coco import COCO

    srv = serve(coco128_www)
    srv.cut_once["zips/train2017.zip"] = 2_000_000  # the first download of train2017.zip is interrupted
    srv.corrupt["zips/val2017.zip"] = 1  # the first download of val2017.zip arrives corrupt
    s = run_data(coco_params(tmp_path / "data", srv.url))
    assert [r["range"] for r in srv.requests_for("zips/train2017.zip")] == [None, "bytes=2000000-"]
    assert [r["range"] for r in srv.requests_for("zips/val2017.zip")] == [None, None]  # detected, fetched again
    for split in ("train", "val"):
        got, src = tmp_path / "downloads" / f"{split}2017.zip", coco128_www / "zips" / f"{split}2017.zip"
        assert sha256_file(got) == sha256_file(src)
    assert s["counts"]["train"]["images"] == 96 and s["counts"]["val"]["images"] == 32
    root = tmp_path / "data"
    with zipfile.ZipFile(coco128_www / "annotations" / "annotations_trainval2017.zip") as zf:
        src = {sp: json.loads(zf.read(f"annotations/instances_{sp}2017.json")) for sp in ("train", "val")}
    crowd = 0
    for split in ("train", "val"):
        out = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
        assert out["images"] == src[split]["images"]  # the original records
        assert out["annotations"] == src[split]["annotations"]  # (coco128 has no record to skip)
        assert out["categories"] == src[split]["categories"]
        n_crowd = sum(a["iscrowd"] for a in out["annotations"])
        crowd += n_crowd
        assert assert_labels_match_json(root, split) == len(out["annotations"]) - n_crowd == s["counts"][split]["boxes"]
    assert crowd == 10  # coco128's crowd boxes: kept in the JSON, not in the labels
    meta = json.loads((root / "manifest.json").read_text())
    assert len(meta["category_ids"]) == 80 and meta["category_ids"] == sorted(meta["category_ids"])
    assert meta["category_ids"][-1] == 90 and meta["names"][0] == "person"
    gt = COCO(str(root / "annotations" / "instances_val.json"))
    anns = gt.loadAnns(gt.getAnnIds())[:5]
    fake = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.5} for a in anns]
    dt = gt.loadRes(fake)
    assert len(dt.getAnnIds()) == 5

    # re-runs: same params -> cached; another subset -> no zip is fetched again (verified cache)
    n = len(srv.requests)
    assert run_data(coco_params(tmp_path / "data", srv.url))["cached"]
    sub = run_data(coco_params(tmp_path / "data8", srv.url, subset=8))
    assert len(srv.requests) == n
    ids = sorted(im["id"] for im in src["train"]["images"])[:8]
    got = json.loads((tmp_path / "data8" / "annotations" / "instances_train.json").read_text())
    assert [im["id"] for im in got["images"]] == ids and sub["counts"]["val"]["images"] == 8
    assert sorted(p.stem for p in (tmp_path / "data8" / "images" / "train").iterdir()) == [f"{i:012d}" for i in ids]
    assert_labels_match_json(tmp_path / "data8", "train")


def _serve_bad(www):
    src = www.parent / "src"
    data = bad_source(src)
    data["images"] = [im for im in data["images"] if im["file_name"] != "missing.jpg"]  # a zip must hold every image
    train_anns = [a for a in data["annotations"] if a["image_id"] == 1]
    train = {**data, "images": data["images"][:1], "annotations": train_anns}
    write_coco_zips(www, {"train": train, "val": data}, {"train": src, "val": src})
    return src


def test_bad_records_through_the_stage_are_reported_and_source_untouched(www, server, tmp_path, caplog):
    _serve_bad(www)
    before = {p.name: sha256_file(p) for p in www.rglob("*.zip")}
    with caplog.at_level(logging.WARNING, logger="alignrank.data"):
        s = run_data(coco_params(tmp_path / "data", server.url))
    assert {p.name: sha256_file(p) for p in www.rglob("*.zip")} == before
    val = s["skipped"]["val"]
    assert val == {"duplicate_image_id": 1, "bad_image_record": 1, "corrupt_image": 2, "image_size_mismatch": 1,
                   "duplicate_annotation_id": 1, "annotation_unknown_image": 1, "annotation_of_skipped_image": 1,
                   "unknown_category": 1, "degenerate_box": 2, "box_outside": 1, "box_clipped": 1}
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["skipped"]["val"]["corrupt_image"]["example"].startswith("corrupt.jpg")
    warned = [r.getMessage() for r in caplog.records if r.getMessage().startswith("val: ")]
    assert len(warned) == len(val) and any("2 record(s) of kind corrupt_image" in w for w in warned)
    assert sorted(p.name for p in (tmp_path / "data" / "images" / "val").iterdir()) == ["a.jpg", "b.jpg", "c.jpg"]
    assert_labels_match_json(tmp_path / "data", "val")


def test_malformed_annotation_json_is_one_line_and_builds_nothing(www, server, tmp_path):
    _serve_bad(www)
    z = www / "annotations" / "annotations_trainval2017.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("annotations/instances_train2017.json", '{"images": [], "annotations": [], "categories": []}')
        zf.writestr("annotations/instances_val2017.json", '{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(DataError) as e:
        run_data(coco_params(tmp_path / "data", server.url))
    msg = str(e.value)
    assert "instances_val2017.json: malformed JSON at line 2, column 12" in msg and "\n" not in msg
    assert not (tmp_path / "data").exists() and not list(tmp_path.glob(".data.building*"))


def test_unsafe_member_in_a_downloaded_zip_is_refused(www, server, tmp_path):
    _serve_bad(www)
    with zipfile.ZipFile(www / "zips" / "train2017.zip", "a") as zf:
        zf.writestr("train2017/../../../evil.jpg", b"x")
    with pytest.raises(DataError, match=r"train2017.zip: archive member 'train2017/\.\./\.\./\.\./evil.jpg' escapes"):
        run_data(coco_params(tmp_path / "data", server.url))
    assert not list(tmp_path.rglob("evil.jpg")) and not (tmp_path / "data").exists()


def test_wrong_url_is_a_one_line_error(www, server, tmp_path):
    with pytest.raises(DataError, match="annotations_trainval2017.zip: HTTP 404 .*check data.url"):
        run_data(coco_params(tmp_path / "data", server.url + "/nowhere"))
