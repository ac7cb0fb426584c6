"""Quality-prior dynamic conv (eq. 3): one batched matmul equals the per-image blend of M kernels; init."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alignrank.nn.dynconv import DYN_INITS, DynConv2d, KernelRouter


@pytest.mark.parametrize("init", DYN_INITS)
@pytest.mark.parametrize("k", [1, 3])
def test_batched_matmul_equals_per_image_blend(k, init):
    torch.manual_seed(0)
    conv = DynConv2d(6, 5, k=k, kernels=4, init=init).double()
    with torch.no_grad():
        conv.weight.add_(0.1 * torch.randn_like(conv.weight))  # distinct kernels, as after training
        conv.bias.add_(0.1 * torch.randn_like(conv.bias))
    x = torch.randn(3, 6, 7, 9, dtype=torch.float64)
    alpha = torch.softmax(torch.randn(3, 4, dtype=torch.float64), 1)
    out = conv(x, alpha)
    for b in range(3):  # reference: M separate convs summed with the image's weights
        w = conv.weight.view(5, 4, 6, k, k)  # (c2, M, c1, k, k)
        ref = sum(alpha[b, m] * F.conv2d(x[b : b + 1], w[:, m], conv.bias[:, m], padding=k // 2) for m in range(4))
        torch.testing.assert_close(out[b : b + 1], ref)


def test_one_batched_matmul_and_no_conv_per_forward(monkeypatch):
    """No convolution whose weight is a graph value (ONNX needs static conv weights for a dynamic batch)."""
    convs, mms = [], []
    real_conv, real_baddbmm = F.conv2d, torch.baddbmm
    monkeypatch.setattr(F, "conv2d", lambda *a, **kw: convs.append(1) or real_conv(*a, **kw))
    monkeypatch.setattr(torch, "baddbmm", lambda *a, **kw: mms.append(a[1].shape) or real_baddbmm(*a, **kw))
    DynConv2d(4, 3, k=1, kernels=5)(torch.randn(2, 4, 5, 5), torch.full((2, 5), 0.2))
    assert convs == [] and mms == [torch.Size([2, 3, 4])]  # one (B, c2, c1) @ (B, c1, H*W)


def test_shared_init_is_a_plain_conv_for_every_alpha():
    """Shared init: all M slots equal, so any alpha gives the same kernel, bias and output at initialisation."""
    conv = DynConv2d(8, 6, k=1, kernels=4)
    assert torch.equal(conv.weight, conv.weight[:, :1].expand_as(conv.weight))
    assert torch.equal(conv.bias, conv.bias[:, :1].expand_as(conv.bias))
    x = torch.randn(2, 8, 5, 5)
    outs = [conv(x, a.expand(2, 4)) for a in (torch.tensor([1.0, 0, 0, 0]), torch.full((4,), 0.25),
                                              torch.softmax(torch.randn(4), 0))]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0])


def _output_std(conv: nn.Module, alpha: torch.Tensor | None, x: torch.Tensor) -> float:
    with torch.no_grad():
        y = conv(x) if alpha is None else conv(x, alpha)
    return float(y.std())


@pytest.mark.parametrize("kernels", [1, 4, 8])
def test_init_output_scale_matches_a_plain_conv(kernels):
    """At init the dynamic conv's output std equals a plain ``nn.Conv2d``'s within 15 % for any M (averaged
    over 20 draws): independently drawn kernels blended by a near-uniform alpha shrink it by ~1/sqrt(M)."""
    torch.manual_seed(0)
    x = torch.randn(4, 64, 8, 8)
    alpha = torch.softmax(0.1 * torch.randn(4, kernels), 1)  # a router's output at init: near uniform
    ratios = []
    for _ in range(20):
        plain, dyn = nn.Conv2d(64, 16, 1), DynConv2d(64, 16, 1, kernels=kernels)
        ratios.append(_output_std(dyn, alpha, x) / _output_std(plain, None, x))
    assert 0.85 < sum(ratios) / len(ratios) < 1.15
    if kernels > 1:  # the CondConv draw does shrink it: the check above would have caught it
        ind = [_output_std(DynConv2d(64, 16, 1, kernels=kernels, init="independent"), alpha, x)
               / _output_std(nn.Conv2d(64, 16, 1), None, x) for _ in range(20)]
        assert sum(ind) / len(ind) < 0.8


def test_router_softmax_and_dependence_on_input():
    r = KernelRouter(8, hidden=4, kernels=3, outputs=2)
    a1, a2 = r(torch.randn(5, 8, 6, 6))
    assert a1.shape == a2.shape == (5, 3)
    torch.testing.assert_close(a1.sum(1), torch.ones(5))
    assert (a1 > 0).all() and not torch.allclose(a1[0], a1[1])


def test_kernels_diverge_only_through_routing():
    """Shared init: a gradient step separates the M kernels only because images weight them differently."""
    conv, r = DynConv2d(4, 3, k=1, kernels=4), KernelRouter(4, 8, 4, outputs=1)
    x = torch.randn(2, 4, 5, 5)
    (alpha,) = r(x)
    conv(x, alpha).square().mean().backward()
    g = conv.weight.grad  # (c2, M, c1): sum_b alpha_bm * G_b
    assert (g.abs().sum((0, 2)) > 0).all()  # every base kernel gets a gradient
    assert not torch.allclose(g[:, 0], g[:, 1])  # ... and not the same one
    conv.weight.grad = None
    conv(x, torch.full((2, 4), 0.25)).square().mean().backward()  # one alpha for all images: equal gradients
    torch.testing.assert_close(conv.weight.grad[:, 0], conv.weight.grad[:, 3])


def test_gradients_reach_every_base_kernel_and_router():
    conv, r = DynConv2d(4, 3, k=1, kernels=4, init="independent"), KernelRouter(4, 8, 4, outputs=1)
    x = torch.randn(2, 4, 5, 5)
    (alpha,) = r(x)
    conv(x, alpha).square().mean().backward()
    assert (conv.weight.grad.abs().sum((0, 2)) > 0).all()  # every base kernel
    assert r.fc1.weight.grad.abs().sum() > 0 and r.fc2.weight.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="odd"):
        DynConv2d(4, 4, k=2)
    with pytest.raises(ValueError, match="init"):
        DynConv2d(4, 4, init="random")
