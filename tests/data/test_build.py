"""run_data: manifest + fingerprint, idempotent re-runs, moved folder, foreign folder refused, CLI and DVC script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alignrank.config import load_params
from alignrank.data.build import FINGERPRINT_PATTERNS, run_data
from alignrank.data.files import fingerprint
from alignrank.errors import DataError
from tests.conftest import REPO, set_args

TINY = {"data.num_train": 5, "data.num_val": 3, "data.imgsz": 64}


def _p(root, **extra):
    return load_params(REPO / "params.yaml", {**TINY, "data.root": str(root), **extra})


def test_manifest_fingerprint_and_summary(tmp_path):
    s = run_data(_p(tmp_path / "data"))
    root = tmp_path / "data"
    m = json.loads((root / "manifest.json").read_text())
    assert m["fingerprint"] == s["fingerprint"] == fingerprint(root, FINGERPRINT_PATTERNS)
    assert s["counts"]["train"]["images"] == 5 and s["counts"]["val"]["images"] == 3 and not s["cached"]
    assert s["dataset_yaml"] == str(root / "dataset.yaml") and s["skipped"] == {"train": {}, "val": {}}
    assert sorted(os.listdir(root)) == [".alignrank-dataset.json", "annotations", "dataset.yaml", "files.json",
                                        "images", "labels", "manifest.json"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".data.")] == [".data.alignrank"]  # no build leftovers
    (root / "labels" / "train" / "000000000001.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # contents count
    assert fingerprint(root, FINGERPRINT_PATTERNS) != s["fingerprint"]


def test_rerun_is_cached_and_writes_nothing(tmp_path):
    root = tmp_path / "data"
    run_data(_p(root))
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    s = run_data(_p(root, **{"data.retries": 5}))  # a setting that does not change the content
    assert s["cached"] and {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamp


def test_changed_params_rebuild(tmp_path):
    root = tmp_path / "data"
    a = run_data(_p(root))
    b = run_data(_p(root, **{"data.seed": 3}))
    assert not b["cached"] and a["fingerprint"] != b["fingerprint"] and a["params_hash"] != b["params_hash"]
    assert json.loads((root / "manifest.json").read_text())["params"]["seed"] == 3


def test_moved_folder_gets_its_yaml_path_fixed(tmp_path):
    run_data(_p(tmp_path / "data"))
    shutil.move(tmp_path / "data", tmp_path / "moved")
    s = run_data(_p(tmp_path / "moved"))
    assert s["cached"]
    assert yaml.safe_load((tmp_path / "moved" / "dataset.yaml").read_text())["path"] == str(tmp_path / "moved")


def test_foreign_folder_is_refused_and_untouched(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "precious.txt").write_text("mine")
    with pytest.raises(DataError, match="holds files the data stage did not write"):
        run_data(_p(root))
    assert os.listdir(root) == ["precious.txt"]


def test_cli_data_command(tmp_path):
    from alignrank.cli import app

    r = CliRunner().invoke(app, ["data", "--params", str(REPO / "params.yaml"),
                                 *set_args({**TINY, "data.root": str(tmp_path / "d")})])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["counts"]["val"]["images"] == 3


def test_dvc_stage_script(tmp_path, capsys):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update({"num_train": 3, "num_val": 2, "imgsz": 64})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "ALIGNRANK_ROOT": str(tmp_path), "TQDM_DISABLE": "1"}
    cmd = [sys.executable, str(REPO / "pipeline" / "data.py")]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    root = json.loads(r.stdout)["root"]  # params.yaml's per-source root: data/<source>-<hash of its settings>
    assert root.startswith(str(tmp_path / "data" / "synthetic-")) and (Path(root) / "manifest.json").is_file()
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["data"]
    assert dvc["cmd"] == "python pipeline/data.py" and dvc["outs"] == ["data"] and dvc["params"] == ["data"]
    params["data"]["imgsz"] = 16  # invalid: one line, exit 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: data.imgsz: must be >= 32") and "\n" not in r.stderr.strip()
