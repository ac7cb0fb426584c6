"""The single train path on a tiny real run: tracking contents, reuse, determinism, resume, CLI."""

from __future__ import annotations

import csv
import json

import mlflow
import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.config import with_overrides
from alignrank.engine.trainer import AlignRankTrainer
from alignrank.nn.model import AlignRankModel
from alignrank.runs import run as run_mod
from alignrank.runs.key import run_dir, run_key
from alignrank.runs.rundir import RunDir
from tests.conftest import REPO
from tests.engine.recording import RecordingTracker


def _losses(rd: RunDir) -> list[tuple[str, ...]]:
    with open(rd.path / "results.csv") as f:
        return [tuple(r[k] for k in ("train/box_loss", "train/cls_loss", "train/dfl_loss")) for r in csv.DictReader(f)]


def test_train_tracks_everything_then_reuses_the_finished_run(tiny_params):
    p = with_overrides(tiny_params, {"train.variant": "baseline", "train.epochs": 2})
    t = RecordingTracker()
    final = run_mod.train(p, t)
    rd = RunDir(run_dir(p, run_key(p)))
    assert rd.name.startswith("baseline-s0-") and rd.weights.is_file() and rd.done() is not None
    assert set(final) >= {"map50_95", "map50", "precision", "recall", "best_epoch"}
    # per-epoch metrics, MLflow-safe names, losses by name, lr
    assert [s for s, m in t.metrics if "val/map50_95" in m] == [1, 2]
    first = t.metrics[0][1]
    assert {"train/box_loss", "train/cls_loss", "train/dfl_loss", "val/box_loss", "lr/pg0"} <= set(first)
    assert t.metrics[-1][1]["final/map50_95"] == final["map50_95"]
    # all resolved params, flattened (head/loss/assigner settings included)
    assert t.params["loss.lambda_rank"] == 1.0 and t.params["loss.assigner"] == "tal"
    assert t.params["model.csd_points"] == 4 and t.params["train.epochs"] == 2
    for tag in ("variant", "seed", "git_commit", "git_dirty", "dataset_fingerprint", "dvc_stage", "host", "device",
                "machine"):
        assert t.tags.get(tag), tag
    assert rd.done()["machine"] == t.tags["machine"] and "torch" in t.tags["machine"]  # the CPU kind it reproduces on
    assert t.tags["variant"] == "baseline" and t.tags["dvc_stage"] == "cli" and t.tags["device"] == "cpu"
    assert ("best.pt", "weights") in t.artifacts and ("params.yaml", None) in t.artifacts
    # a finished run is never recomputed
    mtime = rd.weights.stat().st_mtime_ns
    again = RecordingTracker()
    assert run_mod.train(p, again) == final
    assert again.metrics == [] and rd.weights.stat().st_mtime_ns == mtime


def test_same_seed_same_result_on_cpu_other_seed_differs(tiny_params, tmp_path):
    p = with_overrides(tiny_params, {"train.variant": "baseline"})
    a = run_mod.train(p, RecordingTracker())
    p2 = with_overrides(p, {"train.out_dir": str(tmp_path / "again")})  # same key, other folder
    b = run_mod.train(p2, RecordingTracker())
    rd_a, rd_b = RunDir(run_dir(p, run_key(p))), RunDir(run_dir(p2, run_key(p2)))
    assert rd_a.name == rd_b.name and rd_a.path != rd_b.path
    assert a == b and _losses(rd_a) == _losses(rd_b)
    p3 = with_overrides(p2, {"train.seed": 1})
    run_mod.train(p3, RecordingTracker())
    assert _losses(RunDir(run_dir(p3, run_key(p3)))) != _losses(rd_a)


class Interrupt(Exception):
    pass


def _stop_after_first_epoch(epoch, metrics):
    if epoch == 1:
        raise Interrupt  # like Ctrl-C right after epoch 1 was saved


@pytest.mark.reliability
@pytest.mark.parametrize("variant", ["baseline", "csd"])
def test_interrupted_run_resumes_from_last_pt_through_our_model(tiny_params, monkeypatch, variant):
    p = with_overrides(tiny_params, {"train.variant": variant, "train.epochs": 2})
    rd = RunDir(run_dir(p, run_key(p)))
    with pytest.raises(Interrupt):
        run_mod.train(p, RecordingTracker(), report=_stop_after_first_epoch)
    assert rd.state(epochs=2) == "resume" and rd.done() is None
    seen = []
    orig = AlignRankTrainer.get_model

    def spy(self, cfg=None, weights=None, verbose=True):
        model = orig(self, cfg=cfg, weights=weights, verbose=verbose)
        seen.append((weights, model))
        return model

    monkeypatch.setattr(AlignRankTrainer, "get_model", spy)
    t = RecordingTracker()
    run_mod.train(p, t)
    (weights, model), = seen
    assert isinstance(weights, AlignRankModel) and weights.variant == variant  # the checkpoint's model
    assert model.variant == variant and type(model.model[-1]) is type(weights.model[-1])  # head survives
    assert [s for s, m in t.metrics if "val/map50_95" in m] == [2]  # only the remaining epoch ran
    assert len(_losses(rd)) == 2 and rd.meta()["attempts"] == 2 and rd.meta()["start_state"] == "resume"


def test_cli_train_prints_epochs_and_json_and_tracks_one_mlflow_run(tiny_data, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = ["train", "--params", str(REPO / "params.yaml"), "--variant", "baseline", "--seed", "0",
            "--set", f"data.root={tiny_data}", "--set", "train.imgsz=128", "--set", "train.epochs=2",
            "--set", "train.batch=8", "--set", "model.scale=n"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["status"] == "done" and out["cached"] is False and out["weights"].endswith("weights/best.pt")
    assert [ln.split()[1] for ln in r.stderr.splitlines() if ln.startswith("epoch ")] == ["1/2", "2/2"]
    c = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}")
    runs = c.search_runs([c.get_experiment_by_name("alignrank").experiment_id])
    assert [r_.info.run_id for r_ in runs] == [out["mlflow_run_id"]]  # exactly one: ultralytics' MLflow callback is off
    assert runs[0].info.status == "FINISHED" and runs[0].data.tags["variant"] == "baseline"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["outputs"]  # nothing stray in the CWD/project root
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and json.loads(again.stdout)["cached"] is True


@pytest.mark.reliability
def test_checkpoint_writes_are_atomic(tiny_params, monkeypatch):
    from ultralytics.models.yolo.detect import DetectionTrainer

    p = with_overrides(tiny_params, {"train.variant": "baseline", "train.epochs": 2})
    rd = RunDir(run_dir(p, run_key(p)))
    with pytest.raises(Interrupt):
        run_mod.train(p, RecordingTracker(), report=_stop_after_first_epoch)
    before = rd.last.read_bytes()

    def killed_mid_write(self):
        self.last.write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(DetectionTrainer, "save_model", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        run_mod.train(p, RecordingTracker())  # resumes epoch 2, dies while saving it
    assert rd.last.read_bytes() == before and rd.state(epochs=2) == "resume"
