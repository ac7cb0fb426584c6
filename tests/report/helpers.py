"""Fake evaluate-stage outputs (outputs/eval) for the report tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

AP_BY_VARIANT = {"baseline": 0.40, "csd": 0.41, "rcq": 0.405, "full": 0.45}


def fake_eval(root: Path, variants=("baseline", "csd", "rcq", "full"), seeds=(0, 1, 2), profile: bool = True) -> Path:
    """Write outputs/eval/{summary.json, runs/...} (and a profile.json) under ``root``; returns outputs/eval."""
    rng = np.random.default_rng(0)
    ev = root / "outputs" / "eval"
    summary, index = {}, []
    for v in variants:
        for s in seeds:
            ap = AP_BY_VARIANT[v] + 0.002 * s
            m = {"AP": ap, "AP50": ap + 0.2, "AP75": ap - 0.05, "APs": float("nan"), "APm": ap - 0.1, "APl": ap + 0.1,
                 "kendall_tau": 0.2 + (0.2 if v in ("rcq", "full") else 0) + 0.01 * s, "spearman_rho": 0.3,
                 "top1_miss_rate": 0.5, "top1_iou_gap": 0.05, "ece": 0.1 - (0.05 if v in ("rcq", "full") else 0),
                 "nms_free_AP": ap - 0.2}
            summary.setdefault(v, {})[f"seed{s}"] = {k: (None if isinstance(x, float) and np.isnan(x) else x) for k, x in m.items()}
            d = ev / "runs" / v / f"seed{s}"
            d.mkdir(parents=True)
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
