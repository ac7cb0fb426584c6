"""Every CSD head option (side stream, BCDM reading, kernel init, M, slim branch): forward/backward, bf16 autocast,
fuse; the M = 1 head without side stream IS the stock head (outputs, optimizer groups, training trajectory)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from ultralytics.cfg import get_cfg
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG

from alignrank.config.fields import build
from alignrank.config.schema import ModelParams
from alignrank.nn.csd_head import CSDDetect
from alignrank.nn.dynconv import DynConv2d
from alignrank.nn.model import build_model
from alignrank.profile.train_bench import synthetic_batch

NC = 3
OPTIONS = {  # name -> model params changed from the defaults (the default = the paper's head)
    "default": {},
    "no_side_stream": {"csd_side_stream": False},
    "one_pass": {"bcdm_mode": "one_pass"},
    "independent_init": {"dyn_init": "independent"},
    "slim_cls": {"csd_light_cls": True},
    "m1": {"dyn_kernels": 1},
    "narrow": {"csd_width": 16, "csd_points": 2},
    "side_detach": {"csd_side_detach": True},
    "biased": {"csd_biased": True},
}


def _model(change: dict, variant: str = "csd", scale: str = "n"):
    return build_model(variant, scale=scale, nc=NC, model_params=build(ModelParams, change, "model"))


def _loss(m, batch, out):
    m.args = get_cfg(DEFAULT_CFG)
    loss, _ = m.loss(batch, out)
    return loss.sum()


def _perturb(head: CSDDetect, seed: int = 0) -> None:
    """As after training: distinct base kernels, a non-zero side stream."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for branch in (*head.cv2, *head.cv3):
            branch[-1].weight.add_(torch.randn(branch[-1].weight.shape, generator=g) * 0.02)
        for e in head.expand or ():
            e.weight.copy_(torch.randn(e.weight.shape, generator=g) * 0.05)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_option_forward_backward(name):
    torch.manual_seed(0)
    m = _model(OPTIONS[name]).train()
    batch = synthetic_batch(2, 64, NC)
    total = _loss(m, batch, m(batch["img"]))
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_option_bf16_autocast_is_finite(name):
    torch.manual_seed(0)
    m = _model(OPTIONS[name]).train()
    _perturb(m.model[-1])
    batch = synthetic_batch(2, 64, NC)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(batch["img"])
        total = _loss(m, batch, out)
    assert torch.isfinite(total)
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y, _ = m.eval()(batch["img"])
    assert torch.isfinite(y.float()).all()


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_option_fuse_is_equivalent(name):
    torch.manual_seed(0)
    m = _model(OPTIONS[name]).eval()
    _perturb(m.model[-1])
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        ref = m(x)[0]
        out = m.fuse(verbose=False)(x)[0]
    assert (out - ref).abs().max().item() <= 1e-4


def test_side_stream_off_builds_no_side_modules():
    head = _model({"csd_side_stream": False}).model[-1]
    assert head.csd is None and head.bcdm is None and head.expand is None
    x = [torch.randn(1, c, s, s) for c, s in zip((64, 128, 256), (8, 4, 2))]
    assert all(a is b for a, b in zip(head.refine(x), x))


def test_slim_branch_is_the_baseline_slim_branch():
    """csd with the slim branch and baseline_slim share the class branch body, layer by layer."""
    csd = _model({"csd_light_cls": True}).model[-1]
    ctrl = build_model("baseline_slim", scale="n", nc=NC).model[-1]
    for a, b in zip(csd.cv3, ctrl.cv3):
        shapes = [[tuple(p.shape) for p in layer.parameters()] for layer in (a[0], a[1])]
        assert shapes == [[tuple(p.shape) for p in layer.parameters()] for layer in (b[0], b[1])]
    assert sum(p.numel() for p in ctrl.parameters()) < sum(p.numel() for p in build_model("baseline", scale="n",
                                                                                          nc=NC).parameters())


