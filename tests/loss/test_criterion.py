"""Criteria: the baseline is stock v8DetectionLoss, every (loss, assigner, IoU) trains, RCQ items by name."""

from __future__ import annotations

import pytest
import torch
from ultralytics.utils.loss import v8DetectionLoss

from alignrank.config import load_params, with_overrides
from alignrank.config.schema import LossParams
from alignrank.loss.assigners import ASSIGNERS
from alignrank.loss.criterion import AlignRankLoss, AugmentedRCQLoss
from alignrank.loss.iou import IOU_LOSSES
from alignrank.loss.registry import LOSS_ASSIGNERS, LOSSES, assigner_of
from alignrank.loss.v8 import AssignedDetectionLoss, ensure_loss_args
from alignrank.nn.model import build_model
from tests.loss.helpers import NC, make_batch

RCQ_NAMES = ("box_loss", "cal_loss", "list_loss", "rank_loss", "dfl_loss")
AUGMENT_NAMES = ("box_loss", "cls_loss", "list_loss", "rank_loss", "dfl_loss")
ITEM_NAMES = {"rcq_replace": RCQ_NAMES, "rcq_augment": AUGMENT_NAMES}  # v8: stock names
RCQ_LOSSES = ("rcq_replace", "rcq_augment")


@pytest.fixture(scope="module")
def model():
    m = build_model("baseline", scale="n", nc=NC)
    ensure_loss_args(m, LossParams())  # ultralytics' default args (the trainer sets them in training)
    return m


def test_baseline_is_stock_v8(model):
    bare = build_model("baseline", scale="n", nc=NC)
    crit = bare.init_criterion()
    assert type(crit) is v8DetectionLoss
    preds, batch = make_batch(0)
    ref_loss, ref_items = v8DetectionLoss(model)(preds, batch)
    loss, items = crit(preds, batch)
    assert torch.allclose(loss, ref_loss, atol=1e-6, rtol=0)
    assert list(items) == list(ref_items) == ["box_loss", "cls_loss", "dfl_loss"]


def test_restated_v8_loss_equals_stock(model):
    """AssignedDetectionLoss with tal + ciou re-states the stock method: same values and gradients."""
    preds, batch = make_batch(1)
    ref_loss, _ = v8DetectionLoss(model)(preds, batch)
    ref_grads = torch.autograd.grad(ref_loss.sum(), [preds["boxes"], preds["scores"]])
    loss, items = AssignedDetectionLoss(model, LossParams())(preds, batch)
    grads = torch.autograd.grad(loss.sum(), [preds["boxes"], preds["scores"]])
    assert torch.allclose(loss, ref_loss, atol=1e-6, rtol=0) and list(items) == ["box_loss", "cls_loss", "dfl_loss"]
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-6)


def test_v8_builder_switches_on_assigner_and_iou(model):
    assert type(LOSSES["v8"](model, LossParams())) is v8DetectionLoss
    assert type(LOSSES["v8"](model, LossParams(iou_loss="siou"))) is AssignedDetectionLoss
    assert type(LOSSES["v8"](model, LossParams(assigner="simota"))) is AssignedDetectionLoss
    assert type(LOSSES["rcq_replace"](model, LossParams())) is AlignRankLoss
    assert type(LOSSES["rcq_augment"](model, LossParams())) is AugmentedRCQLoss
    # loss.rcq_assigner is the RCQ criteria's: the baseline stays stock YOLOv8 (TAL)
    assert type(LOSSES["v8"](model, LossParams(rcq_assigner="simota"))) is v8DetectionLoss


def test_every_registered_loss_is_tested():
    assert set(LOSSES) == {"v8", *RCQ_LOSSES}, "a new loss needs its item names in ITEM_NAMES and RCQ_LOSSES"


def test_gains_from_params_on_bare_model():
    m = build_model("rcq", scale="n", nc=NC, loss_params=LossParams(box=2.0, cls=3.0, dfl=0.5))
    crit = m.init_criterion()
    assert (crit.hyp.box, crit.hyp.cls, crit.hyp.dfl) == (2.0, 3.0, 0.5)


