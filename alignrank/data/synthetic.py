"""The embedded default dataset: deterministic synthetic shapes, written as JPEG + a COCO instances dict.

Every image is drawn from its own RNG, seeded by ``(data.seed, split, index)``, so the same seed gives
byte-identical files (OpenCV's JPEG encoder is deterministic) and growing ``num_train`` keeps the
earlier images. An image has:

* a textured background (low-frequency colour noise, a gradient, grain) and clutter: ``data.clutter``
  distractor strokes and irregular blobs (not a class), some drawn over the objects;
* up to ``data.max_objects`` objects of ``data.num_classes`` shape classes (:mod:`.shapes`) with a
  solid, striped, gradient or noisy fill whose main colour contrasts with the background under it,
  sizes log-uniform from 10 px (at 256 px) to 0.75 x the image side (so the COCO small/medium/large
  area ranges all occur at 256 px), rotated, truncated at the border and overlapping: a placement
  is kept only while every object keeps >= 50% of its pixels visible;
* ``ceil(data.empty_fraction * n)`` images with no object (background and clutter only).

Boxes are the tight boxes of the VISIBLE pixels, ``area`` is the visible pixel count (COCO's
segment area), ``iscrowd`` is 0. Image id == int(file stem) (``000000000001.jpg``); val ids start at
:data:`VAL_ID_OFFSET` so ids are unique across splits.

Examples:
    >>> rng = np.random.default_rng(0)
    >>> img, anns = render_image(rng, imgsz=64, num_classes=3, max_objects=4, clutter=2, empty=False)
    >>> img.shape, all(a["bbox"][2] > 0 for a in anns)
    ((64, 64, 3), True)
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from alignrank.data.shapes import CATEGORY_IDS, SHAPES, canvas_side, draw_mask

VAL_ID_OFFSET = 1_000_000_000
SPLIT_CODE = {"train": 0, "val": 1}
JPEG_QUALITY = 90
MIN_VISIBLE = 0.5  # every object keeps at least this fraction of its pixels visible
MIN_PIXELS = 12  # and at least this many pixels
TRIES = 8  # placement attempts per object
MIN_CONTRAST = 80.0  # RGB distance of an object's main colour from the background under it


def class_names(num_classes: int) -> list[str]:
    """Names of the first ``num_classes`` shape classes."""
    return list(SHAPES)[:num_classes]


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, n, 3) float32 textured background."""
    g = int(rng.integers(3, 9))
    low = cv2.resize(rng.random((g, g, 3), dtype=np.float32), (n, n), interpolation=cv2.INTER_CUBIC)
    base = rng.uniform(30, 200, 3).astype(np.float32)
    img = base + (low - 0.5) * rng.uniform(40, 140)  # (n, n, 3)
    t = math.tau * rng.random()
    ramp = (np.cos(t) * np.arange(n)[None, :] + np.sin(t) * np.arange(n)[:, None]) / n  # (n, n)
    img += ramp[..., None] * rng.uniform(-60, 60, 3).astype(np.float32)
    img += rng.normal(0, rng.uniform(2, 10), (n, n, 1)).astype(np.float32)  # grain
    return img


def _colour_away_from(rng: np.random.Generator, ref: np.ndarray) -> np.ndarray:
    """A random colour at least :data:`MIN_CONTRAST` (RGB distance) from ``ref`` (best of a few draws)."""
    best, dist = None, -1.0
    for _ in range(8):
        c = rng.uniform(0, 255, 3).astype(np.float32)
        d = float(np.linalg.norm(c - ref))
        if d > dist:
            best, dist = c, d
        if d >= MIN_CONTRAST:
            break
    return best


