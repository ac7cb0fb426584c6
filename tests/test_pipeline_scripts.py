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


def test_dvc_lock_files_are_not_git_ignored():
    """DVC refuses to write a git-ignored ``dvc.lock`` ("is git-ignored"): `dvc repro` would fail on a fresh clone."""
    import shutil
    import subprocess

    import pytest

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for lock in ("dvc.lock", "tune/dvc.lock"):
        r = subprocess.run(["git", "check-ignore", "-q", lock], cwd=REPO)
        assert r.returncode == 1, f"{lock} is git-ignored: remove it from .gitignore"
