"""BCDM (eq. 2): shapes at odd sizes, which levels each level reads, order of the two passes, gates, up/down alignment."""

from __future__ import annotations

import pytest
import torch

from alignrank.nn.bcdm import BCDM, BCDM_MODES, Phi

SIZES = ((13, 10), (7, 5), (4, 3))


def _levels(c=8, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, c, h, w, generator=g, dtype=torch.float64) for h, w in SIZES]


@pytest.mark.parametrize("mode", BCDM_MODES)
def test_shapes_and_paths(mode):
    m = BCDM(c=8, reduction=2, nl=3, mode=mode).double().eval()
    assert m.cb == 4 and m.npaths == ([2, 3, 2] if mode == "one_pass" else [2, 2, 1])
    out = m(_levels())
    assert [tuple(o.shape) for o in out] == [(2, 4, h, w) for h, w in SIZES]


@pytest.mark.parametrize("mode,reads", [
    ("one_pass", ((0, {0, 1}), (1, {0, 1, 2}), (2, {1, 2}))),  # each level reads its neighbours' inputs
    ("two_pass", ((0, {0, 1, 2}), (1, {0, 1, 2}), (2, {0, 1, 2}))),  # recursion: every level reaches every level
])
def test_which_input_levels_reach_each_output(mode, reads):
    m = BCDM(c=8, reduction=2, nl=3, mode=mode).double().eval()
    y = _levels()
    base = m(y)
    for src, readers in reads:
        y2 = [t.clone() for t in y]
        y2[src] += 1.0
        out = m(y2)
        changed = {i for i in range(3) if not torch.allclose(out[i], base[i])}
        assert changed == readers, (src, changed)


@pytest.mark.parametrize("logit,scale", [(30.0, 1.0), (-30.0, 0.0)])
def test_one_pass_output_is_gated_sum_of_paths(logit, scale):
    """Gates open (sigmoid -> 1): y~ = sum of the paths; gates shut (-> 0): y~ = 0."""
    m = BCDM(c=8, reduction=2, nl=3, mode="one_pass").double().eval()
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


def _open_gates(m: BCDM, logit: float = 30.0) -> None:
    with torch.no_grad():
        for g in (*m.gate, *getattr(m, "gate_up", ())):
            if isinstance(g, torch.nn.Conv2d):
                g.weight.zero_()
                g.bias.fill_(logit)


def test_two_pass_order_top_down_then_bottom_up():
    """Spy on the neighbour paths: top-down calls run coarse-to-fine, each reading the top-down result of the
    level above; then bottom-up calls run fine-to-coarse, each reading the FINISHED output of the level below."""
    m = BCDM(c=8, reduction=2, nl=3, mode="two_pass").double().eval()
    _open_gates(m)
    calls = []
    for name, mods in (("down", m.top_down), ("up", m.bottom_up), ("self", m.self_path)):
        for i, mod in enumerate(mods):
            if isinstance(mod, Phi):
                mod.register_forward_hook(lambda mod, inp, out, n=name, i=i: calls.append((n, i, inp[0], out)))
    y = _levels()
    out = m(y)
    order = [(n, i) for n, i, _, _ in calls]
    assert order == [("self", 2), ("self", 1), ("down", 1), ("self", 0), ("down", 0), ("up", 1), ("up", 2)]
    seen = {(n, i): (inp, o) for n, i, inp, o in calls}
    td2 = seen[("self", 2)][1]  # gates open: t_2 = phi_self(y_2)
    td1 = seen[("self", 1)][1] + seen[("down", 1)][1]  # t_1 = phi_self(y_1) + phi_down(Up(t_2))
    torch.testing.assert_close(seen[("down", 1)][0], td2)  # top-down reads the top-down result above
    torch.testing.assert_close(seen[("down", 0)][0], td1)
    torch.testing.assert_close(seen[("up", 1)][0], out[0])  # bottom-up reads the finished level below
    torch.testing.assert_close(seen[("up", 2)][0], out[1])
    torch.testing.assert_close(out[1], td1 + seen[("up", 1)][1])  # y~_1 = t_1 + phi_up(Down(y~_0))
    torch.testing.assert_close(out[0], seen[("self", 0)][1] + seen[("down", 0)][1])  # finest: no bottom-up


def test_two_pass_gates_shut_give_zero():
    m = BCDM(c=8, reduction=2, nl=3, mode="two_pass").double().eval()
    _open_gates(m, logit=-30.0)
    for o in m(_levels()):
        assert o.abs().max() < 1e-9


@pytest.mark.parametrize("mode", BCDM_MODES)
def test_gradients_reach_gates_and_all_paths(mode):
    m = BCDM(c=8, reduction=2, nl=3, mode=mode).double()
    sum(o.square().sum() for o in m(_levels())).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_unknown_mode_refused():
    with pytest.raises(ValueError, match="two_pass"):
        BCDM(c=8, mode="three_pass")
