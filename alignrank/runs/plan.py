"""``alignrank plan`` / ``alignrank sweep --plan``: what a sweep would do and what it would cost, starting nothing.

For every (variant, seed) of ``sweep.*`` the plan lists the run key and folder (:mod:`alignrank.runs.key`), and
whether the run is served from cache (``done.json``), resumed (``weights/last.pt``) or trained; the resources
each run reserves (``ray.cpus_per_run`` / ``ray.gpus_per_run``); the waves Ray would schedule (the sweep
dispatches runs in order, at most ``ray.max_concurrent`` at once, fewer when ``--cpus`` / ``--gpus`` say the
cluster holds fewer); and an estimate of wall time and GPU-hours. No Ray, no MLflow, no training.

The dataset need not exist: when it is not built the plan says so, keys the runs with a provisional
fingerprint (the folder names will change once it is built) and counts the images from the params
(synthetic sizes, COCO 2017's official counts or ``data.subset``, or the ``coco_dir`` JSONs when readable:
the official layout counts as COCO 2017 until its folder is there).

The estimate needs a measured training speed (seconds per training image, per variant), taken from, in order:

1. ``--img-per-s N``: images per second of one run on the target device, all variants;
2. finished runs under ``train.out_dir`` with the same device kind, scale, image size, batch and AMP (their
   ultralytics ``results.csv``: median epoch time over their dataset's train images) - e.g. a short pilot
   sweep on the target GPUs (``presets/paper_pilot.yaml``, which validates only after its last epoch, so the
   median epoch is training only; runs that validated every epoch count their validation in, a slight
   overestimate);
3. none: the plan shows the image counts and says how to measure.

Per run: ``epochs left x train images x seconds per image`` plus, per validated epoch (``train.val_period``),
``val images x seconds per image / 3`` (one forward pass per image); wall time of a wave = its slowest run,
of the sweep = the sum of its waves; GPU-hours = run hours x ``ray.gpus_per_run``.

Examples:
    >>> waves(["a", "b", "c"], 2)
    [['a', 'b'], ['c']]
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from alignrank.config.schema import Params
from alignrank.errors import DataError
from alignrank.io import read_json, resolve_path
from alignrank.runs.key import data_root, run_dir, run_key
from alignrank.runs.rundir import RunDir

OFFICIAL_COCO = {"train": 118287, "val": 5000}
VAL_SPEEDUP = 3.0  # validation: one forward pass per image, about a third of a training step's work


@dataclass
class PlannedRun:
    """One run of the plan."""

    name: str
    variant: str
    seed: int
    status: str  # cached | resume | train
    epochs_left: int
    dir: str
    hours: Optional[float] = None


def waves(names: list[str], concurrency: int) -> list[list[str]]:
    """Runs in dispatch order, ``concurrency`` at a time."""
    return [names[i : i + concurrency] for i in range(0, len(names), concurrency)]


def _count_images(path: Path) -> int:
    """Image records of a COCO instances JSON (``file_name`` occurs once per image record), without parsing it.

    >>> import tempfile, json, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "i.json"
    >>> _ = f.write_text(json.dumps({"images": [{"file_name": "a.jpg"}, {"file_name": "b.jpg"}]}))
    >>> _count_images(f)
    2
    """
    pat, n, tail = b'"file_name"', 0, b""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            chunk = tail + block
            n += chunk.count(pat)
            tail = chunk[-(len(pat) - 1):]  # shorter than the pattern: never counted twice
    return n


def dataset_info(params: Params) -> dict:
    """``{"built", "root", "fingerprint", "counts": {"train", "val"} | None, "counts_from"}`` without building."""
    from alignrank.data.check import verified_fingerprint

    dp, root = params.data, data_root(params)
    info = {"built": False, "root": str(root), "fingerprint": None, "counts": None, "counts_from": None}
    manifest = read_json(root / "manifest.json")
    if manifest and (root / "dataset.yaml").is_file():
        try:
            info["fingerprint"] = verified_fingerprint(root)
            info.update(built=True, counts={s: manifest["counts"][s]["images"] for s in ("train", "val")},
                        counts_from="manifest.json")
            return info
        except (DataError, KeyError) as e:
            info["note"] = str(e)

    def sub(n: int) -> int:
        return min(n, dp.subset) if dp.subset else n

    if dp.source == "synthetic":
        info.update(counts={"train": dp.num_train, "val": dp.num_val}, counts_from="params")
    elif dp.source == "coco2017":
        info.update(counts={s: sub(n) for s, n in OFFICIAL_COCO.items()}, counts_from="COCO 2017 official counts")
    else:
        from alignrank.data.coco_dir import split_sources

        try:
            src = split_sources(dp)
            info.update(counts={s: sub(_count_images(src[s].json)) for s in ("train", "val")},
                        counts_from="the coco_dir JSONs")
        except (DataError, OSError):
            if dp.coco_dir and not dp.train_json and not dp.val_json:
                info.update(counts={s: sub(n) for s, n in OFFICIAL_COCO.items()},
                            counts_from="assumed: COCO 2017 official counts (data.coco_dir not readable here)")
    return info


def _run_speed(rd: RunDir) -> Optional[tuple[dict, float]]:
    """``(its train params, seconds per training image)`` of a finished run, from ultralytics' results.csv."""
    try:
        p = yaml.safe_load(rd.params_yaml.read_text())
        rows = list(csv.DictReader((rd.path / "results.csv").open()))
        times = [float(r["time"]) for r in rows]
        manifest = read_json(Path(p["data"]["root"]) / "manifest.json") or {}
        n_train = manifest["counts"]["train"]["images"] * float(p["train"].get("fraction", 1.0))
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None
    epoch_s = [b - a for a, b in zip([0.0, *times], times) if b > a]  # (time is cumulative; restarts at a resume)
    if not epoch_s or not n_train:
        return None
    return p, statistics.median(epoch_s) / n_train


