"""The DVC ``profile`` stage: declared as the task asks; its script runs run_profile into the metrics file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from alignrank.config import ParamsError
from tests.conftest import REPO


def test_dvc_profile_stage():
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["profile"]
    assert stage["cmd"] == "python pipeline/profiling.py"
    assert set(stage["deps"]) == {"pipeline/profiling.py", "alignrank/nn", "alignrank/profile"}
    assert stage["params"] == ["profile"]
    assert stage["metrics"] == [{"outputs/profile/profile.json": {"cache": False}}]


def _load_script():
    spec = importlib.util.spec_from_file_location("pipeline_profile", REPO / "pipeline" / "profiling.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_pipeline_script_runs_the_stage_into_its_metrics_file(monkeypatch, tmp_path):
    mod = _load_script()
    seen = {}
    monkeypatch.setattr(mod, "load_params", lambda: "PARAMS")
    monkeypatch.setattr(mod, "run_profile", lambda p, json_out: seen.update(p=p, out=json_out))
    assert mod.main() == 0 and seen == {"p": "PARAMS", "out": Path("outputs/profile/profile.json")}


def test_pipeline_script_maps_errors_to_exit_codes(monkeypatch, capsys):
    mod = _load_script()

    def bad_params():
        raise ParamsError("profile.repeats: must be >= 1, got 0")

    monkeypatch.setattr(mod, "load_params", bad_params)
    assert mod.main() == 2 and "profile.repeats" in capsys.readouterr().err
