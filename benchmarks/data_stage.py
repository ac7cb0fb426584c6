"""Time and peak memory of the data stage's COCO conversion on a train2017-sized annotation file.

The file is built from real annotations: coco128's 128 images and 929 annotations replicated (new image and
annotation ids, file names from the new ids; crowd regions kept) to ``--images`` images (118,287 by default,
train2017's count) and about 860k annotations. Each size (1/8, 1/4, 1/2 and the whole) is converted in a fresh
process, as the data stage converts a split (without the image files: ``image_dir=None``, so this times the
JSON work, not the disk): ``read_json`` (parse), ``subset_images`` (``data.subset``: here the whole),
``validate_coco``, ``yolo_labels``, ``json.dumps(public_json(...))``. Printed per size: CPU seconds per phase
(process time, so other load on the machine does not inflate them), their total, the wall time, peak RSS of the
process (``ru_maxrss``), and the CPU time per image relative to the 1/8 size (about 1.0 for a linear conversion;
a quadratic step would double it at every size step). Exits 1 when the full size takes more than
``--max-ratio`` (default 1.5) times the 1/8 size's CPU time per image.

Usage:
    .venv/bin/python benchmarks/data_stage.py                 # 118,287 images
    .venv/bin/python benchmarks/data_stage.py --images 20000  # smaller
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COCO128 = ROOT.parent / "shared" / "data" / "coco128" / "annotations" / "instances_train2017.json"
TRAIN2017_IMAGES = 118_287


def build(n_images: int, out: Path) -> dict:
    """Replicate coco128 to ``n_images`` images (new ids) and write the JSON; returns its counts."""
    src = json.loads(COCO128.read_text())
    by_image: dict[int, list] = {}
    for a in src["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    images, anns, aid = [], [], 1
    base = sorted(src["images"], key=lambda im: im["id"])
    for i in range(n_images):
        im = base[i % len(base)]
        iid = i + 1
        images.append({**im, "id": iid, "file_name": f"{iid:012d}.jpg"})
        for a in by_image.get(im["id"], ()):
            anns.append({**a, "id": aid, "image_id": iid})
            aid += 1
    data = {"info": src.get("info", {}), "licenses": src.get("licenses", []), "categories": src["categories"],
            "images": images, "annotations": anns}
    out.write_text(json.dumps(data))
    return {"images": len(images), "annotations": len(anns), "bytes": out.stat().st_size}


def convert(path: Path) -> dict:
    """One conversion as the data stage does it (in this process); CPU seconds per phase and the wall total."""
    from alignrank.data.coco_format import public_json, read_json, subset_images, validate_coco, yolo_labels

    t: dict[str, float] = {}
    w0 = time.perf_counter()

    def phase(name: str, fn, *a, **kw):
        c0 = time.process_time()
        out = fn(*a, **kw)
        t[name] = time.process_time() - c0
        return out

    data = phase("parse", read_json, path)
    data = phase("subset", subset_images, data, 0)
    clean, report = phase("validate", validate_coco, data, image_dir=None)
    lines = phase("labels", yolo_labels, clean)
    text = phase("dump", lambda: json.dumps(public_json(clean), separators=(",", ":")))
    t["total"] = sum(t.values())
    return {"cpu_s": t, "wall_s": time.perf_counter() - w0, "boxes": sum(len(v) for v in lines.values()),
            "json_chars": len(text), "skipped": report.counts(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=TRAIN2017_IMAGES)
    ap.add_argument("--max-ratio", type=float, default=1.5)
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # child: convert this file, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(convert(args.one)))
        return 0
    if not COCO128.is_file():
        print(f"skipped: {COCO128} is absent (needs ../shared/data/coco128)")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for frac in (8, 4, 2, 1):
            n = args.images // frac
            f = Path(d) / f"instances_{n}.json"
            made = build(n, f)
            r = subprocess.run([sys.executable, __file__, "--one", str(f)], capture_output=True, text=True, check=True)
            res = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append({"fraction": f"1/{frac}" if frac > 1 else "1", **made, **res})
            f.unlink()
    base = rows[0]["cpu_s"]["total"] / rows[0]["images"]
    print("CPU seconds per phase (process time: not inflated by other load), wall seconds of the conversion")
    print(f"{'size':>5} {'images':>8} {'annots':>8} {'MB':>6} {'parse':>6} {'valid':>6} {'labels':>6} {'dump':>6} "
          f"{'CPU s':>7} {'wall s':>7} {'peak RSS MB':>11} {'CPU s/img vs 1/8':>16}")
    for r in rows:
        s = r["cpu_s"]
        r["per_image_ratio"] = s["total"] / r["images"] / base
        print(f"{r['fraction']:>5} {r['images']:>8} {r['annotations']:>8} {r['bytes'] / 1e6:>6.0f} {s['parse']:>6.2f} "
              f"{s['validate']:>6.2f} {s['labels']:>6.2f} {s['dump']:>6.2f} {s['total']:>7.2f} {r['wall_s']:>7.1f} "
              f"{r['peak_rss_mb']:>11.0f} {r['per_image_ratio']:>16.2f}")
    worst = rows[-1]["per_image_ratio"]
    print(f"CPU time per image at full size / at 1/8: {worst:.2f} (linear ~ 1; limit {args.max_ratio})")
    return 0 if worst <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
