"""RCQ group terms and L_cal: hand-computed values, invariances, gradients, reference loops, chunking, autocast."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from alignrank.loss.rcq import (
    calibration_loss,
    calibration_loss_and_logits,
    listwise_loss,
    pairwise_rank_loss,
    plan_pair_chunks,
)

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")

# ----------------------------------------------------------------------------- slow references (tests only)


def ref_listwise(s, q, g, T):
    """Python loop over groups, float64."""
    s, q, g = s.double().tolist(), q.double().tolist(), g.tolist()
    kls = []
    for gid in sorted(set(g)):
        idx = [i for i in range(len(g)) if g[i] == gid]
        if len(idx) < 2:
            continue
        zs = [math.exp(s[i] / T) for i in idx]
        zq = [math.exp(q[i] / T) for i in idx]
        ps = [z / sum(zs) for z in zs]
        pq = [z / sum(zq) for z in zq]
        kls.append(sum(a * math.log(a / b) for a, b in zip(pq, ps)))
    return sum(kls) / len(kls) if kls else 0.0


def ref_rank(s, q, g, m, eps):
    """Python loop over groups and pairs, float64."""
    s, q, g = s.double().tolist(), q.double().tolist(), g.tolist()
    sig = [1 / (1 + math.exp(-x)) for x in s]
    per = []
    for gid in sorted(set(g)):
        idx = [i for i in range(len(g)) if g[i] == gid]
        pairs = [(i, j) for i in idx for j in idx if q[i] > q[j] + eps]
        if pairs:
            per.append(sum((q[i] - q[j]) * max(0.0, m - (sig[i] - sig[j])) for i, j in pairs) / len(pairs))
    return sum(per) / len(per) if per else 0.0


def random_groups(seed, n_groups=12, max_size=9):
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, max_size + 1, (n_groups,), generator=gen)
    ids = torch.randperm(1000, generator=gen)[:n_groups] * 7  # arbitrary, non-contiguous ids
    g = torch.repeat_interleave(ids, sizes)
    n = g.numel()
    s = torch.randn(n, generator=gen) * 2
    q = torch.rand(n, generator=gen)
    q[:3] = q[3]  # some equal qualities
    perm = torch.randperm(n, generator=gen)  # positives of a group are not contiguous
    return s[perm], q[perm], g[perm]


# ----------------------------------------------------------------------------- hand-computed values


def test_listwise_hand_values():
    # group 7: q = (1, 0), s = (0, 0), T = 1 -> p_q = (e/(1+e), 1/(1+e)), p_s = (1/2, 1/2)
    pa = math.e / (1 + math.e)
    kl_a = pa * math.log(pa / 0.5) + (1 - pa) * math.log((1 - pa) / 0.5)  # 0.110943
    # group 3: q uniform -> p_q = 1/3 each, s = (1, 2, 3): KL = -ln 3 - mean(log p_s) = -ln 3 - (6 - 3 lse) / 3
    lse = 3 + math.log(1 + math.exp(-1) + math.exp(-2))
    kl_b = -math.log(3) - (6 - 3 * lse) / 3  # 0.308994
    # group 5: a singleton, excluded from the mean
    s = torch.tensor([0.0, 1.0, 0.0, 2.0, 9.0, 3.0])
    q = torch.tensor([1.0, 0.5, 0.0, 0.5, 0.3, 0.5])
    g = torch.tensor([7, 3, 7, 3, 5, 3])
    assert abs(kl_a - 0.110943) < 1e-5 and abs(kl_b - 0.308994) < 1e-5
    assert float(listwise_loss(s, q, g, temperature=1.0)) == pytest.approx((kl_a + kl_b) / 2, abs=1e-6)
    # temperature scales both distributions: T = 0.5 equals T = 1 on doubled inputs
    assert float(listwise_loss(s, q, g, 0.5)) == pytest.approx(float(listwise_loss(2 * s, 2 * q, g, 1.0)), abs=1e-6)


def test_pairwise_hand_values():
    # margin 0.5, eps 0.1
    # group 0: q = (0.9, 0.5, 0.45), s = 0 -> sigmoids equal, hinge 0.5;
    #          pairs (0,1): dq .4, (0,2): dq .45; (1,2) below eps
    #          -> (0.4 * 0.5 + 0.45 * 0.5) / 2 = 0.2125
    # group 1: q = (0.2, 0.8), s = (ln 3, 0) -> sigmoid (0.75, 0.5);
    #          pair (1,0): dq .6, hinge .5 - (.5 - .75) = .75 -> 0.45
    # group 2: q = (0.3, 0.35): within eps, no pair -> excluded
    s = torch.tensor([0.0, 0.0, 0.0, math.log(3.0), 0.0, 5.0, -5.0])
    q = torch.tensor([0.9, 0.5, 0.45, 0.2, 0.8, 0.3, 0.35])
    g = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    assert float(pairwise_rank_loss(s, q, g, margin=0.5, eps=0.1)) == pytest.approx((0.2125 + 0.45) / 2, abs=1e-6)


# ----------------------------------------------------------------------------- zero loss, edge cases


def test_zero_when_ordered():
    q = torch.tensor([0.9, 0.6, 0.3, 0.8, 0.1])
    g = torch.tensor([1, 1, 1, 2, 2])
    s_ordered = torch.tensor([3.0, 0.0, -3.0, 2.0, -2.0])  # sigmoid gaps > margin along the quality order
    assert float(pairwise_rank_loss(s_ordered, q, g, margin=0.2, eps=0.0)) == 0.0
    assert float(pairwise_rank_loss(-s_ordered, q, g, margin=0.2, eps=0.0)) > 0.0
    for c in (-4.0, 0.0, 2.5):  # s = q + c: identical softmaxes
        assert abs(float(listwise_loss(q + c, q, g, temperature=0.3))) < 1e-6
    assert float(listwise_loss(-q, q, g, temperature=0.3)) > 1e-3


def test_edge_cases_finite():
    empty = torch.zeros(0, requires_grad=True)
    for loss in (
        listwise_loss(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5),
        pairwise_rank_loss(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.1, 0.02),
    ):
        assert loss.item() == 0.0
        loss.backward()  # N = 0 stays attached to the graph
    single = torch.tensor([30.0, -30.0], requires_grad=True)
    g = torch.tensor([0, 1])  # singletons only
    assert float(listwise_loss(single, torch.tensor([0.5, 0.7]), g, 0.5)) == 0.0
    assert float(pairwise_rank_loss(single, torch.tensor([0.5, 0.7]), g, 0.1, 0.0)) == 0.0
    s = torch.tensor([80.0, -80.0, 0.0], requires_grad=True)  # extreme logits, equal qualities
    q, g = torch.full((3,), 0.4), torch.zeros(3, dtype=torch.long)
    total = listwise_loss(s, q, g, 0.1) + pairwise_rank_loss(s, q, g, 0.1, 0.0)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(s.grad).all()


def test_gradients_push_higher_quality_up():
    q = torch.tensor([0.9, 0.2])  # positive 0 is better but scored lower
    g = torch.tensor([4, 4])
    for fn in (
        lambda s: listwise_loss(s, q, g, 0.5),
        lambda s: pairwise_rank_loss(s, q, g, 0.1, 0.02),
    ):
        s = torch.tensor([-1.0, 1.0], requires_grad=True)
        fn(s).backward()
        assert s.grad[0] < 0 < s.grad[1]  # descent raises the better positive, lowers the worse


def test_order_invariance():
    s, q, g = random_groups(0)
    perm = torch.randperm(s.numel(), generator=torch.Generator().manual_seed(1))
    for fn in (lambda *a: listwise_loss(*a, 0.7), lambda *a: pairwise_rank_loss(*a, 0.3, 0.02)):
        a = s.clone().requires_grad_()
        b = s[perm].clone().requires_grad_()
        la, lb = fn(a, q, g), fn(b, q[perm], g[perm])
        la.backward(), lb.backward()
        assert float(la) == pytest.approx(float(lb), abs=1e-6)
        assert torch.allclose(a.grad[perm], b.grad, atol=1e-7)
    # relabelling the group ids changes nothing either
    assert float(listwise_loss(s, q, g * 3 + 11, 0.7)) == pytest.approx(float(listwise_loss(s, q, g, 0.7)), abs=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_python_reference(seed):
    s, q, g = random_groups(seed)
    for T in (0.2, 1.0):
        assert float(listwise_loss(s, q, g, T)) == pytest.approx(ref_listwise(s, q, g, T), abs=1e-5)
    for m, eps in ((0.1, 0.02), (0.5, 0.0), (0.0, 0.1)):
        assert float(pairwise_rank_loss(s, q, g, m, eps)) == pytest.approx(ref_rank(s, q, g, m, eps), abs=1e-5)


def test_chunking_matches_unchunked():
    s, q, g = random_groups(3, n_groups=40, max_size=12)
    sizes = torch.unique(g, return_counts=True)[1].sort(descending=True).values.tolist()
    assert len(plan_pair_chunks(sizes, 200)) > 3  # really chunked
    assert plan_pair_chunks(sizes, 10**9) == [(0, len(sizes), sizes[0])]
    grads = []
    for budget in (10**9, 200, 1):
        x = s.clone().requires_grad_()
        loss = pairwise_rank_loss(x, q, g, 0.3, 0.01, pair_budget=budget)
        loss.backward()
        grads.append((float(loss), x.grad))
    for value, grad in grads[1:]:
        assert value == pytest.approx(grads[0][0], abs=1e-6)
        assert torch.allclose(grad, grads[0][1], atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_low_precision_finite(dtype):
    s, q, g = random_groups(4)
    x = (s * 10).to(dtype).requires_grad_()
    with torch.autocast("cpu", dtype=dtype):
        lst = listwise_loss(x * 1, q, g, 0.5)
        rank = pairwise_rank_loss(x * 1, q, g, 0.1, 0.02)
    assert lst.dtype == rank.dtype == torch.float32
    (lst + rank).backward()
    assert torch.isfinite(lst) and torch.isfinite(rank) and torch.isfinite(x.grad.float()).all()
    assert float(lst) == pytest.approx(ref_listwise(x.detach().float(), q, g, 0.5), abs=1e-4)


# ----------------------------------------------------------------------------- L_cal


def dense_qfl(x, pos_index, t, gamma):
    """Reference: BCE * |sigmoid - target|^gamma over a dense target tensor, / max(sum t, 1)."""
    target = torch.zeros_like(x).reshape(-1).index_put((pos_index,), t.to(x.dtype)).view_as(x)
    loss = F.binary_cross_entropy_with_logits(x, target, reduction="none") * (x.sigmoid() - target).abs().pow(gamma)
    return loss.sum() / t.sum().clamp(min=1)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 2.5])
def test_calibration_matches_dense_reference(gamma):
    gen = torch.Generator().manual_seed(int(gamma * 10))
    x = (torch.randn(2, 30, 5, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    pos = torch.randperm(x.numel(), generator=gen)[:12]
    t = torch.rand(12, generator=gen, dtype=torch.float64)
    t[0] = 1.0
    ref = dense_qfl(x, pos, t, gamma)
    (g_ref,) = torch.autograd.grad(ref, x)
    got, s = calibration_loss_and_logits(x, pos, t, gamma=gamma)
    (g_got,) = torch.autograd.grad(got, x)
    assert float(got) == pytest.approx(float(ref), rel=1e-6)
    assert torch.allclose(g_got.double(), g_ref, atol=1e-6)
    assert torch.equal(s.detach().double(), x.detach().reshape(-1)[pos].float().double())
    # given probabilities give the same result
    given = calibration_loss(x, pos, t, gamma=gamma, probs=x.detach().sigmoid())
    assert float(given) == pytest.approx(float(ref), rel=1e-6)


def test_calibration_gradcheck_with_positive_logits():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    pos, t = torch.tensor([1, 6, 11]), torch.tensor([0.3, 0.9, 0.6], dtype=torch.float64)

    def f(x):
        cal, s = calibration_loss_and_logits(x, pos, t, gamma=2.0)
        return cal + (s * torch.tensor([1.0, -2.0, 3.0])).sum()  # the gathered logits carry gradient too

    # the function computes in float32 internally: compare with a coarse gradcheck
    assert torch.autograd.gradcheck(f, (x,), eps=1e-3, atol=1e-3, rtol=1e-3)


def test_calibration_bf16_autocast_and_no_positive():
    x = torch.randn(2, 50, 4).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = calibration_loss(x, torch.zeros(0, dtype=torch.long), torch.zeros(0), gamma=2.0)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and x.grad.dtype == torch.bfloat16
    ref = dense_qfl(x.detach().float(), torch.zeros(0, dtype=torch.long), torch.zeros(0), 2.0)
    assert float(loss) == pytest.approx(float(ref), rel=1e-5)


# ----------------------------------------------------------------------------- L_list scale (literal vs logit)


def fit_one_group(quality, lambda_list, scale, gamma=2.0):
    """Optimise one group's logits (from 0) for L_cal + lambda_list * L_list (T = 0.5); return sigmoid(s)."""
    s = torch.zeros_like(quality, requires_grad=True)
    pos, g = torch.arange(quality.numel()), torch.zeros(quality.numel(), dtype=torch.long)
    opt = torch.optim.LBFGS([s], lr=1, max_iter=150, tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = calibration_loss(s, pos, quality, gamma=gamma)
        loss = loss + lambda_list * listwise_loss(s, quality, g, 0.5, scale=scale) if lambda_list else loss
        loss.backward()
        return loss

    opt.step(closure)
    return s.detach().sigmoid()


def test_list_scale_toy_literal_squeezes_scores_logit_keeps_calibration():
    """One GT's positives: L_cal alone ends at sigmoid(s) = q; adding 0.5 L_list in the paper's literal form
    (softmax(q/T) vs softmax(s/T)) squeezes the scores towards the middle; the logit form leaves them at q."""
    q = torch.tensor([0.9, 0.75, 0.5, 0.3, 0.1])
    cal_only = fit_one_group(q, 0.0, "literal")
    literal = fit_one_group(q, 0.5, "literal")
    logit = fit_one_group(q, 0.5, "logit")
    assert torch.allclose(cal_only, q, atol=0.01)
    assert torch.allclose(logit, q, atol=0.01)
    assert float(literal.max() - literal.min()) < 0.5 * float(q.max() - q.min())  # measured: 0.36 .. 0.63
    assert float(literal.max()) < 0.7 and float(literal.min()) > 0.3
    assert torch.all(literal[:-1] > literal[1:])  # the order survives, the scale does not


def test_list_scales_registry_and_logit_reference():
    from alignrank.loss.rcq import LIST_SCALES, LOGIT_EPS

    assert set(LIST_SCALES) == {"literal", "logit"}
    s, q, g = random_groups(5)
    q = q.clamp(LOGIT_EPS, 1 - LOGIT_EPS)
    for name, u in LIST_SCALES.items():
        for T in (0.3, 1.0):
            assert float(listwise_loss(s, q, g, T, scale=name)) == pytest.approx(ref_listwise(s, u(q), g, T), abs=1e-5)
    # the logit form is zero at the calibrated scores, the literal form is not
    assert float(listwise_loss(torch.logit(q), q, g, 0.5, scale="logit")) < 1e-6
    assert float(listwise_loss(torch.logit(q), q, g, 0.5, scale="literal")) > 1e-3


@pytest.mark.parametrize("scale", ["literal", "logit"])
def test_list_scale_finite_at_quality_bounds_under_bf16(scale):
    q = torch.tensor([0.0, 1.0, 0.5, 0.0, 1.0])  # IoU 0 and 1: logit clamped, never inf
    g = torch.tensor([0, 0, 0, 1, 1])
    x = torch.tensor([3.0, -2.0, 0.0, 40.0, -40.0]).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = listwise_loss(x * 1, q, g, 0.5, scale=scale)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad.float()).all()


def test_calibration_norm_argument():
    x = torch.randn(2, 10, 3, requires_grad=True)
    pos, t = torch.tensor([1, 7, 20]), torch.tensor([0.2, 0.5, 0.9])
    default = calibration_loss(x, pos, t, gamma=2.0)
    by_count = calibration_loss(x, pos, t, gamma=2.0, norm=torch.tensor(3.0))
    assert float(by_count) * 3.0 == pytest.approx(float(default) * float(t.sum().clamp(min=1)), rel=1e-6)
