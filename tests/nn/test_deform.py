"""Cross-scale sparse deformable sampling (eq. 1): coordinate convention, offsets, padding, init."""

from __future__ import annotations

import math

import pytest
import torch

from alignrank.nn.deform import CrossScaleSampler, base_grid, bilinear_taps, gather_sum, ring_offsets, sample_weighted


def _ramp_x(h: int, w: int) -> torch.Tensor:
    """(1, 1, h, w) map whose value is the pixel column index (bilinear sampling is exact on it)."""
    return torch.arange(w, dtype=torch.float64).repeat(h, 1).view(1, 1, h, w)


def _sample(src, h, w, ratio, off_xy=(0.0, 0.0), k=1):
    grid = base_grid(h, w, src.shape[2], src.shape[3], ratio, src)
    off = torch.zeros(1, k, h, w, 2, dtype=src.dtype)
    off[..., 0], off[..., 1] = off_xy
    return sample_weighted(src, grid, off, torch.full((1, k, h, w), 1.0 / k, dtype=src.dtype))[0, 0]


@pytest.mark.parametrize("ratio,h,w,hs,ws", [(1.0, 6, 8, 6, 8), (0.5, 8, 12, 4, 6), (2.0, 3, 4, 6, 8)])
def test_pixel_centre_mapping(ratio, h, w, hs, ws):
    """Location j of level l reads (j + 0.5) * s_l / s_l' - 0.5 in level l' (interior, where bilinear is exact)."""
    out = _sample(_ramp_x(hs, ws), h, w, ratio)
    want = (torch.arange(w, dtype=torch.float64) + 0.5) * ratio - 0.5
    inside = (want >= 0) & (want <= ws - 1)
    assert inside.sum() >= 2
    row = h // 2  # an interior row (edge rows blend in the zero padding)
    torch.testing.assert_close(out[row, inside], want[inside])


def test_offsets_are_in_source_pixels():
    src = _ramp_x(4, 10)  # sampled level: 10 columns; output level twice as fine
    base = _sample(src, 8, 20, 0.5)
    moved = _sample(src, 8, 20, 0.5, off_xy=(1.5, 0.0))
    want = (torch.arange(20, dtype=torch.float64) + 0.5) * 0.5 - 0.5
    inside = (want >= 0) & (want + 1.5 <= 9)
    torch.testing.assert_close(moved[4, inside] - base[4, inside], torch.full((int(inside.sum()),), 1.5, dtype=torch.float64))


def test_offsets_outside_map_give_zero_and_finite_grads():
    src = torch.randn(1, 3, 5, 6, requires_grad=True)
    grid = base_grid(5, 6, 5, 6, 1.0, src)
    off = torch.full((1, 2, 5, 6, 2), 100.0, requires_grad=True)  # far off the map
    out = sample_weighted(src, grid, off, torch.ones(1, 2, 5, 6))
    assert torch.equal(out, torch.zeros_like(out))
    out.sum().backward()
    assert torch.isfinite(src.grad).all() and torch.isfinite(off.grad).all()


def test_half_pixel_off_edge_is_half_zero_padded():
    """Zero padding (not border): half a pixel past the last column blends the last value with 0."""
    src = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    out = _sample(src, 2, 2, 1.0, off_xy=(0.5, 0.0))
    torch.testing.assert_close(out[:, 1], torch.full((2,), 0.5, dtype=torch.float64))


def test_ring_offsets():
    r = ring_offsets(4, 1.5)
    torch.testing.assert_close(r.norm(dim=1), torch.full((4,), 1.5))
    assert torch.equal(ring_offsets(1, 1.0), torch.zeros(1, 2))
    angles = torch.atan2(ring_offsets(6, 1.0)[:, 1], ring_offsets(6, 1.0)[:, 0]).remainder(2 * math.pi)
    torch.testing.assert_close(angles.sort().values, torch.arange(6) * (2 * math.pi / 6), atol=1e-5, rtol=0)


def _sampler_inputs(b=2, sizes=((13, 10), (7, 5), (4, 3)), ch=(8, 16, 32)):
    return [torch.randn(b, c, h, w) for c, (h, w) in zip(ch, sizes)]


def test_sampler_sources_shapes_and_init():
    s = CrossScaleSampler((8, 16, 32), c=8, points=3, offset_range=2.0).eval()
    assert s.sources == [(0, 1), (0, 1, 2), (1, 2)]
    for head, src in zip(s.pred, s.sources):
        last = head[-1]
        assert last.out_channels == 3 * 3 * len(src)
        assert torch.count_nonzero(last.weight) == 0 and last.bias is None  # zero map: uniform point weights
    torch.testing.assert_close(2.0 * torch.tanh(s.ring_raw / 2.0), ring_offsets(3, 1.0))  # R tanh(raw / R) = ring
    assert "ring_raw" in s.state_dict() and not any(p is s.ring_raw for p in s.parameters())  # a constant
    out = s(_sampler_inputs(), strides=(8.0, 16.0, 32.0))
    assert [tuple(o.shape) for o in out] == [(2, 8, 13, 10), (2, 8, 7, 5), (2, 8, 4, 3)]


