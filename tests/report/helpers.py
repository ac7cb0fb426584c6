"""Fake evaluate-stage outputs (outputs/eval) for the report tests.

With ``per_image=True`` every run also gets real per-image match records (``per_image.npz``) of
jittered ground-truth boxes on a small made-up split, and its AP/AP50/AP75 in ``summary.json`` are
those records' (so the seed and image statistics describe the same numbers).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

AP_BY_VARIANT = {"baseline": 0.40, "csd": 0.41, "rcq": 0.405, "full": 0.45}
JITTER_BY_VARIANT = {"baseline": 0.12, "csd": 0.11, "rcq": 0.115, "full": 0.08}


def fake_gt(n_images: int = 40, seed: int = 0) -> dict:
    """A COCO instances dict: ``n_images`` 100x100 images, 3 categories, 1-4 boxes each, one crowd region."""
    rng = np.random.default_rng(seed)
    anns = []
    for im in range(1, n_images + 1):
        for _ in range(int(rng.integers(1, 5))):
            w, h = rng.uniform(10, 40, 2)
            x, y = rng.uniform(0, 100 - w), rng.uniform(0, 100 - h)
            anns.append({"id": len(anns) + 1, "image_id": im, "category_id": int(rng.integers(1, 4)),
                         "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h), "iscrowd": 0})
    anns[0]["iscrowd"] = 1
    return {"images": [{"id": i, "width": 100, "height": 100} for i in range(1, n_images + 1)], "annotations": anns,
            "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]}


def fake_dets(gt: dict, jitter: float, seed: int):
    """Detections: each ground truth jittered (relative ``jitter``), 10% missed, plus 0.3 false positives per box."""
    from alignrank.eval.boxes import Detections

    rng = np.random.default_rng(seed)
    out = []
    for a in gt["annotations"]:
        if rng.random() < 0.1:
            continue
        x, y, w, h = a["bbox"]
        d = rng.normal(0, jitter, 4) * [w, h, w, h]
        out.append({"image_id": a["image_id"], "category_id": a["category_id"], "score": float(rng.uniform(0.3, 1)),
                    "bbox": [x + d[0], y + d[1], max(w + d[2], 1.0), max(h + d[3], 1.0)]})
    for _ in range(int(0.3 * len(gt["annotations"]))):
        out.append({"image_id": int(rng.integers(1, len(gt["images"]) + 1)), "category_id": int(rng.integers(1, 4)),
                    "bbox": [float(v) for v in rng.uniform(0, 60, 4)], "score": float(rng.uniform(0, 0.6))})
    return Detections.from_coco(out)


def fake_eval(root: Path, variants=("baseline", "csd", "rcq", "full"), seeds=(0, 1, 2), profile: bool = True,
              per_image: bool = False) -> Path:
    """Write outputs/eval/{summary.json, runs/...} (and a profile.json) under ``root``; returns outputs/eval."""
    rng = np.random.default_rng(0)
    if per_image:
        from alignrank.eval.coco import CocoGT

        gt = fake_gt()
        cgt = CocoGT(gt)
    ev = root / "outputs" / "eval"
    summary, index = {}, []
    for v in variants:
        for s in seeds:
            ap = AP_BY_VARIANT[v] + 0.002 * s
            m = {"AP": ap, "AP50": ap + 0.2, "AP75": ap - 0.05, "APs": float("nan"), "APm": ap - 0.1, "APl": ap + 0.1,
                 "kendall_tau": 0.2 + (0.2 if v in ("rcq", "full") else 0) + 0.01 * s, "spearman_rho": 0.3,
                 "top1_miss_rate": 0.5, "top1_iou_gap": 0.05, "ece": 0.1 - (0.05 if v in ("rcq", "full") else 0),
                 "dece": 0.12 - (0.04 if v in ("rcq", "full") else 0),
                 "nms_free_AP": ap - 0.2, "AR1": ap / 2, "AR100": ap + 0.1, "tide_AP50": ap + 0.2, "tide_dAP_loc": 0.05,
                 "tide_n_loc": 7, "num_images": 40}
            rec = None
            if per_image:
                from alignrank.eval.per_image import image_records, weighted_ap

                rec = image_records(cgt, fake_dets(gt, JITTER_BY_VARIANT[v], seed=100 * s + len(v)))
                m.update({k: float(x[0]) for k, x in weighted_ap(rec, np.ones(rec.num_images)).items()})
            summary.setdefault(v, {})[f"seed{s}"] = {k: (None if isinstance(x, float) and np.isnan(x) else x) for k, x in m.items()}
            d = ev / "runs" / v / f"seed{s}"
            d.mkdir(parents=True)
            if rec is not None:
                rec.save_npz(d / "per_image.npz")
            rel = {"ece": m["ece"], "bin_conf": [0.1, 0.5, 0.9], "bin_acc": [0.05, 0.5, 0.8], "bin_count": [10, 10, 10],
                   "bin_lo": [0, 0.3, 0.7], "bin_hi": [0.3, 0.7, 1.0]}
            (d / "metrics.json").write_text(json.dumps({"metrics": summary[v][f"seed{s}"], "reliability": rel,
                                                        "meta": {"scale": "n", "imgsz": 256}}))
            iou = 0.5 + 0.5 * rng.random(50)
            (d / "score_iou.csv").write_text("score,iou\n" + "".join(f"{q * 0.8:.4f},{q:.4f}\n" for q in iou))
            (d / "results.csv").write_text("                  epoch,  train/box_loss,  metrics/mAP50-95(B)\n"
                                           + "".join(f"{e},{2.0 - 0.1 * e},{ap * e / 3:.4f}\n" for e in (1, 2, 3)))
            index.append({"variant": v, "seed": s, "run_dir": str(d), "meta": {"scale": "n", "imgsz": 256}})
    (ev / "summary.json").write_text(json.dumps(summary))
    (ev / "runs" / "index.json").write_text(json.dumps({
        "runs": index, "data": {"source": "synthetic", "fingerprint": "abc123def456789", "counts": {"val": 80}}}))
    if profile:
        p = root / "outputs" / "profile" / "profile.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps({"scale": "s", "imgsz": 640, "nc": 80, "models": {
            v: {"params": 11.2e6 if v in ("baseline", "rcq") else 11.5e6, "gflops": 28.6 if v in ("baseline", "rcq") else 30.0,
                "latency_ms": {"eager": 20.0, "onnxruntime": 12.5}} for v in variants}}))
    return ev
