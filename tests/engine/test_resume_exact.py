"""A run interrupted after epoch 1 and resumed equals the uninterrupted run bit for bit on CPU: the trainer
saves the RNG states (python/numpy/torch/shuffling generator) beside last.pt and restores them on resume."""

from __future__ import annotations

import torch
from ultralytics.nn.tasks import load_checkpoint

from alignrank.config import load_params
from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides
from tests.conftest import REPO, tiny_overrides, train_first_epoch_only


def _weights(path):
    model, _ = load_checkpoint(path)
    return {k: v.float() for k, v in model.state_dict().items() if v.is_floating_point()}


def test_resumed_run_equals_uninterrupted_run(tiny_data, tmp_path):
    p = load_params(REPO / "params.yaml", {**tiny_overrides(tiny_data, tmp_path), "train.variant": "baseline",
                                           "train.epochs": 2})
    data = tiny_data / "dataset.yaml"
    AlignRankTrainer(p, ultralytics_overrides(p, data=data, save_dir=tmp_path / "a")).train()

    keep = tmp_path / "unfinished.pt"
    train_first_epoch_only(p, data, tmp_path / "b", keep)
    assert (tmp_path / "b" / "weights" / "last_exact.pt").is_file()
    AlignRankTrainer(p, ultralytics_overrides(p, data=data, save_dir=tmp_path / "b", resume=keep)).train()

    a, b = _weights(tmp_path / "a" / "weights" / "last.pt"), _weights(tmp_path / "b" / "weights" / "last.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run diverged from the uninterrupted one"
