"""BCDM (eq. 2): shapes at odd sizes, which neighbours each level reads, gates in (0, 1), up/down alignment."""

from __future__ import annotations

import pytest
import torch

from alignrank.nn.bcdm import BCDM, Phi

SIZES = ((13, 10), (7, 5), (4, 3))


def _levels(c=8, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, c, h, w, generator=g, dtype=torch.float64) for h, w in SIZES]


def test_shapes_and_paths():
    m = BCDM(c=8, reduction=2, nl=3).double().eval()
    assert m.cb == 4 and m.npaths == [2, 3, 2]
    out = m(_levels())
    assert [tuple(o.shape) for o in out] == [(2, 4, h, w) for h, w in SIZES]


def test_each_level_reads_only_its_neighbours():
    """Level 0 reads levels 0-1, level 2 reads levels 1-2; level 1 reads all three."""
    m = BCDM(c=8, reduction=2, nl=3).double().eval()
    y = _levels()
    base = m(y)
    for src, readers in ((0, {0, 1}), (1, {0, 1, 2}), (2, {1, 2})):
        y2 = [t.clone() for t in y]
        y2[src] += 1.0
        out = m(y2)
        changed = {i for i in range(3) if not torch.allclose(out[i], base[i])}
        assert changed == readers, (src, changed)


@pytest.mark.parametrize("logit,scale", [(30.0, 1.0), (-30.0, 0.0)])
def test_output_is_gated_sum_of_paths(logit, scale):
    """Gates open (sigmoid -> 1): y~ = sum of the paths; gates shut (-> 0): y~ = 0."""
    m = BCDM(c=8, reduction=2, nl=3).double().eval()
    with torch.no_grad():
        for g in m.gate:
            g.weight.zero_()
            g.bias.fill_(logit)
    y = _levels()
    out = m(y)
    size = SIZES[1]
    paths = m.self_path[1](y[1], size) + m.top_down[1](y[2], size) + m.bottom_up[1](y[0], size)
    torch.testing.assert_close(out[1], scale * paths, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(out[0], scale * (m.self_path[0](y[0], SIZES[0]) + m.top_down[0](y[1], SIZES[0])),
                               atol=1e-9, rtol=1e-9)


def test_top_down_upsampling_reads_parent_pixel():
    """Up: pixel i of the finer level reads pixel i // 2 of the coarser one (then cropped to odd sizes)."""
    phi = Phi(1, 1, up=True).double().eval()
    with torch.no_grad():  # make phi an identity: 1x1 weight 1, depthwise kernel = centre tap, no BN effect
        phi.pw.conv.weight.fill_(1.0)
        phi.dw.conv.weight.zero_()
        phi.dw.conv.weight[..., 1, 1] = 1.0
    phi.dw.act = torch.nn.Identity()
    coarse = torch.arange(12, dtype=torch.float64).view(1, 1, 4, 3)
    bn_scale = 1 / torch.sqrt(torch.tensor(1 + phi.pw.bn.eps, dtype=torch.float64))
    out = phi(coarse, (7, 5)) / bn_scale**2
    want = coarse[..., torch.arange(7) // 2, :][..., torch.arange(5) // 2]
    torch.testing.assert_close(out, want)


def test_bottom_up_downsamples_to_coarse_size():
    phi = Phi(8, 4, stride=2).eval()
    for (h, w), (hc, wc) in zip(SIZES[:-1], SIZES[1:]):
        assert phi(torch.randn(1, 8, h, w), (hc, wc)).shape[2:] == (hc, wc)


def test_gradients_reach_gates_and_all_paths():
    m = BCDM(c=8, reduction=2, nl=3).double()
    sum(o.square().sum() for o in m(_levels())).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
