"""The DVC ``train`` stage on a tiny params file: a re-run without change is a no-op, a param change re-runs
the stage but re-trains only the runs whose key it changes (finished runs persist in outputs/runs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def _project(root: Path) -> Path:
    """A DVC project with the real data + train stages, pipeline scripts, package sources and a tiny params.yaml."""
    (root / "pipeline").mkdir(parents=True)
    for f in ("data.py", "train.py"):
        shutil.copy(REPO / "pipeline" / f, root / "pipeline" / f)
    shutil.copytree(REPO / "alignrank", root / "alignrank", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    pipeline = {"stages": {k: stages[k] for k in ("data", "train")}}
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["data"].update(num_train=16, num_val=8, imgsz=128)
    p["train"].update(imgsz=64, epochs=1, batch=8)
    p["model"].update(scale="n")
    p["sweep"].update(variants=["baseline"], seeds=[0])
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return root


def _repro(root: Path) -> tuple[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", ALIGNRANK_ROOT=str(root))
    t = time.time()
    r = subprocess.run([str(BIN / "dvc"), "repro", "train"], cwd=root, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r.stdout + r.stderr, time.time() - t


def _summary(root: Path) -> dict:
    return json.loads((root / "outputs" / "runs" / "sweep.json").read_text())


def test_dvc_repro_noop_and_partial_rerun(tmp_path):
    root = _project(tmp_path / "proj")
    subprocess.run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=root, check=True, timeout=120)
    _repro(root)
    first = _summary(root)
    assert len(first["trained"]) == 1 and first["failed"] == []
    assert len(list(root.glob("data/synthetic-*/labels/train.cache"))) == 1  # (the per-source root) ignored by DVC

    out, seconds = _repro(root)
    assert "Stage 'train' didn't change, skipping" in out and "Stage 'data' didn't change, skipping" in out
    assert seconds < 10 and _summary(root) == first

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["loss"]["lambda_rank"] = 2.0  # read only by the rcq loss: the baseline's runs stay valid
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out, _ = _repro(root)
    assert "Running stage 'train'" in out
    again = _summary(root)
    assert again["trained"] == [] and again["cached"] == first["trained"] and again["parent_run_id"] == first["parent_run_id"]  # (no new MLflow run: the parent holding its runs)