def _stock_twin():
    """(baseline, csd with M = 1 and no side stream) holding the SAME weights."""
    torch.manual_seed(0)
    base = build_model("baseline", scale="n", nc=NC).train()
    csd = _model({"csd_side_stream": False, "dyn_kernels": 1}).train()
    state = base.state_dict()
    own = csd.state_dict()
    for k, v in own.items():
        if k in state:
            src = state[k]
            own[k] = src.view(v.shape) if src.numel() == v.numel() else v  # 1x1 conv (c2, c1, 1, 1) -> (c2, 1, c1)
    csd.load_state_dict(own)
    return base, csd


def _adamw(model):
    """Ultralytics' own optimizer groups (weights with decay, BN weights, biases), as the trainer builds them."""
    stub = SimpleNamespace(args=get_cfg(DEFAULT_CFG))
    return DetectionTrainer.build_optimizer(stub, model, name="AdamW", lr=0.002, momentum=0.9, decay=5e-4)


def test_m1_without_side_stream_is_the_stock_head():
    """Same outputs, and every stock tensor lands in the same optimizer group (lr, decay) as in the baseline."""
    base, csd = _stock_twin()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(csd.eval()(x)[0], base.eval()(x)[0], atol=1e-5, rtol=1e-5)
    group_of = {}
    for model in (base, csd):
        names = {id(p): n for n, p in model.named_parameters()}
        for g in _adamw(model).param_groups:
            for p in g["params"]:
                group_of[(model is csd, names[id(p)])] = (g["param_group"], g["lr"], g["weight_decay"])
    for (is_csd, name), grp in group_of.items():
        if not is_csd:
            assert group_of[(True, name)] == grp, name
    dyn = [n for n, mod in csd.named_modules() if isinstance(mod, DynConv2d)]
    assert all(group_of[(True, f"{n}.weight")][0] == "weight" and group_of[(True, f"{n}.bias")][0] == "bias" for n in dyn)


def test_m1_without_side_stream_trains_like_the_stock_head():
    """Six AdamW steps (ultralytics' groups, clipping at 10) on one batch: the same loss at every step."""
    base, csd = _stock_twin()
    batch = synthetic_batch(4, 64, NC)
    losses = {}
    for name, model in (("base", base), ("csd", csd)):
        opt = _adamw(model)
        losses[name] = []
        for _ in range(6):
            total = _loss(model, batch, model(batch["img"]))
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
            opt.step()
            opt.zero_grad()
            losses[name].append(total.item())
    assert len(set(losses["base"])) == 6  # the weights move (no warm-up: the loss first rises, for both)
    # conv vs batched matmul round differently (~1e-7); six Adam steps amplify that to ~3e-4 at most
    torch.testing.assert_close(torch.tensor(losses["csd"]), torch.tensor(losses["base"]), rtol=1e-3, atol=0)



def test_ema_tracks_every_head_tensor():
    """Validation runs the EMA copy: with decay 0 it must equal the live model after a step (nothing left out)."""
    from ultralytics.utils.torch_utils import ModelEMA

    torch.manual_seed(0)
    m = _model({}).train()
    ema = ModelEMA(m, decay=0.0, tau=1)
    batch = synthetic_batch(2, 64, NC)
    opt = _adamw(m)
    _loss(m, batch, m(batch["img"])).backward()
    opt.step()
    _perturb(m.model[-1])  # side stream and kernels away from their init too
    ema.update(m)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ema.ema.eval()(x)[0], m.eval()(x)[0])


def _warmup_steps(model, batch, steps: int, nw: int = 38) -> None:
    """``steps`` AdamW steps with ultralytics' groups and warm-up: biases from lr 0.1, weights from lr 0."""
    opt = _adamw(model)
    for ni in range(steps):
        for g in opt.param_groups:
            g["lr"] = float(torch.tensor(ni / nw) * (0.002 - (0.1 if g["param_group"] == "bias" else 0.0))
                            + (0.1 if g["param_group"] == "bias" else 0.0))
        _loss(model, batch, model(batch["img"])).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
        opt.step()
        opt.zero_grad()


