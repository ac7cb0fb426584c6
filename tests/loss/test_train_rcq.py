"""A 1-epoch ``rcq_replace`` (eq. 8) training run on the tiny synthetic data: RCQ loss items in the log and results.csv."""

from __future__ import annotations

import csv

from alignrank.config import with_overrides
from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides


def test_rcq_one_epoch_logs_loss_items(tiny_params, tiny_data, tmp_path):
    params = with_overrides(tiny_params, {"train.variant": "rcq_replace", "loss.beta": 0.5})
    save_dir = tmp_path / "run"
    overrides = ultralytics_overrides(params, data=tiny_data / "dataset.yaml", save_dir=save_dir)
    trainer = AlignRankTrainer(params, overrides)
    trainer.train()
    assert trainer.loss_names == ("box_loss", "cal_loss", "list_loss", "rank_loss", "dfl_loss")
    assert "cal_loss" in trainer.progress_string() and "rank_loss" in trainer.progress_string()
    with open(save_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    row = {k.strip(): v for k, v in rows[0].items()}
    for name in ("box_loss", "cal_loss", "list_loss", "rank_loss", "dfl_loss"):
        assert float(row[f"train/{name}"]) >= 0.0
        assert f"val/{name}" in row
    assert float(row["train/cal_loss"]) > 0 and float(row["train/box_loss"]) > 0
    assert type(trainer.model.criterion).__name__ == "AlignRankLoss"
