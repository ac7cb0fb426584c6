"""Shape classes of the synthetic dataset: binary masks drawn with OpenCV (sub-pixel, vectorized).

Each class is a small factory registered in :data:`SHAPES` (name -> mask drawer). A drawer paints
one filled shape of bounding side ``size`` px, rotated by ``angle`` radians, centred in a square
``uint8`` canvas, and returns the canvas (1 inside, 0 outside). The COCO category ids are
official-style and NON-contiguous (:data:`CATEGORY_IDS`), so the id -> index mapping is exercised
exactly as on real COCO.

Examples:
    >>> m = draw_mask("ring", size=40.0, angle=0.0)
    >>> m.shape, m.dtype.name, int(m[m.shape[0] // 2, m.shape[1] // 2])   # the ring's hole
    ((63, 63), 'uint8', 0)
    >>> list(SHAPES)[:3]
    ['circle', 'square', 'triangle']
"""

from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np

SHIFT = 4  # OpenCV fixed-point bits: coordinates are drawn at 1/16 px
ONE = 1 << SHIFT

#: official-style, non-contiguous COCO category ids of the shape classes, in class order
CATEGORY_IDS = (1, 2, 3, 5, 7, 9, 11, 13)

MaskFn = Callable[[np.ndarray, float, float, float, float], None]
SHAPES: dict[str, MaskFn] = {}


def register_shape(name: str) -> Callable[[MaskFn], MaskFn]:
    """Register a mask drawer ``fn(canvas, cx, cy, radius, angle)`` under ``name``."""

    def deco(fn: MaskFn) -> MaskFn:
        SHAPES[name] = fn
        return fn

    return deco


def _poly(canvas: np.ndarray, cx: float, cy: float, pts: np.ndarray, angle: float) -> None:
    """Fill polygon ``pts`` (N, 2) given around the origin, rotated by ``angle``, at (cx, cy)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    xy = pts @ rot.T + (cx, cy)  # (N, 2) canvas coordinates
    cv2.fillPoly(canvas, [np.round(xy * ONE).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=SHIFT)


def _regular(n: int, r: float, phase: float = 0.0) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)  # (n, 2)


def _ellipse(canvas: np.ndarray, cx: float, cy: float, ax: float, ay: float, angle: float, value: int = 1) -> None:
    center = (int(round(cx * ONE)), int(round(cy * ONE)))
    axes = (max(1, int(round(ax * ONE))), max(1, int(round(ay * ONE))))
    cv2.ellipse(canvas, center, axes, math.degrees(angle), 0, 360, value, -1, cv2.LINE_8, SHIFT)


@register_shape("circle")
def _circle(canvas, cx, cy, r, angle):
    _ellipse(canvas, cx, cy, r, r, 0.0)


@register_shape("square")
def _square(canvas, cx, cy, r, angle):
    h = r / math.sqrt(2) * 1.15  # half side; a rotated square stays inside the canvas
    _poly(canvas, cx, cy, np.array([[-h, -h], [h, -h], [h, h], [-h, h]]), angle)


@register_shape("triangle")
def _triangle(canvas, cx, cy, r, angle):
    _poly(canvas, cx, cy, _regular(3, r, -np.pi / 2), angle)


@register_shape("star")
def _star(canvas, cx, cy, r, angle):
    outer, inner = _regular(5, r, -np.pi / 2), _regular(5, 0.45 * r, -np.pi / 2 + np.pi / 5)
    pts = np.stack([outer, inner], 1).reshape(10, 2)  # (5, 2, 2) -> (10, 2) alternating tips/valleys
    _poly(canvas, cx, cy, pts, angle)


@register_shape("cross")
def _cross(canvas, cx, cy, r, angle):
    a, w = r * 0.95, r * 0.32
    pts = np.array([[-w, -a], [w, -a], [w, -w], [a, -w], [a, w], [w, w],
                    [w, a], [-w, a], [-w, w], [-a, w], [-a, -w], [-w, -w]])  # (12, 2) plus sign
    _poly(canvas, cx, cy, pts, angle)


@register_shape("ring")
def _ring(canvas, cx, cy, r, angle):
    _ellipse(canvas, cx, cy, r, r, 0.0)
    _ellipse(canvas, cx, cy, 0.55 * r, 0.55 * r, 0.0, value=0)


@register_shape("ellipse")
def _ellipse_shape(canvas, cx, cy, r, angle):
    _ellipse(canvas, cx, cy, r, r / 2.0, angle)


@register_shape("hexagon")
def _hexagon(canvas, cx, cy, r, angle):
    _poly(canvas, cx, cy, _regular(6, r), angle)


def canvas_side(size: float) -> int:
    """Side of the square canvas that holds a shape of bounding side ``size`` at any rotation."""
    return int(math.ceil(size * 1.5)) + 3


def draw_mask(name: str, *, size: float, angle: float) -> np.ndarray:
    """Mask of one shape of bounding side ``size`` px rotated by ``angle``, centred in its canvas.

    Args:
        name: A registered shape (see :data:`SHAPES`).
        size: Diameter of the shape's circumscribed circle, in pixels.
        angle: Rotation in radians.

    Returns:
        ``uint8`` array (S, S), 1 inside the shape, with ``S = canvas_side(size)``.
    """
    side = canvas_side(size)
    canvas = np.zeros((side, side), np.uint8)
    c = (side - 1) / 2.0
    SHAPES[name](canvas, c, c, size / 2.0, angle)
    return canvas
