"""Quality-prior dynamic conv (eq. 3): one grouped conv equals the per-image blend of M kernels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from alignrank.nn.dynconv import DynConv2d, KernelRouter


@pytest.mark.parametrize("k", [1, 3])
def test_grouped_conv_equals_per_image_blend(k):
    torch.manual_seed(0)
    conv = DynConv2d(6, 5, k=k, kernels=4).double()
    x = torch.randn(3, 6, 7, 9, dtype=torch.float64)
    alpha = torch.softmax(torch.randn(3, 4, dtype=torch.float64), 1)
    out = conv(x, alpha)
    for b in range(3):  # reference: M separate convs summed with the image's weights
        w = conv.weight.view(5, 4, 6, k, k)  # (c2, M, c1, k, k)
        ref = sum(alpha[b, m] * F.conv2d(x[b : b + 1], w[:, m], conv.bias[:, m], padding=k // 2) for m in range(4))
        torch.testing.assert_close(out[b : b + 1], ref)


def test_one_conv_call_per_forward(monkeypatch):
    calls = []
    real = F.conv2d
    monkeypatch.setattr(F, "conv2d", lambda *a, **kw: calls.append(kw.get("groups")) or real(*a, **kw))
    DynConv2d(4, 4, k=3, kernels=5)(torch.randn(2, 4, 5, 5), torch.full((2, 5), 0.2))
    assert calls == [2]  # one grouped conv, groups = batch


def test_router_softmax_and_dependence_on_input():
    r = KernelRouter(8, hidden=4, kernels=3, outputs=2)
    a1, a2 = r(torch.randn(5, 8, 6, 6))
    assert a1.shape == a2.shape == (5, 3)
    torch.testing.assert_close(a1.sum(1), torch.ones(5))
    assert (a1 > 0).all() and not torch.allclose(a1[0], a1[1])


def test_gradients_reach_every_base_kernel_and_router():
    conv, r = DynConv2d(4, 3, k=1, kernels=4), KernelRouter(4, 8, 4, outputs=1)
    x = torch.randn(2, 4, 5, 5)
    (alpha,) = r(x)
    conv(x, alpha).square().mean().backward()
    assert (conv.weight.grad.abs().sum((0, 2)) > 0).all()  # every base kernel
    assert r.fc1.weight.grad.abs().sum() > 0 and r.fc2.weight.grad.abs().sum() > 0


def test_even_kernel_rejected():
    with pytest.raises(ValueError, match="odd"):
        DynConv2d(4, 4, k=2)
