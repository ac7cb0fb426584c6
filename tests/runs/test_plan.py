"""``alignrank plan`` / ``sweep --plan``: every run (train / resume / cached) with its key, resources, Ray waves and
a wall-time / GPU-hours estimate, without starting anything and without needing the dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.config import load_params, with_overrides
from alignrank.io import atomic_write_json
from alignrank.runs.plan import _validated_epochs, make_plan
from alignrank.runs.run import train
from alignrank.runs.sweep import plan as sweep_plan
from alignrank.tracking.base import NullTracker
from tests.conftest import REPO, set_args, tiny_overrides

PAPER = REPO / "presets" / "paper.yaml"


def test_paper_preset_plans_without_data_ray_or_training(tmp_path):
    """The acceptance: the paper preset's plan and estimate, with no COCO data, no Ray, no MLflow, no run folder."""
    code = ("import json, sys; from typer.testing import CliRunner; from alignrank.cli import app; "
            f"r = CliRunner().invoke(app, ['plan', '--params', {str(REPO / 'params.yaml')!r}, '--set-file', {str(PAPER)!r}, "
            "'--img-per-s', '400', '--gpus', '8', '--json']); "
            "print(json.dumps({'code': r.exit_code, 'out': r.stdout, 'mods': [m for m in ('ray', 'mlflow') if m in sys.modules]}))")
    env = {**os.environ, "ALIGNRANK_ROOT": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["code"] == 0 and res["mods"] == [], res
    plan = json.loads(res["out"])
    assert not plan["dataset"]["built"] and plan["dataset"]["counts"] == {"train": 118287, "val": 5000}
    assert len(plan["runs"]) == 12 and {x["status"] for x in plan["runs"]} == {"train"}
    assert plan["resources"] == {"cpus_per_run": 8.0, "gpus_per_run": 1.0, "max_concurrent": 8, "cluster_cpus": None,
                                 "cluster_gpus": 8.0, "concurrency": 8, "device": "cuda"}
    assert [len(w) for w in plan["waves"]] == [8, 4]
    per_run = (500 * 118287 + 500 * 5000 / 3) / 400 / 3600  # train at 400 img/s + every epoch's val at 3x
    assert plan["runs"][0]["hours"] == pytest.approx(per_run, abs=1e-3)
    est = plan["estimate"]
    assert est["train_image_passes"] == 12 * 500 * 118287
    assert est["gpu_hours"] == pytest.approx(12 * per_run, abs=1e-2) and est["wall_hours"] == pytest.approx(2 * per_run, abs=1e-2)
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "data").exists()  # nothing written
    table = CliRunner().invoke(app, ["plan", "--params", str(REPO / "params.yaml"), "--set-file", str(PAPER),
                                     "--variants", "baseline", "--seeds", "0"])
    assert table.exit_code == 0 and "dataset not built" in table.stdout and "give --img-per-s" not in table.stdout
    assert "estimate: no measured speed for baseline: pass --img-per-s" in table.stdout


def test_statuses_measured_speed_and_sweep_keys(tiny_params, tmp_path):
    """A finished run is cached and lends its measured speed; a run with a last.pt resumes; keys = the sweep's."""
    p = with_overrides(tiny_params, {"sweep.variants": ["baseline"], "sweep.seeds": [0, 1, 2], "train.epochs": 2})
    specs = sweep_plan(p)
    train(specs[0].params, NullTracker(), key=specs[0].key)
    last = specs[1].dir / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"x")
    atomic_write_json(specs[1].dir / "status.json", {"state": "interrupted", "epoch": 1})
    plan = make_plan(p)
    assert [x["name"] for x in plan["runs"]] == [s.name for s in specs]
    assert [(x["status"], x["epochs_left"]) for x in plan["runs"]] == [("cached", 0), ("resume", 1), ("train", 2)]
    assert plan["dataset"]["built"] and plan["speed"]["baseline"]["from"] == "1 finished run(s)"
    ips = plan["speed"]["baseline"]["img_per_s"]  # 16 train / 8 val images, val images at a third of the cost
    for x, epochs in zip(plan["runs"][1:], (1, 2)):
        validated = _validated_epochs(p, epochs)
        assert x["hours"] == pytest.approx((epochs * 16 + validated * 8 / 3) / ips / 3600, rel=1e-2)
    assert plan["estimate"]["gpu_hours"] == 0.0 and plan["estimate"]["run_hours"] > 0
    r = CliRunner().invoke(app, ["sweep", "--plan", "--params", str(REPO / "params.yaml"),
                                 *set_args({**tiny_overrides(tiny_params.data.root, tmp_path), "train.epochs": 2,
                                            "sweep.variants": "baseline", "sweep.seeds": "0,1,2"})])
    assert r.exit_code == 0 and "1 to train, 1 to resume, 1 cached" in r.stdout and "estimate: wall" in r.stdout


def test_cluster_limits_the_runs_at_once(tmp_path):
    p = load_params(REPO / "params.yaml", {"sweep.variants": ["baseline"], "sweep.seeds": [0, 1, 2, 3, 4],
                                           "ray.max_concurrent": 8, "ray.cpus_per_run": 4, "ray.gpus_per_run": 2,
                                           "train.device": "0,1", "data.root": str(tmp_path / "none")})
    assert make_plan(p)["resources"]["concurrency"] == 8
    assert [len(w) for w in make_plan(p, cpus=10)["waves"]] == [2, 2, 1]
    assert make_plan(p, cpus=64, gpus=6)["resources"]["concurrency"] == 3
    assert make_plan(p)["estimate"]["wall_hours"] is None
