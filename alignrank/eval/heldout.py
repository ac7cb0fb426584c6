"""Held-out evidence: a trained run evaluated on another COCO-format dataset (``alignrank evaluate --run``).

``alignrank evaluate --run <run> --gt other/instances_val.json --images other/images`` predicts with the
run's ``best.pt`` on every image of the ground-truth JSON through the evaluate stage's prediction path
(:func:`alignrank.eval.predict.predict_all`: letterbox to the run's training size, pre-NMS candidates,
class-wise NMS) and scores them with the same evaluation (pycocotools' 12 numbers, rank consistency,
calibration, TIDE, NMS-free AP).

* ``<run>``: a run folder (``outputs/runs/full-s0-<key>``, or its name under ``train.out_dir``), or
  ``<variant>/<seed>`` (``full/0``): the run of that variant and seed under the current params and dataset.
  Only checkpoints under ``train.out_dir`` are loaded (a ``.pt`` file is a pickle that can run code).
* Classes: the model's classes are matched to the ground truth's categories by the training dataset's
  category id when the ground truth has it under the same name, else by name (case-insensitive); boxes of a
  class with no category in the ground truth are dropped and the class is listed (``classes.unmatched``).
  No class matching at all is refused.
* Images: every image of the JSON must be under ``--images`` (``file_name`` relative to it), decode, and
  have the JSON's size, as the data stage checks them (:func:`alignrank.data.coco_format.validate_coco`);
  anything else is refused with one line. A JPEG whose EXIF orientation would turn it away from the
  JSON's frame is read as stored (``stored_frame``), as the data stage makes OpenCV read it.
* Output: ``outputs/eval/heldout/<run name>/<json stem>-<hash>/`` holds ``predictions.json`` (COCO
  results), ``candidates.npz``, for an NMS-free run ``predictions_o2o.json`` (its one-to-one branch, no NMS:
  ``o2o_AP*``), ``metrics.json`` (numbers, reliability bins, meta, a stamp) and ``reliability.png``; the same stamp (checkpoint, ``eval`` params, ground truth, image folder, evaluation code) is not
  predicted again.

With a trained run, ``evaluate_heldout(params, "full/0", "other/instances_val.json", "other/images")["metrics"]["AP"]``
is its AP on the other dataset.

Examples:
    >>> from alignrank.config import load_params
    >>> evaluate_heldout(load_params(None), "full/0", "other/instances_val.json", "other/images")  # nothing built yet
    Traceback (most recent call last):
    ...
    alignrank.errors.DataError: .../dataset.yaml: dataset not found; build it with `alignrank data` (or `dvc repro data`)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from alignrank.config import to_dict
from alignrank.config.schema import Params
from alignrank.errors import DataError, UsageError
from alignrank.io import (
    atomic_write_json,
    atomic_write_text,
    project_root,
    read_json,
    resolve_path,
    sha256_file,
    to_jsonable,
)
from alignrank.runs.key import source_hash
from alignrank.runs.rundir import RunDir

HELDOUT_DIR = Path("outputs") / "eval" / "heldout"
IMAGE_PROBLEMS = ("bad_image_record", "duplicate_image_id", "duplicate_file_name", "missing_image_file",
                  "corrupt_image", "image_size_mismatch", "exif_orientation_not_jpeg")


def resolve_run(params: Params, run: str) -> RunDir:
    """The run folder named by ``run``: a folder path, a run name under ``train.out_dir``, or ``variant/seed``.

    Raises:
        UsageError: Nothing matches (one line naming what was tried).
    """
    out_dir = resolve_path(params.train.out_dir)
    for cand in (Path(run).expanduser(), out_dir / run):
        if cand.is_dir() and ((cand / "weights").is_dir() or (cand / "run.json").is_file()):
            return RunDir(cand.resolve())
    variant, sep, seed = run.partition("/")
    if sep and seed.isdigit():
        from alignrank.data.check import verified_fingerprint
        from alignrank.runs.key import data_root, run_dir, run_key
        from alignrank.runs.sweep import run_params

        rp = run_params(params, variant, int(seed))
        return RunDir(run_dir(rp, run_key(rp, fingerprint=verified_fingerprint(data_root(rp)))))
    raise UsageError(f"--run {run}: no run folder there or under train.out_dir ({out_dir}); give a run folder, "
                     f"a run name, or <variant>/<seed> (e.g. full/0)")


def _training_categories(rd: RunDir) -> tuple[list[int] | None, list[str] | None]:
    """Category ids and names of the dataset the run was trained on (from its params.yaml), if still there."""
    import yaml

    try:
        root = Path(yaml.safe_load(rd.params_yaml.read_text())["data"]["root"])
        ds = yaml.safe_load((root / "dataset.yaml").read_text())
        names = [str(ds["names"][i]) for i in range(int(ds["nc"]))]
        return [int(c) for c in ds["category_ids"]], names
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None, None


def class_categories(names: list[str], train_ids: list[int] | None, gt: dict) -> tuple[np.ndarray, list[str]]:
    """Category id in ``gt`` of each model class (-1: none) and the names of the unmatched classes.

    Examples:
        >>> gt = {"categories": [{"id": 1, "name": "person"}, {"id": 7, "name": "Car"}]}
        >>> ids, missing = class_categories(["person", "car", "dog"], [1, 3, 18], gt)
        >>> ids.tolist(), missing
        ([1, 7, -1], ['dog'])
    """
    by_id = {int(c["id"]): str(c.get("name", "")) for c in gt["categories"]}
    by_name = {str(c.get("name", "")).casefold(): int(c["id"]) for c in gt["categories"]}
    ids = []
    for i, name in enumerate(names):
        tid = train_ids[i] if train_ids is not None and i < len(train_ids) else None
        if tid is not None and by_id.get(tid, "").casefold() == name.casefold():
            ids.append(tid)
        else:
            ids.append(by_name.get(name.casefold(), -1))
    return np.asarray(ids, dtype=np.int64), [n for n, i in zip(names, ids) if i < 0]


def heldout_images(gt: dict, images: Path, gt_name: str) -> tuple[list[tuple[Path, int]], frozenset[str]]:
    """``(path, image id)`` of every image of ``gt`` and the names to read as stored (EXIF), checked as the
    data stage checks a split (presence, decoding, size against the JSON).

    Raises:
        DataError: The first problem, with how many images have it and the fix.
    """
    from alignrank.data.coco_format import validate_coco

    if not images.is_dir():
        raise DataError(f"{images}: image folder not found; give --images the folder holding {gt_name}'s file_name entries")
    clean, report = validate_coco({**gt, "annotations": []}, image_dir=images)
    bad = {k: v for k, v in report.as_dict().items() if k in IMAGE_PROBLEMS}
    if bad:
        kind, v = next(iter(bad.items()))
        raise DataError(f"{gt_name}: {v['count']} image(s) {kind.replace('_', ' ')} under {images} (first: "
                        f"{v['example']}); every image of the ground truth must be there as the JSON describes it")
    stored = frozenset(n for n, e in clean["_exif"].items() if e["action"] == "reset")
    return [(images / im["file_name"], int(im["id"])) for im in clean["images"]], stored


def _stamp(weights: Path, params: Params, gt_path: Path, images: Path) -> dict:
    return {"weights_sha256": sha256_file(weights)[:16], "eval": to_dict(params.eval),
            "gt_sha256": sha256_file(gt_path)[:16], "images": str(images), "code": source_hash(("eval",))}


def evaluate_heldout(params: Params, run: str, gt_path: str | Path, images: str | Path, *,
                     json_out: str | Path | None = None, device: str | None = None) -> dict:
    """Predict with ``run``'s ``best.pt`` on ``images`` and evaluate against ``gt_path`` (module docstring).

    Args:
        params: Resolved params (``eval``, ``train.out_dir``; ``sweep``/``data`` for a ``variant/seed`` run).
        run: Run folder, run name or ``variant/seed``.
        gt_path: COCO instances JSON of the held-out images.
        images: Folder of those images.
        json_out: Also write the metrics (and a ``<stem>.reliability.png``) here.
        device: Torch device (default: CUDA when available).

    Returns:
        ``{"run", "weights", "gt", "images", "status": evaluated|cached, "out_dir", "classes", "stored_frame",
        "metrics"}``.

    Raises:
        UsageError: Unknown run, or a checkpoint outside ``train.out_dir``.
        DataError: No checkpoint, unreadable JSON, missing/corrupt images, no class in common.
    """
    from alignrank.eval.boxes import Detections
    from alignrank.eval.calibration import save_reliability
    from alignrank.eval.evaluator import evaluate_detections
    from alignrank.eval.files import load_instances
    from alignrank.eval.predict import load_model, model_classes, predict_all

    rd = resolve_run(params, run)
    weights, out_root = rd.weights, resolve_path(params.train.out_dir).resolve()
    if not weights.resolve().is_relative_to(out_root):
        raise UsageError(f"{weights}: outside train.out_dir ({out_root}); only checkpoints of our own run folders are "
                         f"loaded (a .pt file is a pickle that can run code): set train.out_dir to the folder holding it")
    if not weights.is_file():
        raise DataError(f"{weights}: checkpoint not found; finish the run first (alignrank train / sweep)")
    gt_path, images = Path(gt_path).resolve(), Path(images).resolve()
    gt = load_instances(gt_path)
    tag = hashlib.sha256(f"{gt_path}|{images}".encode()).hexdigest()[:8]
    out = project_root() / HELDOUT_DIR / rd.name / f"{gt_path.stem}-{tag}"
    stamp = _stamp(weights, params, gt_path, images)
    old = read_json(out / "metrics.json")
    if old and old.get("stamp") == stamp and (out / "predictions.json").is_file():
        result = {**old["summary"], "status": "cached"}
    else:
        pairs, stored = heldout_images(gt, images, gt_path.name)
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        model, train_args = load_model(weights, device)
        names = [str(model.names[i]) for i in range(model_classes(model))]
        train_ids, _ = _training_categories(rd)
        cat_ids, unmatched = class_categories(names, train_ids, gt)
        if (cat_ids < 0).all():
            raise DataError(f"{gt_path.name}: none of the run's {len(names)} classes ({', '.join(names[:5])}...) is a "
                            f"category of the ground truth (by id and name); evaluate on data with the same classes")
        size = int(train_args.get("imgsz") or 640)
        r = predict_all(model, pairs, cat_ids, params.eval, size=size, device=device, stored_frame=stored)
        atomic_write_text(out / "predictions.json", json.dumps(r.preds.to_coco(decimals=3)))
        r.candidates.save_npz(out / "candidates.npz")
        preds = Detections.from_coco(json.loads((out / "predictions.json").read_text()))  # evaluate what was written
        one2one = None
        if r.one2one is not None:  # an NMS-free run: its one-to-one detections (no NMS), as written
            atomic_write_text(out / "predictions_o2o.json", json.dumps(r.one2one.to_coco(decimals=3)))
            one2one = Detections.from_coco(json.loads((out / "predictions_o2o.json").read_text()))
        res = evaluate_detections(gt, preds, r.candidates, params.eval, one2one=one2one)
        save_reliability(res.reliability, out / "reliability.png", title=f"{rd.name} on {gt_path.name}")
        result = {"run": rd.name, "weights": str(weights), "gt": str(gt_path), "images": str(images),
                  "status": "evaluated", "out_dir": str(out), "imgsz": size, "num_images": len(pairs),
                  "classes": {"model": len(names), "matched": int((cat_ids >= 0).sum()), "unmatched": unmatched},
                  "stored_frame": sorted(stored), "metrics": to_jsonable(res.metrics)}
        atomic_write_json(out / "metrics.json", {"metrics": res.metrics, "reliability": res.reliability,
                                                 "summary": result, "stamp": stamp})
    if json_out is not None:
        atomic_write_json(json_out, {**result["metrics"], "reliability": (read_json(out / "metrics.json") or {})
                                     .get("reliability", {})})
    return result


__all__ = ["resolve_run", "class_categories", "heldout_images", "evaluate_heldout"]
