"""Shared fixtures: offline env, tiny params, a tiny synthetic dataset (session-scoped)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

from alignrank.env import setup_offline  # noqa: E402

setup_offline()  # the offline env before ultralytics/mlflow/ray

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
        "train.val_period": 1,  # per-epoch validation metrics are what many tests check
        "train.out_dir": str(Path(out) / "runs"),
        "model.scale": "n",
    }


def set_args(overrides: dict) -> list[str]:
    """``--set key=value`` CLI arguments for ``overrides`` (non-strings as JSON: numbers, lists, booleans)."""
    return [a for k, v in overrides.items() for a in ("--set", f"{k}={v if isinstance(v, str) else json.dumps(v)}")]


def train_tiny(tiny_data: Path, root: Path, variant: str):
    """One tiny training of ``variant`` under ``root`` (params.yaml + :func:`tiny_overrides`).

    Returns ``(params, data yaml, run dir, trainer)``.
    """
    from alignrank.config import load_params
    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides

    p = load_params(REPO / "params.yaml", {**tiny_overrides(tiny_data, root), "train.variant": variant})
    data = tiny_data / "dataset.yaml"
    trainer = AlignRankTrainer(p, ultralytics_overrides(p, data=data, save_dir=root / "run"))
    trainer.train()
    return p, data, root / "run", trainer


def train_first_epoch_only(params, data: Path, save_dir: Path, keep: Path) -> None:
    """Train ``params`` into ``save_dir`` but stop after epoch 1, keeping that unfinished ``last.pt`` as ``keep``."""
    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides

    def stop_after_first_epoch(trainer):
        shutil.copy(trainer.last, keep)  # before final_eval strips the optimizer
        trainer.stop = True

    first = AlignRankTrainer(params, ultralytics_overrides(params, data=data, save_dir=save_dir))
    first.add_callback("on_model_save", stop_after_first_epoch)
    first.train()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A tiny synthetic dataset (16 train / 8 val images at 128 px), built once per session."""
    from alignrank.config import load_params
    from alignrank.data.build import run_data

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
