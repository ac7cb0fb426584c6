"""Offline, quiet runtime: ultralytics settings live outside the user's home with its integrations off;
a private local Ray keeps token auth without writing ~/.ray/auth_token."""

from __future__ import annotations

import os
from pathlib import Path

import alignrank  # noqa: F401
from alignrank.env import config_dir


def test_ultralytics_settings_are_private_and_offline():
    from ultralytics.utils import SETTINGS

    home = Path.home().resolve()
    cfg = Path(os.environ["YOLO_CONFIG_DIR"]).resolve()
    assert cfg == config_dir().resolve() and home not in cfg.parents
    assert (cfg / "Arial.ttf").is_file()  # no font download
    assert not any(SETTINGS.get(k) for k in ("mlflow", "raytune", "sync", "hub", "wandb", "comet", "dvc"))
    assert os.environ["YOLO_OFFLINE"] == "1" and os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_local_ray_writes_no_token_into_home(tmp_path, monkeypatch):
    import ray

    from alignrank.config import load_params
    from alignrank.runs.cluster import ray_session
    from tests.conftest import REPO

    monkeypatch.setenv("HOME", str(tmp_path))  # Path.home() follows $HOME
    with ray_session(load_params(REPO / "params.yaml", {"ray.num_cpus": 1})):
        assert ray.get(ray.remote(lambda: 42).remote()) == 42
    assert not (tmp_path / ".ray").exists()
