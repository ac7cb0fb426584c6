"""EXIF-oriented JPEGs: after the data stage, the YOLO label box lies on the region it names in the image as
OpenCV loads it (ultralytics' loader and our evaluation), and the manifest/summary list the image by name."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from alignrank.config import load_params
from alignrank.data.build import run_data
from alignrank.data.exif import ORIENTATION_TAG, orientation, reset_orientation
from tests.conftest import REPO
from tests.data.checks import write_coco_zips
from tests.data.loopback import LoopbackServer

pytestmark = [pytest.mark.reliability, pytest.mark.network]

RED = (0, 0, 255)  # BGR


def _jpeg(path, *, w: int, h: int, turn: int) -> None:
    """A grey ``w`` x ``h`` (stored) JPEG with a red block at x 20..100, y 10..60 of the stored pixels."""
    a = np.full((h, w, 3), 128, np.uint8)
    a[10:60, 20:100] = (255, 0, 0)  # RGB red
    ex = Image.Exif()
    ex[ORIENTATION_TAG] = turn
    Image.fromarray(a).save(path, "JPEG", quality=95, exif=ex.tobytes())


def _red_box(img: np.ndarray) -> np.ndarray:
    """xyxy of the red pixels of a BGR image."""
    ys, xs = np.nonzero((img[..., 2] > 200) & (img[..., 1] < 60) & (img[..., 0] < 60))
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _label_box(root, split: str, stem: str, img: np.ndarray) -> np.ndarray:
    """The (only) YOLO label box of an image, in pixels of ``img`` (the image as cv2.imread loads it)."""
    _, cx, cy, bw, bh = map(float, (root / "labels" / split / f"{stem}.txt").read_text().split())
    h, w = img.shape[:2]
    return np.array([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])


@pytest.fixture
def coco_source(tmp_path):
    """COCO zips on a loopback server: train = 1.jpg, orientation 6, boxes on the stored pixels (the COCO case);
    val = 2.jpg, orientation 6, width/height and box given for the turned image (as OpenCV shows it)."""
    src = tmp_path / "src"
    src.mkdir()
    _jpeg(src / "000000000001.jpg", w=333, h=500, turn=6)
    _jpeg(src / "000000000002.jpg", w=333, h=500, turn=6)
    turned = cv2.imread(str(src / "000000000002.jpg"))  # (333, 500): OpenCV obeys the tag
    x0, y0, x1, y1 = _red_box(turned)
    cats = [{"id": 1, "name": "block"}]
    jsons = {
        "train": {"images": [{"id": 1, "file_name": "000000000001.jpg", "width": 333, "height": 500}],
                  "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 10, 80, 50],
                                   "area": 4000, "iscrowd": 0}], "categories": cats},
        "val": {"images": [{"id": 2, "file_name": "000000000002.jpg", "width": 500, "height": 333}],
                "annotations": [{"id": 2, "image_id": 2, "category_id": 1,
                                 "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                                 "area": 4000, "iscrowd": 0}], "categories": cats},
    }
    www = tmp_path / "www"
    write_coco_zips(www, jsons, {"train": src, "val": src})
    srv = LoopbackServer(www)
    yield srv, jsons
    srv.close()


def test_exif_rotated_jpeg_boxes_cover_their_region_as_opencv_loads_it(coco_source, tmp_path):
    srv, jsons = coco_source
    root = tmp_path / "data"
    params = load_params(REPO / "params.yaml", {"data.source": "coco2017", "data.root": str(root), "data.url": srv.url,
                                                "data.retries": 0, "data.timeout": 10})
    s = run_data(params)
    assert s["counts"]["train"]["images"] == 1 and s["counts"]["val"]["images"] == 1, s  # neither skipped

    # train: boxes on the stored pixels -> tag reset, OpenCV loads the stored frame, the box covers the block
    img = cv2.imread(str(root / "images" / "train" / "000000000001.jpg"))
    assert img.shape[:2] == (500, 333)
    assert _iou(_label_box(root, "train", "000000000001", img), _red_box(img)) > 0.9
    with Image.open(root / "images" / "train" / "000000000001.jpg") as im:
        assert im.getexif().get(ORIENTATION_TAG) == 1 and im.size == (333, 500)
    # val: boxes on the turned image -> tag kept, OpenCV turns it, the box covers the block there
    img = cv2.imread(str(root / "images" / "val" / "000000000002.jpg"))
    assert img.shape[:2] == (333, 500)
    assert _iou(_label_box(root, "val", "000000000002", img), _red_box(img)) > 0.9

    # the JSON for pycocotools is the original, and agrees with the pixels the evaluation loads
    for split in ("train", "val"):
        out = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
        assert out["images"] == jsons[split]["images"] and out["annotations"] == jsons[split]["annotations"]
    # reported by name
    want = {"train": {"count": 1, "images": {"000000000001.jpg": {"orientation": 6, "action": "reset"}}},
            "val": {"count": 1, "images": {"000000000002.jpg": {"orientation": 6, "action": "kept"}}}}
    assert s["exif_orientation"] == want
    assert json.loads((root / "manifest.json").read_text())["exif_orientation"] == want


def test_reset_changes_only_the_orientation_bytes(tmp_path):
    _jpeg(tmp_path / "a.jpg", w=40, h=30, turn=8)
    raw = (tmp_path / "a.jpg").read_bytes()
    fixed = reset_orientation(raw)
    assert orientation(raw) == 8 and orientation(fixed) == 1 and len(fixed) == len(raw)
    assert sum(a != b for a, b in zip(raw, fixed)) == 1  # one byte of the 2-byte value
    (tmp_path / "b.jpg").write_bytes(fixed)
    stored = cv2.imread(str(tmp_path / "a.jpg"), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert stored.shape[:2] == (30, 40) and cv2.imread(str(tmp_path / "a.jpg")).shape[:2] == (40, 30)
    assert np.array_equal(cv2.imread(str(tmp_path / "b.jpg")), stored)  # the stored pixels, as they were
    assert reset_orientation(b"not a jpeg") == b"not a jpeg" and orientation(b"\xff\xd8\xff\xd9") == 1
