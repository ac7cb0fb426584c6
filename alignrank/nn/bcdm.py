"""BCDM: bidirectional cross-level fusion with gated top-down, bottom-up and self paths (paper eq. 2).

``y~_l = g_down * phi_down(Up(y_{l+1})) + g_up * phi_up(Down(y_{l-1})) + g_self * phi_self(y_l)``

* ``phi`` = 1x1 Conv-BN (reduction ``c -> c / model.bcdm_reduction``) then a 3x3 depthwise Conv-BN-SiLU.
* ``Up`` = nearest x2 then crop to the finer level's size (pixel ``i`` reads ``i // 2``); the 1x1 of
  ``phi_down`` runs before it, at the coarse resolution (a 1x1 conv commutes with nearest upsampling).
* ``Down`` = the stride 2 of ``phi_up``'s depthwise conv (k3 s2 p1: the coarser level's size for any input,
  exactly as YOLO's own downsampling convs).
* Gates ``g`` in (0, 1): ``sigmoid`` of a 1x1 conv over the concatenated paths, one gate per path, channel
  and location.
* The neighbour terms read the neighbours' inputs ``y_{l+-1}`` (one parallel pass): read literally,
  eq. 2 is circular (``y~_l`` needs ``y~_{l+1}``, which needs ``y~_l``).
* Levels without a neighbour (the finest has no bottom-up, the coarsest no top-down path) use the
  paths they have.

Examples:
    >>> m = BCDM(c=16, reduction=4, nl=3)
    >>> y = [torch.randn(2, 16, 13, 9), torch.randn(2, 16, 7, 5), torch.randn(2, 16, 4, 3)]
    >>> [tuple(t.shape) for t in m(y)]
    [(2, 4, 13, 9), (2, 4, 7, 5), (2, 4, 4, 3)]
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.nn.modules import Conv


class Phi(nn.Module):
    """``phi``: 1x1 Conv-BN reduction, optional nearest x2 up, 3x3 depthwise Conv-BN-SiLU (stride 1 or 2).

    Args:
        c1: Input channels.
        c2: Output channels.
        up: Upsample x2 (to ``size``) between the 1x1 and the depthwise conv (top-down path).
        stride: Stride of the depthwise conv (2 on the bottom-up path).
    """

    def __init__(self, c1: int, c2: int, up: bool = False, stride: int = 1) -> None:
        super().__init__()
        self.up = up
        self.pw = Conv(c1, c2, 1, act=False)
        self.dw = Conv(c2, c2, 3, s=stride, g=c2)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Map ``x`` to the target level of spatial ``size`` (H, W)."""
        x = self.pw(x)  # (B, c2, h, w)
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")[..., : size[0], : size[1]]  # (B, c2, H, W)
        return self.dw(x)  # (B, c2, H, W)


class BCDM(nn.Module):
    """Gated bidirectional cross-level fusion over ``nl`` levels of equal width ``c``.

    Args:
        c: Width of every input level.
        reduction: ``phi``'s channel reduction (``model.bcdm_reduction``); output width ``cb = max(4, c // reduction)``.
        nl: Number of levels (finest first).

    Attributes:
        cb: Output width.
        self_path, top_down, bottom_up: ``Phi`` per level (``top_down[l]`` reads level l+1,
            ``bottom_up[l]`` reads level l-1; ``None`` where the neighbour does not exist).
        gate: Per level 1x1 conv producing the gate logits of its paths.
    """

    def __init__(self, c: int, reduction: int = 4, nl: int = 3) -> None:
        super().__init__()
        self.nl = nl
        self.cb = cb = max(4, c // reduction)
        self.self_path = nn.ModuleList(Phi(c, cb) for _ in range(nl))
        self.top_down = nn.ModuleList(Phi(c, cb, up=True) if i + 1 < nl else nn.Identity() for i in range(nl))
        self.bottom_up = nn.ModuleList(Phi(c, cb, stride=2) if i > 0 else nn.Identity() for i in range(nl))
        self.npaths = [1 + (i + 1 < nl) + (i > 0) for i in range(nl)]
        self.gate = nn.ModuleList(nn.Conv2d(n * cb, n * cb, 1) for n in self.npaths)

    def forward(self, y: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Fuse: per level (B, c, H_l, W_l) -> per level (B, cb, H_l, W_l)."""
        out = []
        for i in range(self.nl):
            size = (y[i].shape[2], y[i].shape[3])
            paths = [self.self_path[i](y[i], size)]  # each (B, cb, H, W)
            if i + 1 < self.nl:
                paths.append(self.top_down[i](y[i + 1], size))
            if i > 0:
                paths.append(self.bottom_up[i](y[i - 1], size))
            a = torch.cat(paths, 1)  # (B, n*cb, H, W)
            g = torch.sigmoid(self.gate[i](a))  # (B, n*cb, H, W) gates in (0, 1)
            out.append((g * a).view(a.shape[0], len(paths), self.cb, *size).sum(1))  # (B, cb, H, W)
        return out
