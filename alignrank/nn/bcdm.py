"""BCDM: bidirectional cross-level fusion with gated top-down, bottom-up and self paths (paper eq. 2).

``y~_l = g_down * phi_down(Up(y~_{l+1})) + g_up * phi_up(Down(y~_{l-1})) + g_self * phi_self(y_l)``

* ``phi`` = 1x1 Conv-BN then a 3x3 depthwise Conv-BN-SiLU; ``phi_self`` reduces ``c -> cb = c / model.bcdm_reduction``.
* ``Up`` = nearest x2 then crop to the finer level's size (pixel ``i`` reads ``i // 2``); the 1x1 of
  ``phi_down`` runs before it, at the coarse resolution (a 1x1 conv commutes with nearest upsampling).
* ``Down`` = the stride 2 of ``phi_up``'s depthwise conv (k3 s2 p1: the coarser level's size for any input,
  exactly as YOLO's own downsampling convs).
* Gates ``g`` in (0, 1): ``sigmoid`` of a 1x1 conv over the concatenated paths, one gate per path, channel
  and location.
* Levels without a neighbour (the finest has no bottom-up, the coarsest no top-down path) use the
  paths they have.

Read literally, eq. 2 is circular (``y~_l`` needs ``y~_{l+1}``, which needs ``y~_l``). ``model.bcdm_mode``
picks the reading:

* ``two_pass`` (default; the PANet / BiFPN order): a top-down pass, coarsest level first,
  ``t_l = g_self * phi_self(y_l) + g_down * phi_down(Up(t_{l+1}))``, then a bottom-up pass, finest level
  first, ``y~_l = t_l + g_up * phi_up(Down(y~_{l-1}))``. Expanded, ``y~_l`` is eq. 2's gated three-term sum
  whose top-down input is the top-down-fused level above and whose bottom-up input is the finished level
  below, so every output level depends on every input level. The neighbour paths read the ``cb``-wide
  fused maps (``phi_down``/``phi_up``: ``cb -> cb``); ``gate[l]`` gates the self and top-down paths,
  ``gate_up[l]`` the bottom-up path (from ``[t_l, bottom-up path]``).
* ``one_pass``: every level in parallel from its neighbours' inputs ``y_{l+-1}``
  (``phi_down``/``phi_up``: ``c -> cb``; one gate conv over the three paths).

Examples:
    >>> m = BCDM(c=16, reduction=4, nl=3)
    >>> y = [torch.randn(2, 16, 13, 9), torch.randn(2, 16, 7, 5), torch.randn(2, 16, 4, 3)]
    >>> [tuple(t.shape) for t in m(y)]
    [(2, 4, 13, 9), (2, 4, 7, 5), (2, 4, 4, 3)]
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from ultralytics.nn.modules import Conv

BCDM_MODES = ("two_pass", "one_pass")


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


def gated_sum(gate: nn.Module, paths: list[torch.Tensor]) -> torch.Tensor:
    """``sum_i sigmoid(gate([p_1..p_n]))_i * p_i``: paths n x (B, cb, H, W) -> (B, cb, H, W)."""
    a = torch.cat(paths, 1)  # (B, n*cb, H, W)
    g = torch.sigmoid(gate(a))  # (B, n*cb, H, W): gates in (0, 1)
    return (g * a).unflatten(1, (len(paths), -1)).sum(1)  # (B, n, cb, H, W) -> (B, cb, H, W)


class BCDM(nn.Module):
    """Gated bidirectional cross-level fusion over ``nl`` levels of equal width ``c``.

    Args:
        c: Width of every input level.
        reduction: ``phi``'s channel reduction (``model.bcdm_reduction``); output width ``cb = max(4, c // reduction)``.
        nl: Number of levels (finest first).
        mode: ``two_pass`` (recursive: top-down then bottom-up) or ``one_pass`` (``model.bcdm_mode``).

    Attributes:
        cb: Output width.
        self_path, top_down, bottom_up: ``Phi`` per level (``top_down[l]`` reads level l+1,
            ``bottom_up[l]`` reads level l-1; ``Identity`` where the neighbour does not exist).
        gate: Per level 1x1 conv producing the gate logits of its paths (two_pass: self and top-down).
        gate_up: two_pass only: per level 1x1 conv ``[t_l, bottom-up path] -> g_up`` (``Identity`` at level 0).
    """

    def __init__(self, c: int, reduction: int = 4, nl: int = 3, mode: Literal["two_pass", "one_pass"] = "two_pass") -> None:
        super().__init__()
        if mode not in BCDM_MODES:
            raise ValueError(f"BCDM: mode must be one of {BCDM_MODES}, got '{mode}'")
        self.nl, self.mode = nl, mode
        self.cb = cb = max(4, c // reduction)
        cn = cb if mode == "two_pass" else c  # width the neighbour paths read
        self.self_path = nn.ModuleList(Phi(c, cb) for _ in range(nl))
        self.top_down = nn.ModuleList(Phi(cn, cb, up=True) if i + 1 < nl else nn.Identity() for i in range(nl))
        self.bottom_up = nn.ModuleList(Phi(cn, cb, stride=2) if i > 0 else nn.Identity() for i in range(nl))
        if mode == "one_pass":
            self.npaths = [1 + (i + 1 < nl) + (i > 0) for i in range(nl)]
            self.gate = nn.ModuleList(nn.Conv2d(n * cb, n * cb, 1) for n in self.npaths)
        else:
            self.npaths = [1 + (i + 1 < nl) for i in range(nl)]  # top-down pass: self (+ top-down)
            self.gate = nn.ModuleList(nn.Conv2d(n * cb, n * cb, 1) for n in self.npaths)
            self.gate_up = nn.ModuleList(nn.Conv2d(2 * cb, cb, 1) if i > 0 else nn.Identity() for i in range(nl))

    def forward(self, y: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Fuse: per level (B, c, H_l, W_l) -> per level (B, cb, H_l, W_l)."""
        return self._two_pass(y) if self.mode == "two_pass" else self._one_pass(y)

    def _one_pass(self, y: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i in range(self.nl):
            size = (y[i].shape[2], y[i].shape[3])
            paths = [self.self_path[i](y[i], size)]  # each (B, cb, H, W)
            if i + 1 < self.nl:
                paths.append(self.top_down[i](y[i + 1], size))
            if i > 0:
                paths.append(self.bottom_up[i](y[i - 1], size))
            out.append(gated_sum(self.gate[i], paths))  # (B, cb, H, W)
        return out

    def _two_pass(self, y: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        sizes = [(t.shape[2], t.shape[3]) for t in y]
        td: list[torch.Tensor] = [y[0]] * self.nl  # placeholders, every entry overwritten below
        for i in reversed(range(self.nl)):  # top-down pass: coarsest first
            paths = [self.self_path[i](y[i], sizes[i])]  # (B, cb, H, W)
            if i + 1 < self.nl:
                paths.append(self.top_down[i](td[i + 1], sizes[i]))  # reads the top-down result above
            td[i] = gated_sum(self.gate[i], paths)  # (B, cb, H, W)
        out = [td[0]]
        for i in range(1, self.nl):  # bottom-up pass: finest first
            up = self.bottom_up[i](out[i - 1], sizes[i])  # reads the finished level below, (B, cb, H, W)
            g = torch.sigmoid(self.gate_up[i](torch.cat((td[i], up), 1)))  # (B, cb, H, W) in (0, 1)
            out.append(td[i] + g * up)  # (B, cb, H, W)
        return out
