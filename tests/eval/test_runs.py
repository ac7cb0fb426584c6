"""run_evaluate on fake run folders (checkpoint of an untrained model), predictions decoding, tracking."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from alignrank.config import with_overrides
from alignrank.engine.checkpoints import record_file
from alignrank.errors import DataError
from alignrank.eval import runs as stage
from alignrank.eval.per_image import ImageRecords, weighted_ap
from alignrank.eval.predict import decode_batch, predict_split, read_dataset_yaml


def save_checkpoint(path: Path, variant: str, nc: int, imgsz: int) -> Path:
    """A checkpoint in ultralytics' format (what the trainer saves) of an untrained model."""
    from alignrank.nn.model import build_model

    torch.manual_seed(0)
    model = build_model(variant, scale="n", nc=nc)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.half(), "ema": None, "train_args": {"imgsz": imgsz}, "epoch": -1}, path)
    if path.parent.name == "weights":  # in a run folder: recorded, as the trainer records what it writes
        record_file(path, epoch=-1)
    return path


class FakeTracker:
    def __init__(self, calls, run_id):
        self.calls, self.run_id = calls, run_id

    def log_metrics(self, metrics, step=None):
        self.calls.append(("metrics", self.run_id, dict(metrics)))

    def log_artifact(self, path, artifact_path=None):
        assert Path(path).is_file()
        self.calls.append(("artifact", self.run_id, Path(path).name))

    def end(self, status="FINISHED"):
        self.calls.append(("end", self.run_id, status))


@pytest.fixture
def fake_runs(tiny_data, tiny_params, tmp_path, monkeypatch):
    nc = read_dataset_yaml(tiny_data)["nc"]
    runs = []
    for variant, seed in (("baseline", 0), ("full", 0)):  # stock head and CSD head
        rd = tmp_path / "runs" / f"{variant}-s{seed}-x"
        save_checkpoint(rd / "weights" / "best.pt", variant, nc, 128)
        (rd / "results.csv").write_text("epoch,metrics/mAP50-95(B)\n1,0.1\n2,0.2\n")
        runs.append({"variant": variant, "seed": seed, "run_dir": str(rd), "weights": str(rd / "weights" / "best.pt"),
                     "mlflow_run_id": f"id-{variant}"})
    runs.append({"variant": "csd", "seed": 0, "status": "incomplete", "run_dir": str(runs[0]["run_dir"]),
                 "weights": runs[0]["weights"], "mlflow_run_id": None})  # has a best.pt, but is still training
    runs.append({"variant": "rcq", "seed": 0, "run_dir": str(tmp_path / "runs" / "rcq"),
                 "weights": str(tmp_path / "runs" / "rcq" / "weights" / "best.pt"), "mlflow_run_id": None})
    monkeypatch.setattr(stage, "list_runs", lambda params: runs)
    params = with_overrides(tiny_params, {"sweep.variants": ["baseline", "csd", "rcq", "full"], "sweep.seeds": [0],
                                          "eval.max_candidates": 200})
    return params, runs


