"""A COCO-format folder made from coco128 (official 2017 layout), images symlinked, never copied."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SHARED_COCO128


def coco128_split(n_train: int) -> dict[str, dict]:
    """coco128's instances split by image id: the first ``n_train`` images = train, the rest = val."""
    full = json.loads((SHARED_COCO128 / "annotations" / "instances_train2017.json").read_text())
    images = sorted(full["images"], key=lambda im: im["id"])
    out = {}
    for split, ims in (("train", images[:n_train]), ("val", images[n_train:])):
        ids = {im["id"] for im in ims}
        out[split] = {**full, "images": ims, "annotations": [a for a in full["annotations"] if a["image_id"] in ids]}
    return out


def make_coco_dir(dest: Path, n_train: int = 100) -> dict[str, dict]:
    """``dest/{train2017,val2017}/`` (symlinks to coco128's images) + ``dest/annotations/instances_*2017.json``.

    Returns the JSON of each split as written.
    """
    jsons = coco128_split(n_train)
    (dest / "annotations").mkdir(parents=True, exist_ok=True)
    for split, data in jsons.items():
        (dest / f"{split}2017").mkdir(exist_ok=True)
        for im in data["images"]:
            (dest / f"{split}2017" / im["file_name"]).symlink_to(SHARED_COCO128 / "train2017" / im["file_name"])
        (dest / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    return jsons