def test_sampler_at_init_is_mean_of_ring_samples():
    """Zero-weight predictor: y_l = mean over sources and ring points of the bilinear samples."""
    s = CrossScaleSampler((4, 4), c=4, points=4, offset_range=4.0).eval().double()
    x = [torch.randn(1, 4, 6, 6, dtype=torch.float64), torch.randn(1, 4, 3, 3, dtype=torch.float64)]
    out = s(x, strides=(8.0, 16.0))[0]
    z = [p(xi) for p, xi in zip(s.proj, x)]
    ring = ring_offsets(4, 1.0).double()
    ref = 0
    for lj, ratio in ((0, 1.0), (1, 0.5)):
        g = base_grid(6, 6, z[lj].shape[2], z[lj].shape[3], ratio, z[lj])
        off = ring.view(1, 4, 1, 1, 2).expand(1, 4, 6, 6, 2)
        ref = ref + sample_weighted(z[lj], g, off, torch.full((1, 4, 6, 6), 1 / 8, dtype=torch.float64))
    torch.testing.assert_close(out, ref)


def test_offsets_bounded_by_range():
    s = CrossScaleSampler((4, 4), c=4, points=2, offset_range=1.0).double()
    with torch.no_grad():
        s.ring_raw.fill_(1e6)  # raw offsets explode; R tanh keeps them within 1 pixel
    x = [torch.randn(1, 4, 6, 6, dtype=torch.float64), torch.randn(1, 4, 3, 3, dtype=torch.float64)]
    out = s(x, strides=(8.0, 16.0))[0]
    assert torch.isfinite(out).all()


def _grid_sample_reference(s: CrossScaleSampler, x, strides):
    """Eq. 1 with ``grid_sample`` per source level (the straightforward form the gather sampler must equal)."""
    z = [p(xi) for p, xi in zip(s.proj, x)]
    out = []
    for i, (head, src) in enumerate(zip(s.pred, s.sources)):
        b, _, h, w = z[i].shape
        n, k = len(src), s.points
        o = head(z[i])
        off = o[:, : 2 * n * k].reshape(b, n, k, 2, h, w).permute(0, 1, 2, 4, 5, 3) + s.ring_raw.view(1, 1, k, 1, 1, 2)
        off = s.offset_range * torch.tanh(off / s.offset_range)
        wts = o[:, 2 * n * k :].softmax(1).view(b, n, k, h, w)
        acc = 0
        for j, lj in enumerate(src):
            grid = base_grid(h, w, z[lj].shape[2], z[lj].shape[3], strides[i] / strides[lj], z[lj])
            acc = acc + sample_weighted(z[lj], grid, off[:, j], wts[:, j])
        out.append(acc)
    return out


@pytest.mark.parametrize("offset_range,scale", [(4.0, 0.3), (2.0, 50.0), (1.0, 1.0)])
def test_gather_sampler_equals_grid_sample(offset_range, scale):
    """Random offsets (``scale`` 50 saturates them at +-R, points far off the map): same values and gradients
    (to the features, the offset/weight predictor and the projections) as grid_sample, at odd sizes, batch 2."""
    torch.manual_seed(0)
    s = CrossScaleSampler((4, 6, 8), c=5, points=3, offset_range=offset_range).double()
    with torch.no_grad():
        for head in s.pred:
            head[-1].weight.normal_(0, scale)
    x = [torch.randn(2, c, h, w, dtype=torch.float64, requires_grad=True)
         for c, (h, w) in zip((4, 6, 8), ((13, 10), (7, 5), (4, 3)))]
    strides = (8.0, 16.0, 32.0)
    got, want = s(x, strides), _grid_sample_reference(s, x, strides)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    probe = [torch.randn_like(w) for w in want]
    grads_got = torch.autograd.grad(sum((g * p).sum() for g, p in zip(got, probe)), [*x, *s.parameters()])
    grads_want = torch.autograd.grad(sum((w * p).sum() for w, p in zip(want, probe)), [*x, *s.parameters()])
    for a, b in zip(grads_got, grads_want):
        torch.testing.assert_close(a, b)


def test_gather_sampler_in_bfloat16_autocast_is_finite():
    s = CrossScaleSampler((8, 16, 32), c=8, points=4)
    x = _sampler_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = s(x, strides=(8.0, 16.0, 32.0))
    assert all(torch.isfinite(o.float()).all() for o in out)
    sum(o.float().sum() for o in out).backward()
    assert all(torch.isfinite(p.grad).all() for p in s.parameters() if p.grad is not None)


def test_bilinear_taps_match_grid_sample_weights():
    idx, w = bilinear_taps(torch.tensor([1.25]), torch.tensor([0.5]), 4)
    assert idx.tolist() == [[1.0, 2.0, 5.0, 6.0]]
    torch.testing.assert_close(w, torch.tensor([[0.375, 0.125, 0.375, 0.125]]))


def test_gather_sum_matches_dense_sum():
    table = torch.randn(10, 3, dtype=torch.float64)
    idx = [torch.randint(0, 10, (4, 6)), torch.randint(0, 10, (2, 5))]
    w = [torch.rand(4, 6, dtype=torch.float64), torch.rand(2, 5, dtype=torch.float64)]
    for out, i, ww in zip(gather_sum(table, idx, w), idx, w):
        torch.testing.assert_close(out, (table[i] * ww.unsqueeze(-1)).sum(1))
