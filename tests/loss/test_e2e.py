"""YOLOv10's dual assignment: the stock dual loss IS ultralytics' E2EDetectLoss; RCQ on the one-to-one branch (the
two readings of loss.o2o_loss), what L_list / L_rank become with one positive per ground truth, weights."""

from __future__ import annotations

import pytest
import torch
from ultralytics.utils.loss import E2EDetectLoss, v8DetectionLoss
from ultralytics.utils.tal import TaskAlignedAssigner

from alignrank.config.schema import LossParams
from alignrank.loss.e2e import BranchParams, DualAssignmentLoss, build_dual_loss
from alignrank.loss.v8 import ensure_loss_args
from alignrank.nn.model import build_model
from tests.loss.helpers import NC, make_batch, random_gts


def _e2e_preds(seed: int, gts=(3, 2)):
    """Independent random one-to-many and one-to-one head outputs of the same shapes, one batch of ground truth."""
    o2m, batch = make_batch(seed, gts=gts)
    o2o, _ = make_batch(seed + 100, gts=gts)
    return {"one2many": o2m, "one2one": o2o}, batch


def init_e2e_outputs(model, seed: int = 0, b: int = 4, imgsz: int = 128, gts=(4, 3, 5, 2)):
    """Both branches' head outputs of an NMS-free ``model`` at initialisation, as detached leaves."""
    gen = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        preds = model(torch.rand(b, 3, imgsz, imgsz, generator=gen))
    out = {br: {k: (v if k == "feats" else v.detach().requires_grad_()) for k, v in p.items()} for br, p in preds.items()}
    return out, random_gts(gen, gts)


@pytest.fixture(scope="module")
def model():
    m = build_model("baseline_e2e", scale="n", nc=NC)
    ensure_loss_args(m, LossParams())
    return m


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stock_dual_loss_equals_ultralytics_e2e_loss(model, seed):
    """Same predictions: total, per-name items (one-to-many + one-to-one) and gradients equal E2EDetectLoss's."""
    crit = model.init_criterion()
    assert isinstance(crit, DualAssignmentLoss)
    assert type(crit.one2many) is v8DetectionLoss and type(crit.one2one) is v8DetectionLoss
    preds, batch = _e2e_preds(seed)
    ref_loss, ref_items = E2EDetectLoss(model)(preds, batch)
    leaves = [preds[b][k] for b in ("one2many", "one2one") for k in ("boxes", "scores")]
    ref_grads = torch.autograd.grad(ref_loss.sum(), leaves)
    loss, items = crit(preds, batch)
    grads = torch.autograd.grad(loss.sum(), leaves)
    assert torch.equal(loss[:3] + loss[3:], ref_loss)  # E2EDetectLoss adds the two branches' (3,) vectors
    for k, v in ref_items.items():
        assert torch.equal(items[k] + items["o2o_" + k], v), k
    for g, r in zip(grads, ref_grads):
        assert torch.equal(g, r)
    loss_t, _ = crit((torch.zeros(1), preds), batch)  # eval-mode (decoded, raw) tuple
    assert torch.equal(loss_t, loss)


def test_one2one_assignment_is_consistent_top1_tal(model):
    crit = model.init_criterion()
    a_m, a_o = crit.one2many.assigner, crit.one2one.assigner
    assert (a_m.topk, a_o.topk) == (10, 1) and (a_m.alpha, a_m.beta) == (a_o.alpha, a_o.beta) == (0.5, 6.0)
    crit = build_dual_loss(model, LossParams(o2o_topk=3, tal_topk=7), "v8")
    assert (crit.one2many.assigner.topk, crit.one2one.assigner.topk) == (7, 3)
    crit = build_dual_loss(model, LossParams(assigner="atss"), "v8")  # one-to-many: the chosen assigner; one-to-one: TAL
    assert not isinstance(crit.one2many.assigner, TaskAlignedAssigner)
    assert isinstance(crit.one2one.assigner, TaskAlignedAssigner) and crit.one2one.assigner.topk == 1


