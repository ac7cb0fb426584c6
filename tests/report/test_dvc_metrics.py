"""DVC sees one short metrics file from the report stage, and a plain `dvc metrics show` loads every metric."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from alignrank.io import atomic_write_json
from alignrank.report.results import load_eval
from alignrank.report.summary import headline
from tests.conftest import REPO

from .helpers import fake_eval


def test_report_stage_declares_the_headline_as_its_only_metric():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    report = stages["report"]
    assert report["metrics"] == [{"results/headline.json": {"cache": False}}]
    assert {"results/metrics.json": {"cache": False}} in report["outs"]  # the full file: an out, for machines
    assert {"outputs/eval/summary.json": {"cache": False}} in stages["evaluate"]["outs"]
    assert "metrics" not in stages["evaluate"]
    tune = yaml.safe_load((REPO / "tune" / "dvc.yaml").read_text())["stages"]["tune"]
    assert "metrics" not in tune  # optional pipeline: its file is absent until a search ran


def test_dvc_metrics_show_loads_all_and_prints_a_short_row(tmp_path):
    dvc = Path(sys.executable).with_name("dvc")
    if not dvc.is_file() or not shutil.which("git"):
        pytest.skip("dvc or git not installed")
    runs, _, _ = load_eval(fake_eval(tmp_path), ["baseline", "full"], {0, 1})  # and outputs/profile/profile.json
    atomic_write_json(tmp_path / "results" / "headline.json", headline(runs, ["baseline", "full"], [], ci=0.95))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "tune").mkdir()
    shutil.copy(REPO / "tune" / "dvc.yaml", tmp_path / "tune" / "dvc.yaml")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("")  # what `dvc init` leaves, without its second DVC start-up
    r = subprocess.run([dvc, "metrics", "show", "--json"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "failed to load" not in r.stdout + r.stderr
    data = json.loads(r.stdout)[""]["data"]
    assert set(data) == {"results/headline.json", "outputs/profile/profile.json"}
    assert "error" not in data["results/headline.json"]
    assert data["results/headline.json"]["data"]["AP"]["full"]["n"] == 2
