"""Wall time of `alignrank evaluate --gt G --pred P` beside plain pycocotools COCOeval on the same files.

The case is COCO-val-sized and built from real annotations: the coco128 images are replicated to
``--images`` images (5,000 by default: about 37k annotations, crowd regions included), every copy's
boxes jittered by ~1 % of their size, and ``--per-image`` predictions per image (100: 500k in all)
made from them: one near-true box per object (sometimes of another class), lower-scored shifted
duplicates, and background boxes filling up to ``--per-image``. Scores lie in [0, 1].

Both commands run as fresh processes on the same files, alternately, ``--repeat`` times each
(JSON parsing, imports and everything else included). `alignrank evaluate` gets ``--json`` so
that it also writes its numbers and the reliability PNG (more work than the plain command). The
script prints both times, their ratio (median over repeats), asserts that the 12 COCO numbers are
identical, and exits 1 when the ratio is above ``--max-ratio`` (1.0).

Usage:
    .venv/bin/python benchmarks/eval_speed.py                       # 5,000 images, 500k predictions
    .venv/bin/python benchmarks/eval_speed.py --images 1000         # 1/5 scale
    .venv/bin/python benchmarks/eval_speed.py --out /tmp/evalspeed --keep   # keep the generated files
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COCO128 = ROOT.parent / "shared" / "data" / "coco128" / "annotations" / "instances_train2017.json"
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

PYCOCOTOOLS = """
import json, sys
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
gt = COCO(sys.argv[1])
ev = COCOeval(gt, gt.loadRes(sys.argv[2]), "bbox")
ev.evaluate(); ev.accumulate(); ev.summarize()
json.dump([float(x) for x in ev.stats], open(sys.argv[3], "w"))
"""


def make_case(src: Path, n_images: int, per_image: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """A COCO instances dict of ``n_images`` images replicated from ``src`` and ``per_image`` predictions per image."""
    rng = np.random.default_rng(seed)
    base = json.loads(src.read_text())
    by_img: dict[int, list] = {}
    for a in base["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a)
    cat_ids = [c["id"] for c in base["categories"]]
    images, anns, preds = [], [], []
    for k in range(n_images):
        im = base["images"][k % len(base["images"])]
        rep = k // len(base["images"])
        new_id = rep * 10_000_000 + im["id"]
        W, H = im["width"], im["height"]
        images.append({**im, "id": new_id, "file_name": f"{rep:03d}_{im['file_name']}"})
        objs = by_img.get(im["id"], [])
        rows = []
        for a in objs:
            x, y, w, h = a["bbox"]
            if rep:
                x, y, w, h = (np.asarray([x, y, w, h]) + rng.normal(0, 0.01, 4) * [w, h, w, h]).tolist()
                w, h = max(w, 1.0), max(h, 1.0)
            anns.append({**a, "id": len(anns) + 1, "image_id": new_id, "bbox": [round(v, 2) for v in (x, y, w, h)]})
            if a.get("iscrowd"):
                continue
            c = a["category_id"] if rng.random() > 0.1 else int(rng.choice(cat_ids))
            rows.append((c, x, y, w, h, 0.05, rng.uniform(0.3, 1.0)))  # near-true box
            for _ in range(int(rng.integers(0, 4))):  # lower-scored, shifted duplicates
                rows.append((a["category_id"], x, y, w, h, 0.25, rng.uniform(0.0, 0.6)))
        rows = rows[:per_image]
        out = []
        for c, x, y, w, h, sd, s in rows:
            d = rng.normal(0, sd, 4) * [w, h, w, h]
            out.append((c, x + d[0], y + d[1], max(w + d[2], 1.0), max(h + d[3], 1.0), s))
        while len(out) < per_image:  # background boxes
            w, h = rng.uniform(4, W / 3), rng.uniform(4, H / 3)
            out.append((int(rng.choice(cat_ids)), rng.uniform(0, W - w), rng.uniform(0, H - h), w, h, rng.uniform(0, 0.3)))
        preds += [{"image_id": new_id, "category_id": int(c), "bbox": [round(float(v), 2) for v in (x, y, w, h)],
                   "score": round(float(s), 5)} for c, x, y, w, h, s in out]
    return {**base, "images": images, "annotations": anns}, preds


def _timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    dt = time.perf_counter() - t
    if r.returncode:
        sys.exit(f"{' '.join(cmd[:3])}... failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--per-image", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs of each command (alternating)")
    ap.add_argument("--max-ratio", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=None, help="folder of the generated files (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args(argv)
    if not COCO128.is_file():
        sys.exit(f"{COCO128}: not found (the shared coco128 annotations)")
    out = args.out or Path(tempfile.mkdtemp(prefix="eval_speed_"))
    out.mkdir(parents=True, exist_ok=True)
    gt_path, pred_path = out / "instances_val.json", out / "predictions.json"
    t = time.perf_counter()
    gt, preds = make_case(COCO128, args.images, args.per_image)
    gt_path.write_text(json.dumps(gt)), pred_path.write_text(json.dumps(preds))
    n_crowd = sum(a.get("iscrowd", 0) for a in gt["annotations"])
    print(f"case: {len(gt['images'])} images, {len(gt['annotations'])} annotations ({n_crowd} crowd), {len(preds)} "
          f"predictions; generated in {time.perf_counter() - t:.1f} s ({pred_path.stat().st_size / 1e6:.0f} MB)")
    del gt, preds
    py = sys.executable
    ours_cmd = [str(Path(py).with_name("alignrank")), "evaluate", "--gt", str(gt_path), "--pred", str(pred_path),
                "--json", str(out / "ours.json")]
    ref_cmd = [py, "-c", PYCOCOTOOLS, str(gt_path), str(pred_path), str(out / "ref.json")]
    t_ref, t_ours = [], []
    for i in range(args.repeat):
        t_ref.append(_timed(ref_cmd))
        t_ours.append(_timed(ours_cmd))
        print(f"run {i + 1}: pycocotools {t_ref[-1]:.1f} s, alignrank evaluate {t_ours[-1]:.1f} s")
    ref = [x if x > -1 else math.nan for x in json.loads((out / "ref.json").read_text())]
    m = json.loads((out / "ours.json").read_text())
    ours = [math.nan if m[k] is None else m[k] for k in STAT_NAMES]
    same = all((a == b) or (math.isnan(a) and math.isnan(b)) for a, b in zip(ours, ref))
    r, o = statistics.median(t_ref), statistics.median(t_ours)
    print(f"pycocotools COCOeval: {r:.1f} s   alignrank evaluate: {o:.1f} s   ratio {o / r:.2f} (median of {args.repeat})")
    print("12 COCO numbers " + ("identical" if same else "DIFFER") + ": " + ", ".join(f"{k} {v:.6f}" for k, v in zip(STAT_NAMES, ours)))
    if not args.keep and args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    assert same, f"COCO numbers differ: ours {ours} vs pycocotools {ref}"
    if o / r > args.max_ratio:
        print(f"FAIL: ratio {o / r:.2f} > {args.max_ratio}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
