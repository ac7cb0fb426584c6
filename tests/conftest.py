"""Shared fixtures: offline env, tiny params, a tiny synthetic dataset (session-scoped)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")

import alignrank  # noqa: E402,F401  (sets up the offline env before ultralytics/mlflow/ray)
import torch  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_COCO128 = (REPO.parent / "shared" / "data" / "coco128").resolve()


@pytest.fixture(autouse=True)
def _no_stray_files(tmp_path, monkeypatch):
    """Run every test from its tmp folder so nothing lands in the repo (runs/, mlflow.db)."""
    monkeypatch.setenv("ALIGNRANK_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield


def tiny_overrides(data_root: Path | str, out: Path | str) -> dict:
    """Params overrides for a tiny CPU run (seconds, not minutes)."""
    return {
        "data.root": str(data_root),
        "data.num_train": 16,
        "data.num_val": 8,
        "data.imgsz": 128,
        "train.imgsz": 128,
        "train.epochs": 1,
        "train.batch": 8,
        "train.out_dir": str(Path(out) / "runs"),
        "model.scale": "n",
    }


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A tiny synthetic dataset (16 train / 8 val images at 128 px), built once per session."""
    from alignrank.config import load_params
    from alignrank.data.stage import run_data

    root = tmp_path_factory.mktemp("tiny_data")
    p = load_params(REPO / "params.yaml", tiny_overrides(root / "data", root))
    run_data(p)
    return root / "data"


@pytest.fixture
def tiny_params(tiny_data, tmp_path):
    """Params for a tiny 1-epoch CPU run on ``tiny_data``, outputs under ``tmp_path``."""
    from alignrank.config import load_params

    return load_params(REPO / "params.yaml", tiny_overrides(tiny_data, tmp_path))


@pytest.fixture
def coco128() -> Path:
    """The shared real COCO subset (128 train2017 images); skip when absent."""
    if not (SHARED_COCO128 / "annotations" / "instances_train2017.json").is_file():
        pytest.skip(f"real-data test: {SHARED_COCO128} is absent (needs ../shared/data/coco128)")
    return SHARED_COCO128
