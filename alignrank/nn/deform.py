"""Cross-scale sparse deformable sampling (paper eq. 1).

For every location ``p`` of level ``l`` a shallow conv predicts, for each source level
``l' in {l-1, l, l+1}`` that exists, ``K`` offsets ``dp_k`` (in the source level's own pixels) and
``K`` weights; the output is ``y_l(p) = sum_l' sum_k w_k * z_l'(pi_l->l'(p) + dp_k)`` with bilinear
samples (``grid_sample``, ``align_corners=False``, zero padding: a point off the map contributes 0).
Location ``p`` of level ``l`` maps into level ``l'`` with the pixel-centre convention
``pi(p) = (p + 0.5) * s_l / s_l' - 0.5``. The weights are one softmax over all ``sum_l' K`` points.

Levels have different widths (128/256/512 at scale s), so each level is first projected to a
common thin width ``c`` by a 1x1 Conv-BN-SiLU (``z_l``) and sampled there: a sample then costs
``c`` channels whatever its level, and one projection serves the three levels that read it.

Examples:
    >>> s = CrossScaleSampler((16, 32, 64), c=8, points=4, offset_range=4.0)
    >>> x = [torch.randn(2, 16, 16, 12), torch.randn(2, 32, 8, 6), torch.randn(2, 64, 4, 3)]
    >>> [tuple(u.shape) for u in s(x, strides=(8.0, 16.0, 32.0))]
    [(2, 8, 16, 12), (2, 8, 8, 6), (2, 8, 4, 3)]
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.nn.modules import Conv


def base_grid(h: int, w: int, h_src: int, w_src: int, ratio: float, like: torch.Tensor) -> torch.Tensor:
    """Normalised ``grid_sample`` coordinates of the locations of an (h, w) level in an (h_src, w_src) level.

    Pixel ``j`` maps to ``x = (j + 0.5) * ratio - 0.5`` source pixels (``ratio = s_l / s_l'``); with
    ``align_corners=False`` the normalised coordinate is ``(2x + 1) / w_src - 1 = 2 (j + 0.5) ratio / w_src - 1``.

    Args:
        h, w: Size of the level whose locations are mapped.
        h_src, w_src: Size of the sampled level.
        ratio: Stride ratio ``s_l / s_l'``.
        like: Tensor giving the device; the grid is float32 (float64 for float64 ``like``), also for fp16 models.

    Returns:
        (1, 1, h, w, 2) grid, last axis (x, y).

    Examples:
        >>> g = base_grid(2, 2, 2, 2, 1.0, torch.zeros(1))
        >>> g[0, 0].tolist()
        [[[-0.5, -0.5], [0.5, -0.5]], [[-0.5, 0.5], [0.5, 0.5]]]
    """
    kw = {"device": like.device, "dtype": torch.promote_types(like.dtype, torch.float32)}
    xs = (torch.arange(w, **kw) + 0.5) * (2.0 * ratio / w_src) - 1.0  # (w,)
    ys = (torch.arange(h, **kw) + 0.5) * (2.0 * ratio / h_src) - 1.0  # (h,)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (h, w) each
    return torch.stack((gx, gy), -1).view(1, 1, h, w, 2)  # (1, 1, h, w, 2)


def sample_weighted(src: torch.Tensor, grid: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_k w_k src(grid + dp_k)`` with bilinear, zero-padded samples.

    The K points are laid out outermost (grid (B, K*H, W, 2)): the weighted sum then reduces a non-innermost
    axis, about 2.5x faster on CPU than reducing a trailing axis of size K.

    Args:
        src: (B, C, Hs, Ws) sampled level.
        grid: (1, 1, H, W, 2) normalised base positions (:func:`base_grid`).
        offsets: (B, K, H, W, 2) offsets (x, y) in source pixels.
        weights: (B, K, H, W) weights of the points.

    Returns:
        (B, C, H, W) weighted sum of the samples.

    Examples:
        >>> src = torch.arange(4.0).view(1, 1, 2, 2)
        >>> g = base_grid(2, 2, 2, 2, 1.0, src)
        >>> off = torch.zeros(1, 1, 2, 2, 2); off[..., 0] = 1.0  # one pixel to the right
        >>> sample_weighted(src, g, off, torch.ones(1, 1, 2, 2))[0, 0].tolist()  # right column falls off: 0
        [[1.0, 0.0], [3.0, 0.0]]
    """
    b, c, hs, ws = src.shape
    _, k, h, w, _ = offsets.shape
    scale = torch.tensor([2.0 / ws, 2.0 / hs], device=src.device, dtype=grid.dtype)  # pixels -> normalised
    pos = (grid + offsets.to(grid.dtype) * scale).reshape(b, k * h, w, 2)  # (B, K*H, W, 2), fp32 coordinates
    s = F.grid_sample(src, pos.to(src.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)  # (B, C, K*H, W)
    s = s.view(b, c, k, h, w)  # (B, C, K, H, W)
    return (s * weights.unsqueeze(1).to(s.dtype)).sum(2)  # (B, C, H, W)


def ring_offsets(points: int, radius: float) -> torch.Tensor:
    """Initial pattern: ``K`` points evenly on a ring of ``radius`` pixels (the centre when K == 1).

    Examples:
        >>> ring_offsets(4, 1.0).round(decimals=3).tolist()
        [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [-0.0, -1.0]]
    """
    if points == 1:
        return torch.zeros(1, 2)
    t = torch.arange(points, dtype=torch.float64) * (2 * math.pi / points)
    return (radius * torch.stack((t.cos(), t.sin()), 1)).float()  # (K, 2)


class CrossScaleSampler(nn.Module):
    """Eq. 1: per level, ``K`` learned points in each of the levels ``l-1, l, l+1``, softmax-weighted.

    Args:
        ch: Input channels per level (finest first).
        c: Common width the levels are projected to and sampled in.
        points: ``K`` points per source level (``model.csd_points``).
        offset_range: Max offset magnitude per axis, source pixels (``model.csd_offset_range``);
            offsets are ``R * tanh(raw / R)``.
        ring: Radius (source pixels) of the initial ring of points.

    Attributes:
        proj: 1x1 Conv-BN-SiLU per level, ``C_l -> c``.
        pred: Per level, depthwise 3x3 Conv-BN then a 1x1 conv to ``S*K*2`` offsets + ``S*K`` logits
            (``S`` = number of source levels of that level).
        sources: Source levels of each level.
    """

    def __init__(self, ch: Sequence[int], c: int, points: int = 4, offset_range: float = 4.0, ring: float = 1.0) -> None:
        super().__init__()
        nl = len(ch)
        self.c, self.points, self.offset_range = c, points, float(offset_range)
        self.ring = min(ring, 0.5 * self.offset_range)
        self.sources = [tuple(j for j in (i - 1, i, i + 1) if 0 <= j < nl) for i in range(nl)]
        self.proj = nn.ModuleList(Conv(x, c, 1) for x in ch)
        self.pred = nn.ModuleList(
            nn.Sequential(Conv(c, c, 3, g=c, act=False), nn.Conv2d(c, 3 * points * len(src), 1)) for src in self.sources
        )
        self.reset_offsets()

    def reset_offsets(self) -> None:
        """Zero-weight offset convs whose biases give the ring pattern in every source and uniform weights."""
        r = self.offset_range
        raw = r * torch.atanh(ring_offsets(self.points, self.ring) / r)  # (K, 2): R tanh(raw / R) = ring
        for head, src in zip(self.pred, self.sources):
            last = head[-1]
            nn.init.zeros_(last.weight)
            with torch.no_grad():
                last.bias.zero_()
                last.bias[: 2 * self.points * len(src)] = raw.flatten().repeat(len(src))  # (S*K*2,) ordered (s, k, xy)

    def forward(self, x: Sequence[torch.Tensor], strides: Sequence[float]) -> list[torch.Tensor]:
        """Sample every level from its neighbours.

        Args:
            x: Per level (B, C_l, H_l, W_l) features.
            strides: Per level stride (only the ratios matter).

        Returns:
            Per level (B, c, H_l, W_l) weighted sums of the samples.
        """
        z = [p(xi) for p, xi in zip(self.proj, x)]  # per level (B, c, H_l, W_l)
        out = []
        for i, (head, src) in enumerate(zip(self.pred, self.sources)):
            b, _, h, w = z[i].shape
            s, k = len(src), self.points
            o = head(z[i])  # (B, S*K*3, H, W)
            off = o[:, : 2 * s * k].reshape(b, s, k, 2, h, w).permute(0, 1, 2, 4, 5, 3)  # (B, S, K, H, W, 2)
            off = self.offset_range * torch.tanh(off / self.offset_range)  # |dp| <= R per axis
            wts = o[:, 2 * s * k :].softmax(1).view(b, s, k, h, w)  # (B, S, K, H, W): one softmax over S*K points
            acc = None
            for j, lj in enumerate(src):
                zs = z[lj]
                grid = base_grid(h, w, zs.shape[2], zs.shape[3], strides[i] / strides[lj], off)  # (1, 1, H, W, 2)
                y = sample_weighted(zs, grid, off[:, j], wts[:, j])  # (B, c, H, W)
                acc = y if acc is None else acc + y
            out.append(acc)
        return out