def _reentry_shift_and_alpha(model, x) -> tuple[float, float]:
    head = model.model[-1]
    feats = {}
    hook = head.register_forward_pre_hook(lambda mod, inp: feats.update(x=inp[0]))
    with torch.no_grad():
        model.eval()(x)
        hook.remove()
        y = head.refine(feats["x"])
        shift = max(float((a - b).abs().mean() / b.abs().mean()) for a, b in zip(y, feats["x"]))
        alpha = max(float(r(t)[0].max()) for r, t in zip(head.router, y))
    model.train()
    return shift, alpha


def test_warmup_keeps_the_stock_start():
    """The side stream re-enters through a zero-initialised 1x1 so training starts from the stock head; under
    ultralytics' warm-up (biases at lr 0.1, Adam: full-size steps on ~zero gradients) that start must survive the
    first steps: the re-entry stays a small fraction of the features, and alpha does not collapse on one kernel.
    A re-entry and router WITH biases (the head before the fix) fail both, as the negative control shows."""
    batch = synthetic_batch(4, 64, NC)
    torch.manual_seed(0)
    m = _model({}).train()
    _warmup_steps(m, batch, 5)
    shift, alpha = _reentry_shift_and_alpha(m, batch["img"])
    assert shift < 0.05 and alpha < 0.35, (shift, alpha)  # M = 4: uniform alpha is 0.25

    torch.manual_seed(0)
    old = _model({"csd_biased": True}).train()  # the old layers: biased re-entry, router MLP, offset conv
    _warmup_steps(old, batch, 5)
    shift_old, alpha_old = _reentry_shift_and_alpha(old, batch["img"])
    assert shift_old > 10 * shift and shift_old > 0.2, (shift_old, shift)


def test_biased_diagnostic_is_the_head_before_the_warmup_fix():
    """model.csd_biased: biases on the re-entry (zero), the router MLP and the offset predictor, whose bias then
    holds the ring pattern (the buffer stays zero); the default has none of them. Same initial offsets."""
    h, plain = _model({"csd_biased": True}).model[-1], _model({}).model[-1]
    assert all(e.bias is not None and not e.bias.any() for e in h.expand)
    assert all(r.fc1.bias is not None and r.fc2.bias is not None for r in h.router)
    assert all(e.bias is None for e in plain.expand) and all(r.fc1.bias is None and r.fc2.bias is None for r in plain.router)
    assert all(p[-1].bias is None for p in plain.csd.pred) and not h.csd.ring_raw.any() and plain.csd.ring_raw.any()
    for pred, src in zip(h.csd.pred, h.csd.sources):
        k2 = 2 * h.csd.points * len(src)
        ring = pred[-1].bias[:k2].detach().view(len(src), h.csd.points, 2)  # (S, K, xy)
        torch.testing.assert_close(ring, plain.csd.ring_raw.expand(len(src), -1, -1))
        assert not pred[-1].bias[k2:].any()  # point-weight logits: uniform


def test_side_detach_stops_only_the_side_streams_gradient_into_the_levels():
    """model.csd_side_detach: same outputs; the levels' gradient is the branches' path alone (the identity of
    the re-entry), while the side stream itself still trains; without it the side stream adds its own."""
    grads = {}
    for detach in (False, True):
        torch.manual_seed(0)
        head = _model({"csd_side_detach": detach}).model[-1].train()
        _perturb(head)  # a non-zero re-entry, else no gradient flows through the side stream at all
        x = [torch.randn(2, c, s, s, requires_grad=True) for c, s in zip([e.out_channels for e in head.expand], (8, 4, 2))]
        out = head.refine(x)
        sum(o.sum() for o in out).backward()
        grads[detach] = [xi.grad for xi in x]
        assert head.csd.proj[0].conv.weight.grad.abs().sum() > 0  # the side stream trains either way
    for g in grads[True]:
        torch.testing.assert_close(g, torch.ones_like(g))  # d(sum x~)/dx through the identity only
    assert any((g - 1).abs().max() > 1e-3 for g in grads[False])  # the side stream's own gradient into x
