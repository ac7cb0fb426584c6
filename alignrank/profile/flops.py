"""Our FLOPs counter: ``torch.utils.flop_counter.FlopCounterMode`` plus formulas for what it (and thop) miss.

Ultralytics' GFLOPs come from thop's module hooks, which see neither ``F.grid_sample`` nor a functional
conv whose weights are computed at run time (our dynamic convs). We count at the ATen level instead,
one forward pass at batch 1:

* convolutions, matmuls, linears: FlopCounterMode's formulas, ``2 * MACs`` (grouped convs counted per
  group); the dynamic conv's batched matmul counts ``2 * B * H * W * c2 * c1 * k^2`` (the static conv's
  FLOPs), and the kernel blending ``alpha @ W`` is an ``mm``: ``2 * B * M * |W|``;
* ``grid_sampler_2d`` (bilinear), registered here: per sampled point ``BILINEAR_POINT_FLOPS`` for the
  coordinate un-normalisation and the four bilinear weights, plus per point and channel
  ``4 taps * (mul + add)`` = ``GRID_TAP_FLOPS``;
* weighted embedding bags (``aten._embedding_bag`` / ``_embedding_bag_forward_only``; the CSD sampler's
  gathers), registered here: per index and channel a multiply by its weight and an add (one add without
  weights); the bilinear weights themselves are element-wise ops;
* element-wise ops (activations, adds, gates, softmax) are left out for every model, as thop and
  FlopCounterMode do; :func:`count_flops` can add them (``elementwise=True``: one FLOP per output
  element, per input element for reductions) to show they do not change the picture.

Examples:
    >>> conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    >>> count_flops(conv, torch.zeros(1, 3, 10, 10))["total"] == 2 * 10 * 10 * 8 * 3 * 9
    True
"""

from __future__ import annotations

from math import prod
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten

GRID_TAP_FLOPS = 4 * 2  # per sampled point and channel: 4 bilinear taps x (mul + add)
BILINEAR_POINT_FLOPS = 16  # per sampled point: un-normalise x, y (4), floor + fractions (4), 4 weights (8)

METHOD = (
    "torch.utils.flop_counter.FlopCounterMode (conv/matmul/linear: 2 FLOPs per MAC; dynamic conv as batched matmul; "
    f"kernel blending alpha@W as mm = 2*B*M*|W|) + grid_sampler_2d bilinear: {BILINEAR_POINT_FLOPS} FLOPs per point "
    f"(coordinates + 4 weights) + {GRID_TAP_FLOPS} FLOPs per point per channel (4 taps x mul+add); weighted "
    "embedding bag (CSD sampler gathers): 2 FLOPs per index per channel; element-wise ops "
    "excluded for all models; batch 1, fused, eval mode"
)


def grid_sample_flop(input_shape, grid_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of a bilinear ``grid_sampler_2d``: input (B, C, Hi, Wi), grid (B, Ho, Wo, 2).

    Examples:
        >>> grid_sample_flop((1, 4, 8, 8), (1, 5, 6, 2))  # 30 points x (16 + 4 channels x 8)
        1440
    """
    channels = input_shape[1]
    points = prod(grid_shape[:-1])  # B * Ho * Wo
    return points * (BILINEAR_POINT_FLOPS + GRID_TAP_FLOPS * channels)


def embedding_bag_flop(weight_shape, indices_shape, offsets_shape=None, scale_grad_by_freq=False, mode=0, sparse=False,
                       per_sample_weights=None, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of an embedding bag over a (rows, C) table: (mul +) add per index and channel.

    Examples:
        >>> embedding_bag_flop((10, 4), (6, 3), None, False, 0, False, (6, 3))  # 18 weighted taps x 4 channels
        144
    """
    per_sample_weights = kwargs.get("per_sample_weights", per_sample_weights)
    return (2 if per_sample_weights is not None else 1) * prod(indices_shape) * weight_shape[1]


def _out_elements(*args, out_shape=None, **kwargs) -> int:
    shapes = out_shape if isinstance(out_shape, (list, tuple)) and out_shape and not isinstance(out_shape[0], int) else [out_shape]
    return sum(prod(s) for s in shapes if s is not None)


def _in_elements(input_shape, *args, out_shape=None, **kwargs) -> int:
    return prod(input_shape)


CUSTOM = {aten.grid_sampler_2d: grid_sample_flop, aten._embedding_bag: embedding_bag_flop,
          aten._embedding_bag_forward_only: embedding_bag_flop}
ELEMENTWISE = {
    **{
        op: _out_elements
        for op in (aten.add, aten.add_, aten.sub, aten.sub_, aten.mul, aten.mul_, aten.div, aten.div_, aten.sigmoid,
                   aten.sigmoid_, aten.silu, aten.silu_, aten.tanh, aten.addcmul, aten._softmax, aten.exp)
    },
    **{op: _in_elements for op in (aten.sum, aten.mean)},
}


def count_flops(model: torch.nn.Module, *inputs: Any, elementwise: bool = False) -> dict[str, Any]:
    """Count the FLOPs of one ``model(*inputs)`` call (no grad).

    Args:
        model: Module to run (put it in eval mode and fuse it first for inference figures).
        *inputs: Its inputs.
        elementwise: Also count element-wise ops (see module docstring).

    Returns:
        ``{"total": int, "by_op": {op name: int}}``.

    Examples:
        >>> x, grid = torch.zeros(1, 4, 8, 8), torch.zeros(1, 5, 6, 2)
        >>> class GS(torch.nn.Module):
        ...     def forward(self, x, g):
        ...         return torch.nn.functional.grid_sample(x, g, align_corners=False)
        >>> count_flops(GS(), x, grid)["total"]
        1440
    """
    mapping = {**CUSTOM, **(ELEMENTWISE if elementwise else {})}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model(*inputs)
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return {"total": int(counter.get_total_flops()), "by_op": by_op}


def model_gflops(model: torch.nn.Module, imgsz: int | tuple[int, int], elementwise: bool = False) -> float:
    """GFLOPs of a detection model at batch 1 and ``imgsz`` (int or (h, w)).

    Examples:
        >>> from alignrank.nn.model import build_model
        >>> round(model_gflops(build_model("baseline", scale="n", nc=80).eval().fuse(verbose=False), 640), 1)
        8.7
    """
    h, w = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    p = next(model.parameters())
    x = torch.zeros(1, 3, h, w, device=p.device, dtype=p.dtype)
    return count_flops(model, x, elementwise=elementwise)["total"] / 1e9
