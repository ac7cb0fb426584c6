"""CSDDetect and the model: every variant forward/backward at scales n and s, Detect contract, fuse, params."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from ultralytics.nn.modules import Conv, DWConv
from ultralytics.nn.modules.head import Detect

from alignrank.config import ParamsError, load_params
from alignrank.config.fields import build
from alignrank.config.schema import ModelParams
from alignrank.loss.registry import LOSSES
from alignrank.nn.csd_head import CSDDetect
from alignrank.nn.dynconv import DynConv2d
from alignrank.nn.model import build_model
from alignrank.profile.train_bench import synthetic_batch
from alignrank.variants import VARIANTS, get_variant
from tests.conftest import REPO

NC = 3


def _head(model) -> Detect:
    return model.model[-1]


@pytest.mark.parametrize("scale", ["n", "s"])
@pytest.mark.parametrize("variant", sorted(v for v in VARIANTS if not get_variant(v).end2end))  # *_e2e: tests/nn/test_e2e.py
def test_forward_backward_every_variant(variant, scale):
    torch.manual_seed(0)
    spec = get_variant(variant)
    m = build_model(variant, scale=scale, nc=NC).train()
    head = _head(m)
    assert type(head) is (CSDDetect if spec.head == "csd" else Detect)
    assert head.stride.tolist() == [8.0, 16.0, 32.0] and m.stride.tolist() == [8.0, 16.0, 32.0]
    batch = synthetic_batch(2, 64, NC)
    out = m(batch["img"])
    assert set(out) == {"boxes", "scores", "feats"}
    assert out["boxes"].shape == (2, 4 * head.reg_max, 64 + 16 + 4) and out["scores"].shape == (2, NC, 84)
    if spec.loss in LOSSES:  # the variant's own loss (the loss plugin is imported by the model)
        from ultralytics.cfg import get_cfg
        from ultralytics.utils import DEFAULT_CFG

        m.args = get_cfg(DEFAULT_CFG)
        loss, items = m.loss(batch, out)
        total = loss.sum()
    else:  # pragma: no cover - loss plugin absent in this checkout
        total = out["boxes"].float().mean() + out["scores"].float().mean()
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if spec.head == "csd":  # zero-initialised re-entry gets a gradient, so the side stream can start learning
        assert head.expand[0].weight.grad.abs().sum() > 0


def _randomize_side_stream(head: CSDDetect, seed: int = 0) -> None:
    """Simulate a trained head: non-zero re-entry, offset/weight predictors, distinct base kernels, random BN statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for branch in (*head.cv2, *head.cv3):  # shared init makes the M kernels equal; training separates them
            branch[-1].weight.add_(torch.randn(branch[-1].weight.shape, generator=g) * 0.02)
        for e in head.expand:
            e.weight.copy_(torch.randn(e.weight.shape, generator=g) * 0.05)
        for p in head.csd.pred:
            p[-1].weight.copy_(torch.randn(p[-1].weight.shape, generator=g) * 0.1)
        for mod in head.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)


def test_gradients_reach_offsets_gates_and_router():
    torch.manual_seed(0)
    m = build_model("csd", scale="n", nc=NC).train()
    head = _head(m)
    _randomize_side_stream(head)
    out = m(torch.rand(2, 3, 64, 64))
    (out["boxes"].square().mean() + out["scores"].sigmoid().mean()).backward()
    for i in range(head.nl):
        assert head.csd.pred[i][-1].weight.grad.abs().sum() > 0  # offsets and point weights
        assert head.csd.pred[i][-1].weight.grad[: 2 * head.csd.points].abs().sum() > 0  # offsets alone
        assert head.bcdm.gate[i].weight.grad.abs().sum() > 0
        assert head.router[i].fc1.weight.grad.abs().sum() > 0
        assert head.cv2[i][-1].weight.grad.abs().sum((0, 2)).gt(0).all()  # every base kernel


def test_refine_is_identity_at_init():
    """Zero-initialised re-entry: training starts from the branches' function of the plain features."""
    m = build_model("csd", scale="n", nc=NC).eval()
    head = _head(m)
    x = [torch.randn(1, c, s, s) for c, s in zip((64, 128, 256), (8, 4, 2))]
    for a, b in zip(head.refine(x), x):
        assert torch.equal(a, b)


def test_eval_and_export_contract_match_stock_head():
    x = torch.rand(2, 3, 64, 96)
    shapes = {}
    for variant in ("baseline", "csd"):
        m = build_model(variant, scale="n", nc=NC).eval()
        with torch.no_grad():
            y, preds = m(x)
            head = _head(m)
            head.export = True
            y_export = m(x)
            head.export = False
        assert torch.equal(y, y_export)
        assert set(preds) == {"boxes", "scores", "feats"}
        shapes[variant] = (tuple(y.shape), tuple(preds["boxes"].shape), tuple(preds["scores"].shape))
        assert torch.isfinite(y).all() and (y[:, 4:] >= 0).all() and (y[:, 4:] <= 1).all()
    assert shapes["csd"] == shapes["baseline"] == ((2, 4 + NC, 126), (2, 64, 126), (2, NC, 126))


