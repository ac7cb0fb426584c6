"""Helpers of the evaluation tests: hand-made COCO dicts and perturbed ground truth as predictions."""

from __future__ import annotations

import numpy as np


def make_gt(boxes, cats=(1, 2, 3), img_ids=(1, 2), crowd=()):
    """A COCO instances dict; ``boxes`` = [(image_id, category_id, [x, y, w, h]), ...]."""
    anns = [
        {"id": i + 1, "image_id": im, "category_id": c, "bbox": list(map(float, b)), "area": float(b[2] * b[3]),
         "iscrowd": int(i in crowd)}
        for i, (im, c, b) in enumerate(boxes)
    ]
    return {
        "images": [{"id": i, "file_name": f"{i:06d}.jpg", "width": 100, "height": 100} for i in img_ids],
        "annotations": anns,
        "categories": [{"id": c, "name": f"c{c}"} for c in cats],
    }


def perturb(gt: dict, seed: int = 0, jitter: float = 0.08, swap: float = 0.1, drop: float = 0.15, fp: float = 0.3):
    """COCO results from ground truth: jittered boxes, random scores, class swaps, drops, false positives."""
    rng = np.random.default_rng(seed)
    cat_ids = [c["id"] for c in gt["categories"]]
    sizes = {im["id"]: (im["width"], im["height"]) for im in gt["images"]}
    out = []
    for a in gt["annotations"]:
        if rng.random() < drop:
            continue
        x, y, w, h = a["bbox"]
        for _ in range(1 + (rng.random() < 0.2)):  # some duplicates
            d = rng.normal(0, jitter, 4) * [w, h, w, h]
            c = int(rng.choice(cat_ids)) if rng.random() < swap else a["category_id"]
            out.append({"image_id": a["image_id"], "category_id": c,
                        "bbox": [float(x + d[0]), float(y + d[1]), float(max(w + d[2], 1.0)), float(max(h + d[3], 1.0))],
                        "score": float(rng.random())})
    for _ in range(int(fp * len(gt["annotations"]))):
        im = int(rng.choice(list(sizes)))
        W, H = sizes[im]
        w, h = rng.uniform(5, W / 2), rng.uniform(5, H / 2)
        out.append({"image_id": im, "category_id": int(rng.choice(cat_ids)),
                    "bbox": [float(rng.uniform(0, W - w)), float(rng.uniform(0, H - h)), float(w), float(h)],
                    "score": float(rng.random() * 0.6)})
    return out