def test_rcq_on_one2one_branch_list_and_rank_vanish_with_one_positive():
    """rcq_replace_e2e (o2o_loss same): with top-1, L_list and L_rank are exactly 0 on the one-to-one branch (a group of one),
    L_cal is not; on the one-to-many branch all three act."""
    m = build_model("rcq_replace_e2e", scale="n", nc=NC)
    ensure_loss_args(m, LossParams())
    crit = m.init_criterion()
    assert crit.loss_names == ("box_loss", "cal_loss", "list_loss", "rank_loss", "dfl_loss", "o2o_box_loss",
                               "o2o_cal_loss", "o2o_list_loss", "o2o_rank_loss", "o2o_dfl_loss")
    preds, batch = init_e2e_outputs(m)
    loss, items = crit(preds, batch)
    assert items["o2o_list_loss"] == 0 and items["o2o_rank_loss"] == 0 and items["o2o_cal_loss"] > 0
    assert items["list_loss"] > 0 and items["rank_loss"] > 0 and torch.isfinite(loss).all()
    grads = torch.autograd.grad(loss.sum(), [preds["one2one"]["scores"]])[0]
    assert torch.isfinite(grads).all() and grads.abs().sum() > 0
    with_topk3 = build_dual_loss(m, LossParams(o2o_topk=3), "rcq_replace")  # more than one positive: the group terms return
    assert with_topk3(preds, batch)[1]["o2o_list_loss"] > 0


def test_o2o_loss_readings():
    """v8: the one-to-one branch gets YOLOv8's stock loss (RCQ on the one-to-many branch only); for rcq_augment the
    one-to-one classification term is the same under both readings (the group terms vanish)."""
    m = build_model("rcq_e2e", scale="n", nc=NC)
    ensure_loss_args(m, LossParams())
    stock = build_dual_loss(m, LossParams(o2o_loss="v8"), "rcq_replace")
    assert type(stock.one2one) is v8DetectionLoss and stock.loss_names[5:] == ("o2o_box_loss", "o2o_cls_loss",
                                                                               "o2o_dfl_loss")
    preds, batch = init_e2e_outputs(m)
    same = build_dual_loss(m, LossParams(o2o_loss="same"), "rcq_augment")(preds, batch)[1]
    v8 = build_dual_loss(m, LossParams(o2o_loss="v8"), "rcq_augment")(preds, batch)[1]
    for k in ("o2o_box_loss", "o2o_cls_loss", "o2o_dfl_loss"):
        torch.testing.assert_close(same[k], v8[k], atol=1e-6, rtol=1e-6)
    assert same["o2o_list_loss"] == 0 and same["o2o_rank_loss"] == 0


def test_branch_weights_scale_each_branch():
    m = build_model("baseline_e2e", scale="n", nc=NC)
    ensure_loss_args(m, LossParams())
    preds, batch = _e2e_preds(3)
    ref, ref_items = build_dual_loss(m, LossParams(), "v8")(preds, batch)
    loss, items = build_dual_loss(m, LossParams(o2m_weight=0.5, o2o_weight=2.0), "v8")(preds, batch)
    torch.testing.assert_close(loss, torch.cat((ref[:3] * 0.5, ref[3:] * 2.0)))
    torch.testing.assert_close(items["o2o_cls_loss"], ref_items["o2o_cls_loss"] * 2.0)
    crit = build_dual_loss(m, LossParams(), "v8")
    crit.update()
    assert crit.updates == 1  # ultralytics' per-epoch / resume hook: YOLOv10's weights stay constant
    assert torch.equal(crit(preds, batch)[0], ref)


def test_branch_params_fix_fields_and_forward_the_rest():
    seen = []

    class Spy:
        def __getattr__(self, name):
            seen.append(name)
            return getattr(LossParams(), name)

    b = BranchParams(Spy(), tal_topk=1)
    assert (b.tal_topk, b.iou_loss) == (1, "ciou") and seen == ["iou_loss"]
    with pytest.raises(AttributeError):
        b.tal_topk = 3
