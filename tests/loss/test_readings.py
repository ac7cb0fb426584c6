"""The two readings of RCQ-Loss (replace, augment), L_cal's divisors, the RCQ assigner, and the gradient
at initialisation compared with YOLOv8's stock classification loss."""

from __future__ import annotations

import typing

import pytest
import torch

from alignrank.config.schema import LossParams
from alignrank.loss.criterion import CAL_NORMS, AlignRankLoss, AugmentedRCQLoss, positives, rcq_assigner_name
from alignrank.loss.rcq import LIST_SCALES
from alignrank.loss.v8 import AssignedDetectionLoss, ensure_loss_args
from alignrank.nn.model import build_model
from tests.loss.helpers import NC, init_head_outputs, make_batch


@pytest.fixture(scope="module")
def model():
    m = build_model("baseline", scale="n", nc=NC)
    ensure_loss_args(m, LossParams())
    return m


def capture(cls):
    """``cls`` that keeps the assignment context of its last call in ``self.ctx``."""

    class Capturing(cls):
        def classification_loss(self, ctx):
            self.ctx = ctx
            return super().classification_loss(ctx)

    return Capturing


def score_grad(crit, preds, batch) -> torch.Tensor:
    """d(loss)/d(class logits) as (b, A, C)."""
    loss, _ = crit(preds, batch)
    return torch.autograd.grad(loss.sum(), preds["scores"])[0].permute(0, 2, 1)


def test_params_choices_match_implementations():
    hints = typing.get_type_hints(LossParams)
    assert set(typing.get_args(hints["cal_norm"])) == set(CAL_NORMS)
    assert set(typing.get_args(hints["list_scale"])) == set(LIST_SCALES)


def test_augment_is_stock_cls_plus_group_terms(model):
    """rcq_augment: cls_loss is YOLOv8's stock term, list/rank are the replace reading's, box/dfl unchanged."""
    p = LossParams()
    preds, batch = make_batch(11)
    _, stock = AssignedDetectionLoss(model, p)(preds, batch)
    _, aug = AugmentedRCQLoss(model, p)(preds, batch)
    _, rep = AlignRankLoss(model, p)(preds, batch)
    assert float(aug["cls_loss"]) == pytest.approx(float(stock["cls_loss"]), rel=1e-6)
    for k in ("box_loss", "dfl_loss"):
        assert float(aug[k]) == pytest.approx(float(stock[k]), rel=1e-6)
    for k in ("list_loss", "rank_loss"):
        assert float(aug[k]) == pytest.approx(float(rep[k]), rel=1e-5) and float(aug[k]) > 0


def test_augment_without_group_terms_is_stock_and_group_gradient_is_on_positives(model):
    preds, batch = make_batch(12)
    off = LossParams(lambda_list=0.0, lambda_rank=0.0)
    g_stock = score_grad(AssignedDetectionLoss(model, off), preds, batch)
    assert torch.allclose(score_grad(AugmentedRCQLoss(model, off), preds, batch), g_stock, atol=1e-7)
    crit = capture(AugmentedRCQLoss)(model, LossParams())
    extra = (score_grad(crit, preds, batch) - g_stock).reshape(-1)  # (b*A*C,) gradient of L_list + L_rank
    pos_index, _, _ = positives(crit.ctx, crit.params)
    on_pos = torch.zeros_like(extra, dtype=torch.bool)
    on_pos[pos_index] = True
    assert extra[on_pos].abs().sum() > 0 and torch.all(extra[~on_pos].abs() < 1e-7)


