"""Quality-prior dynamic convolution (paper eq. 3): ``W = sum_m alpha_m(q_l) W_m``, one batched matmul.

A :class:`KernelRouter` turns a level's feature map into a quality prior ``q_l = MLP(GAP(x))`` and
mixing weights ``alpha = softmax(q_l)`` over the ``M`` base kernels of each :class:`DynConv2d` it
drives. :class:`DynConv2d` blends its base kernels per image with one matrix product
(``B x M @ M x |W|``, the only extra work over a static conv) and applies the per-image kernels as ONE
batched matrix product over the image's pixels (``torch.baddbmm``; im2col first for ``k > 1``): never
``M`` convolutions summed, and no convolution whose weight is a graph value, so the ONNX graph keeps a
dynamic batch axis.

Initialisation (``model.dyn_init``): ``shared`` (default) draws ONE kernel as ``nn.Conv2d`` does and
copies it into the ``M`` slots, so at initialisation the blended kernel equals a plain conv's kernel for
every ``alpha`` (same output variance, same bias init) and the kernels differ only by what training
writes into them; ``independent`` draws the ``M`` kernels independently (CondConv's choice), which
makes the blended kernel of an image a random mixture whose per-image part no shared gradient step
removes (see ``docs/fidelity.md``).

Examples:
    >>> router, conv = KernelRouter(32, hidden=16, kernels=4, outputs=1), DynConv2d(32, 8, k=1, kernels=4)
    >>> x = torch.randn(2, 32, 10, 12)
    >>> (alpha,) = router(x)
    >>> alpha.shape, conv(x, alpha).shape
    (torch.Size([2, 4]), torch.Size([2, 8, 10, 12]))
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

DYN_INITS = ("shared", "independent")


class KernelRouter(nn.Module):
    """Quality prior ``q = MLP(GAP(x))`` and one ``softmax`` over ``M`` kernels per driven conv.

    The MLP has no biases: ultralytics trains biases at ``warmup_bias_lr`` (0.1) during warm-up, and Adam's
    full-size steps on fc2's ~zero bias gradient drove alpha to one kernel for every image within ~15 steps
    (measured: max alpha 0.28 -> 0.97), a choice made by noise before the kernels had learned anything.

    Args:
        c1: Channels of the routed feature map.
        hidden: Hidden width of the MLP (``model.dyn_hidden``).
        kernels: Number ``M`` of base kernels per dynamic conv (``model.dyn_kernels``).
        outputs: Number of dynamic convs driven (e.g. 2: classification and regression).
        bias: Biases in the MLP (``model.csd_biased``; off by default, see above; on = the head before that fix,
            a diagnostic).

    Examples:
        >>> a_cls, a_reg = KernelRouter(64, 16, 4, outputs=2)(torch.randn(3, 64, 8, 8))
        >>> torch.allclose(a_cls.sum(1), torch.ones(3))
        True
    """

    def __init__(self, c1: int, hidden: int, kernels: int, outputs: int = 2, bias: bool = False) -> None:
        super().__init__()
        self.kernels, self.outputs = kernels, outputs
        self.fc1 = nn.Linear(c1, hidden, bias=bias)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(hidden, kernels * outputs, bias=bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return ``outputs`` tensors of mixing weights, each (B, M) summing to 1."""
        q = self.act(self.fc1(x.mean((2, 3))))  # (B, C) -> (B, hidden): quality prior q_l
        logits = self.fc2(q).view(-1, self.outputs, self.kernels)  # (B, outputs, M)
        return tuple(logits.softmax(-1).unbind(1))  # outputs x (B, M)


class DynConv2d(nn.Module):
    """CondConv-style conv: ``M`` base kernels blended per image, applied as one batched matmul.

    Args:
        c1: Input channels.
        c2: Output channels.
        k: Kernel size (odd; 'same' padding; ``k > 1`` goes through ``F.unfold``).
        kernels: Number ``M`` of base kernels.
        bias: Learn ``M`` base biases, blended like the kernels.
        init: ``shared`` (one draw copied into every slot) or ``independent`` (``model.dyn_init``).

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

    def __init__(
        self, c1: int, c2: int, k: int = 1, kernels: int = 4, bias: bool = True,
        init: Literal["shared", "independent"] = "shared",
    ) -> None:
        super().__init__()
        if k % 2 != 1:
            raise ValueError(f"DynConv2d: kernel size must be odd for 'same' padding, got {k}")
        if init not in DYN_INITS:
            raise ValueError(f"DynConv2d: init must be one of {DYN_INITS}, got '{init}'")
        self.c1, self.c2, self.k, self.kernels, self.init = c1, c2, k, kernels, init
        self.in_channels, self.out_channels = c1, c2
        self.weight = nn.Parameter(torch.empty(c2, kernels, c1 * k * k))
        self.bias = nn.Parameter(torch.empty(c2, kernels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Conv2d``'s init (fan_in = c1*k*k) for one kernel copied into all ``M`` slots, or for each slot."""
        bound = 1 / math.sqrt(self.c1 * self.k * self.k)
        with torch.no_grad():
            if self.init == "shared":
                w = torch.empty(self.c2, self.c1 * self.k * self.k)  # (c2, c1*k*k)
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))
                self.weight.copy_(w.unsqueeze(1).expand_as(self.weight))  # (c2, M, c1*k*k)
                if self.bias is not None:
                    self.bias.copy_(torch.empty(self.c2, 1).uniform_(-bound, bound).expand_as(self.bias))  # (c2, M)
            else:
                for m in range(self.kernels):
                    nn.init.kaiming_uniform_(self.weight[:, m], a=math.sqrt(5))  # (c2, c1*k*k)
                if self.bias is not None:
                    nn.init.uniform_(self.bias, -bound, bound)

    def blend(self, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-image kernels ``W_b = sum_m alpha_bm W_m`` (B, c2, c1*k*k) and biases (B, c2, 1): two matmuls."""
        b = alpha.shape[0]
        alpha = alpha.to(self.weight.dtype)
        bank = self.weight.transpose(0, 1).reshape(self.kernels, -1)  # (M, c2*c1*k*k)
        w = (alpha @ bank).view(b, self.c2, -1)  # (B, M) @ (M, c2*c1*k*k) -> (B, c2, c1*k*k): 2*B*M*|W| FLOPs
        bias = None if self.bias is None else (alpha @ self.bias.t()).unsqueeze(-1)  # (B, M) @ (M, c2) -> (B, c2, 1)
        return w, bias

    def forward(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Apply the blended kernels: x (B, c1, H, W), alpha (B, M) -> (B, c2, H, W)."""
        b, _, h, w_ = x.shape
        weight, bias = self.blend(alpha)
        cols = x.flatten(2) if self.k == 1 else F.unfold(x, self.k, padding=self.k // 2)  # (B, c1*k*k, H*W)
        y = torch.bmm(weight, cols) if bias is None else torch.baddbmm(bias, weight, cols)  # (B, c2, H*W)
        return y.view(b, self.c2, h, w_)  # (B, c2, H, W)

    def extra_repr(self) -> str:
        return (f"{self.c1}, {self.c2}, k={self.k}, kernels={self.kernels}, bias={self.bias is not None}, "
                f"init={self.init}")
