"""Shared checks and builders of the data tests: labels vs JSON, official-layout COCO zips."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np


def assert_labels_match_json(root: Path, split: str) -> int:
    """Every non-crowd annotation of the split's JSON is one YOLO line (class index, clipped box to 1e-6).

    Returns the number of boxes checked.
    """
    data = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
    index = {cid: i for i, cid in enumerate(sorted(c["id"] for c in data["categories"]))}
    images = {im["id"]: im for im in data["images"]}
    want: dict[str, list] = {Path(im["file_name"]).stem: [] for im in images.values()}
    for a in data["annotations"]:
        if a.get("iscrowd", 0):
            continue
        im = images[a["image_id"]]
        w, h = im["width"], im["height"]
        x, y, bw, bh = a["bbox"]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + bw, w), min(y + bh, h)
        want[Path(im["file_name"]).stem].append(
            [index[a["category_id"]], (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]
        )
    label_dir, image_dir = root / "labels" / split, root / "images" / split
    assert sorted(p.stem for p in label_dir.glob("*.txt")) == sorted(want)
    assert sorted(p.stem for p in image_dir.iterdir()) == sorted(want)
    n = 0
    for stem, rows in want.items():
        text = (label_dir / f"{stem}.txt").read_text().split()
        got = np.array(text, dtype=np.float64).reshape(-1, 5)  # (boxes, 5)
        exp = np.array(sorted(rows), dtype=np.float64).reshape(-1, 5)
        got = got[np.lexsort(got.T[::-1])]  # same row order as exp
        assert got.shape == exp.shape, stem
        np.testing.assert_allclose(got, exp, atol=1e-6, rtol=0, err_msg=stem)
        n += len(rows)
    return n


def write_coco_zips(www: Path, jsons: dict[str, dict], image_dirs: dict[str, Path]) -> None:
    """Lay out ``www`` like images.cocodataset.org: zips/{split}2017.zip + annotations/annotations_trainval2017.zip."""
    (www / "zips").mkdir(parents=True, exist_ok=True)
    (www / "annotations").mkdir(parents=True, exist_ok=True)
    for split, data in jsons.items():
        with zipfile.ZipFile(www / "zips" / f"{split}2017.zip", "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(zipfile.ZipInfo(f"{split}2017/"), b"")
            for im in sorted({im["file_name"] for im in data["images"] if isinstance(im, dict)}):
                src = image_dirs[split] / im
                if src.is_file():
                    zf.write(src, f"{split}2017/{im}")
    with zipfile.ZipFile(www / "annotations" / "annotations_trainval2017.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for split, data in jsons.items():
            zf.writestr(f"annotations/instances_{split}2017.json", json.dumps(data))


def bad_source(d):
    """A source folder with good and bad images and a JSON with one bad record of every kind."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        cv2.imwrite(str(d / name), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    good = (d / "a.jpg").read_bytes()
    (d / "corrupt.jpg").write_bytes(b"not a jpeg at all" * 10)
    (d / "truncated.jpg").write_bytes(good[: len(good) // 2])
    cv2.imwrite(str(d / "small.jpg"), rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    images = [
        {"id": 1, "file_name": "a.jpg", "width": 60, "height": 40},
        {"id": 2, "file_name": "b.jpg", "width": 60, "height": 40},
        {"id": 3, "file_name": "c.jpg", "width": 60, "height": 40},
        {"id": 2, "file_name": "c.jpg", "width": 60, "height": 40},  # duplicate image id
        {"id": 4, "file_name": "corrupt.jpg", "width": 60, "height": 40},
        {"id": 5, "file_name": "truncated.jpg", "width": 60, "height": 40},
        {"id": 6, "file_name": "missing.jpg", "width": 60, "height": 40},
        {"id": 7, "file_name": "small.jpg", "width": 60, "height": 40},  # really 20x20
        {"id": 8, "file_name": "../escape.jpg", "width": 60, "height": 40},
    ]
    def ann(i, img, cat, box, crowd=0):
        return {"id": i, "image_id": img, "category_id": cat, "bbox": box, "iscrowd": crowd, "area": 1.0}

    annotations = [
        ann(1, 1, 5, [10, 10, 20, 10]),
        ann(2, 1, 2, [50, 30, 20, 20]),  # partly outside -> clipped to [50, 30, 10, 10]
        ann(3, 1, 2, [70, 5, 5, 5]),  # fully outside
        ann(4, 1, 2, [5, 5, 0, 5]),  # degenerate
        ann(5, 1, 99, [5, 5, 5, 5]),  # unknown category
        ann(1, 2, 5, [1, 1, 5, 5]),  # duplicate annotation id
        ann(6, 42, 5, [1, 1, 5, 5]),  # image id not in the JSON
        ann(7, 4, 5, [1, 1, 5, 5]),  # of the corrupt image
        ann(8, 2, 2, [0, 0, 30, 20], crowd=1),  # crowd: JSON only
        ann(9, 3, 2, [1, 2, 3, float("nan")]),  # degenerate (NaN)
        ann(10, 3, 2, [5, 5, 10, 10]),
    ]
    data = {"info": {}, "categories": [{"id": 2, "name": "two"}, {"id": 5, "name": "five"}],
            "images": images, "annotations": annotations}
    return data