def test_run_evaluate_writes_files_summary_and_tracks(fake_runs, tmp_path, monkeypatch):
    params, runs = fake_runs
    calls = []
    out = stage.run_evaluate(params, open_tracker=lambda p, run_id: FakeTracker(calls, run_id))
    assert out["evaluated"] == 2 and out["cached"] == 0 and len(out["missing"]) == 2
    assert "csd-s0: run not finished" in out["missing"][0] and "rcq-s0" in out["missing"][1]
    ev = stage.eval_root() / "cache" / Path(runs[0]["run_dir"]).name
    preds = json.loads((ev / "predictions.json").read_text())
    gt = json.loads(Path(read_dataset_yaml(params.data.root)["_val_json"]).read_text())
    assert preds and {p["image_id"] for p in preds} <= {im["id"] for im in gt["images"]}
    assert {p["category_id"] for p in preds} <= {c["id"] for c in gt["categories"]}
    with np.load(ev / "candidates.npz") as z:
        assert len(z["score"]) >= len(preds) // 2 and (z["score"] >= params.eval.conf).all()
    m = json.loads((ev / "metrics.json").read_text())
    assert "AP" in m["metrics"] and "kendall_tau" in m["metrics"] and m["stamp"]["weights_sha256"]
    assert (ev / "reliability.png").is_file()
    summary = json.loads((tmp_path / "outputs" / "eval" / "summary.json").read_text())
    assert set(summary) == {"baseline", "full"} and "AP" in summary["baseline"]["seed0"]
    mirror = tmp_path / "outputs" / "eval" / "runs" / "baseline" / "seed0"
    assert {p.name for p in mirror.iterdir()} >= {"metrics.json", "score_iou.csv", "results.csv", "reliability.png",
                                                  "per_image.npz"}
    rec = ImageRecords.load_npz(mirror / "per_image.npz")  # per-image records reproduce the run's COCO AP
    assert weighted_ap(rec, np.ones(rec.num_images))["AP"][0] == pytest.approx(summary["baseline"]["seed0"]["AP"], abs=1e-9)
    logged = [c for c in calls if c[0] == "metrics" and c[1] == "id-baseline"]
    assert logged and "eval/ap" in logged[0][2] and not [c for c in calls if c[0] == "end"]  # the run is not ended
    # unchanged checkpoint and params: nothing recomputed, same numbers; a failing tracker loses nothing
    again = stage.run_evaluate(params, open_tracker=lambda p, run_id: 1 / 0)
    assert again["cached"] == 2 and again["evaluated"] == 0 and not again["tracking_errors"]
    assert json.loads((tmp_path / "outputs" / "eval" / "summary.json").read_text()) == summary
    monkeypatch.setattr(stage, "source_hash", lambda paths: "edited-metrics-code")  # a fixed metric: re-evaluated
    assert stage.run_evaluate(params, open_tracker=lambda p, run_id: FakeTracker([], run_id))["evaluated"] == 2
    changed = with_overrides(params, {"eval.iou": 0.5})
    third = stage.run_evaluate(changed, open_tracker=lambda p, run_id: 1 / 0)
    assert third["evaluated"] == 2 and set(third["tracking_errors"]) == {"baseline-s0", "full-s0"}
    assert (ev / "metrics.json").is_file()


def test_run_evaluate_without_any_checkpoint_fails_clearly(tiny_params, monkeypatch):
    monkeypatch.setattr(stage, "list_runs", lambda params: [
        {"variant": "baseline", "seed": 0, "run_dir": "/nonexistent/r", "weights": "/nonexistent/r/best.pt"}])
    params = with_overrides(tiny_params, {"sweep.variants": ["baseline"], "sweep.seeds": [0]})
    with pytest.raises(DataError, match="no run to evaluate"):
        stage.run_evaluate(params, track=False)


def test_predictions_map_back_to_original_pixels_of_non_square_images():
    # a 100 x 200 (h x w) image letterboxed to 128: scale 0.64, 32 px padding top and bottom
    y = torch.zeros(1, 4 + 2, 3)
    y[0, :4, 0] = torch.tensor([64.0, 64.0, 32.0, 16.0])  # centre of the image, 50 x 25 original px
    y[0, 5, 0] = 0.8  # class 1
    y[0, :4, 1] = torch.tensor([64.0, 64.0, 32.0, 16.0])
    y[0, 5, 1] = 0.7  # duplicate of the same box: removed by NMS, kept as a candidate
    y[0, :4, 2] = torch.tensor([10.0, 40.0, 8.0, 8.0])
    y[0, 4, 2] = 0.0005  # below conf
    preds, cands = decode_batch(y, (128, 128), [(100, 200)], conf=0.001, iou=0.7, max_det=300, max_candidates=10)
    np.testing.assert_allclose(preds[0]["boxes"].numpy(), [[75.0, 37.5, 125.0, 62.5]], atol=1e-4)
    assert preds[0]["classes"].tolist() == [1] and len(cands[0]["scores"]) == 2


def test_predict_split_refuses_unmatched_images_and_class_mismatch(tiny_data, tmp_path):
    ds = read_dataset_yaml(tiny_data)
    gt = json.loads(Path(ds["_val_json"]).read_text())
    ckpt = save_checkpoint(tmp_path / "w.pt", "baseline", ds["nc"] + 1, 64)
    with pytest.raises(DataError, match="classes"):
        predict_split(ckpt, tiny_data, gt)
    ckpt = save_checkpoint(tmp_path / "w.pt", "baseline", ds["nc"], 64)
    renamed = {**gt, "images": [{**im, "file_name": "x" + im["file_name"]} for im in gt["images"]]}
    with pytest.raises(DataError, match="not in the val instances JSON"):
        predict_split(ckpt, tiny_data, renamed)
    with pytest.raises(DataError, match="checkpoint not found"):
        predict_split(tmp_path / "none.pt", tiny_data, gt)
    assert yaml.safe_load((tiny_data / "dataset.yaml").read_text())["category_ids"]