def test_cal_norm_divisors(model):
    """L_cal / max(sum targets, 1), / max(number of positives, 1), / the assigner's target-score sum."""
    preds, batch = make_batch(13)
    p = dict(lambda_list=0.0, lambda_rank=0.0)
    cal = {}
    for norm in CAL_NORMS:
        crit = capture(AlignRankLoss)(model, LossParams(cal_norm=norm, **p))
        cal[norm] = float(crit(preds, batch)[1]["cal_loss"])
    _, _, q = positives(crit.ctx, crit.params)
    total = cal["quality"] * max(float(q.sum()), 1.0)  # the undivided sum (alpha0 = 1: targets = q)
    assert cal["positives"] * max(q.numel(), 1) == pytest.approx(total, rel=1e-5)
    assert cal["assigner"] * float(crit.ctx["target_scores_sum"]) == pytest.approx(total, rel=1e-5)
    assert q.numel() > 0 and len({round(v, 6) for v in cal.values()}) == 3


@pytest.mark.parametrize("cls", [AlignRankLoss, AugmentedRCQLoss])
def test_rcq_assigner(model, cls):
    """loss.rcq_assigner gives the RCQ criteria their own assigner (same = loss.assigner)."""
    assert rcq_assigner_name(LossParams(assigner="atss")) == "atss"
    assert cls(model, LossParams(assigner="atss")).assigner_name == "atss"
    crit = cls(model, LossParams(assigner="tal", rcq_assigner="simota"))
    assert crit.assigner_name == "simota" and type(crit.assigner).__name__ == "SimOTAAssigner"
    preds, batch = make_batch(14)
    _, items = crit(preds, batch)
    _, ref = AssignedDetectionLoss(model, LossParams(assigner="simota"))(preds, batch)
    assert float(items["box_loss"]) == pytest.approx(float(ref["box_loss"]), rel=1e-6)


def pos_neg(grad: torch.Tensor, ctx: dict) -> tuple[float, float]:
    """(sum of the gradient at the positives' assigned classes, sum of |gradient| elsewhere)."""
    pos_index, _, _ = positives(ctx, LossParams())
    flat = grad.reshape(-1)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[pos_index] = True
    return float(flat[mask].sum()), float(flat[~mask].abs().sum())


def test_init_gradient_against_stock():
    """At initialisation (YOLOv8's prior bias: scores ~1e-4..1e-2), TAL positives, replace reading:

    * gamma = 0 (BCE towards IoU, / sum of targets) pulls the positives up with the stock loss's strength
      (sum (t - p) / sum t ~ 1 for both) and pushes the negatives down within a factor of 3 of it (sum q
      exceeds TAL's target-score sum, whose targets decay with the alignment metric away from the best
      anchor): no scale error in L_cal or its divisor;
    * gamma = 2 (the paper's focal L_cal) keeps the positives' pull at about E[q^3]/E[q] of it (~0.1 here:
      qualities are low at init) and the negatives' push below 1e-3 of it (|sigmoid(s)|^2 at the prior):
      the cause of its slow start (docs/fidelity.md).
    """
    m = build_model("baseline", scale="n", nc=NC)  # fresh: the prior bias of YOLOv8's Detect head
    ensure_loss_args(m, LossParams())
    preds, batch = init_head_outputs(m)
    stock = capture(AssignedDetectionLoss)(m, LossParams())
    s_pos, s_neg = pos_neg(score_grad(stock, preds, batch), stock.ctx)
    off = dict(lambda_list=0.0, lambda_rank=0.0)
    bce = capture(AlignRankLoss)(m, LossParams(gamma=0.0, **off))
    b_pos, b_neg = pos_neg(score_grad(bce, preds, batch), bce.ctx)
    qfl = capture(AlignRankLoss)(m, LossParams(gamma=2.0, **off))
    f_pos, f_neg = pos_neg(score_grad(qfl, preds, batch), qfl.ctx)
    assert s_pos < 0 and b_pos < 0 and f_pos < 0  # descent raises the positives' scores
    assert 0.5 < b_pos / s_pos < 2 and 1 / 3 < b_neg / s_neg < 3
    _, _, q = positives(qfl.ctx, qfl.params)
    assert f_pos / b_pos == pytest.approx(float((q**3).sum() / q.sum()), rel=0.1)
    assert f_pos / s_pos < 0.3 and f_neg / s_neg < 1e-3
