"""A real tiny training (AlignRankTrainer, 1 epoch, ~10 s on CPU) -> run_evaluate -> run_report.

The predictions of our own forward/decode/NMS path are checked against ultralytics' validator
(``save_json``) on the same checkpoint: same boxes, scores and classes.
"""

from __future__ import annotations

import json
from pathlib import Path

from alignrank.config import with_overrides
from alignrank.eval import runs as stage


def test_trained_checkpoint_to_report(tiny_params, tiny_data, tmp_path, monkeypatch):
    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides
    from alignrank.report.results import run_report

    params = with_overrides(tiny_params, {"train.variant": "baseline", "sweep.variants": ["baseline"], "sweep.seeds": [0],
                                          "report.bootstrap": 200})
    run_dir = tmp_path / "runs" / "baseline-s0"
    AlignRankTrainer(params, ultralytics_overrides(params, data=tiny_data / "dataset.yaml", save_dir=run_dir)).train()
    assert (run_dir / "weights" / "best.pt").is_file() and (run_dir / "results.csv").is_file()
    run = {"variant": "baseline", "seed": 0, "run_dir": str(run_dir), "weights": str(run_dir / "weights" / "best.pt"),
           "mlflow_run_id": None, "status": "done"}
    monkeypatch.setattr(stage, "list_runs", lambda p: [run])
    out = stage.run_evaluate(params, track=False)
    assert out["evaluated"] == 1
    m = json.loads((stage.eval_root() / "cache" / run_dir.name / "metrics.json").read_text())["metrics"]
    assert m["num_images"] == params.data.num_val and m["num_preds"] > 0 and 0 <= m["AP"] <= 1
    _same_as_ultralytics_validator(run_dir, tiny_data, tmp_path)
    rep = run_report(params)
    assert rep["runs"] == 1 and (Path(rep["out_dir"]) / "figures" / "training_curves.png").is_file()


def _same_as_ultralytics_validator(run_dir: Path, data: Path, tmp_path: Path) -> None:
    import collections

    import yaml
    from ultralytics import YOLO

    YOLO(str(run_dir / "weights" / "best.pt")).val(
        data=str(data / "dataset.yaml"), imgsz=128, batch=8, conf=0.001, iou=0.7, max_det=300, save_json=True,
        plots=False, rect=False, project=str(tmp_path / "val"), name="v", exist_ok=True, verbose=False)
    ids = yaml.safe_load((data / "dataset.yaml").read_text())["category_ids"]
    theirs = json.loads((tmp_path / "val" / "v" / "predictions.json").read_text())
    ours = json.loads((stage.eval_root() / "cache" / run_dir.name / "predictions.json").read_text())
    gt = json.loads((data / "annotations" / "instances_val.json").read_text())
    by_stem = {Path(im["file_name"]).stem: im["id"] for im in gt["images"]}

    def key(d, theirs=False):  # ultralytics numbers classes 1..nc and images by file stem
        img = by_stem[Path(d["file_name"]).stem] if theirs else d["image_id"]
        cat = ids[d["category_id"] - 1] if theirs else d["category_id"]
        return img, cat, round(d["score"], 4), tuple(round(v, 1) for v in d["bbox"])

    assert ours and collections.Counter(key(d, True) for d in theirs) == collections.Counter(map(key, ours))
