"""Synthetic default: deterministic, COCO-correct (non-contiguous ids, areas, empties), loads in pycocotools."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from alignrank.config import load_params
from alignrank.data.build import run_data
from alignrank.data.shapes import CATEGORY_IDS, SHAPES, draw_mask
from alignrank.data.synthetic import generate_split
from tests.conftest import REPO
from tests.data.checks import assert_labels_match_json

GEN = dict(seed=0, imgsz=256, num_classes=8, max_objects=12, clutter=6, empty_fraction=0.1)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_byte_identical_other_seed_differs(tmp_path):
    over = {"data.num_train": 6, "data.num_val": 3, "data.imgsz": 96}
    a = run_data(load_params(REPO / "params.yaml", {**over, "data.root": str(tmp_path / "a")}))
    b = run_data(load_params(REPO / "params.yaml", {**over, "data.root": str(tmp_path / "b")}))
    c = run_data(load_params(REPO / "params.yaml", {**over, "data.root": str(tmp_path / "c"), "data.seed": 1}))
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    for f in ("dataset.yaml", "labels/train.cache", "labels/val.cache"):  # hold absolute paths, nothing else differs
        fa.pop(f), fb.pop(f)
    assert fa.keys() == fb.keys() and all(fa[k] == fb[k] for k in fa)
    assert len([k for k in fa if k.endswith(".jpg")]) == 9
    assert a["fingerprint"] == b["fingerprint"] != c["fingerprint"]


def test_growing_the_split_keeps_earlier_images(tmp_path):
    small = generate_split(tmp_path / "s", "train", n=3, **GEN)
    generate_split(tmp_path / "l", "train", n=5, **{**GEN, "empty_fraction": 0.0})
    for im in small["images"][:3]:
        if not any(a["image_id"] == im["id"] for a in small["annotations"]):
            continue  # an empty image of the small split
        assert (tmp_path / "s" / im["file_name"]).read_bytes() == (tmp_path / "l" / im["file_name"]).read_bytes()


def test_area_ranges_empties_and_boxes(tmp_path):
    n = 40
    d = generate_split(tmp_path / "img", "train", n=n, **GEN)
    areas = np.array([a["area"] for a in d["annotations"]])
    assert (areas < 32**2).sum() > 0 and ((areas >= 32**2) & (areas <= 96**2)).sum() > 0 and (areas > 96**2).sum() > 0
    with_objects = {a["image_id"] for a in d["annotations"]}
    assert n - len(with_objects) == math.ceil(0.1 * n)  # empty images: background + clutter only
    for a in d["annotations"]:
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 256 and y + h <= 256
        assert 0 < a["area"] <= w * h and a["iscrowd"] == 0
    assert {a["category_id"] for a in d["annotations"]} == set(CATEGORY_IDS)  # all 8 classes occur
    ids = [c["id"] for c in d["categories"]]
    assert ids == list(CATEGORY_IDS) and ids != list(range(1, len(ids) + 1))  # non-contiguous, COCO-style


def test_every_shape_is_a_distinct_non_empty_mask():
    masks = {name: draw_mask(name, size=48.0, angle=0.3) for name in SHAPES}
    for name, m in masks.items():
        assert m.sum() > 100, name
    names = list(masks)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
            assert iou < 0.95, (a, b)


def test_tiny_dataset_layout_labels_and_pycocotools(tiny_data):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    manifest = json.loads((tiny_data / "manifest.json").read_text())
    assert manifest["counts"]["train"]["images"] == 16 and manifest["counts"]["val"]["images"] == 8
    assert manifest["counts"]["val"]["empty_images"] >= 1
    for split in ("train", "val"):
        assert assert_labels_match_json(tiny_data, split) == manifest["counts"][split]["boxes"]
    import yaml

    meta = yaml.safe_load((tiny_data / "dataset.yaml").read_text())
    assert meta["path"] == str(tiny_data) and meta["nc"] == len(meta["names"]) == len(meta["category_ids"])
    assert meta["category_ids"] == sorted(meta["category_ids"]) == list(CATEGORY_IDS[: meta["nc"]])
    gt = COCO(str(tiny_data / meta["val_json"]))
    anns = gt.loadAnns(gt.getAnnIds())
    fake = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9} for a in anns]
    dt = gt.loadRes(fake)
    ev = COCOeval(gt, dt, "bbox")
    ev.evaluate(), ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # perfect predictions: the GT is self-consistent
