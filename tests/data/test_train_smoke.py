"""Both data sources produce a dataset ultralytics trains on for one epoch (baseline, YOLOv8-n, tiny sizes)."""

from __future__ import annotations

import pytest

from alignrank.config import load_params, with_overrides
from alignrank.data.build import run_data
from tests.conftest import REPO


def _train_one_epoch(params, data_yaml, save_dir):
    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides

    trainer = AlignRankTrainer(params, ultralytics_overrides(params, data=data_yaml, save_dir=save_dir))
    trainer.train()
    return trainer


def _tree_digest(root):
    import hashlib

    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(root.rglob("*")) if f.is_file()}


def test_one_epoch_on_synthetic(tiny_params, tiny_data, tmp_path):
    p = with_overrides(tiny_params, {"train.variant": "baseline", "train.save_period": -1})
    before = _tree_digest(tiny_data)
    assert {"labels/train.cache", "labels/val.cache"} <= set(before)  # written by the data stage itself
    tr = _train_one_epoch(p, tiny_data / "dataset.yaml", tmp_path / "run")
    assert _tree_digest(tiny_data) == before, "training wrote into the data stage's output (DVC would re-run it)"
    assert (tmp_path / "run" / "weights" / "last.pt").is_file()
    assert tr.model.nc == p.data.num_classes == 4  # params.yaml: data.num_classes
    assert tr.validator.seen == 8 and "metrics/mAP50-95(B)" in tr.metrics


@pytest.mark.network
def test_one_epoch_on_loopback_coco(coco128_www, serve, tmp_path):
    srv = serve(coco128_www)
    over = {"data.source": "coco2017", "data.root": str(tmp_path / "data"), "data.url": srv.url, "data.subset": 16,
            "train.variant": "baseline", "train.imgsz": 64, "train.epochs": 1, "train.batch": 8,
            "train.save_period": -1,
            "model.scale": "n", "train.out_dir": str(tmp_path / "runs")}
    p = load_params(REPO / "params.yaml", over)
    s = run_data(p)
    tr = _train_one_epoch(p, s["dataset_yaml"], tmp_path / "run")
    assert (tmp_path / "run" / "weights" / "last.pt").is_file() and tr.model.nc == 80
    assert tr.validator.seen == 16