def _device_kind(device: object) -> str:
    return "cpu" if str(device).startswith("cpu") else "gpu"


def _same_setup(p: dict, params: Params) -> bool:
    t, q = params.train, p.get("train", {})
    kind = _device_kind
    return (kind(q.get("device")) == kind(t.device) and p.get("model", {}).get("scale") == params.model.scale
            and q.get("imgsz") == t.imgsz and q.get("batch") == t.batch and bool(q.get("amp")) == bool(t.amp))


def measured_speed(params: Params) -> dict[str, dict]:
    """``{variant: {"s_per_img", "runs"}}`` from finished runs under ``train.out_dir`` with the same setup."""
    found: dict[str, list[float]] = {}
    root = resolve_path(params.train.out_dir)
    for done in sorted(root.glob("*/done.json")) if root.is_dir() else []:
        got = _run_speed(RunDir(done.parent))
        if got is not None and _same_setup(got[0], params):
            found.setdefault(got[0]["train"]["variant"], []).append(got[1])
    return {v: {"s_per_img": statistics.median(s), "runs": len(s)} for v, s in found.items()}


def _validated_epochs(params: Params, epochs: int) -> int:
    period = params.train.val_period
    return epochs if period == 1 else (1 if period == 0 else epochs // period + (1 if epochs % period else 0))


def make_plan(params: Params, *, img_per_s: Optional[float] = None, cpus: Optional[float] = None,
              gpus: Optional[float] = None) -> dict:
    """The plan of ``params``' sweep (see the module docstring); starts nothing.

    Args:
        params: Resolved params (``sweep``, ``ray``, ``train``, ``data``).
        img_per_s: Measured training images per second of one run (all variants); None = from finished runs.
        cpus, gpus: Resources of the cluster, when known (limit how many runs go at once).

    Returns:
        ``{"dataset", "runs": [...], "resources", "waves", "speed", "estimate"}`` (JSON-ready).
    """
    from alignrank.engine.quiet import quiet_ultralytics
    from alignrank.runs.sweep import run_params

    ds = dataset_info(params)
    fp = ds["fingerprint"] or f"dataset-not-built:{params.data.root}"
    runs: list[PlannedRun] = []
    seen = set()
    for v in params.sweep.variants:
        for s in params.sweep.seeds:
            rp = run_params(params, v, s)
            with quiet_ultralytics():  # (the run key builds the model once: ultralytics prints on stdout)
                key = run_key(rp, fingerprint=fp)
            if key.name in seen:
                continue
            seen.add(key.name)
            rd = RunDir(run_dir(rp, key))
            done_epochs = int((read_json(rd.status_json) or {}).get("epoch") or 0) if rd.last.is_file() else 0
            status = "cached" if rd.done() is not None else ("resume" if rd.last.is_file() else "train")
            left = 0 if status == "cached" else max(params.train.epochs - done_epochs, 0)
            runs.append(PlannedRun(key.name, v, s, status, left, str(rd.path)))
    r = params.ray
    limits = [r.max_concurrent]
    if cpus is not None:
        limits.append(int(cpus // r.cpus_per_run))
    if gpus is not None and r.gpus_per_run > 0:
        limits.append(int(gpus // r.gpus_per_run))
    concurrency = max(min(limits), 0)
    todo = [x for x in runs if x.status != "cached"]
    speed = {v: {"s_per_img": 1.0 / img_per_s, "from": "--img-per-s"} for v in params.sweep.variants} if img_per_s \
        else {v: {**m, "from": f"{m['runs']} finished run(s)"} for v, m in measured_speed(params).items()}
    counts = ds["counts"]
    for x in todo:
        sp = speed.get(x.variant)
        if sp is None or counts is None:
            continue
        n_train = counts["train"] * params.train.fraction
        sec = x.epochs_left * n_train * sp["s_per_img"]
        sec += _validated_epochs(params, x.epochs_left) * counts["val"] * sp["s_per_img"] / VAL_SPEEDUP  # forward only
        x.hours = sec / 3600
    wave_names = waves([x.name for x in todo], concurrency) if concurrency else []
    by_name = {x.name: x for x in todo}
    known = all(x.hours is not None for x in todo)
    wall = sum(max(by_name[n].hours for n in w) for w in wave_names) if known and wave_names else (0.0 if known else None)
    run_hours = sum(x.hours for x in todo) if known else None
    estimate = {
        "wall_hours": None if wall is None else round(wall, 3),
        "gpu_hours": None if run_hours is None else round(run_hours * r.gpus_per_run, 3),
        "run_hours": None if run_hours is None else round(run_hours, 3),
        "train_image_passes": None if counts is None else int(sum(x.epochs_left for x in todo) * counts["train"]
                                                                * params.train.fraction),
    }
    if not known:
        estimate["note"] = ("no measured speed for " + ", ".join(sorted({x.variant for x in todo if x.variant not in speed}))
                            if counts is not None else "image counts unknown") + \
            ": pass --img-per-s (one run's training images/s on the target device) or finish a short pilot sweep " \
            "with the same device kind, scale, imgsz, batch and AMP under train.out_dir"
    return {
        "dataset": ds,
        "runs": [vars(x) | {"hours": None if x.hours is None else round(x.hours, 6)} for x in runs],
        "resources": {"cpus_per_run": r.cpus_per_run, "gpus_per_run": r.gpus_per_run, "max_concurrent": r.max_concurrent,
                      "cluster_cpus": cpus, "cluster_gpus": gpus, "concurrency": concurrency,
                      "device": params.train.device},
        "waves": wave_names,
        "speed": {v: {"img_per_s": round(1.0 / s["s_per_img"], 3), "from": s["from"]} for v, s in speed.items()},
        "estimate": estimate,
    }


def _hours(h: Optional[float]) -> str:
    if h is None:
        return "?"
    return f"{h * 60:.1f} min" if h < 1 else f"{h:.1f} h"


def format_plan(plan: dict) -> str:
    """The plan as a plain-text table and summary lines."""
    ds, res, est = plan["dataset"], plan["resources"], plan["estimate"]
    counts = ds["counts"]
    lines = [f"dataset: {ds['root']} - " + ("built" if ds["built"] else "dataset not built: run keys are provisional")
             + (f"; {counts['train']} train / {counts['val']} val images ({ds['counts_from']})" if counts else
                "; image counts unknown")]
    rows = [("run", "status", "epochs", "cpus", "gpus", "est.")]
    rows += [(x["name"], x["status"], str(x["epochs_left"]), f"{res['cpus_per_run']:g}", f"{res['gpus_per_run']:g}",
              "-" if x["status"] == "cached" else _hours(x["hours"])) for x in plan["runs"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    n = {s: sum(1 for x in plan["runs"] if x["status"] == s) for s in ("train", "resume", "cached")}
    lines.append(f"{n['train']} to train, {n['resume']} to resume, {n['cached']} cached; at most {res['concurrency']} at "
                 f"once (ray.max_concurrent={res['max_concurrent']}" + (f", cluster cpus={res['cluster_cpus']:g}"
                 if res["cluster_cpus"] is not None else "") + (f", gpus={res['cluster_gpus']:g}"
                 if res["cluster_gpus"] is not None else "") + f"): {len(plan['waves'])} wave(s)")
    for i, w in enumerate(plan["waves"], 1):
        lines.append(f"  wave {i}: {', '.join(w)}")
    for v, s in plan["speed"].items():
        lines.append(f"speed {v}: {s['img_per_s']:g} train img/s ({s['from']})")
    if est["train_image_passes"] is not None:
        lines.append(f"work: {est['train_image_passes']:,} training image passes")
    if est["wall_hours"] is None:
        lines.append(f"estimate: {est.get('note', 'unknown')}")
    else:
        lines.append(f"estimate: wall {_hours(est['wall_hours'])}; {est['gpu_hours']:.1f} GPU-hours, "
                     f"{est['run_hours']:.1f} run-hours on {res['device']}")
    return "\n".join(lines)


__all__ = ["PlannedRun", "waves", "dataset_info", "measured_speed", "make_plan", "format_plan"]
