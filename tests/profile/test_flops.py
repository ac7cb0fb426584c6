"""Our FLOPs counter against hand formulas: conv, grouped conv, grid_sample, embedding bag, the dynamic conv, a model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alignrank.nn.dynconv import DynConv2d
from alignrank.nn.model import build_model
from alignrank.profile.flops import (
    BILINEAR_POINT_FLOPS,
    GRID_TAP_FLOPS,
    count_flops,
    embedding_bag_flop,
    grid_sample_flop,
    model_gflops,
)


class _GridSample(nn.Module):
    def forward(self, x, grid):
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def test_conv_and_grouped_conv():
    conv = nn.Conv2d(6, 4, 3, padding=1)
    assert count_flops(conv, torch.zeros(2, 6, 5, 7))["total"] == 2 * (2 * 5 * 7) * 4 * 6 * 9
    dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)
    assert count_flops(dw, torch.zeros(1, 6, 5, 7))["total"] == 2 * (5 * 7) * 6 * 1 * 9


def test_grid_sample_formula():
    b, c, hi, wi, ho, wo = 2, 5, 9, 11, 4, 6
    got = count_flops(_GridSample(), torch.zeros(b, c, hi, wi), torch.zeros(b, ho, wo, 2))
    points = b * ho * wo
    assert got["total"] == points * (16 + 8 * c) == points * (BILINEAR_POINT_FLOPS + GRID_TAP_FLOPS * c)
    assert got["by_op"] == {"aten.grid_sampler_2d": got["total"]}
    assert grid_sample_flop((b, c, hi, wi), (b, ho, wo, 2)) == got["total"]


class _Bag(nn.Module):
    def forward(self, table, idx, w):
        return F.embedding_bag(idx, table, mode="sum", per_sample_weights=w)


def test_weighted_embedding_bag_formula():
    table, idx, w = torch.zeros(10, 4), torch.zeros(6, 3, dtype=torch.long), torch.ones(6, 3)
    got = count_flops(_Bag(), table, idx, w)
    assert got["total"] == 2 * 6 * 3 * 4 == embedding_bag_flop((10, 4), (6, 3), None, False, 0, False, (6, 3))
    with torch.enable_grad():  # the training path dispatches aten._embedding_bag: counted the same
        got_train = count_flops(_Bag(), table.requires_grad_(), idx, w)["total"]
    assert got_train == got["total"]


@pytest.mark.parametrize("k", [1, 3])
def test_dynamic_conv_counts_batched_matmul_and_kernel_blending(k):
    b, c1, c2, m, h, w = 3, 4, 5, 6, 7, 8
    conv = DynConv2d(c1, c2, k=k, kernels=m)
    got = count_flops(conv, torch.zeros(b, c1, h, w), torch.full((b, m), 1 / m))["total"]
    conv_flops = 2 * b * h * w * c2 * c1 * k * k  # one batched matmul over the batch = the static conv's FLOPs
    blend = 2 * b * m * (c2 * c1 * k * k) + 2 * b * m * c2  # alpha @ W and alpha @ bias
    assert got == conv_flops + blend


def test_model_counts_what_thop_misses():
    """Stock model: equals ultralytics' (thop) figure; CSD model: the sampler's gathers and dynamic convs are in ours."""
    from ultralytics.utils.torch_utils import get_flops

    base = build_model("baseline", scale="n", nc=80).eval().fuse(verbose=False)
    assert abs(model_gflops(base, 320) - get_flops(base, 320)) < 0.01
    csd = build_model("csd", scale="n", nc=80).eval().fuse(verbose=False)
    by_op = count_flops(csd, torch.zeros(1, 3, 128, 128))["by_op"]
    assert by_op["aten._embedding_bag_forward_only"] > 0 and by_op["aten.baddbmm"] > 0 and by_op["aten.mm"] > 0


def test_elementwise_option_adds_activation_flops():
    m = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.SiLU())
    x = torch.zeros(1, 3, 5, 5)
    assert count_flops(m, x, elementwise=True)["total"] - count_flops(m, x)["total"] == 4 * 5 * 5
