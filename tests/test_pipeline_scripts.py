"""DVC stage scripts: thin, and never named like a stdlib module (Ray workers inherit the script folder on
sys.path, so ``pipeline/profile.py`` once shadowed the stdlib ``profile`` inside every worker)."""

from __future__ import annotations

import sys

import yaml

from tests.conftest import REPO


def test_no_stage_script_shadows_a_stdlib_module():
    clash = [p.name for p in (REPO / "pipeline").glob("*.py") if p.stem in sys.stdlib_module_names]
    assert not clash, f"rename {clash}: they shadow stdlib modules in Ray workers"


def test_every_stage_script_exists_and_is_thin():
    for dvc in (REPO / "dvc.yaml", REPO / "tune" / "dvc.yaml"):
        for name, stage in yaml.safe_load(dvc.read_text())["stages"].items():
            script = REPO / stage["cmd"].split()[-1]
            assert script.is_file(), f"{dvc.name}:{name}: {script} missing"
            assert len(script.read_text().splitlines()) <= 80, f"{script} is not a thin stage script"