def test_metrics_and_artifacts_reach_the_runs_mlflow_run(fake_runs, tmp_path):
    from mlflow.tracking import MlflowClient

    from alignrank.tracking import open_tracker

    params, runs = fake_runs
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = with_overrides(params, {"mlflow.tracking_uri": uri})
    t = open_tracker(params, run_name="baseline-s0")
    t.end("FINISHED")
    client = MlflowClient(tracking_uri=uri)
    trained = client.get_run(t.run_id).info
    runs[0]["mlflow_run_id"], runs[1]["mlflow_run_id"] = t.run_id, None
    out = stage.run_evaluate(params)
    assert out["tracking_errors"].get("full-s0") == "no mlflow_run_id" and "baseline-s0" not in out["tracking_errors"]
    run = client.get_run(t.run_id)
    # the training run's duration and outcome are the training's: evaluation neither reopens nor ends it
    assert (run.info.status, run.info.start_time, run.info.end_time) == ("FINISHED", trained.start_time,
                                                                         trained.end_time)
    assert {"eval/ap", "eval/ece", "eval/tide_dap_cls", "eval/nms_free_ap"} <= set(run.data.metrics)  # NaN ones are not logged
    assert {a.path for a in client.list_artifacts(t.run_id, "eval")} >= {"eval/metrics.json", "eval/predictions.json"}


def test_a_checkpoint_outside_our_run_folders_is_never_loaded(fake_runs, tmp_path, monkeypatch):
    import ultralytics.nn.tasks as tasks

    params, runs = fake_runs
    foreign = tmp_path / "downloads" / "best.pt"  # a real checkpoint, but not one of our run folders
    foreign.parent.mkdir()
    foreign.write_bytes(Path(runs[1]["weights"]).read_bytes())
    runs[:] = [runs[0], {**runs[1], "weights": str(foreign)}]
    loaded, orig = [], tasks.load_checkpoint
    monkeypatch.setattr(tasks, "load_checkpoint", lambda w, *a, **k: loaded.append(str(w)) or orig(w, *a, **k))
    out = stage.run_evaluate(params, track=False)
    assert out["evaluated"] == 1 and loaded == [runs[0]["weights"]]  # ours loaded, the foreign one never
    (line,) = out["missing"]
    assert "full-s0" in line and "outside train.out_dir" in line and str(foreign) in line


def test_nms_free_run_reports_one2one_ap_beside_the_nms_ap(tiny_data, tiny_params, tmp_path, monkeypatch):
    """The evaluate stage on an NMS-free run and a plain one: predictions_o2o.json and a finite o2o_AP for the first,
    NaN for the second; cached on a second call; Table 2 shows the one-to-one column beside the NMS AP."""
    import math

    from alignrank.report.tables import ablation_table

    nc = read_dataset_yaml(tiny_data)["nc"]
    runs = []
    for variant in ("baseline", "baseline_e2e"):
        rd = tmp_path / "runs" / f"{variant}-s0-x"
        save_checkpoint(rd / "weights" / "best.pt", variant, nc, 128)
        runs.append({"variant": variant, "seed": 0, "run_dir": str(rd), "weights": str(rd / "weights" / "best.pt"),
                     "mlflow_run_id": None})
    monkeypatch.setattr(stage, "list_runs", lambda params: runs)
    params = with_overrides(tiny_params, {"sweep.variants": ["baseline", "baseline_e2e"], "sweep.seeds": [0]})
    out = stage.run_evaluate(params, track=False)
    assert out["evaluated"] == 2
    summary = json.loads((tmp_path / "outputs" / "eval" / "summary.json").read_text())
    e2e, plain = summary["baseline_e2e"]["seed0"], summary["baseline"]["seed0"]
    assert math.isfinite(e2e["o2o_AP"]) and math.isfinite(e2e["AP"]) and math.isfinite(e2e["nms_free_AP"])
    assert plain["o2o_AP"] is None or math.isnan(plain["o2o_AP"])
    cache = tmp_path / "outputs" / "eval" / "cache"
    assert (cache / "baseline_e2e-s0-x" / stage.O2O_FILE).is_file() and not (cache / "baseline-s0-x" / stage.O2O_FILE).exists()
    assert stage.run_evaluate(params, track=False)["cached"] == 2
    table = ablation_table({v: {0: summary[v]["seed0"]} for v in summary}, ["baseline", "baseline_e2e"])
    j = table.columns.index("AP w/o NMS, one-to-one (%)")
    assert table.columns[j - 1] == "AP with NMS, one-to-many (%)" and table.rows[0][j] == "n/a" and table.rows[1][j] != "n/a"
