"""Classification gradient at initialisation: YOLOv8's stock loss vs the RCQ criteria (prints a markdown table).

A fresh YOLOv8 model (the Detect head's prior bias: class scores ~1e-4..1e-2) runs on one batch of real
training images with their labels; for each criterion the gradient of the loss w.r.t. the class logits is
split into the positives' pull (sum over each positive anchor's assigned class, negative = raises the
score), the positives' |gradient| (sum of absolute values: L_list's gradient sums to zero within each
GT's group, so it shows here, not in the pull) and the negatives' push (sum of |gradient| over every
other anchor x class). Nothing is trained.

Usage:
    .venv/bin/python benchmarks/rcq_init_gradients.py [--data outputs/ladders/rcq/data] [--images 16] [--seed 0]

The dataset is any YOLO-layout folder written by ``alignrank data`` (images/train, labels/train).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import alignrank  # noqa: E402,F401  (offline env first)
from alignrank.config.schema import LossParams  # noqa: E402
from alignrank.loss.criterion import AlignRankLoss, AugmentedRCQLoss, positives  # noqa: E402
from alignrank.loss.v8 import AssignedDetectionLoss, ensure_loss_args  # noqa: E402
from alignrank.nn.model import build_model  # noqa: E402

OFF = {"lambda_list": 0.0, "lambda_rank": 0.0}
CASES = [  # (name, criterion class, LossParams kwargs)
    ("stock v8 (BCE -> TAL targets)", AssignedDetectionLoss, {}),
    ("rcq gamma 0, / sum q", AlignRankLoss, {"gamma": 0.0, **OFF}),
    ("rcq gamma 2, / sum q (L_cal)", AlignRankLoss, {"gamma": 2.0, **OFF}),
    ("rcq gamma 2, / positives (GFL)", AlignRankLoss, {"gamma": 2.0, "cal_norm": "positives", **OFF}),
    ("rcq gamma 2, / TAL target sum", AlignRankLoss, {"gamma": 2.0, "cal_norm": "assigner", **OFF}),
    ("rcq default (+ L_list + L_rank)", AlignRankLoss, {}),
    ("rcq_augment default", AugmentedRCQLoss, {}),
    ("stock v8, SimOTA", AssignedDetectionLoss, {"assigner": "simota"}),
    ("rcq gamma 2, / sum q, SimOTA", AlignRankLoss, {"gamma": 2.0, "assigner": "simota", **OFF}),
]


def load_batch(data: Path, n: int, imgsz: int) -> tuple[torch.Tensor, dict]:
    """The first ``n`` training images (resized to ``imgsz``) and their YOLO labels as a loss batch."""
    from PIL import Image

    paths = sorted((data / "images" / "train").iterdir())[:n]
    imgs, idx, cls, boxes = [], [], [], []
    for i, p in enumerate(paths):
        img = np.array(Image.open(p).convert("RGB").resize((imgsz, imgsz)))
        imgs.append(torch.from_numpy(img).permute(2, 0, 1).float() / 255)  # (3, H, W)
        label = data / "labels" / "train" / (p.stem + ".txt")
        for line in label.read_text().splitlines() if label.is_file() else []:
            c, *b = map(float, line.split())
            idx.append(float(i)), cls.append(c), boxes.append(b)
    batch = {"batch_idx": torch.tensor(idx), "cls": torch.tensor(cls), "bboxes": torch.tensor(boxes).reshape(-1, 4)}
    return torch.stack(imgs), batch


class _Capturing:
    """Mixin keeping the last assignment context (to split the gradient at the positives)."""

    def classification_loss(self, ctx):
        self.ctx = ctx
        return super().classification_loss(ctx)


def split(crit, preds: dict, batch: dict) -> tuple[int, float, float, float, float, float]:
    """(positives, sum q, assigner target sum, positives' pull, positives' |grad|, negatives' push)."""
    loss, _ = crit(preds, batch)
    grad = torch.autograd.grad(loss.sum(), preds["scores"])[0].permute(0, 2, 1).reshape(-1)  # (b*A*C,)
    pos_index, _, q = positives(crit.ctx, crit.params)
    mask = torch.zeros_like(grad, dtype=torch.bool)
    mask[pos_index] = True
    tss = float(crit.ctx["target_scores_sum"])
    return int(mask.sum()), float(q.sum()), tss, float(grad[mask].sum()), float(grad[mask].abs().sum()), \
        float(grad[~mask].abs().sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "outputs" / "ladders" / "rcq" / "data")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--imgsz", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    imgs, batch = load_batch(args.data, args.images, args.imgsz)
    nc = int(batch["cls"].max()) + 1 if len(batch["cls"]) else 1
    model = build_model("baseline", scale="n", nc=max(nc, 4))
    ensure_loss_args(model, LossParams())
    model.train()
    with torch.no_grad():
        out = model(imgs)
    preds = {k: v.detach().requires_grad_() for k, v in out.items() if k != "feats"}
    preds["feats"] = out["feats"]
    p = preds["scores"].detach().sigmoid()
    print(f"{args.images} images, {len(batch['cls'])} objects; class scores at init: median {float(p.median()):.1e}, "
          f"max {float(p.max()):.1e}\n")
    print("| criterion | positives | sum q | assigner target sum | positives' pull | positives' abs | negatives' push "
          "| pull / stock | push / stock |")
    print("|---|---|---|---|---|---|---|---|---|")
    ref = None
    for name, cls, kw in CASES:
        crit = type("Capturing" + cls.__name__, (_Capturing, cls), {})(model, LossParams(**kw))
        n, sq, tss, pull, absolute, push = split(crit, preds, batch)
        ref = ref or (pull, push)
        print(f"| {name} | {n} | {sq:.1f} | {tss:.1f} | {pull:.3g} | {absolute:.3g} | {push:.3g} | {pull / ref[0]:.3g} "
              f"| {push / ref[1]:.2g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