def test_rcq_box_dfl_equal_baseline_under_tal(model):
    preds, batch = make_batch(2)
    _, ref = v8DetectionLoss(model)(preds, batch)
    loss, items = AlignRankLoss(model, LossParams())(preds, batch)
    assert tuple(items) == RCQ_NAMES
    assert items["box_loss"] == pytest.approx(float(ref["box_loss"]), abs=1e-6)
    assert items["dfl_loss"] == pytest.approx(float(ref["dfl_loss"]), abs=1e-6)
    assert torch.allclose(loss, torch.stack(list(items.values())) * 2)  # loss = items * batch size
    assert all(float(items[k]) > 0 for k in ("cal_loss", "list_loss", "rank_loss"))


def test_rcq_lambdas_scale_terms(model):
    preds, batch = make_batch(3)
    _, base = AlignRankLoss(model, LossParams())(preds, batch)
    p = LossParams(lambda_cal=2.0, lambda_list=0.0, lambda_rank=3.0)
    _, items = AlignRankLoss(model, p)(preds, batch)
    assert float(items["cal_loss"]) == pytest.approx(2 * float(base["cal_loss"]), rel=1e-5)
    assert float(items["list_loss"]) == 0.0
    assert float(items["rank_loss"]) == pytest.approx(3 * float(base["rank_loss"]), rel=1e-5)


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("assigner", sorted(ASSIGNERS))
@pytest.mark.parametrize("iou", sorted(IOU_LOSSES))
def test_every_option_forward_backward(model, loss_name, assigner, iou):
    crit = LOSSES[loss_name](model, LossParams(assigner=assigner, iou_loss=iou, beta=0.5))
    preds, batch = make_batch(4)
    loss, items = crit(preds, batch)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and all(torch.isfinite(v) for v in items.values())
    for t in (preds["boxes"], preds["scores"]):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    assert tuple(items) == ITEM_NAMES.get(loss_name, ("box_loss", "cls_loss", "dfl_loss"))


