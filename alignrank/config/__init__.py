"""Typed, validated parameters (the one place that reads ``params.yaml``)."""

from alignrank.config.fields import ParamsError, flatten, to_dict
from alignrank.config.load import (
    load_params,
    params_dict,
    params_hash,
    parse_overrides,
    parse_value,
    project_root,
    with_overrides,
)
from alignrank.config.schema import Params

__all__ = [
    "Params",
    "ParamsError",
    "flatten",
    "load_params",
    "params_dict",
    "params_hash",
    "parse_overrides",
    "parse_value",
    "project_root",
    "to_dict",
    "with_overrides",
]
