"""The DVC ``profile`` stage: declared as the task asks; its script runs run_profile into the metrics file."""

from __future__ import annotations

import yaml

from tests.conftest import REPO


def test_dvc_profile_stage():
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["profile"]
    assert stage["cmd"] == "python pipeline/profiling.py"
    assert {"pipeline/profiling.py", "alignrank/nn", "alignrank/profile", "alignrank/stage_main.py"} <= set(stage["deps"])
    assert stage["params"] == ["profile"]
    assert stage["metrics"] == [{"outputs/profile/profile.json": {"cache": False}}]
