"""Flat, array-based detection and ground-truth records and the COCO box IoU.

Every metric in :mod:`alignrank.eval` works on two small containers of numpy arrays (one row per
box, COCO ids, ``xywh`` boxes in original image pixels) instead of lists of dicts, so the math can
be vectorized. :func:`box_iou` is pycocotools' ``maskUtils.iou`` for boxes (crowd regions use the
detection's own area as the union), in numpy.

Examples:
    >>> import numpy as np
    >>> d = Detections.from_coco([{"image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.9}])
    >>> len(d), d.bbox.shape
    (1, (1, 4))
    >>> float(box_iou(np.array([[0, 0, 10, 10.]]), np.array([[0, 0, 10, 5.]]))[0, 0])
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np


def box_iou(dt: np.ndarray, gt: np.ndarray, iscrowd: np.ndarray | None = None) -> np.ndarray:
    """IoU of ``xywh`` boxes exactly as pycocotools computes it (``bbIou``).

    Args:
        dt: Detection boxes, (D, 4) ``xywh``.
        gt: Ground-truth boxes, (G, 4) ``xywh``.
        iscrowd: (G,) flags; for a crowd region the union is the detection's area.

    Returns:
        (D, G) IoU matrix (float64).
    """
    dt = np.asarray(dt, dtype=np.float64).reshape(-1, 4)  # (D, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)  # (G, 4)
    dx1, dy1 = dt[:, 0:1], dt[:, 1:2]  # (D, 1)
    dx2, dy2 = dx1 + dt[:, 2:3], dy1 + dt[:, 3:4]
    gx1, gy1 = gt[None, :, 0], gt[None, :, 1]  # (1, G)
    gx2, gy2 = gx1 + gt[None, :, 2], gy1 + gt[None, :, 3]
    iw = np.minimum(dx2, gx2) - np.maximum(dx1, gx1)  # (D, G)
    ih = np.minimum(dy2, gy2) - np.maximum(dy1, gy1)
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    da = (dt[:, 2] * dt[:, 3])[:, None]  # (D, 1)
    ga = (gt[:, 2] * gt[:, 3])[None, :]  # (1, G)
    union = da + ga - inter
    if iscrowd is not None:
        crowd = np.asarray(iscrowd, dtype=bool).reshape(1, -1)  # (1, G)
        union = np.where(crowd, np.broadcast_to(da, union.shape), union)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou


@dataclass
class Detections:
    """Detections as flat arrays (COCO results format, one row per box).

    Attributes:
        image_id: (N,) int64 COCO image ids.
        category_id: (N,) int64 COCO category ids (the dataset's own, e.g. 1..90 for COCO).
        bbox: (N, 4) float64 ``xywh`` boxes in original image pixels.
        score: (N,) float64 confidence.
    """

    image_id: np.ndarray
    category_id: np.ndarray
    bbox: np.ndarray
    score: np.ndarray

    def __post_init__(self) -> None:
        self.image_id = np.asarray(self.image_id, dtype=np.int64).reshape(-1)
        self.category_id = np.asarray(self.category_id, dtype=np.int64).reshape(-1)
        self.bbox = np.asarray(self.bbox, dtype=np.float64).reshape(-1, 4)
        self.score = np.asarray(self.score, dtype=np.float64).reshape(-1)
        n = len(self.image_id)
        if not (len(self.category_id) == len(self.bbox) == len(self.score) == n):
            raise ValueError("Detections: image_id, category_id, bbox and score must have the same length")

    def __len__(self) -> int:
        return len(self.image_id)

    @classmethod
    def empty(cls) -> "Detections":
        """No detections."""
        return cls(np.zeros(0), np.zeros(0), np.zeros((0, 4)), np.zeros(0))

    @classmethod
    def from_coco(cls, records: Iterable[Mapping]) -> "Detections":
        """From COCO results dicts (``image_id``, ``category_id``, ``bbox``, ``score``); assumes valid records."""
        records = list(records)
        if not records:
            return cls.empty()
        return cls(
            [r["image_id"] for r in records],
            [r["category_id"] for r in records],
            [r["bbox"] for r in records],
            [r["score"] for r in records],
        )

    def to_coco(self, decimals: int | None = None) -> list[dict]:
        """COCO results dicts (plain Python numbers); ``decimals`` rounds boxes (scores get 2 more digits)."""

        def r(v: float, d: int | None) -> float:
            return float(v) if d is None else round(float(v), d)

        sd = None if decimals is None else decimals + 2
        return [
            {"image_id": int(i), "category_id": int(c), "bbox": [r(v, decimals) for v in b], "score": r(s, sd)}
            for i, c, b, s in zip(self.image_id.tolist(), self.category_id.tolist(), self.bbox.tolist(), self.score.tolist())
        ]

    def select(self, mask_or_index: np.ndarray) -> "Detections":
        """Rows selected by a boolean mask or an index array."""
        m = mask_or_index
        return Detections(self.image_id[m], self.category_id[m], self.bbox[m], self.score[m])

    def topk_per_image(self, k: int) -> "Detections":
        """The ``k`` highest-scored rows of each image (no NMS), vectorized."""
        if len(self) == 0:
            return self
        order = np.lexsort((-self.score, self.image_id))  # by image, then score descending
        img = self.image_id[order]
        first = np.r_[0, np.flatnonzero(np.diff(img)) + 1]  # (num_images,) start of each image's run
        rank = np.arange(len(img)) - np.repeat(first, np.diff(np.r_[first, len(img)]))  # (N,) rank within image
        return self.select(np.sort(order[rank < k]))

    def save_npz(self, path) -> None:
        """Write to ``path`` (``.npz``) atomically."""
        from alignrank.io import atomic_write_npz

        atomic_write_npz(path, image_id=self.image_id, category_id=self.category_id,
                         bbox=self.bbox.astype(np.float32), score=self.score.astype(np.float32))

    @classmethod
    def load_npz(cls, path) -> "Detections":
        """Read a file written by :meth:`save_npz`."""
        with np.load(path) as z:
            return cls(z["image_id"], z["category_id"], z["bbox"], z["score"])


@dataclass
class GroundTruth:
    """Ground truth of a COCO instances JSON as flat arrays.

    Attributes:
        image_ids: (I,) int64 all image ids of the split (images without boxes included).
        category_ids: (C,) int64 all category ids.
        image_id: (G,) int64 image of each annotation.
        category_id: (G,) int64 category of each annotation.
        bbox: (G, 4) float64 ``xywh``.
        iscrowd: (G,) bool crowd regions (ignored as pycocotools ignores them).
        area: (G,) float64 the annotation's ``area`` field (COCO: mask area; used for S/M/L).
        ann_id: (G,) int64 annotation ids.
    """

    image_ids: np.ndarray
    category_ids: np.ndarray
    image_id: np.ndarray
    category_id: np.ndarray
    bbox: np.ndarray
    iscrowd: np.ndarray
    area: np.ndarray
    ann_id: np.ndarray

    def __len__(self) -> int:
        return len(self.image_id)

    @classmethod
    def from_coco(cls, dataset: Mapping) -> "GroundTruth":
        """From a COCO instances dict (``images``, ``annotations``, ``categories``)."""
        anns = list(dataset.get("annotations") or [])

        def col(key, default, dtype):
            return np.asarray([a.get(key, default) for a in anns], dtype=dtype)

        bbox = np.asarray([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
        area = np.asarray([a.get("area", a["bbox"][2] * a["bbox"][3]) for a in anns], dtype=np.float64)
        return cls(
            image_ids=np.asarray([im["id"] for im in dataset.get("images") or []], dtype=np.int64),
            category_ids=np.asarray([c["id"] for c in dataset.get("categories") or []], dtype=np.int64),
            image_id=col("image_id", -1, np.int64),
            category_id=col("category_id", -1, np.int64),
            bbox=bbox,
            iscrowd=col("iscrowd", 0, np.int64).astype(bool),
            area=area,
            ann_id=col("id", 0, np.int64),
        )


def group_slices(keys: np.ndarray) -> dict[int, np.ndarray]:
    """Indices of each distinct key: ``{key: index array}`` (one ``argsort``, no Python scan of rows)."""
    keys = np.asarray(keys)
    if len(keys) == 0:
        return {}
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    cuts = np.flatnonzero(np.diff(k)) + 1
    return {int(g[0]): idx for g, idx in zip(np.split(k, cuts), np.split(order, cuts))}
