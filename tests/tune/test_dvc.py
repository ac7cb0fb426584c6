"""The optional DVC stage ``tune`` lives in ``tune/dvc.yaml``: a plain ``dvc repro`` never runs it,
``dvc repro tune/dvc.yaml`` runs it (after the ``data`` stage it depends on)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def _dry(root: Path, *targets: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "ALIGNRANK_ROOT": str(root)}
    r = subprocess.run([str(BIN / "dvc"), "repro", "--dry", *targets], cwd=root, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r.stdout + r.stderr


def test_tune_stage_only_on_request(tmp_path):
    root = tmp_path / "proj"
    (root / "tune").mkdir(parents=True)
    shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "alignrank", root / "alignrank", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shutil.copy(REPO / "tune" / "dvc.yaml", root / "tune" / "dvc.yaml")
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"data": stages["data"]}}, sort_keys=False))
    (root / "data").mkdir()
    (root / "data" / "placeholder").write_text("dry run: the data stage's output must exist to be hashed")
    subprocess.run([str(BIN / "dvc"), "init", "--no-scm", "-q"], cwd=root, check=True, timeout=120)

    default = _dry(root)
    assert "Running stage 'data'" in default and "tune" not in default.replace("pipeline/", "")
    tune = _dry(root, "tune/dvc.yaml")
    assert "Running stage 'data'" in tune and "Running stage 'tune/dvc.yaml:tune'" in tune
    assert "python pipeline/tune.py" in tune
    stage = yaml.safe_load((root / "tune" / "dvc.yaml").read_text())["stages"]["tune"]
    assert "tune" in stage["params"] and stage["wdir"] == ".."
