"""Quality-prior dynamic convolution (paper eq. 3): ``W = sum_m alpha_m(q_l) W_m``, one conv per batch.

A :class:`KernelRouter` turns a level's feature map into a quality prior ``q_l = MLP(GAP(x))`` and
mixing weights ``alpha = softmax(q_l)`` over the ``M`` base kernels of each :class:`DynConv2d` it
drives. :class:`DynConv2d` blends its base kernels per image with one matrix product
(``B x M @ M x |W|``, the only extra work over a static conv) and runs all images in ONE grouped
convolution (``groups=B``): never ``M`` convolutions summed.

Examples:
    >>> router, conv = KernelRouter(32, hidden=16, kernels=4, outputs=1), DynConv2d(32, 8, k=1, kernels=4)
    >>> x = torch.randn(2, 32, 10, 12)
    >>> (alpha,) = router(x)
    >>> alpha.shape, conv(x, alpha).shape
    (torch.Size([2, 4]), torch.Size([2, 8, 10, 12]))
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class KernelRouter(nn.Module):
    """Quality prior ``q = MLP(GAP(x))`` and one ``softmax`` over ``M`` kernels per driven conv.

    Args:
        c1: Channels of the routed feature map.
        hidden: Hidden width of the MLP (``model.dyn_hidden``).
        kernels: Number ``M`` of base kernels per dynamic conv (``model.dyn_kernels``).
        outputs: Number of dynamic convs driven (e.g. 2: classification and regression).

    Examples:
        >>> a_cls, a_reg = KernelRouter(64, 16, 4, outputs=2)(torch.randn(3, 64, 8, 8))
        >>> torch.allclose(a_cls.sum(1), torch.ones(3))
        True
    """

    def __init__(self, c1: int, hidden: int, kernels: int, outputs: int = 2) -> None:
        super().__init__()
        self.kernels, self.outputs = kernels, outputs
        self.fc1 = nn.Linear(c1, hidden)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(hidden, kernels * outputs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return ``outputs`` tensors of mixing weights, each (B, M) summing to 1."""
        q = self.act(self.fc1(x.mean((2, 3))))  # (B, C) -> (B, hidden): quality prior q_l
        logits = self.fc2(q).view(-1, self.outputs, self.kernels)  # (B, outputs, M)
        return tuple(logits.softmax(-1).unbind(1))  # outputs x (B, M)


class DynConv2d(nn.Module):
    """CondConv-style conv: ``M`` base kernels blended per image, run as one grouped conv.

    Args:
        c1: Input channels.
        c2: Output channels.
        k: Kernel size (odd; 'same' padding).
        kernels: Number ``M`` of base kernels.
        bias: Learn ``M`` base biases, blended like the kernels.

    Attributes:
        weight: (c2, M, c1*k*k) base kernels. Output channel first, so ultralytics' per-class row surgery
            (``bias_init``, class remapping on fine-tune) applies to every kernel; 3-D, so its channels_last
            conversion leaves it alone.
        bias: (c2, M) base biases (or None).
        in_channels, out_channels: As ``nn.Conv2d`` (read by ultralytics' checkpoint loading).

    Examples:
        >>> conv = DynConv2d(16, 8, k=3, kernels=4)
        >>> alpha = torch.softmax(torch.randn(2, 4), 1)
        >>> conv(torch.randn(2, 16, 5, 7), alpha).shape
        torch.Size([2, 8, 5, 7])
    """

    def __init__(self, c1: int, c2: int, k: int = 1, kernels: int = 4, bias: bool = True) -> None:
        super().__init__()
        if k % 2 != 1:
            raise ValueError(f"DynConv2d: kernel size must be odd for 'same' padding, got {k}")
        self.c1, self.c2, self.k, self.kernels = c1, c2, k, kernels
        self.in_channels, self.out_channels = c1, c2
        self.weight = nn.Parameter(torch.empty(c2, kernels, c1 * k * k))
        self.bias = nn.Parameter(torch.empty(c2, kernels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise every base kernel independently as ``nn.Conv2d`` does (CondConv)."""
        bound = 1 / math.sqrt(self.c1 * self.k * self.k)
        for m in range(self.kernels):
            nn.init.kaiming_uniform_(self.weight[:, m], a=math.sqrt(5))  # (c2, c1*k*k): fan_in = c1*k*k, as nn.Conv2d
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def blend(self, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-image kernels ``W_b = sum_m alpha_bm W_m`` and biases, shaped for a ``groups=B`` conv."""
        b = alpha.shape[0]
        alpha = alpha.to(self.weight.dtype)
        w = torch.einsum("bm,cmk->bck", alpha, self.weight)  # (B, c2, c1*k*k): a matmul, 2*B*M*|W| FLOPs
        w = w.reshape(b * self.c2, self.c1, self.k, self.k)  # (B*c2, c1, k, k)
        bias = None
        if self.bias is not None:
            bias = (alpha @ self.bias.t()).reshape(b * self.c2)  # (B, M) @ (M, c2) -> (B*c2,)
        return w, bias

    def forward(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Apply the blended kernels: x (B, c1, H, W), alpha (B, M) -> (B, c2, H, W)."""
        b, _, h, w_ = x.shape
        weight, bias = self.blend(alpha)
        y = F.conv2d(x.reshape(1, b * self.c1, h, w_), weight, bias, padding=self.k // 2, groups=b)  # (1, B*c2, H, W)
        return y.view(b, self.c2, h, w_)

    def extra_repr(self) -> str:
        return f"{self.c1}, {self.c2}, k={self.k}, kernels={self.kernels}, bias={self.bias is not None}"
