"""RCQ-Loss terms as pure, vectorized tensor functions over the positives of a batch.

Inputs over the N positives: ``logits`` (N,) classification logit of each positive for its assigned
class, ``quality`` (N,) in [0, 1] (detached), ``groups`` (N,) int64 id of the ground truth each
positive is assigned to (unique across the batch, any integers). All math runs in float32, so the
terms are finite under fp16/bf16 autocast; an empty batch (N = 0) gives 0 still attached to the graph.

* :func:`listwise_loss` — mean over groups with >= 2 members of KL(softmax(u/T) || softmax(s/T)),
  with segment ops (scatter-amax, index_add): O(N) memory, no padding. ``scale`` picks u
  (:data:`LIST_SCALES`): ``literal`` u = q, the paper's form, which compares logits with qualities in
  [0, 1] (its minimisers are s = q + c: logit gaps equal to quality gaps, so sigmoid(s) cannot reach q
  when it is combined with L_cal); ``logit`` u = logit(q), the same-scale form (minimisers
  s = logit(q) + c, which include L_cal's optimum sigmoid(s) = q).
* :func:`pairwise_rank_loss` — mean over groups with >= 1 pair of
  (1/|P_g|) sum_{q_i > q_j + eps} (q_i - q_j) * max(0, m - (sigmoid(s_i) - sigmoid(s_j))), on a padded
  (G, Kmax, Kmax) layout; groups are sorted by size and processed in chunks of at most ``pair_budget``
  pair elements (a Python loop over chunks, never over groups or positives).
* :func:`calibration_loss` — L_cal, the quality-focal BCE over all anchors x classes with target q^alpha0
  at each positive's class and 0 elsewhere, weight |sigmoid(s) - t|^gamma, divided by max(sum t, 1) or a
  given normaliser (the criterion's ``loss.cal_norm``).
  One fused autograd function: a dense t = 0 pass plus a sparse correction at the positives.

Examples:
    >>> import torch
    >>> s = torch.tensor([2.0, 0.0, 1.0]); q = torch.tensor([0.9, 0.1, 0.5]); g = torch.tensor([0, 0, 1])
    >>> abs(float(listwise_loss(q + 3.0, q, g, temperature=0.5))) < 1e-6  # s = q + c: zero
    True
    >>> float(pairwise_rank_loss(s, q, g, margin=0.1, eps=0.0))  # sigmoid(2) - sigmoid(0) > margin
    0.0
"""

from __future__ import annotations

from itertools import accumulate

import torch
import torch.nn.functional as F


