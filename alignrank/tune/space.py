"""``tune.space`` (dotted params key -> distribution) as Ray Tune domains, checked before any trial.

Ray Tune's samplers (``tune.uniform`` ...) are translated by Ray's ``OptunaSearch`` into Optuna
distributions, so the same space drives TPE (``tune.search=optuna``) and random search. A sampled
Tune config is a flat dict of the same dotted keys (``{"loss.margin": 0.23}``), which is exactly a
params override: :func:`trial_params` applies it (plus the variant, epochs, seed and run folder of the
trial) through the one params validator.

Examples:
    >>> from alignrank.config import load_params
    >>> p = load_params(None, {"tune.space": {"loss.margin": {"type": "uniform", "low": 0.0, "high": 0.5}}})
    >>> sorted(search_space(p))
    ['loss.margin']
    >>> trial_params(p, {"loss.margin": 0.3}, seed=1, out_dir="/tmp/t").loss.margin
    0.3
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

from alignrank.config import ParamsError, with_overrides
from alignrank.config.schema import Params, SpaceParam


def _field_type(params: Params, key: str) -> type:
    """Python type (int or float) of the dotted numeric param ``key`` (validated by ``Params.check``)."""
    section, _, name = key.partition(".")
    return type(getattr(getattr(params, section), name))


def _cast(value: Any, tp: type, key: str) -> Any:
    """Cast a sampled/declared value to the param's type (choice values arrive as floats)."""
    if tp is int:
        if float(value) != int(value):
            raise ParamsError(f"tune.space.{key}: '{key}' is an integer param; {value!r} is not an integer")
        return int(value)
    return float(value)


def check_space(params: Params) -> None:
    """Fail before any trial when a distribution cannot produce valid values of its param.

    Beyond ``Params.check`` (known numeric key, low <= high, loguniform > 0): an integer param needs
    ``int`` or ``choice`` of integers, and both bounds (every choice) must pass the param's own range
    check, e.g. ``loss.temperature`` > 0.

    Raises:
        ParamsError: One line naming ``tune.space.<key>``.
    """
    if not params.tune.space:
        raise ParamsError("tune.space: empty search space; declare at least one key, e.g. loss.margin")
    for key, spec in params.tune.space.items():
        tp = _field_type(params, key)
        if tp is int and spec.type in ("uniform", "loguniform"):
            raise ParamsError(f"tune.space.{key}: '{key}' is an integer param; use type int (or choice)")
        probes = list(spec.values or ()) if spec.type == "choice" else [spec.low, spec.high]
        for v in probes:
            value = _cast(v, tp, key)
            try:
                with_overrides(params, {key: value})
            except ParamsError as e:
                raise ParamsError(f"tune.space.{key}: value {value!r} is out of range ({e})") from None


def reported_metrics(params: Params) -> list[str]:
    """The per-epoch metrics a trial of ``tune.variant`` reports (what ``tune.metric`` may name).

    Validation metrics (``val/map50_95`` ... and their short aliases ``map50_95`` ...) and the train /
    val loss items of the variant's criterion (``train/cal_loss`` for eq. 8 (``rcq_replace``), ``train/cls_loss`` for v8 and the augment reading).
    """
    from alignrank.nn.model import build_model
    from alignrank.tracking.names import ALIASES

    model = build_model(params.tune.variant, scale=params.model.scale, nc=80, model_params=params.model,
                        loss_params=params.loss)
    losses = model.init_criterion().loss_names
    val = [k for k in ALIASES if k != "val/fitness"]  # ultralytics' per-epoch metrics carry no fitness
    return [*(ALIASES[k] for k in val), *val, *(f"{s}/{n}" for s in ("train", "val") for n in losses)]


def check_metric(params: Params) -> None:
    """Fail before any trial when ``tune.metric`` is not a metric the tuned variant reports."""
    names = reported_metrics(params)
    if params.tune.metric not in names:
        raise ParamsError(f"tune.metric: '{params.tune.metric}' is not reported by variant '{params.tune.variant}'; "
                          f"use one of: {', '.join(names)}")


def domain(spec: SpaceParam, tp: type):
    """The Ray Tune sampler of one distribution (``int`` bounds are inclusive)."""
    from ray import tune

    if spec.type == "uniform":
        return tune.uniform(spec.low, spec.high)
    if spec.type == "loguniform":
        return tune.loguniform(spec.low, spec.high)
    if spec.type == "int":
        return tune.randint(math.ceil(spec.low), math.floor(spec.high) + 1)  # randint's upper bound is exclusive
    return tune.choice([_cast(v, tp, "") for v in spec.values])


def search_space(params: Params) -> dict[str, Any]:
    """Ray Tune ``param_space``: flat ``{dotted key: sampler}`` from ``params.tune.space`` (checked)."""
    check_space(params)
    return {key: domain(spec, _field_type(params, key)) for key, spec in params.tune.space.items()}


def sampled_overrides(params: Params, config: Mapping[str, Any]) -> dict[str, Any]:
    """The searched keys of a Tune ``config`` as typed dotted overrides (other config keys ignored)."""
    return {k: _cast(config[k], _field_type(params, k), k) for k in params.tune.space if k in config}


def trial_params(params: Params, sampled: Mapping[str, Any], *, seed: int, out_dir: str | Path) -> Params:
    """Params of one training run of a trial: the sampled values on top of the tuned variant's settings.

    Args:
        params: The search's params.
        sampled: Dotted overrides sampled by Tune (see :func:`sampled_overrides`).
        seed: Training seed of this run.
        out_dir: Root of this trial's run folders (``train.out_dir``).
    """
    fixed = {"train.variant": params.tune.variant, "train.epochs": params.tune.epochs, "train.seed": int(seed),
             "train.out_dir": str(out_dir), "train.val_period": 1}  # ASHA compares trials on every epoch's metric
    return with_overrides(params, {**fixed, **dict(sampled)})


def space_table(params: Params) -> list[dict[str, Any]]:
    """Plain rows describing the space (for the summary and MLflow params)."""
    rows = []
    for key, spec in params.tune.space.items():
        rows.append({"key": key, **{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}})
    return rows
