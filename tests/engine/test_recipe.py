"""The ultralytics training recipe as params: every train.* recipe key is typed and validated, reaches the
trainer's args under ultralytics' name, keys the run, and its default is today's number."""

from __future__ import annotations

import pytest
from ultralytics.utils import DEFAULT_CFG_DICT

from alignrank.config import flatten, params_dict, with_overrides
from alignrank.config.fields import ParamsError
from alignrank.engine.trainer import RECIPE_KEYS, AlignRankTrainer, ultralytics_overrides
from alignrank.runs.key import run_key

OTHER = {  # a valid non-default value of every recipe key
    "optimizer": "SGD", "lr0": 0.01, "lrf": 0.1, "cos_lr": True, "momentum": 0.9, "weight_decay": 0.001,
    "warmup_epochs": 2.0, "warmup_momentum": 0.7, "warmup_bias_lr": 0.05, "close_mosaic": 3, "patience": 7,
    "hsv_h": 0.02, "hsv_s": 0.5, "hsv_v": 0.3, "degrees": 10.0, "translate": 0.2, "scale": 0.3, "shear": 2.0,
    "perspective": 0.001, "flipud": 0.1, "fliplr": 0.4, "bgr": 0.1, "mosaic": 1.0, "mixup": 0.1, "cutmix": 0.2,
    "copy_paste": 0.1, "copy_paste_mode": "mixup", "multi_scale": 0.25, "rect": True, "fraction": 0.5, "cache": "ram",
    "nbs": 64,
}
SMOKE = {"optimizer": "AdamW", "lr0": 0.002, "warmup_epochs": 1.0, "mosaic": 0.0,  # the smoke recipe (params.yaml)
         "close_mosaic": 0, "patience": 0, "cache": False}
FP = "f" * 64


def test_every_recipe_key_has_another_value_here():
    assert set(OTHER) == set(RECIPE_KEYS) | {"nbs"}


def test_each_key_reaches_the_trainer_args(tiny_params, tmp_path):
    p = with_overrides(tiny_params, {f"train.{k}": v for k, v in OTHER.items()})
    ov = ultralytics_overrides(p, data=tiny_params.data.root + "/dataset.yaml", save_dir=tmp_path / "r")
    trainer = AlignRankTrainer(p, ov)
    for k, v in OTHER.items():
        assert getattr(trainer.args, k) == v, k
    assert flatten(params_dict(p))["train.copy_paste_mode"] == "mixup"  # (logged to MLflow as train.<key>)


def test_nbs_zero_means_one_step_per_batch(tiny_params, tmp_path):
    ov = ultralytics_overrides(with_overrides(tiny_params, {"train.batch": 4}), data="d.yaml", save_dir=tmp_path)
    assert ov["nbs"] == 4


def test_defaults_are_todays_numbers(tiny_params, tmp_path):
    """Defaults = ultralytics' own (which applied before they were params), but for the smoke recipe's keys."""
    ov = ultralytics_overrides(tiny_params, data="d.yaml", save_dir=tmp_path)
    for k in RECIPE_KEYS:
        assert ov[k] == SMOKE.get(k, DEFAULT_CFG_DICT[k]), k
    assert ov["nbs"] == tiny_params.train.batch


def test_each_key_changes_the_run_key(tiny_params):
    base = run_key(tiny_params, fingerprint=FP).hash
    seen = {base}
    for k, v in OTHER.items():
        h = run_key(with_overrides(tiny_params, {f"train.{k}": v}), fingerprint=FP).hash
        assert h not in seen, k
        seen.add(h)


@pytest.mark.parametrize("key,value", [("hsv_h", 1.5), ("lrf", -0.1), ("degrees", 181), ("shear", 90),
                                       ("fraction", 0.0), ("nbs", -1), ("close_mosaic", -1), ("cache", "disk"),
                                       ("cache", True), ("copy_paste_mode", "paste"), ("cos_lr", "yes")])
def test_out_of_range_is_refused(tiny_params, key, value):
    with pytest.raises(ParamsError, match=f"train.{key}"):
        with_overrides(tiny_params, {f"train.{key}": value})
