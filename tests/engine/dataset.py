"""A hand-made synthetic dataset in the data-stage layout (independent of the data stage's code).

Writes ``root/dataset.yaml``, ``images/{train,val}/*.jpg``, ``labels/{train,val}/*.txt``,
``annotations/instances_{train,val}.json`` and ``manifest.json`` (with a content ``fingerprint``):
coloured rectangles/ellipses on a noisy background, one class per shape/colour.

Examples:
    >>> import tempfile, pathlib
    >>> root = make_dataset(pathlib.Path(tempfile.mkdtemp()) / "data", n_train=2, n_val=1, imgsz=64)
    >>> (root / "dataset.yaml").is_file()
    True
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

COLORS = [(230, 40, 40), (40, 200, 40), (40, 80, 230)]


def _image(rng: np.random.Generator, imgsz: int, nc: int):
    arr = rng.integers(0, 60, size=(imgsz, imgsz, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        c = int(rng.integers(0, nc))
        w, h = (int(v) for v in rng.integers(imgsz // 6, imgsz // 2, size=2))
        x0, y0 = int(rng.integers(0, imgsz - w)), int(rng.integers(0, imgsz - h))
        shape = draw.rectangle if c % 2 == 0 else draw.ellipse
        shape([x0, y0, x0 + w, y0 + h], fill=COLORS[c % len(COLORS)])
        boxes.append((c, x0, y0, w, h))
    return img, boxes


def make_dataset(root: Path, *, n_train: int = 16, n_val: int = 8, imgsz: int = 128, nc: int = 3, seed: int = 0) -> Path:
    """Write a tiny detection dataset under ``root`` and return ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    digest = hashlib.sha256()
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for i in range(n):
            img, boxes = _image(rng, imgsz, nc)
            name = f"{split}_{i:04d}"
            img.save(root / "images" / split / f"{name}.jpg", quality=95)
            lines = [f"{c} {(x + w / 2) / imgsz:.6f} {(y + h / 2) / imgsz:.6f} {w / imgsz:.6f} {h / imgsz:.6f}"
                     for c, x, y, w, h in boxes]
            (root / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + "\n")
            images.append({"id": i + 1, "file_name": f"{name}.jpg", "width": imgsz, "height": imgsz})
            for c, x, y, w, h in boxes:
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": c + 1, "bbox": [x, y, w, h],
                             "area": w * h, "iscrowd": 0})
            digest.update((root / "images" / split / f"{name}.jpg").read_bytes())
            digest.update("\n".join(lines).encode())
        cats = [{"id": c + 1, "name": f"shape{c}"} for c in range(nc)]
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (root / "dataset.yaml").write_text(yaml.safe_dump({
        "path": str(root.resolve()), "train": "images/train", "val": "images/val", "nc": nc,
        "names": {c: f"shape{c}" for c in range(nc)}, "category_ids": list(range(1, nc + 1)),
        "val_json": "annotations/instances_val.json", "train_json": "annotations/instances_train.json",
    }, sort_keys=False))
    (root / "manifest.json").write_text(json.dumps(
        {"fingerprint": digest.hexdigest(), "counts": {"train": n_train, "val": n_val}, "skipped": []}))
    return root
