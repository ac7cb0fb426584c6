"""Whole-run trajectory probe of the CSD head: the real training run (same params, seed, data order and
optimizer as ``alignrank train``), with read-only instruments, one JSON line per epoch.

Per epoch (means over the epoch's optimizer steps, gradients before ultralytics' clipping):
``g_*``: gradient norms of the parameter groups (backbone+neck, stock box/class branches, side stream,
router); ``g_in_total`` / ``g_in_side``: norm of the gradient reaching the head's input levels in all, and
through the side stream alone (the sampler's input); ``clip_frac``: fraction of steps whose whole-model
gradient norm exceeded ultralytics' clip (10). At the epoch's end, on a fixed batch of validation images
(live model, eval mode, no grad): ``reentry``: per level ``mean |E_l(y~_l)| / mean |x_l|``; ``off_mean`` /
``off_sat``: mean |offset| in source pixels and the fraction of offsets beyond 0.9 R; ``pw_max``: mean
largest point weight; ``alpha_max``: mean largest kernel weight of the class router (P3). The run's final
validation mAP is printed last: equal to the ``alignrank train`` run of the same params and seed (the
instruments read, never write), which checks the probe saw the same trajectory.

Usage:
    .venv/bin/python benchmarks/csd_trajectory.py --data data/synthetic-5cb57a73 --seed 0
    .venv/bin/python benchmarks/csd_trajectory.py --data data/synthetic-5cb57a73 --variant baseline
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

GROUPS = {"g_body": lambda n, h: not n.startswith(h), "g_box": lambda n, h: n.startswith(h + "cv2."),
          "g_cls": lambda n, h: n.startswith(h + "cv3."),
          "g_side": lambda n, h: n.startswith((h + "csd.", h + "bcdm.", h + "expand.")),
          "g_router": lambda n, h: n.startswith(h + "router.")}


def fixed_batch(data: Path, n: int, imgsz: int):
    """(n, 3, imgsz, imgsz) float batch of the first ``n`` validation images (RGB, 0-1), read without the loader."""
    import cv2
    import numpy as np
    import torch

    files = sorted((data / "images" / "val").glob("*"))[:n]
    ims = [cv2.resize(cv2.imread(str(f)), (imgsz, imgsz))[..., ::-1] for f in files]  # (H, W, 3) RGB each
    return torch.from_numpy(np.stack(ims).transpose(0, 3, 1, 2).copy()).float() / 255  # (n, 3, H, W)


class Instruments:
    """Read-only hooks on a training model: gradient norms per optimizer step and head statistics per epoch."""

    def __init__(self, trainer, img) -> None:
        self.trainer, self.img, self.acc = trainer, img, defaultdict(list)
        self.model = trainer.model
        self.head = self.model.model[-1]
        self.hp = f"model.{len(self.model.model) - 1}."
        self.side = getattr(self.head, "csd", None)
        self.head.register_forward_pre_hook(self._tap_inputs)
        if self.side is not None:
            self.side.register_forward_pre_hook(self._tap_side)
        step = trainer.optimizer_step

        def optimizer_step():  # grads are whole (accumulated) here, before ultralytics clips and steps
            self._record_grads()
            step()

        trainer.optimizer_step = optimizer_step
        self._in = defaultdict(float)

    def _tap_inputs(self, module, args):
        if module.training and all(t.requires_grad for t in args[0]):
            for t in args[0]:
                t.register_hook(lambda g: self._in.__setitem__("total", self._in["total"] + float(g.square().sum())))

    def _tap_side(self, module, args):
        if not (module.training and torch_grad_enabled()):
            return None
        xs = [t.view_as(t) for t in args[0]]  # identity views: a gradient tap on the side stream's path only
        for t in xs:
            t.register_hook(lambda g: self._in.__setitem__("side", self._in["side"] + float(g.square().sum())))
        return (xs, *args[1:])

    def _record_grads(self) -> None:
        sq = defaultdict(float)
        for n, p in self.model.named_parameters():
            if p.grad is None:
                continue
            s = float(p.grad.float().square().sum())
            sq["all"] += s
            for k, pick in GROUPS.items():
                if pick(n, self.hp):
                    sq[k] += s
        for k, v in sq.items():
            self.acc[k].append(math.sqrt(v))
        self.acc["clip"].append(float(math.sqrt(sq["all"]) > 10.0))
        for k in ("total", "side"):
            if k in self._in:
                self.acc["g_in_" + k].append(math.sqrt(self._in[k]))
        self._in.clear()

    def epoch_stats(self) -> dict:
        """Means of the epoch's step records, then the head's state on the fixed batch."""
        out = {k if k != "clip" else "clip_frac": round(sum(v) / len(v), 4) for k, v in self.acc.items() if v}
        self.acc.clear()
        out.update(self.head_state())
        return out

    def head_state(self) -> dict:
        import torch

        head, model = self.head, self.model
        feats, raw = {}, []
        hooks = [head.register_forward_pre_hook(lambda m, a: feats.update(x=a[0]))]
        if self.side is not None:
            hooks += [p.register_forward_hook(lambda m, a, o: raw.append(o)) for p in self.side.pred]
        was = model.training
        try:
            with torch.no_grad():
                model.eval()(self.img.to(next(model.parameters()).device))
                x = feats["x"]
                out = {}
                if self.side is not None:
                    y = head.refine(x)  # refine adds E(y~) to x
                    out["reentry"] = [round(float((yi - xi).abs().mean() / xi.abs().mean()), 4) for yi, xi in zip(y, x)]
                    s = self.side
                    offs, pws = [], []
                    for o, src in zip(raw[: len(s.pred)], s.sources):
                        k = len(src) * s.points
                        o = o.permute(0, 2, 3, 1)  # (B, H, W, S*K*3)
                        off = o[..., : 2 * k].reshape(*o.shape[:3], k, 2) + s.ring_raw.repeat(len(src), 1)  # (B,H,W,S*K,2)
                        offs.append((s.offset_range * torch.tanh(off / s.offset_range)).flatten())
                        pws.append(o[..., 2 * k:].softmax(-1).amax(-1).flatten())  # (B*H*W,)
                    off = torch.cat(offs).abs()
                    out["off_mean"] = round(float(off.mean()), 4)
                    out["off_sat"] = round(float((off > 0.9 * s.offset_range).float().mean()), 4)
                    out["pw_max"] = round(float(torch.cat(pws).mean()), 4)
                if hasattr(head, "router"):
                    a_cls, _ = head.router[0](head.refine(x)[0])  # (B, M)
                    out["alpha_max"] = round(float(a_cls.max(1).values.mean()), 4)
        finally:
            for h in hooks:
                h.remove()
            model.train(was)
        return out


def torch_grad_enabled() -> bool:
    import torch

    return torch.is_grad_enabled()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a dataset folder built by `alignrank data` (has dataset.yaml)")
    ap.add_argument("--variant", default="csd")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", type=int, default=16, help="fixed validation images for the head statistics")
    ap.add_argument("--set", action="append", default=[], help="params override key=value (repeatable)")
    args = ap.parse_args(argv)

    import torch

    from alignrank.config import load_params
    from alignrank.engine.quiet import quiet_ultralytics
    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides
    from alignrank.env import setup_offline

    setup_offline()
    data = Path(args.data).resolve()
    p = load_params(ROOT / "params.yaml", [*args.set, f"data.root={data}", f"train.variant={args.variant}",
                                           f"train.seed={args.seed}"])
    torch.set_num_threads(p.train.threads)
    img = fixed_batch(data, args.images, p.train.imgsz)
    with tempfile.TemporaryDirectory(prefix="csd_traj_") as tmp:
        tr = AlignRankTrainer(p, ultralytics_overrides(p, data=data / "dataset.yaml", save_dir=Path(tmp) / "run"))
        box = {}

        def start(trainer):
            box["inst"] = Instruments(trainer, img)

        def epoch_end(trainer):
            rec = {"epoch": trainer.epoch + 1, "loss": [round(float(v), 4) for v in
                                                     (trainer.tloss.values() if isinstance(trainer.tloss, dict) else trainer.tloss)]}
            rec.update(box["inst"].epoch_stats())
            print(json.dumps(rec), flush=True)

        tr.add_callback("on_train_start", start)
        tr.add_callback("on_train_epoch_end", epoch_end)
        with quiet_ultralytics(False):
            tr.train()
        print(json.dumps({"final": {k: round(float(v), 4) for k, v in tr.metrics.items() if "mAP" in k}}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
