"""Cross-scale sparse deformable sampling (paper eq. 1).

For every location ``p`` of level ``l`` a shallow conv predicts, for each source level
``l' in {l-1, l, l+1}`` that exists, ``K`` offsets ``dp_k`` (in the source level's own pixels) and
``K`` weights; the output is ``y_l(p) = sum_l' sum_k w_k * z_l'(pi_l->l'(p) + dp_k)`` with bilinear
samples (``grid_sample``'s ``align_corners=False`` bilinear with zero padding: a point off the map contributes 0).
Location ``p`` of level ``l`` maps into level ``l'`` with the pixel-centre convention
``pi(p) = (p + 0.5) * s_l / s_l' - 0.5``. The weights are one softmax over all ``sum_l' K`` points.

How it runs: a bilinear sample is a weighted sum of 4 pixels, so ``y_l(p)`` is one weighted sum of
``4 * sum_l' K`` pixel rows of the projected levels. Each projected level is zero-padded by
``P = ceil(R + 0.5) + 1`` pixels (``R`` = ``offset_range``: no tap of an in-range point can leave the
padded map, so no masks or clamps are needed and off-map taps read the zeros of ``grid_sample``'s
zero padding), the levels are stacked into one pixel table ``(B * rows, c)``, and every location is one
bag of ``F.embedding_bag`` (``mode="sum"``, ``per_sample_weights`` = bilinear weight x point weight), one
call per level, each tap reading ``c`` contiguous floats, forward and backward (the whole sampler
measured ~2x faster on CPU than one ``grid_sample`` per source level). In ONNX export the same sum is
``Gather`` + a batched ``MatMul`` (ONNX has no weighted embedding bag). :func:`sample_weighted`
(``grid_sample``) is the reference the tests hold this to.

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


def bilinear_taps(px: torch.Tensor, py: torch.Tensor, w_pad: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 4 pixels and weights of bilinear samples in a row-major map ``w_pad`` pixels wide.

    Args:
        px, py: Equal-shape float coordinates in the map's pixels (pixel centres at integers); the caller keeps
            every tap inside the map (the sampler pads its levels for that).
        w_pad: Map width (an int or a tensor broadcasting against ``px``: one width per source).

    Returns:
        ``idx`` (..., 4) integer-valued float pixel indices and ``w`` (..., 4) weights, taps ordered
        (y0 x0, y0 x1, y1 x0, y1 x1). Gradients reach ``px``/``py`` through the weights, as in ``grid_sample``.

    Examples:
        >>> idx, w = bilinear_taps(torch.tensor([0.25]), torch.tensor([1.0]), 3)
        >>> idx.tolist(), w.tolist()
        ([[3.0, 4.0, 6.0, 7.0]], [[0.75, 0.25, 0.0, 0.0]])
    """
    x0, y0 = px.floor(), py.floor()
    fx, fy = px - x0, py - y0  # fractions, differentiable in px / py
    i00 = y0 * w_pad + x0  # (...)
    idx = torch.stack((i00, i00 + 1, i00 + w_pad, i00 + w_pad + 1), -1)  # (..., 4)
    gx, gy = 1 - fx, 1 - fy
    return idx, torch.stack((gx * gy, fx * gy, gx * fy, fx * fy), -1)  # (..., 4) each


