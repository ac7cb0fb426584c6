"""NMS-free heads: every variant's NMS-free form trains (forward/backward), its one-to-one branch is a detached copy,
the one-to-many path is the plain variant's, and top-k decoding is ultralytics' own end-to-end inference."""

from __future__ import annotations

import pytest
import torch
from ultralytics.cfg import get_cfg
from ultralytics.nn.modules.head import Detect
from ultralytics.utils import DEFAULT_CFG

from alignrank.config import load_params
from alignrank.nn.csd_head import CSDDetect
from alignrank.nn.e2e import add_one2one, decode_one2one, has_one2one, one2one_mode
from alignrank.nn.model import build_model
from alignrank.profile.train_bench import synthetic_batch
from alignrank.variants import VARIANTS, get_variant, is_end2end
from tests.conftest import REPO

NC = 3
E2E_VARIANTS = sorted(v for v in VARIANTS if get_variant(v).end2end)


def _build(variant: str, seed: int = 0, **over):
    p = load_params(REPO / "params.yaml", {"model.scale": "n", **over})
    torch.manual_seed(seed)
    m = build_model(variant, scale="n", nc=NC, model_params=p.model, loss_params=p.loss)
    m.args = get_cfg(DEFAULT_CFG, {"box": p.loss.box, "cls": p.loss.cls, "dfl": p.loss.dfl})
    return m


def test_every_variant_has_a_registered_nms_free_twin():
    base = {v for v in VARIANTS if not get_variant(v).end2end}
    assert {"baseline", "csd", "rcq", "full"} <= base
    for v in base:
        twin = get_variant(v + "_e2e")
        assert twin.end2end and twin.base == v and (twin.head, twin.loss) == (get_variant(v).head, get_variant(v).loss)


@pytest.mark.parametrize("variant", E2E_VARIANTS)
def test_forward_backward_every_nms_free_variant(variant):
    m = _build(variant).train()
    head = m.model[-1]
    assert has_one2one(m) and type(head) is (CSDDetect if get_variant(variant).head == "csd" else Detect)
    batch = synthetic_batch(2, 64, NC)
    out = m(batch["img"])
    assert set(out) == {"one2many", "one2one"}
    for branch in out.values():
        assert branch["boxes"].shape == (2, 4 * head.reg_max, 84) and branch["scores"].shape == (2, NC, 84)
    for key in ("boxes", "scores"):  # the one-to-one branch starts as a copy of the one-to-many one
        assert torch.equal(out["one2one"][key], out["one2many"][key])
    loss, items = m.loss(batch, out)
    names = type(m.criterion).__name__, tuple(items)
    assert names[0] == "DualAssignmentLoss" and names[1] == m.criterion.loss_names
    assert all(k.startswith("o2o_") for k in names[1][len(m.criterion.one2many.loss_names):])
    assert torch.isfinite(loss).all()
    loss.sum().backward()
    grads = {n: p.grad for n, p in m.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), [n for n, g in grads.items() if g is None]
    o2o = [g for n, g in grads.items() if ".one2one_" in n]
    assert o2o and any(g.abs().sum() > 0 for g in o2o)


@pytest.mark.parametrize("variant", ["baseline_e2e", "full_e2e"])
def test_one2one_loss_trains_only_the_one2one_branch(variant):
    """YOLOv10's detach: the one-to-one loss reaches neither the backbone/neck nor (CSD) the shared side stream."""
    m = _build(variant).train()
    m.criterion = m.init_criterion()
    batch = synthetic_batch(2, 64, NC)
    out = m(batch["img"])
    loss, _ = m.criterion.one2one(out["one2one"], batch)
    loss.sum().backward()
    for n, p in m.named_parameters():
        reached = p.grad is not None and p.grad.abs().sum() > 0
        if ".one2one_" in n:
            continue
        assert not reached, f"{n} gets a gradient from the one-to-one loss"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in m.named_parameters() if ".one2one_" in n)
    if variant == "full_e2e":
        assert any(".one2one_router." in n for n, p in m.named_parameters() if p.grad is not None)


@pytest.mark.parametrize("variant", ["baseline", "csd", "rcq", "full"])
def test_one2many_path_is_the_plain_variants(variant):
    """Same seed: the NMS-free twin holds the plain model's weights (plus the copies), its one-to-many outputs and
    one-to-many loss terms are the plain model's, bit for bit."""
    plain, twin = _build(variant).train(), _build(variant + "_e2e").train()
    ps, ts = plain.state_dict(), twin.state_dict()
    assert set(ts) - set(ps) == {k for k in ts if ".one2one_" in k} and set(ps) <= set(ts)
    assert all(torch.equal(ps[k], ts[k]) for k in ps)
    batch = synthetic_batch(2, 64, NC)
    a, b = plain(batch["img"]), twin(batch["img"])
    assert torch.equal(a["boxes"], b["one2many"]["boxes"]) and torch.equal(a["scores"], b["one2many"]["scores"])
    la, ia = plain.loss(batch, a)
    lb, ib = twin.loss(batch, b)
    assert torch.equal(lb[: len(la)], la) and all(torch.equal(ia[k], ib[k]) for k in ia)


def test_model_end2end_param_makes_any_variant_nms_free():
    p = load_params(REPO / "params.yaml", {"model.end2end": True})
    assert is_end2end("full", p.model) and is_end2end("full_e2e", load_params(None).model)
    assert has_one2one(_build("full", **{"model.end2end": True})) and not has_one2one(_build("full"))
    by_param, twin = _build("full", **{"model.end2end": True}).state_dict(), _build("full_e2e").state_dict()
    assert by_param.keys() == twin.keys() and all(torch.equal(by_param[k], twin[k]) for k in twin)  # one model


@pytest.mark.parametrize("variant", ["baseline_e2e", "csd_e2e"])
def test_topk_decoding_is_ultralytics_end2end_inference(variant):
    """decode_one2one on the raw one-to-one outputs = the model's own end2end output; the head's selection is restored."""
    m = _build(variant).eval()
    head = m.model[-1]
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y, raw = m(x)
        top = decode_one2one(head, raw["one2one"], max_det=20)
        assert head.end2end is False and head.max_det == 300
        with one2one_mode(head, max_det=20):
            want = m(x)[0]
    assert top.shape == (2, 20, 6) and torch.equal(top, want)
    assert (top[:, :-1, 4] >= top[:, 1:, 4]).all()  # sorted by score
    fused = build_model(variant, scale="n", nc=NC)
    fused.load_state_dict(m.state_dict())
    fused.eval().model[-1].end2end = True
    fused.model[-1].max_det = 20
    fused.fuse(verbose=False)  # the one-to-many branch is dropped, the one-to-one branch kept
    assert has_one2one(fused) and fused.model[-1].cv2 is None
    with torch.no_grad():
        torch.testing.assert_close(fused(x)[0][..., 4], top[..., 4], atol=1e-4, rtol=1e-4)  # (near-ties may swap boxes)


def test_add_one2one_refuses_a_second_branch_and_csd_ctor_builds_one():
    head = CSDDetect(nc=NC, ch=(16, 32, 64), end2end=True)
    assert {"one2one_cv2", "one2one_cv3", "one2one_router"} <= {n for n, _ in head.named_children()}
    with pytest.raises(ValueError, match="already has"):
        add_one2one(head)
