"""The per-epoch hook: sanitized metrics to the tracker, short aliases to report(), status.json, final metrics."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from alignrank.engine.callbacks import EpochLogger
from alignrank.io import read_json
from alignrank.runs.rundir import RunDir
from tests.engine.recording import RecordingTracker


def fake_trainer(epoch: int, epochs: int = 3, fitness: float = 0.1):
    metrics = {"metrics/precision(B)": 0.5, "metrics/recall(B)": 0.4, "metrics/mAP50(B)": 0.3,
               "metrics/mAP50-95(B)": 0.2 + epoch / 100, "val/box_loss": 1.5}
    return SimpleNamespace(
        epoch=epoch, epochs=epochs, metrics=metrics, fitness=fitness, epoch_time=2.0,
        tloss={"box_loss": 1.0, "cls_loss": 2.0, "dfl_loss": 3.0, "rank_loss": 0.5},
        label_loss_items=lambda items, prefix="train": {f"{prefix}/{k}": v for k, v in items.items()},
        lr={"lr/pg0": 0.01},
    )


def test_epoch_metrics_reach_tracker_report_status_and_stream(tmp_path):
    t, reported, out = RecordingTracker(), [], io.StringIO()
    cb = EpochLogger(t, epochs=3, report=lambda e, m: reported.append((e, m)), run_dir=tmp_path / "r",
                     status=RunDir(tmp_path / "r").write_status, stream=out)
    (tmp_path / "r").mkdir()
    cb(fake_trainer(0, fitness=0.1))
    cb(fake_trainer(1, fitness=0.3))
    cb(fake_trainer(2, fitness=0.2))
    steps = [s for s, _ in t.metrics]
    assert steps == [1, 2, 3]
    m = t.metrics[0][1]
    assert m["val/map50_95"] == 0.2 and m["val/map50"] == 0.3 and m["val/box_loss"] == 1.5
    assert m["train/rank_loss"] == 0.5 and m["lr/pg0"] == 0.01 and m["time/epoch_s"] == 2.0  # losses by name
    assert all("(" not in k for k in m)
    assert [e for e, _ in reported] == [1, 2, 3]
    assert reported[1][1]["map50_95"] == pytest.approx(0.21)  # the key Ray Tune optimises
    assert cb.best_epoch == 2
    st = read_json(RunDir(tmp_path / "r").status_json)
    assert st["state"] == "running" and st["epoch"] == 3 and st["metrics"]["map50_95"] == pytest.approx(0.22)
    assert len(out.getvalue().splitlines()) == 3 and out.getvalue().startswith("epoch 1/3 ")


def test_final_validation_is_kept_not_logged_as_an_epoch():
    t = RecordingTracker()
    cb = EpochLogger(t, epochs=3)
    cb(fake_trainer(0))
    final = fake_trainer(3)  # ultralytics' final_eval runs the hook with epoch == epochs
    final.metrics = {"metrics/mAP50-95(B)": 0.9}
    cb(final)
    assert len(t.metrics) == 1 and cb.final["map50_95"] == 0.9


def test_epochs_without_validation_log_no_val_metrics():
    """train.val_period: an epoch that was not validated logs its train losses only (ultralytics keeps the
    previous validation's numbers in trainer.metrics: they must not be logged again as this epoch's)."""
    t = RecordingTracker()
    cb = EpochLogger(t, epochs=3)
    for e in range(3):
        tr = fake_trainer(e)
        tr.args = SimpleNamespace(val=False)  # the last epoch is validated anyway
        cb(tr)
    logged = [m for _, m in t.metrics]
    assert not any(k.startswith("val/") for m in logged[:2] for k in m) and "train/box_loss" in logged[0]
    assert logged[2]["val/map50_95"] == pytest.approx(0.22)


@pytest.mark.parametrize("period, validated", [(0, [3]), (2, [2, 3])])
def test_val_period_validates_only_the_chosen_epochs(tiny_params, tmp_path, period, validated):
    """A real 3-epoch run: ultralytics validates after the epochs ``train.val_period`` picks (and the last)."""
    from alignrank.config import with_overrides
    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides

    p = with_overrides(tiny_params, {"train.epochs": 3, "train.val_period": period, "train.variant": "baseline"})
    ov = ultralytics_overrides(p, data=tiny_params.data.root + "/dataset.yaml", save_dir=tmp_path / "r")
    trainer, seen = AlignRankTrainer(p, ov), []
    trainer.add_callback("on_val_start", lambda v: seen.append("val"))
    trainer.add_callback("on_train_epoch_end", lambda t: seen.append(t.epoch + 1))
    trainer.train()
    epochs_validated = [seen[i - 1] for i, x in enumerate(seen) if x == "val" and i > 0 and seen[i - 1] != "val"]
    assert epochs_validated[: len(validated)] == validated  # (then final_eval validates best.pt once more)
