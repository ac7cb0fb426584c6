"""Helpers of the loss tests: random head outputs with ground truth, and head outputs of a model at init."""

from __future__ import annotations

import torch

NC = 4


def make_batch(seed: int = 0, b: int = 2, imgsz: int = 128, gts=(3, 2), requires_grad=True):
    """Random head outputs of the right shapes (b, 4*16, A), (b, nc, A) and normalised xywh GTs."""
    gen = torch.Generator().manual_seed(seed)
    feats = [torch.zeros(b, 1, imgsz // s, imgsz // s) for s in (8, 16, 32)]
    a = sum(f.shape[2] * f.shape[3] for f in feats)
    boxes = torch.randn(b, 64, a, generator=gen).requires_grad_(requires_grad)
    scores = (torch.randn(b, NC, a, generator=gen) - 2).requires_grad_(requires_grad)
    return {"boxes": boxes, "scores": scores, "feats": feats}, random_gts(gen, gts)


def random_gts(gen: torch.Generator, gts=(3, 2)) -> dict:
    """Normalised xywh ground truth, ``gts[i]`` boxes in image i."""
    idx = torch.cat([torch.full((n,), float(i)) for i, n in enumerate(gts)])
    n = len(idx)
    xy = torch.rand(n, 2, generator=gen) * 0.6 + 0.2
    wh = torch.rand(n, 2, generator=gen) * 0.3 + 0.1
    cls = torch.randint(0, NC, (n,), generator=gen).float()
    return {"batch_idx": idx, "cls": cls, "bboxes": torch.cat((xy, wh), 1)}


def init_head_outputs(model, seed: int = 0, b: int = 4, imgsz: int = 128, gts=(4, 3, 5, 2)):
    """Head outputs of ``model`` at initialisation (YOLOv8's prior bias) on random images, detached leaves."""
    gen = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        preds = model(torch.rand(b, 3, imgsz, imgsz, generator=gen))
    out = {k: v.detach().requires_grad_() for k, v in preds.items() if k != "feats"}
    out["feats"] = preds["feats"]
    return out, random_gts(gen, gts)
