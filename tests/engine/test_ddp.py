"""Multi-GPU runs on CPU: the DDP worker script that would be launched rebuilds an AlignRankTrainer with the
parent's model, criterion and arguments (no cloudpickle, nothing installed); rank 0's epochs are relayed to the
launcher's callbacks; a multi-GPU run is one Ray task in a STRICT_PACK placement group."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alignrank.config import load_params, params_dict, with_overrides
from alignrank.config.fields import ParamsError
from alignrank.engine import ddp
from alignrank.engine.callbacks import EpochLogger
from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides
from tests.conftest import REPO


def shipped_hook(trainer):  # a module-level callback: pickles, so it travels to the workers
    pass


class Recorder:
    def __init__(self):
        self.calls = []

    def log_metrics(self, metrics, step=None):
        self.calls.append((step, dict(metrics)))


def _parent(tiny_params, tmp_path, variant: str = "full"):
    p = with_overrides(tiny_params, {"train.variant": variant, "loss.lambda_rank": 0.7, "model.csd_points": 3,
                                     "train.lr0": 0.004, "train.mosaic": 0.5})
    t = AlignRankTrainer(p, ultralytics_overrides(p, data=tiny_params.data.root + "/dataset.yaml", save_dir=tmp_path / "run"))
    t.add_callback("on_train_epoch_end", shipped_hook)
    t.add_callback("on_fit_epoch_end", lambda tr: None)  # does not pickle: stays in the launcher
    return p, t


def _fingerprint(trainer) -> dict:
    import hashlib

    torch.manual_seed(0)
    model = trainer.get_model(weights=None)
    crit = model.init_criterion()
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode() + v.detach().cpu().numpy().tobytes())
    return {"state_sha256": h.hexdigest(), "criterion": type(crit).__name__, "loss_params": params_dict(crit.params),
            "variant": model.variant}


@pytest.mark.parametrize("variant", ["full", "full_e2e"])  # full_e2e: the NMS-free model and its dual-assignment loss
def test_worker_script_rebuilds_the_parents_trainer(tiny_params, tmp_path, variant):
    p, parent = _parent(tiny_params, tmp_path, variant)
    script, kept = ddp.write_worker(parent, tmp_path / "ddp")
    assert [getattr(f, "__name__", "") for f in kept["on_fit_epoch_end"]] == ["<lambda>"]
    out = tmp_path / "built.json"
    guard = ("import runpy, sys, json, ultralytics.utils.checks as c\n"
             "def refuse(*a, **k): raise SystemExit('check_requirements called (an install attempt)')\n"
             "c.check_requirements = refuse\n"
             f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
             f"json.dump(sorted(m for m in ('cloudpickle', 'ray', 'mlflow') if m in sys.modules), open({str(out) + '.mods'!r}, 'w'))\n")
    env = {**__import__("os").environ, ddp.DRY_ENV: str(out), "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}
    r = subprocess.run([sys.executable, "-c", guard], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    built = json.loads(out.read_text())
    want = _fingerprint(parent)
    assert {k: built[k] for k in want} == want  # same weights at the same seed, same criterion and loss params
    assert built["loss_params"]["lambda_rank"] == 0.7 and built["variant"] == variant
    assert built["criterion"] == ("DualAssignmentLoss" if variant.endswith("_e2e") else "AugmentedRCQLoss")
    for k in ("lr0", "mosaic", "epochs", "batch", "imgsz", "nbs", "seed", "data"):
        assert built["args"][k] == getattr(parent.args, k), k
    assert built["callbacks"]["on_train_epoch_end"] >= 1  # the shipped hook (and ultralytics' defaults)
    assert json.loads(Path(str(out) + ".mods").read_text()) == []  # no cloudpickle / ray / mlflow in a worker


def test_epochs_relayed_to_the_launchers_callbacks(tmp_path):
    path = tmp_path / ddp.RELAY_NAME
    recs = [{"epoch": e, "epochs": 2, "metrics": {"metrics/mAP50-95(B)": 0.1 * (e + 1)}, "tloss": {"train/box_loss": 1.0},
             "lr": {"lr/pg0": 0.01}, "epoch_time": 1.5, "fitness": 0.1 * (e + 1), "val": True} for e in (0, 1, 2)]
    tracker, logger = Recorder(), None
    logger = EpochLogger(tracker, epochs=2)
    path.write_text(json.dumps(recs[0]) + "\n" + json.dumps(recs[1])[:20])  # the second line still being written
    off = ddp.relay_epochs(path, [logger], 0)
    assert [s for s, _ in tracker.calls] == [1]
    path.write_text(json.dumps(recs[0]) + "\n" + json.dumps(recs[1]) + "\n" + json.dumps(recs[2]) + "\n")
    ddp.relay_epochs(path, [logger], off)
    assert [s for s, _ in tracker.calls] == [1, 2] and tracker.calls[1][1]["train/box_loss"] == 1.0
    assert logger.best_epoch == 2 and logger.final is not None  # epoch == epochs: the final validation


def test_train_launches_our_workers_not_ultralytics(tiny_params, tmp_path, monkeypatch):
    """With several devices the launcher runs torch.distributed.run on our worker script, keeps the run folder
    (ultralytics' launcher deletes it) and replays rank 0's epochs to the callbacks that stayed here."""
    p, parent = _parent(tiny_params, tmp_path)
    logger = EpochLogger(Recorder(), epochs=2)
    parent.add_callback("on_fit_epoch_end", logger)
    parent.ddp, parent.world_size = True, 2
    (Path(parent.save_dir) / "keep.txt").write_text("run folder content")
    seen = {}

    class FakeProc:
        def __init__(self, cmd):
            seen["cmd"] = cmd
            rec = {"epoch": 0, "epochs": 2, "metrics": {}, "tloss": None, "lr": {}, "epoch_time": 1.0, "fitness": None,
                   "val": False}
            (Path(parent.save_dir) / "ddp" / ddp.RELAY_NAME).write_text(json.dumps(rec) + "\n")
            self.returncode = 0

        def poll(self):
            return 0

    monkeypatch.setattr(ddp.subprocess, "Popen", FakeProc)
    parent.train()
    cmd = seen["cmd"]
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and cmd[cmd.index("--nproc_per_node") + 1] == "2"
    assert cmd[-1] == str(Path(parent.save_dir) / "ddp" / "worker.py")
    assert (Path(parent.save_dir) / "keep.txt").is_file() and logger.tracker.calls[0][0] == 1


def test_multi_gpu_run_is_one_strict_pack_task(tmp_path):
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from alignrank.runs.cluster import placement_options, placement_spec, task_options

    p = load_params(REPO / "params.yaml", {"ray.gpus_per_run": 4, "ray.cpus_per_run": 16, "train.device": "0,1,2,3"})
    assert placement_spec(p) == {"bundles": [{"CPU": 16.0, "GPU": 4.0}], "strategy": "STRICT_PACK"}
    assert task_options(p)["num_gpus"] == 4.0 and task_options(p)["num_cpus"] == 16.0
    pg = object()
    s = placement_options(pg)["scheduling_strategy"]
    assert isinstance(s, PlacementGroupSchedulingStrategy) and s.placement_group is pg
    assert s.placement_group_bundle_index == 0 and s.placement_group_capture_child_tasks
    assert placement_spec(with_overrides(p, {"ray.gpus_per_run": 1, "train.device": "cuda"})) is None
    with pytest.raises(ParamsError, match="set train.device=0,1,2,3"):
        with_overrides(p, {"train.device": "cuda"})
    with pytest.raises(ParamsError, match="whole number of GPUs"):
        with_overrides(p, {"ray.gpus_per_run": 1.5})
