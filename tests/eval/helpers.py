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


def tide_cases(gt: dict, seed: int = 0) -> list[dict]:
    """COCO results with every TIDE error type, built from real ground truth.

    Per regular annotation: missed (nothing), a class swap, a box shift (IoU about 0.1-0.45), both,
    or a true positive (small jitter) with an occasional duplicate. Crowd regions get predictions
    inside them (ignored by the matching); every image gets background boxes, and one image more
    than 100 predictions (the ``max_dets`` cut).
    """
    rng = np.random.default_rng(seed)
    cat_ids = sorted({a["category_id"] for a in gt["annotations"]})
    sizes = {im["id"]: (im["width"], im["height"]) for im in gt["images"]}
    out = []

    def add(im, c, box, score=None):
        out.append({"image_id": im, "category_id": int(c), "bbox": [float(v) for v in box],
                    "score": float(rng.random() if score is None else score)})

    def other(c):
        return int(rng.choice([k for k in cat_ids if k != c]))

    for a in gt["annotations"]:
        im, c, (x, y, w, h) = a["image_id"], a["category_id"], a["bbox"]
        if a.get("iscrowd"):
            for _ in range(int(rng.integers(1, 4))):  # small boxes inside the crowd region
                bw, bh = w * rng.uniform(0.1, 0.3), h * rng.uniform(0.1, 0.3)
                add(im, c, [x + rng.uniform(0, w - bw), y + rng.uniform(0, h - bh), bw, bh])
            continue
        r = rng.random()
        jit = rng.normal(0, 0.04, 4) * [w, h, w, h]
        near = [x + jit[0], y + jit[1], max(w + jit[2], 1.0), max(h + jit[3], 1.0)]
        shifted = [x + w * rng.uniform(0.4, 0.75) * rng.choice([-1, 1]), y, w, h]
        if r < 0.1:
            continue  # missed
        if r < 0.22:
            add(im, other(c), near)  # class swap
        elif r < 0.34:
            add(im, c, shifted)  # box shift
        elif r < 0.40:
            add(im, other(c), shifted)  # both
        else:
            add(im, c, near)
            if rng.random() < 0.25:  # duplicate
                d = rng.normal(0, 0.04, 4) * [w, h, w, h]
                add(im, c, [x + d[0], y + d[1], max(w + d[2], 1.0), max(h + d[3], 1.0)])
    for im, (W, H) in sizes.items():
        for _ in range(int(rng.integers(0, 4))):  # background
            w, h = rng.uniform(5, W / 4), rng.uniform(5, H / 4)
            add(im, rng.choice(cat_ids), [rng.uniform(0, W - w), rng.uniform(0, H - h), w, h], rng.random() * 0.5)
    im = gt["images"][0]["id"]
    W, H = sizes[im]
    for _ in range(120):  # more than max_dets=100 on one image
        add(im, rng.choice(cat_ids), [rng.uniform(0, W - 20), rng.uniform(0, H - 20), 20, 20], rng.random() * 0.3)
    return out