def gather_sum(table: torch.Tensor, idx: Sequence[torch.Tensor], weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Weighted sums of table rows, one bag per row of ``idx[i]``: ``out_i[n] = sum_t weights_i[n, t] table[idx_i[n, t]]``.

    ``F.embedding_bag`` (``mode="sum"``, ``per_sample_weights``) per group; in ONNX export ``Gather`` then a
    batched ``MatMul`` ``(N, 1, T) @ (N, T, c)`` (ONNX has no weighted embedding bag; in ONNX Runtime this
    measured ~1.8x faster than ``Mul`` + ``ReduceSum`` and ~1.6x faster than ``GridSample``).

    Args:
        table: (R, c) contiguous rows.
        idx: Per group (N_i, T_i) integer row indices.
        weights: Per group (N_i, T_i) weights.

    Returns:
        Per group (N_i, c).

    Examples:
        >>> t = torch.eye(3)
        >>> gather_sum(t, [torch.tensor([[0, 2]])], [torch.tensor([[0.5, 2.0]])])[0].tolist()
        [[0.5, 0.0, 2.0]]
    """
    weights = [w.to(table.dtype) for w in weights]
    if torch.onnx.is_in_onnx_export():
        return [torch.matmul(w.unsqueeze(1), table[i]).squeeze(1) for i, w in zip(idx, weights)]  # (N, 1, c) -> (N, c)
    return [F.embedding_bag(i, table, mode="sum", per_sample_weights=w) for i, w in zip(idx, weights)]  # (N, c) each


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
        pred: Per level, depthwise 3x3 Conv-BN then a bias-free, zero-initialised 1x1 conv to ``S*K*2`` raw
            offsets + ``S*K`` logits (``S`` = number of source levels of that level).
        ring_raw: (K, 2) buffer, the initial ring as raw offsets (``R atanh(ring / R)``), added to every
            source's raw offsets: the pattern is a constant, not a learned bias, because ultralytics trains
            biases at ``warmup_bias_lr`` (0.1) during warm-up, which scrambled it while the re-entry was still
            ~zero (Adam takes full-size steps on tiny gradients).
        sources: Source levels of each level.
    """

    def __init__(self, ch: Sequence[int], c: int, points: int = 4, offset_range: float = 4.0, ring: float = 1.0,
                 bias: bool = False) -> None:
        super().__init__()
        nl = len(ch)
        self.c, self.points, self.offset_range = c, points, float(offset_range)
        self.ring = min(ring, 0.5 * self.offset_range)
        self.pad = math.ceil(self.offset_range + 0.5) + 1  # zero border of each level in the pixel table
        self.sources = [tuple(j for j in (i - 1, i, i + 1) if 0 <= j < nl) for i in range(nl)]
        self.proj = nn.ModuleList(Conv(x, c, 1) for x in ch)
        self.pred = nn.ModuleList(
            nn.Sequential(Conv(c, c, 3, g=c, act=False), nn.Conv2d(c, 3 * points * len(src), 1, bias=bias))
            for src in self.sources
        )
        self.register_buffer("ring_raw", torch.zeros(points, 2))
        self.reset_offsets()

    def reset_offsets(self) -> None:
        """Zero-weight offset convs: the ring pattern in every source, uniform point weights.

        With biased offset convs (``bias=True``, the diagnostic form) the ring is their bias, as before the
        constant buffer, and the buffer stays zero.
        """
        r = self.offset_range
        raw = r * torch.atanh(ring_offsets(self.points, self.ring) / r)  # (K, 2): R tanh(raw / R) = ring
        with torch.no_grad():
            for head, src in zip(self.pred, self.sources):
                last = head[-1]
                nn.init.zeros_(last.weight)
                if last.bias is not None:
                    last.bias.zero_()
                    last.bias[: 2 * self.points * len(src)] = raw.flatten().repeat(len(src))  # (S*K*2,) ordered (s, k, xy)
            self.ring_raw.copy_(torch.zeros_like(raw) if self.pred[0][-1].bias is not None else raw)

    def forward(self, x: Sequence[torch.Tensor], strides: Sequence[float]) -> list[torch.Tensor]:
        """Sample every level from its neighbours.

        Args:
            x: Per level (B, C_l, H_l, W_l) features.
            strides: Per level stride (only the ratios matter).

        Returns:
            Per level (B, c, H_l, W_l) weighted sums of the samples.
        """
        z = [p(xi) for p, xi in zip(self.proj, x)]  # per level (B, c, H_l, W_l)
        b, c = z[0].shape[:2]
        hw = [(t.shape[2], t.shape[3]) for t in z]
        pad = self.pad
        wp = [w + 2 * pad for _, w in hw]  # padded widths
        first = [0]  # first table row of each padded level
        for (h, _), w2 in zip(hw[:-1], wp[:-1]):
            first.append(first[-1] + (h + 2 * pad) * w2)
        rows = first[-1] + (hw[-1][0] + 2 * pad) * wp[-1]  # table rows per image
        padded = [F.pad(t, (pad, pad, pad, pad)).flatten(2) for t in z]  # per level (B, c, Hp*Wp), zero border
        table = torch.cat(padded, 2).transpose(1, 2).reshape(b * rows, c).contiguous()  # (B*rows, c): contiguous rows
        image = (torch.arange(b, device=table.device) * rows).view(b, 1, 1, 1)  # (B, 1, 1, 1): first row per image
        cdt = torch.promote_types(table.dtype, torch.float32)  # coordinates: fp32 also for fp16/bf16 models
        lim = self.offset_range + 0.5  # |base - inside| <= 0.5 and |dp| < R: keeps every tap in the padding
        idx, wts = [], []
        for i, (head, src) in enumerate(zip(self.pred, self.sources)):
            h, w = hw[i]
            s, k = len(src), self.points
            o = head(z[i]).to(cdt).permute(0, 2, 3, 1)  # (B, H, W, S*K*3)
            off = o[..., : 2 * s * k].reshape(b, h, w, s, k, 2) + self.ring_raw.to(cdt)  # (B, H, W, S, K, xy)
            off = self.offset_range * torch.tanh(off / self.offset_range)  # |dp| <= R per axis
            pw = o[..., 2 * s * k :].softmax(-1).reshape(b, h, w, s, k, 1)  # one softmax over the S*K points
            kw = {"device": o.device, "dtype": o.dtype}
            ratio = torch.tensor([strides[i] / strides[j] for j in src], **kw)  # (S,): s_l / s_l'
            bx = (torch.arange(w, **kw).view(w, 1) + 0.5) * ratio - 0.5 + pad  # (W, S): padded source pixels
            by = (torch.arange(h, **kw).view(h, 1) + 0.5) * ratio - 0.5 + pad  # (H, S)
            hi = torch.tensor([[hw[j][1], hw[j][0]] for j in src], **kw).view(s, 1, 2) + (pad - 1 + lim)  # (S, 1, xy)
            pxy = torch.minimum((off + torch.stack(torch.broadcast_tensors(bx.view(1, 1, w, s, 1),
                                                                           by.view(1, h, 1, s, 1)), -1))
                                .clamp(min=pad - lim), hi)  # (B, H, W, S, K, xy); a no-op guard for in-range points
            w_src = torch.tensor([wp[j] for j in src], **kw).view(s, 1)  # (S, 1)
            t_idx, t_w = bilinear_taps(pxy[..., 0], pxy[..., 1], w_src)  # (B, H, W, S, K, 4) each
            base = torch.tensor([first[j] for j in src], **kw).view(s, 1, 1)  # (S, 1, 1): first row of each source
            t_idx = (t_idx + base).long().view(b, h, w, s * k * 4) + image  # (B, H, W, S*K*4) table rows
            idx.append(t_idx.view(b * h * w, s * k * 4))  # one bag per location, bag-major
            wts.append((t_w * pw).view(b * h * w, s * k * 4))
        out = gather_sum(table, idx, wts)  # per level (B*H*W, c)
        # per level (B, c, H, W), made contiguous: a channels-last result would propagate through BCDM and the
        # re-entry into the stock branches' convs (measured slower there, forward and backward)
        return [y.view(b, h, w, c).permute(0, 3, 1, 2).contiguous() for y, (h, w) in zip(out, hw)]