@pytest.mark.parametrize("loss_name", RCQ_LOSSES)
@pytest.mark.parametrize("cal_norm", ["quality", "positives", "assigner"])
@pytest.mark.parametrize("list_scale", ["literal", "logit"])
def test_every_rcq_setting_forward_backward_bf16(model, loss_name, cal_norm, list_scale):
    """Every RCQ criterion x L_cal divisor x L_list scale: finite loss and gradients under CPU bf16 autocast,
    close to the float32 loss."""
    p = LossParams(cal_norm=cal_norm, list_scale=list_scale, beta=0.5)
    preds, batch = make_batch(8)
    preds_bf = {k: preds[k].detach().bfloat16().requires_grad_() for k in ("boxes", "scores")}
    preds_bf["feats"] = preds["feats"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, items = LOSSES[loss_name](model, p)(preds_bf, batch)
    loss.sum().backward()
    assert tuple(items) == ITEM_NAMES[loss_name] and all(torch.isfinite(v) for v in items.values())
    assert torch.isfinite(preds_bf["scores"].grad.float()).all() and preds_bf["scores"].grad.abs().sum() > 0
    _, ref = LOSSES[loss_name](model, p)(preds, batch)
    assert float(items["list_loss"]) == pytest.approx(float(ref["list_loss"]), rel=0.1, abs=1e-3)


@pytest.mark.parametrize("loss_name", RCQ_LOSSES)
@pytest.mark.parametrize("assigner", sorted(ASSIGNERS))
def test_rcq_all_negative_batch(model, loss_name, assigner):
    preds, _ = make_batch(5)
    empty = {"batch_idx": torch.zeros(0), "cls": torch.zeros(0), "bboxes": torch.zeros(0, 4)}
    loss, items = LOSSES[loss_name](model, LossParams(assigner=assigner))(preds, empty)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and float(items["list_loss"]) == float(items["rank_loss"]) == 0.0
    assert float(items["box_loss"]) == 0.0 and preds["scores"].grad.abs().sum() > 0


def test_rcq_bf16_autocast(model):
    preds, batch = make_batch(6)
    preds_bf = {k: preds[k].detach().bfloat16().requires_grad_() for k in ("boxes", "scores")}
    preds_bf["feats"] = preds["feats"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, items = AlignRankLoss(model, LossParams())(preds_bf, batch)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(preds_bf["scores"].grad.float()).all()
    _, ref = AlignRankLoss(model, LossParams())(preds, batch)
    assert float(items["list_loss"]) == pytest.approx(float(ref["list_loss"]), rel=0.1, abs=1e-3)


def test_params_validation_of_loss_keys():
    from alignrank.config import ParamsError

    p = load_params(None)
    bad_values = {"loss.temperature": 0.0, "loss.lambda_rank": -1.0, "loss.margin": -0.1, "loss.eps": -0.01}
    bad_values.update({"loss.assigner": "ota", "loss.rcq_assigner": "ota", "loss.cal_norm": "sum", "loss.list_scale": "log"})
    for key, bad in bad_values.items():
        with pytest.raises(ParamsError, match=key):
            with_overrides(p, {key: bad})


def test_quality_focal_reduction(model):
    """lambda_list = lambda_rank = 0, gamma = 0, alpha0 = 1: cal is cls * BCE(s, IoU at positives) / max(sum IoU, 1)."""
    import torch.nn.functional as F

    from alignrank.loss.quality import positive_quality

    preds, batch = make_batch(7)
    p = LossParams(lambda_list=0.0, lambda_rank=0.0, gamma=0.0, alpha0=1.0, alpha=1.0, beta=0.0)
    crit = AlignRankLoss(model, p)
    (fg, gt_idx, tboxes, anchors, stride), _, items = crit.get_assigned_targets_and_loss(preds, batch)
    # rebuild the dense target by hand from the returned assignment
    scores = preds["scores"].detach().permute(0, 2, 1)  # (b, A, C)
    pred_boxes = crit.bbox_decode(anchors, preds["boxes"].detach().permute(0, 2, 1))
    bi, ai = fg.nonzero(as_tuple=True)
    counts = torch.bincount(batch["batch_idx"].long())  # GTs per image; GT j of image i is row offset_i + j
    offsets = counts.cumsum(0) - counts
    labels = batch["cls"].long()[offsets[bi] + gt_idx[bi, ai]]
    q, _ = positive_quality(pred_boxes[bi, ai], tboxes[bi, ai] / stride[ai], anchors[ai], alpha=1.0, beta=0.0)
    target = torch.zeros_like(scores)
    target[bi, ai, labels] = q
    expected = F.binary_cross_entropy_with_logits(scores, target, reduction="sum") / q.sum().clamp(min=1) * crit.hyp.cls
    assert float(items["cal_loss"]) == pytest.approx(float(expected), rel=1e-5)


ASSIGNER_CLASSES = {"TaskAlignedAssigner": "tal", "TALAssigner": "tal", "SimOTAAssigner": "simota", "ATSSAssigner": "atss"}


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_assigner_of_every_loss_is_the_built_one(model, loss_name):
    """assigner_of (params only, for labels) names the assigner the built criterion really uses."""
    assert set(LOSS_ASSIGNERS) == set(LOSSES)
    for p in (LossParams(), LossParams(assigner="atss"), LossParams(assigner="tal", rcq_assigner="simota")):
        crit = LOSSES[loss_name](model, p)
        assert ASSIGNER_CLASSES[type(crit.assigner).__name__] == assigner_of(loss_name, p)
    split = LossParams(assigner="tal", rcq_assigner="simota")
    assert assigner_of(loss_name, split) == ("tal" if loss_name == "v8" else "simota")
