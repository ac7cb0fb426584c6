"""The CSD ladder file is valid before hours of training: every rung resolves to valid params of a registered
variant, rungs differ in the head only and are distinct runs, and the `csd` rung is the `csd` default."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

import pytest

from alignrank.config import load_params
from tests.conftest import REPO

HEAD_SWITCHES = ("model.csd_side_stream", "model.csd_light_cls", "model.dyn_kernels", "model.dyn_init")


@pytest.fixture(scope="module")
def ladder():
    spec = importlib.util.spec_from_file_location("ladder_runner_csd", REPO / "benchmarks" / "ladder.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ladder_runner_csd"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def spec(ladder):
    return ladder.load_ladder(REPO / "benchmarks" / "ladder_csd.yaml")


def test_rungs_are_valid_distinct_and_differ_in_the_head_only(ladder, spec, monkeypatch):
    monkeypatch.setattr(ladder, "ROOT", REPO)
    resolved = {r["name"]: ladder.resolved(spec, r, 0) for r in spec["rungs"]}  # ParamsError on a bad key
    first = next(iter(resolved.values()))
    for rung in spec["rungs"]:
        p = resolved[rung["name"]]
        assert p.train.variant == rung["variant"]
        assert dataclasses.replace(p.train, variant=first.train.variant) == first.train and p.loss == first.loss
        if rung["variant"] == "csd":
            assert set(HEAD_SWITCHES) <= set(rung["set"]), rung["name"]  # spelled out, not left to defaults
    assert len({ladder.rung_hash(spec, r, 0) for r in spec["rungs"]}) == len(spec["rungs"])
    assert len(spec["seeds"]) >= 2


def test_csd_rung_is_the_csd_default(ladder, spec, monkeypatch):
    monkeypatch.setattr(ladder, "ROOT", REPO)
    rung = next(r for r in spec["rungs"] if r["name"] == "csd")
    default = load_params(REPO / "params.yaml")
    assert ladder.resolved(spec, rung, 0).model == default.model  # the same run as the sweep's csd (cached once)