@pytest.mark.parametrize("hw", [(320, 256), (96, 160)])
def test_non_square_inputs(hw):
    m = build_model("csd", scale="n", nc=NC)
    x = torch.rand(1, 3, *hw)
    out = m.train()(x)
    assert out["scores"].shape[-1] == sum((hw[0] // s) * (hw[1] // s) for s in (8, 16, 32))
    with torch.no_grad():
        y, _ = m.eval()(x)
    assert torch.isfinite(y).all()


def test_head_on_odd_level_sizes():
    """Level sizes that are not exact halves (13x10, 7x5, 4x3) as from a 100x76 input."""
    head = CSDDetect(nc=NC, ch=(16, 32, 64))
    head.stride = torch.tensor([8.0, 16.0, 32.0])
    _randomize_side_stream(head)
    x = [torch.randn(2, c, h, w) for c, (h, w) in zip((16, 32, 64), ((13, 10), (7, 5), (4, 3)))]
    out = head.train()(x)
    assert out["scores"].shape == (2, NC, 130 + 35 + 12) and torch.isfinite(out["boxes"]).all()


def test_fuse_is_equivalent_and_folds_every_batchnorm():
    torch.manual_seed(0)
    m = build_model("csd", scale="n", nc=NC).eval()
    head = _head(m)
    _randomize_side_stream(head)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)[0]
        m.fuse(verbose=False)
        out = m(x)[0]
    assert m.is_fused() and not any(isinstance(mod, nn.BatchNorm2d) for mod in head.modules())
    assert (out - ref).abs().max().item() <= 1e-4


def test_head_fuse_alone_is_equivalent():
    head = CSDDetect(nc=NC, ch=(16, 32, 64))
    head.stride = torch.tensor([8.0, 16.0, 32.0])
    _randomize_side_stream(head, seed=1)
    head.eval()
    x = [torch.randn(1, c, s, s) for c, s in zip((16, 32, 64), (8, 4, 2))]
    with torch.no_grad():
        ref = head(x)[0]
        head.fuse()
        out = head(x)[0]
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in head.modules())
    assert (out - ref).abs().max().item() <= 1e-4


def test_builder_reads_model_params():
    mp = build(ModelParams, {"csd_points": 2, "dyn_kernels": 3, "csd_width": 24, "bcdm_reduction": 3,
                             "csd_offset_range": 2.5, "dyn_hidden": 5, "csd_light_cls": False}, "model")
    head = _head(build_model("csd", scale="n", nc=NC, model_params=mp))
    assert head.csd.points == 2 and head.csd.c == 24 and head.bcdm.cb == 8 and head.csd.offset_range == 2.5
    assert [p[-1].out_channels for p in head.csd.pred] == [3 * 2 * 2, 3 * 2 * 3, 3 * 2 * 2]
    assert all(isinstance(b[-1], DynConv2d) and b[-1].weight.shape[1] == 3 for b in (*head.cv2, *head.cv3))
    assert head.router[0].fc1.out_features == 5
    assert isinstance(head.cv3[0][1], Conv) and head.cv3[0][1].conv.kernel_size == (3, 3)  # dense: not light
    default = _head(build_model("csd", scale="n", nc=NC))
    assert isinstance(default.cv3[0][1], Conv) and default.cv3[0][1].conv.kernel_size == (3, 3)  # additive by default
    assert default.csd.c == 32  # auto width: max(32, P3 channels / 4)
    assert _head(build_model("csd", scale="m", nc=NC)).csd.c == 48  # P3 = 192 at scale m
    assert default.bcdm.mode == "two_pass" and default.cv3[0][-1].init == "shared"
    light = _head(build_model("csd", scale="n", nc=NC, model_params=build(ModelParams, {"csd_light_cls": True}, "model")))
    assert isinstance(light.cv3[0][1][0], DWConv) and light.cv3[0][1][1].conv.kernel_size == (1, 1)


def test_bias_init_on_every_base_kernel():
    head = _head(build_model("csd", scale="n", nc=NC))
    for i, s in enumerate((8, 16, 32)):
        torch.testing.assert_close(head.cv2[i][-1].bias, torch.full_like(head.cv2[i][-1].bias, 2.0))
        want = math.log(5 / NC / (640 / s) ** 2)
        torch.testing.assert_close(head.cv3[i][-1].bias, torch.full_like(head.cv3[i][-1].bias, want))


def test_public_build_model_api():
    for variant, cls in (("baseline", Detect), ("csd", CSDDetect), ("rcq", Detect), ("full", CSDDetect)):
        m = build_model(variant, scale="n", nc=80)
        assert type(_head(m)) is cls and m.variant == variant and _head(m).nc == 80


@pytest.mark.parametrize("key,value", [("model.csd_width", -1), ("model.csd_light_cls", "maybe"),
                                       ("profile.threads", 0), ("model.csd_points", 0)])
def test_new_params_are_validated(key, value):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        load_params(REPO / "params.yaml", {key: value})


def test_channels_last_model_matches():
    """Ultralytics' predictor converts the model to channels_last: same outputs, no view/shape errors."""
    torch.manual_seed(0)
    m = build_model("csd", scale="n", nc=NC).eval()
    _randomize_side_stream(_head(m))
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        ref = m(x)[0]
        m.to(memory_format=torch.channels_last)
        out = m(x.contiguous(memory_format=torch.channels_last))[0]
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_half_precision_forward_matches_float():
    """fp16 weights and input (the CUDA fp16 path; runs on CPU here): grid coordinates stay float32."""
    torch.manual_seed(0)
    m = build_model("csd", scale="n", nc=NC).eval()
    _randomize_side_stream(_head(m))
    m.fuse(verbose=False)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref = m(x)[0]
        out = m.half()(x.half())[0]
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float()[:, 4:], ref[:, 4:], atol=2e-2, rtol=0)  # class scores
    assert (out.float()[:, :4] - ref[:, :4]).abs().max() < 0.5  # boxes in pixels