def _texture(rng: np.random.Generator, side: int, ref: np.ndarray) -> np.ndarray:
    """(side, side, 3) float32 fill: solid, stripes, gradient or noise; its main colour contrasts with ``ref``."""
    c1 = _colour_away_from(rng, ref)
    kind = int(rng.integers(4))
    if kind == 0:  # solid
        return np.broadcast_to(c1, (side, side, 3))
    c2 = rng.uniform(0, 255, 3).astype(np.float32)
    t = math.tau * rng.random()
    coord = np.cos(t) * np.arange(side)[None, :] + np.sin(t) * np.arange(side)[:, None]  # (side, side)
    if kind == 1:  # stripes
        period = rng.uniform(3, max(4.0, side / 3))
        w = ((coord / period) % 1.0 < 0.5).astype(np.float32)
    elif kind == 2:  # gradient
        w = (coord - coord.min()) / max(float(np.ptp(coord)), 1.0)
    else:  # blotchy noise
        g = int(rng.integers(2, 6))
        w = cv2.resize(rng.random((g, g), dtype=np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    return c1 + w[..., None] * (c2 - c1)  # (side, side, 3)


def _clutter(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    """Draw ``count`` distractors in place: strokes (lines, polylines, arcs) and irregular blobs."""
    n = img.shape[0]
    for _ in range(count):
        color = tuple(float(v) for v in rng.uniform(0, 255, 3))
        kind = int(rng.integers(4))
        if kind == 0:
            p = rng.integers(0, n, 4)
            cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), color, int(rng.integers(1, 4)), cv2.LINE_AA)
        elif kind == 1:
            pts = rng.integers(0, n, (int(rng.integers(3, 6)), 2)).astype(np.int32)
            cv2.polylines(img, [pts], False, color, int(rng.integers(1, 3)), cv2.LINE_AA)
        elif kind == 2:
            c = rng.integers(0, n, 2)
            ax = rng.integers(4, max(5, n // 4), 2)
            a0 = float(rng.uniform(0, 360))
            cv2.ellipse(img, (int(c[0]), int(c[1])), (int(ax[0]), int(ax[1])), a0, 0, float(rng.uniform(60, 200)),
                        color, int(rng.integers(1, 4)), cv2.LINE_AA)
        else:  # irregular star-convex blob: not one of the classes
            k = int(rng.integers(7, 13))
            r = rng.uniform(3, max(4.0, n / 10)) * rng.uniform(0.4, 1.0, k)
            t = np.sort(rng.uniform(0, math.tau, k))
            c = rng.uniform(0, n, 2)
            pts = np.stack([c[0] + r * np.cos(t), c[1] + r * np.sin(t)], 1)  # (k, 2)
            cv2.fillPoly(img, [np.round(pts).astype(np.int32)], color, cv2.LINE_AA)


def _clip(o: int, side: int, n: int) -> tuple[int, int, int, int]:
    """Image range [a, b) and canvas range [ca, cb) of a canvas at offset ``o``."""
    a, b = max(o, 0), min(o + side, n)
    return a, b, a - o, b - o


def render_image(
    rng: np.random.Generator, *, imgsz: int, num_classes: int, max_objects: int, clutter: int, empty: bool
) -> tuple[np.ndarray, list[dict]]:
    """Draw one image and its annotations (no ids yet).

    Args:
        rng: The image's own generator.
        imgsz: Image side in pixels.
        num_classes: Shape classes used (first ``num_classes`` of :data:`SHAPES`).
        max_objects: Most objects in the image.
        clutter: Number of distractors.
        empty: Draw no object.

    Returns:
        ``uint8`` BGR image (imgsz, imgsz, 3) and a list of ``{"category_id", "bbox", "area", "iscrowd"}``.
    """
    n = imgsz
    img = _background(rng, n)
    _clutter(rng, img, clutter - clutter // 3)
    label = np.full((n, n), -1, np.int16)  # index of the top object per pixel
    objs: list[dict] = []  # cls, full (pixel count), visible (pixel count)
    want = 0 if empty else int(rng.integers(1, max_objects + 1))
    smin, smax = max(6.0, 10.0 * n / 256), 0.75 * n
    sizes = np.sort(np.exp(rng.uniform(np.log(smin), np.log(smax), want)))[::-1]  # big first: fewer rejections
    for size in sizes.tolist():
        for _try in range(TRIES):
            cls = int(rng.integers(num_classes))
            mask = draw_mask(list(SHAPES)[cls], size=size, angle=float(rng.uniform(0, math.tau)))
            side = canvas_side(size)
            cx, cy = rng.uniform(0, n, 2)
            ox, oy = int(round(cx - side / 2)), int(round(cy - side / 2))
            x0, x1, mx0, mx1 = _clip(ox, side, n)
            y0, y1, my0, my1 = _clip(oy, side, n)
            if x1 <= x0 or y1 <= y0:
                continue
            full = int(mask.sum())
            m = mask[my0:my1, mx0:mx1].astype(bool)  # (h, w) in-image part
            vis = int(m.sum())
            if vis < max(MIN_PIXELS, MIN_VISIBLE * full):
                continue
            covered = np.bincount(label[y0:y1, x0:x1][m] + 1, minlength=len(objs) + 1)[1:]  # pixels taken per object
            if any(o["visible"] - c < max(MIN_PIXELS, MIN_VISIBLE * o["full"]) for o, c in zip(objs, covered)):
                continue
            for o, c in zip(objs, covered):
                o["visible"] -= int(c)
            k = len(objs)
            label[y0:y1, x0:x1][m] = k
            tex = _texture(rng, side, img[y0:y1, x0:x1][m].mean(0))[my0:my1, mx0:mx1]  # (h, w, 3)
            img[y0:y1, x0:x1][m] = tex[m]
            objs.append({"cls": cls, "full": full, "visible": vis})
            break
    _clutter(rng, img, clutter // 3)  # a few strokes over the objects (they keep their labels)
    sigma = float(rng.uniform(0.3, 1.0))
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = np.clip(img * rng.uniform(0.8, 1.2) + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
    anns = []
    if objs:
        ys, xs = np.nonzero(label >= 0)
        ks = label[ys, xs]
        x_lo = np.full(len(objs), n); x_hi = np.full(len(objs), -1)  # noqa: E702
        y_lo = np.full(len(objs), n); y_hi = np.full(len(objs), -1)  # noqa: E702
        np.minimum.at(x_lo, ks, xs); np.maximum.at(x_hi, ks, xs)  # noqa: E702
        np.minimum.at(y_lo, ks, ys); np.maximum.at(y_hi, ks, ys)  # noqa: E702
        area = np.bincount(ks, minlength=len(objs))
        for k, o in enumerate(objs):
            w, h = int(x_hi[k] - x_lo[k] + 1), int(y_hi[k] - y_lo[k] + 1)
            anns.append({
                "category_id": CATEGORY_IDS[o["cls"]],
                "bbox": [float(x_lo[k]), float(y_lo[k]), float(w), float(h)],
                "area": float(area[k]),
                "iscrowd": 0,
            })
    return img, anns


def empty_indices(n: int, fraction: float, seed: int, split: str) -> set[int]:
    """The ``ceil(fraction * n)`` image indices of a split drawn with no object."""
    k = min(n, math.ceil(fraction * n - 1e-9)) if fraction > 0 else 0
    rng = np.random.default_rng([seed, SPLIT_CODE[split], 7])
    return set(int(i) for i in rng.permutation(n)[:k])


def generate_split(
    image_dir: str | Path,
    split: str,
    *,
    n: int,
    seed: int,
    imgsz: int,
    num_classes: int,
    max_objects: int,
    clutter: int,
    empty_fraction: float,
) -> dict:
    """Write ``n`` JPEG images of ``split`` into ``image_dir`` and return their COCO instances dict.

    Examples:
        >>> import tempfile
        >>> d = generate_split(tempfile.mkdtemp(), "val", n=2, seed=0, imgsz=64, num_classes=3,
        ...                    max_objects=3, clutter=2, empty_fraction=0.0)
        >>> [c["id"] for c in d["categories"]], d["images"][0]["id"]
        ([1, 2, 3], 1000000001)
    """
    image_dir = Path(image_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    offset = VAL_ID_OFFSET if split == "val" else 0
    empties = empty_indices(n, empty_fraction, seed, split)
    images, annotations = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, SPLIT_CODE[split], i])
        img, anns = render_image(
            rng, imgsz=imgsz, num_classes=num_classes, max_objects=max_objects, clutter=clutter, empty=i in empties
        )
        image_id = offset + i + 1
        name = f"{image_id:012d}.jpg"
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok, "OpenCV JPEG encoding failed"
        (image_dir / name).write_bytes(buf.tobytes())
        images.append({"id": image_id, "file_name": name, "width": imgsz, "height": imgsz})
        for a in anns:
            annotations.append({"id": offset + len(annotations) + 1, "image_id": image_id, **a})
    names = class_names(num_classes)
    return {
        "info": {"description": f"AlignRank synthetic shapes ({split})", "version": "1", "seed": seed},
        "licenses": [],
        "categories": [{"id": CATEGORY_IDS[i], "name": nm, "supercategory": "shape"} for i, nm in enumerate(names)],
        "images": images,
        "annotations": annotations,
    }
