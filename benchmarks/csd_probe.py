"""Fixed-batch learning probe of the CSD head: the real trainer's optimizer groups and warm-up, N steps on a
few batches of a built dataset, one JSON line of statistics every few steps.

Per line: the loss items; gradient norms reaching the stock class/box branches, the side stream and the
router; the re-entry's shift of the stock branches' input (``mean |x~ - x| / mean |x|`` at the finest
level), the largest alpha and its spread over the images, and how far the M class kernels have moved apart
(``std(W_m - mean_m W) / std(W)``). This is how the warm-up problem in docs/fidelity.md (head section) was
measured.

Usage:
    .venv/bin/python benchmarks/csd_probe.py --data outputs/ladders/csd/data --steps 45
    .venv/bin/python benchmarks/csd_probe.py --data outputs/ladders/csd/data --variant baseline
    .venv/bin/python benchmarks/csd_probe.py --data outputs/ladders/csd/data --set model.dyn_init=independent
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")


def grad_norm(model, prefixes: tuple[str, ...]) -> float:
    """Gradient norm of the parameters whose names start with one of ``prefixes``."""
    return math.sqrt(sum(float(p.grad.square().sum()) for n, p in model.named_parameters()
                         if p.grad is not None and n.startswith(prefixes)))


def head_stats(model, img) -> dict:
    """Re-entry shift, alpha and kernel spread of a CSD head (eval mode, no grad)."""
    import torch

    head = model.model[-1]
    if not hasattr(head, "router"):
        return {}
    feats = {}
    hook = head.register_forward_pre_hook(lambda mod, inp: feats.update(x=inp[0]))
    with torch.no_grad():
        model.eval()(img)
        hook.remove()
        y = head.refine(feats["x"])
        a_cls, _ = head.router[0](y[0])
        w = head.cv3[0][-1].weight  # (nc, M, c)
        out = {"reentry_shift": float((y[0] - feats["x"][0]).abs().mean() / feats["x"][0].abs().mean()),
               "alpha_max": float(a_cls.max(1).values.mean()), "alpha_spread_over_images": float(a_cls.std(0).mean()),
               "kernel_spread": float((w - w.mean(1, keepdim=True)).std() / w.std())}
    model.train()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a dataset folder built by `alignrank data` (has dataset.yaml)")
    ap.add_argument("--variant", default="csd")
    ap.add_argument("--steps", type=int, default=45)
    ap.add_argument("--batches", type=int, default=4, help="distinct batches cycled through")
    ap.add_argument("--every", type=int, default=3, help="print every N steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="params override key=value (repeatable)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from alignrank.config import load_params
    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides
    from alignrank.env import setup_offline

    setup_offline()
    torch.set_num_threads(1)
    data = Path(args.data).resolve()
    sets = dict(s.split("=", 1) for s in args.set)
    p = load_params(ROOT / "params.yaml", {**sets, "data.root": str(data), "train.variant": args.variant,
                                           "train.seed": args.seed})
    with tempfile.TemporaryDirectory(prefix="csd_probe_") as tmp:
        tr = AlignRankTrainer(p, ultralytics_overrides(p, data=data / "dataset.yaml", save_dir=Path(tmp) / "run"))
        tr._setup_train()  # model, ultralytics' optimizer groups, loaders: exactly as training builds them
        loader = iter(tr.train_loader)
        batches = [tr.preprocess_batch(next(loader)) for _ in range(args.batches)]
        nw = tr._get_warmup_iterations(len(tr.train_loader))  # ultralytics' own warm-up length
        model = tr.model
        hp = f"model.{len(model.model) - 1}."  # the head's parameter names start with this
        for step in range(args.steps):
            if nw and step <= nw:  # ultralytics' warm-up: biases from warmup_bias_lr, the rest from 0
                for g in tr.optimizer.param_groups:
                    start = tr.args.warmup_bias_lr if g.get("param_group") == "bias" else 0.0
                    g["lr"] = float(np.interp(step, [0, nw], [start, g["initial_lr"] * tr.lf(0)]))
            batch = batches[step % len(batches)]
            loss, items = model(batch)
            loss.sum().backward()
            rec = {"step": step, "loss": [round(float(v), 4) for v in (items.values() if isinstance(items, dict) else items)],
                   "g_stock_cls": grad_norm(model, (hp + "cv3.",)), "g_stock_box": grad_norm(model, (hp + "cv2.",)),
                   "g_side": grad_norm(model, (hp + "csd.", hp + "bcdm.", hp + "expand.")),
                   "g_router": grad_norm(model, (hp + "router.",))}
            tr.optimizer_step()
            if step % args.every == 0 or step == args.steps - 1:
                rec.update(head_stats(model, batch["img"]))
                print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in rec.items()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
