"""``alignrank evaluate`` / DVC stage ``evaluate``: evaluate every (variant, seed) run of the sweep.

For each run listed by :func:`alignrank.runs.sweep.list_runs` (``variant``, ``seed``, ``run_dir``,
``weights``, ``mlflow_run_id``) whose ``best.pt`` exists:

* ``outputs/eval/cache/<run name>/predictions.json`` (post-NMS, COCO results), ``candidates.npz`` (pre-NMS),
  for an NMS-free model ``predictions_o2o.json`` (its one-to-one branch's detections, no NMS: ``o2o_AP*``),
  ``score_iou.npz`` (matched candidates), ``metrics.json`` (all numbers + reliability bins + a stamp),
  ``reliability.png``; a run whose stamp (checkpoint sha256, ``eval`` params, ground-truth sha256, and a
  hash of the evaluation code in ``alignrank/eval``) is unchanged is not re-evaluated;
* ``per_image.npz`` beside the predictions: per-image match records (:mod:`alignrank.eval.per_image`),
  rebuilt only when the predictions or the ground truth change;
* a copy for the report under ``outputs/eval/runs/<variant>/seed<seed>/`` (metrics, a seeded sample of
  score-vs-IoU pairs, ultralytics' ``results.csv``, the reliability PNG, the per-image records) and
  ``runs/index.json``;
* metrics (``eval/<name>``) and artifacts logged to the run's MLflow run (a tracking failure is
  reported in the summary, never loses the computed files);
* ``outputs/eval/summary.json`` (a DVC out; the report stage's ``results/headline.json`` is the DVC metric):
  ``{variant: {seed<k>: {metric: value}}}``.

Examples:
    >>> from alignrank.config import load_params
    >>> run_evaluate(load_params(None), track=False)  # in a project without a dataset yet
    Traceback (most recent call last):
    ...
    alignrank.errors.DataError: .../dataset.yaml: not found; run `alignrank data` (or `dvc repro data`) first
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from alignrank.config import to_dict
from alignrank.config.schema import Params
from alignrank.errors import DataError
from alignrank.eval.per_image import RECORDS_FILE
from alignrank.io import (
    atomic_write_json,
    atomic_write_npz,
    atomic_write_text,
    project_root,
    read_json,
    resolve_path,
    sha256_file,
    to_jsonable,
)
from alignrank.runs.key import source_hash

EVAL_DIR = Path("outputs") / "eval"
O2O_FILE = "predictions_o2o.json"  # an NMS-free model's one-to-one detections (COCO results)
SCATTER_SAMPLE = 4000  # score-vs-IoU pairs copied per run for the report's scatter plots


def eval_root() -> Path:
    """``<project root>/outputs/eval``."""
    return project_root() / EVAL_DIR


def list_runs(params: Params) -> list[dict]:
    """Runs of the sweep (see :func:`alignrank.runs.sweep.list_runs`)."""
    from alignrank.runs.sweep import list_runs as sweep_list_runs

    return list(sweep_list_runs(params))


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def evaluate_run(run: dict, params: Params, gt: dict, gt_sha: str, data_root: Path, *, coco_gt=None) -> dict:
    """Predict (unless cached) and evaluate one run; returns ``{"status", "metrics", "meta", "eval_dir"}``."""
    from alignrank.engine.checkpoints import verify
    from alignrank.errors import CheckpointRefused
    from alignrank.eval.boxes import Detections
    from alignrank.eval.calibration import save_reliability
    from alignrank.eval.evaluator import evaluate_detections
    from alignrank.eval.predict import predict_split

    weights = Path(run["weights"])
    eval_dir = eval_root() / "cache" / Path(run["run_dir"]).name  # never inside the train stage's outputs
    root = resolve_path(params.train.out_dir).resolve()
    if not weights.resolve().is_relative_to(root):  # checkpoints are pickles: load only those our runs wrote
        return {"status": "refused", "eval_dir": str(eval_dir),
                "error": f"{weights}: outside train.out_dir ({root}); only checkpoints of our own run folders are "
                         f"loaded (a .pt file is a pickle that can run code)"}
    if not weights.is_file():
        return {"status": "missing", "eval_dir": str(eval_dir), "error": f"{weights}: checkpoint not found"}
    try:
        verify(weights)  # and only those whose sha256 their run recorded (a planted file is never unpickled)
    except CheckpointRefused as e:
        return {"status": "refused", "eval_dir": str(eval_dir), "error": str(e)}
    stamp = {"weights_sha256": sha256_file(weights)[:16], "eval": to_dict(params.eval), "gt_sha256": gt_sha,
             "code": source_hash(("eval",))}  # fixed metric code re-evaluates; a cached number is today's
    old = read_json(eval_dir / "metrics.json")
    files = [eval_dir / f for f in ("predictions.json", "candidates.npz", "score_iou.npz", "reliability.png")]
    if (old or {}).get("meta", {}).get("end2end"):
        files.append(eval_dir / O2O_FILE)
    if old and old.get("stamp") == stamp and all(f.is_file() for f in files):
        return {"status": "cached", "metrics": old["metrics"], "meta": old.get("meta", {}), "eval_dir": str(eval_dir),
                "reliability": old.get("reliability", {})}
    pr = predict_split(weights, data_root, gt, params.eval, device=_device())
    atomic_write_text(eval_dir / "predictions.json", json.dumps(pr.preds.to_coco(decimals=3)))
    pr.candidates.save_npz(eval_dir / "candidates.npz")
    preds = Detections.from_coco(json.loads((eval_dir / "predictions.json").read_text()))  # evaluate what was written
    one2one = None
    if pr.one2one is not None:  # NMS-free model: its one-to-one detections, as written
        atomic_write_text(eval_dir / O2O_FILE, json.dumps(pr.one2one.to_coco(decimals=3)))
        one2one = Detections.from_coco(json.loads((eval_dir / O2O_FILE).read_text()))
    res = evaluate_detections(gt, preds, pr.candidates, params.eval, coco_gt=coco_gt, one2one=one2one)
    atomic_write_npz(eval_dir / "score_iou.npz", score=res.score.astype(np.float32), iou=res.iou.astype(np.float32))
    title = f"{run.get('variant')} seed {run.get('seed')}"
    save_reliability(res.reliability, eval_dir / "reliability.png", title=title)
    meta = {**pr.meta, "variant": run.get("variant"), "seed": run.get("seed")}
    atomic_write_json(eval_dir / "metrics.json", {"metrics": res.metrics, "reliability": res.reliability, "meta": meta,
                                                  "stamp": stamp})
    return {"status": "evaluated", "metrics": to_jsonable(res.metrics), "meta": meta, "eval_dir": str(eval_dir),
            "reliability": to_jsonable(res.reliability)}


def _mirror(run: dict, result: dict, out: Path) -> None:
    """Copy what the report needs into ``outputs/eval/runs/<variant>/seed<seed>/``."""
    dst = out / "runs" / str(run["variant"]) / f"seed{run['seed']}"
    src = Path(result["eval_dir"])
    dst.mkdir(parents=True, exist_ok=True)
    atomic_write_json(dst / "metrics.json", {"metrics": result["metrics"], "reliability": result.get("reliability", {}),
                                             "meta": result.get("meta", {})})
    with np.load(src / "score_iou.npz") as z:
        score, iou = z["score"], z["iou"]
    if len(score) > SCATTER_SAMPLE:
        idx = np.sort(np.random.default_rng(0).choice(len(score), SCATTER_SAMPLE, replace=False))
        score, iou = score[idx], iou[idx]
    atomic_write_text(dst / "score_iou.csv", "score,iou\n" + "".join(f"{s:.5f},{q:.5f}\n" for s, q in zip(score, iou)))
    shutil.copyfile(src / "reliability.png", dst / "reliability.png")
    if (src / RECORDS_FILE).is_file():  # per-image match records: the report's bootstrap over images
        shutil.copyfile(src / RECORDS_FILE, dst / RECORDS_FILE)
    csv = Path(run["run_dir"]) / "results.csv"
    if csv.is_file():
        shutil.copyfile(csv, dst / "results.csv")


def _log_to_tracker(run: dict, result: dict, params: Params, open_tracker: Optional[Callable]) -> Optional[str]:
    """Log eval metrics and artifacts to the run's MLflow run; returns an error line or None.

    The training run is added to as it is, never reopened or ended: its status, start and end time stay
    those of the training (a 75 s run shows 75 s), and ``eval/*`` sits beside ``val/*`` and ``final/*``.
    """
    if not run.get("mlflow_run_id"):
        return "no mlflow_run_id"
    try:
        if open_tracker is None:
            from alignrank.tracking import attach_to_run as open_tracker
        from alignrank.tracking.names import sanitize

        t = open_tracker(params, run_id=run["mlflow_run_id"])
        t.log_metrics({f"eval/{sanitize(k)}": float(v) for k, v in result["metrics"].items()
                       if isinstance(v, (int, float)) and v is not None and np.isfinite(v)})
        d = Path(result["eval_dir"])
        for f in ("metrics.json", "predictions.json", "reliability.png", O2O_FILE):
            if (d / f).is_file():
                t.log_artifact(d / f, "eval")
    except Exception as e:  # noqa: BLE001  (tracking must never lose the computed evaluation)
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    return None


def run_evaluate(params: Params, *, open_tracker: Optional[Callable] = None, track: bool = True) -> dict:
    """Evaluate every run of ``sweep.variants`` x ``sweep.seeds``; write ``outputs/eval/summary.json``.

    Args:
        params: Resolved params (``eval``, ``sweep``, ``data.root``, ``train.out_dir``).
        open_tracker: ``open_tracker(params, run_id=...) -> Tracker`` adding to that existing run, not ended here
            (default: :func:`alignrank.tracking.attach_to_run`, which leaves the run's status and times alone).
        track: Log to MLflow.

    Returns:
        ``{"evaluated", "cached", "missing", "tracking_errors", "summary"}``.

    Raises:
        DataError: No run has a checkpoint (nothing to evaluate).
    """
    from alignrank.eval.coco import CocoGT
    from alignrank.eval.files import load_instances
    from alignrank.eval.per_image import ensure_records
    from alignrank.eval.predict import read_dataset_yaml

    data_root = resolve_path(params.data.root)
    ds = read_dataset_yaml(data_root)
    gt = load_instances(ds["_val_json"])
    gt_sha = sha256_file(ds["_val_json"])[:16]
    cgt = CocoGT(gt)
    manifest = read_json(data_root / "manifest.json") or {}
    out = eval_root()
    wanted_v, wanted_s = set(params.sweep.variants), set(params.sweep.seeds)
    runs = [r for r in list_runs(params) if r.get("variant") in wanted_v and r.get("seed") in wanted_s]
    summary: dict = {}
    index, missing, track_err = [], [], {}
    counts = {"evaluated": 0, "cached": 0}
    for run in runs:
        name = f"{run['variant']}-s{run['seed']}"
        if run.get("status") not in (None, "done"):  # a checkpoint of an unfinished run is not its result
            missing.append(f"{name}: run not finished (status '{run['status']}'); complete the sweep")
            continue
        res = evaluate_run(run, params, gt, gt_sha, data_root, coco_gt=cgt)
        if res["status"] in ("missing", "refused"):
            missing.append(f"{name}: {res['error']}")
            continue
        counts[res["status"]] += 1
        ensure_records(res["eval_dir"], cgt, gt_sha)  # once per predictions file (kept beside it in the cache)
        _mirror(run, res, out)
        summary.setdefault(str(run["variant"]), {})[f"seed{run['seed']}"] = res["metrics"]
        index.append({k: run.get(k) for k in ("variant", "seed", "run_dir", "weights", "mlflow_run_id")} | {"meta": res["meta"]})
        if track and res["status"] == "evaluated":
            err = _log_to_tracker(run, res, params, open_tracker)
            if err:
                track_err[name] = err
    atomic_write_json(out / "runs" / "index.json", {
        "runs": index, "missing": missing,
        "data": {"source": manifest.get("source"), "fingerprint": manifest.get("fingerprint"),
                 "counts": manifest.get("counts"), "val_json": str(ds["_val_json"])},
        "eval": to_dict(params.eval),
    })
    atomic_write_json(out / "summary.json", summary)
    if not index:
        raise DataError(f"no run to evaluate: {len(runs)} run(s) listed, none with a checkpoint"
                        f"{' (' + missing[0] + ')' if missing else ''}; run `alignrank sweep` first")
    return {**counts, "missing": missing, "tracking_errors": track_err, "summary": str(out / "summary.json")}