def _segments(groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense group index of each positive (N,) in [0, G) and the group sizes (G,)."""
    _, inv, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    return inv, counts


def _segment_log_softmax(x: torch.Tensor, inv: torch.Tensor, num: int) -> torch.Tensor:
    """log-softmax of (N,) ``x`` within each segment ``inv`` (N,) of ``num`` segments; stable (max-shifted)."""
    mx = x.new_full((num,), float("-inf")).scatter_reduce(0, inv, x.detach(), "amax")  # (G,) segment max
    z = (x - mx[inv]).exp()  # (N,) in (0, 1]
    lse = mx + x.new_zeros(num).index_add(0, inv, z).log()  # (G,) log-sum-exp
    return x - lse[inv]  # (N,)


LOGIT_EPS = 1e-4  # ``logit`` list scale: q is clamped to [eps, 1 - eps] (logit(0) = -inf)


def _literal(quality: torch.Tensor) -> torch.Tensor:
    """The paper's list target scale: u = q."""
    return quality


def _logit(quality: torch.Tensor) -> torch.Tensor:
    """The logits' scale: u = logit(q), q clamped to [LOGIT_EPS, 1 - LOGIT_EPS]."""
    return torch.logit(quality, eps=LOGIT_EPS)


LIST_SCALES = {"literal": _literal, "logit": _logit}  # loss.list_scale -> u(q) of the target softmax


def listwise_loss(
    logits: torch.Tensor,
    quality: torch.Tensor,
    groups: torch.Tensor,
    temperature: float,
    *,
    scale: str = "literal",
) -> torch.Tensor:
    """L_list: mean over groups with >= 2 positives of KL(softmax(u(q_g) / T) || softmax(s_g / T)).

    Args:
        logits: (N,) logits s of the positives for their assigned class.
        quality: (N,) qualities q in [0, 1] (treated as constants).
        groups: (N,) int64 GT id of each positive.
        temperature: Softmax temperature T > 0.
        scale: u(q) in :data:`LIST_SCALES`: ``literal`` (u = q, the paper) or ``logit`` (u = logit(q)).

    Returns:
        Scalar float32 loss (0 when no group has two positives).

    Examples:
        >>> import torch
        >>> q = torch.tensor([0.9, 0.5, 0.1]); g = torch.zeros(3, dtype=torch.long)
        >>> float(listwise_loss(torch.logit(q), q, g, 0.5, scale="logit")) < 1e-6  # sigmoid(s) = q: zero
        True
        >>> float(listwise_loss(torch.logit(q), q, g, 0.5)) > 0.1  # the literal form moves it away
        True
    """
    s = logits.float().reshape(-1) / temperature  # (N,)
    if s.numel() == 0:
        return s.sum()
    q = LIST_SCALES[scale](quality.detach().float().reshape(-1)) / temperature  # (N,)
    inv, counts = _segments(groups.reshape(-1))
    num = counts.numel()
    log_ps = _segment_log_softmax(s, inv, num)  # (N,) log p_s
    log_pq = _segment_log_softmax(q, inv, num)  # (N,) log p_q
    kl = s.new_zeros(num).index_add(0, inv, log_pq.exp() * (log_pq - log_ps))  # (G,) KL per group
    valid = counts >= 2  # (G,)
    return (kl * valid).sum() / valid.sum().clamp(min=1)


def plan_pair_chunks(sizes: list[int], pair_budget: int) -> list[tuple[int, int, int]]:
    """Chunks (g0, g1, kmax) of groups sorted by descending size with (g1 - g0) * kmax^2 <= budget.

    A single group larger than the budget forms its own chunk. Used by :func:`pairwise_rank_loss`
    and by the loss benchmark to report the largest pair tensor.

    Examples:
        >>> plan_pair_chunks([4, 3, 2, 2], pair_budget=20)
        [(0, 1, 4), (1, 3, 3), (3, 4, 2)]
    """
    chunks, g0 = [], 0
    while g0 < len(sizes):
        k = max(sizes[g0], 1)
        g1 = min(len(sizes), g0 + max(1, pair_budget // (k * k)))
        chunks.append((g0, g1, k))
        g0 = g1
    return chunks


def pairwise_rank_loss(
    logits: torch.Tensor,
    quality: torch.Tensor,
    groups: torch.Tensor,
    margin: float,
    eps: float,
    pair_budget: int = 4_000_000,
) -> torch.Tensor:
    """L_rank: quality-weighted pairwise hinge on sigmoid scores, within each GT's positives.

    For each group g, P_g = {(i, j): q_i > q_j + eps}; the group's loss is
    (1/|P_g|) sum_{P_g} (q_i - q_j) * max(0, margin - (sigmoid(s_i) - sigmoid(s_j))), and the result is
    the mean over groups with |P_g| >= 1 (0 when there is none).

    Args:
        logits: (N,) logits s.
        quality: (N,) qualities q (treated as constants).
        groups: (N,) int64 GT id of each positive.
        margin: Hinge margin m >= 0.
        eps: Pair threshold eps >= 0.
        pair_budget: Most G_chunk * Kmax^2 pair elements materialised at once.

    Returns:
        Scalar float32 loss.
    """
    s = logits.float().reshape(-1)  # (N,)
    n = s.numel()
    if n == 0:
        return s.sum()
    q = quality.detach().float().reshape(-1)  # (N,)
    inv, counts = _segments(groups.reshape(-1))
    num = counts.numel()
    gorder = torch.argsort(counts, descending=True, stable=True)  # (G,) old group id at each new rank
    grank = torch.empty_like(gorder)
    grank[gorder] = torch.arange(num, device=gorder.device)  # (G,) new rank of each old group
    r = grank[inv]  # (N,) new (size-sorted) group index of each positive
    order = torch.argsort(r, stable=True)  # (N,) positives grouped, largest groups first
    sizes_t = counts[gorder]  # (G,) descending sizes
    starts_t = sizes_t.cumsum(0) - sizes_t  # (G,) first sorted position of each group
    r_sorted = r[order]  # (N,)
    slot = torch.arange(n, device=s.device) - starts_t[r_sorted]  # (N,) position within its group
    s_sorted, q_sorted = s[order], q[order]  # (N,)

    sizes = sizes_t.tolist()
    starts = [0, *accumulate(sizes)]
    total = s.new_zeros(())
    groups_with_pairs = s.new_zeros(())
    for g0, g1, k in plan_pair_chunks(sizes, pair_budget):
        p0, p1 = starts[g0], starts[g1]
        idx = (r_sorted[p0:p1] - g0, slot[p0:p1])  # (n_c,), (n_c,) padded coordinates
        sig = s.new_zeros(g1 - g0, k).index_put(idx, s_sorted[p0:p1].sigmoid())  # (Gc, K)
        qp = q.new_zeros(g1 - g0, k).index_put(idx, q_sorted[p0:p1])  # (Gc, K)
        valid = torch.zeros(g1 - g0, k, dtype=torch.bool, device=s.device)
        valid[idx] = True  # (Gc, K) real (not padding) slots
        dq = qp[:, :, None] - qp[:, None, :]  # (Gc, K, K) q_i - q_j
        pairs = (dq > eps) & valid[:, :, None] & valid[:, None, :]  # (Gc, K, K)
        hinge = (margin - (sig[:, :, None] - sig[:, None, :])).clamp(min=0)  # (Gc, K, K)
        per_group = (dq * pairs * hinge).sum((1, 2))  # (Gc,)
        npairs = pairs.sum((1, 2))  # (Gc,)
        total = total + (per_group / npairs.clamp(min=1)).sum()
        groups_with_pairs = groups_with_pairs + (npairs > 0).sum()
    return total / groups_with_pairs.clamp(min=1)


class _QualityFocalSum(torch.autograd.Function):
    """sum over all elements of BCE(x, t) * |sigmoid(x) - t|^gamma with t = 0 except at ``pos_index``.

    Also returns the positives' logits ``x[pos_index]`` as a second differentiable output, so the group
    terms can use them without a second dense gradient (autograd's gather backward would allocate one).
    Forward: a dense t = 0 pass (softplus(x) * p^gamma) plus a correction at the positives. Backward is
    analytic (d/dx of the dense part is p^gamma * (p + gamma * (1 - p) * softplus(x)), singularity-free).
    """

    @staticmethod
    def forward(ctx, x, probs, pos_index, target, gamma):
        xf = x.detach().float().reshape(-1)  # (M,)
        p = probs.detach().float().reshape(-1) if probs is not None else xf.sigmoid()  # (M,)
        sp = F.softplus(xf)  # (M,) BCE(x, 0)
        w = p * p if gamma == 2 else p.pow(gamma)  # (M,) |p - 0|^gamma
        dense = torch.dot(sp, w)
        xp, pp, t = xf[pos_index], p[pos_index], target.detach().float()  # (N,)
        bce_p = F.binary_cross_entropy_with_logits(xp, t, reduction="none")  # (N,)
        d = pp - t  # (N,)
        wp = d.abs().pow(gamma)  # (N,)
        total = dense + (bce_p * wp).sum() - (sp[pos_index] * w[pos_index]).sum()
        ctx.save_for_backward(p, sp, pos_index, pp, t, bce_p, d, wp)
        ctx.gamma, ctx.shape, ctx.dtype = gamma, x.shape, x.dtype
        return total, xp

    @staticmethod
    def backward(ctx, grad_total, grad_xp):
        p, sp, pos_index, pp, t, bce_p, d, wp = ctx.saved_tensors
        gamma = ctx.gamma
        w = (p * p if gamma == 2 else p.pow(gamma)).mul_(grad_total)  # (M,) g * p^gamma
        grad = torch.addcmul(p, sp, 1 - p, value=gamma).mul_(w)  # (M,) g * d/dx[softplus(x) p^gamma]
        a = d.abs()
        dw = torch.where(a > 0, gamma * d * a.clamp(min=1e-12).pow(gamma - 2), torch.zeros_like(a))  # d|d|^g / dd
        gpos = (pp - t) * wp + bce_p * dw * pp * (1 - pp)  # (N,) d/dx[BCE(x, t) |p - t|^gamma]
        grad[pos_index] = gpos * grad_total + grad_xp.float()
        return grad.view(ctx.shape).to(ctx.dtype), None, None, None, None


def calibration_loss_and_logits(
    logits: torch.Tensor,
    pos_index: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float,
    probs: torch.Tensor | None = None,
    norm: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`calibration_loss` and the positives' logits ``logits.reshape(-1)[pos_index]`` (N,) float32.

    Use the returned logits for the group terms: their gradient joins L_cal's in one dense tensor.
    """
    if norm is None:
        norm = target.detach().float().sum().clamp(min=1)
    total, pos_logits = _QualityFocalSum.apply(logits, probs, pos_index, target, gamma)
    return total / norm, pos_logits


def calibration_loss(
    logits: torch.Tensor,
    pos_index: torch.Tensor,
    target: torch.Tensor,
    *,
    gamma: float,
    probs: torch.Tensor | None = None,
    norm: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """L_cal: quality-focal BCE over every element of ``logits``, divided by ``norm`` (max(sum target, 1)
    when None; GFL's QFL divides by the number of positives, YOLOv8 by the sum of its soft targets).

    Args:
        logits: (..., C) dense classification logits (e.g. (B, A, C)); any float dtype.
        pos_index: (N,) int64 flat indices into ``logits.reshape(-1)`` of each positive's assigned class
            (unique).
        target: (N,) targets t = q^alpha0 at those elements (0 everywhere else).
        gamma: Focal modulation exponent, weight |sigmoid(s) - t|^gamma.
        probs: Optional detached ``sigmoid(logits)`` already computed by the caller (saves one pass).
        norm: Divisor of the summed loss (None: max(sum target, 1)).

    Returns:
        Scalar float32 loss.

    Examples:
        >>> import torch
        >>> x = torch.zeros(1, 2, 2, requires_grad=True)  # sigmoid 0.5 everywhere, gamma 0: plain BCE
        >>> round(calibration_loss(x, torch.tensor([1]), torch.tensor([1.0]), gamma=0.0).item(), 4)  # 4 ln 2
        2.7726
    """
    return calibration_loss_and_logits(logits, pos_index, target, gamma=gamma, probs=probs, norm=norm)[0]
