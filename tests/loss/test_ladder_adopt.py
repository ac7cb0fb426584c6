"""Adopting finished runs as ladder results adopts a run only when it IS the rung's run: same head, loss
(old loss names mapped), params (a param added since only at its default) and an accepted code version."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import yaml

from alignrank.config import params_dict
from tests.conftest import REPO


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def adopt():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        return load("ladder_adopt")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


@pytest.fixture(scope="module")
def spec(adopt):
    return adopt.load_ladder(REPO / "benchmarks" / "ladder_rcq.yaml")


def rung(spec, name):
    return next(r for r in spec["rungs"] if r["name"] == name)


def fake_run(root, name, params: dict, *, head: str, loss: str, code: str, mAP: float = 0.1, done: bool = True):
    d = root / name
    d.mkdir(parents=True)
    (d / "params.yaml").write_text(yaml.safe_dump(params))
    (d / "run.json").write_text(json.dumps({"payload": {"head": head, "loss_name": loss, "code": code,
                                                        "variant": params["train"]["variant"], "model": {}}}))
    if done:
        (d / "done.json").write_text(json.dumps({"metrics": {"map50_95": mAP}, "wall_s": 1.0}))
    (d / "results.csv").write_text("epoch,metrics/mAP50-95(B),metrics/mAP50(B)\n15,%s,%s\n" % (mAP, 2 * mAP))
    return d


def run_params(adopt, spec, name, seed=0, drop=(), **changes):
    p = params_dict(adopt.resolved(spec, rung(spec, name), seed))
    for key in drop:  # a param the project did not have when the run was trained
        s, k = key.split(".")
        del p[s][k]
    for key, v in changes.items():
        s, k = key.split("__")
        p[s][k] = v
    return p


def results(tmp_path):
    return sorted(p.name.split("-s")[0] for p in (tmp_path / "out" / "results").glob("*.json"))


def test_adopts_only_the_rungs_own_runs(adopt, spec, tmp_path):
    from alignrank.runs.key import code_version

    here = code_version()
    runs = tmp_path / "runs"
    # eq. 8 under its old loss name, trained before end2end existed: the `replace` rung, never `augment`
    fake_run(runs, "old-eq8", run_params(adopt, spec, "replace", drop=("model.end2end",), train__variant="rcq"),
             head="detect", loss="rcq", code="old", mAP=0.08)
    # the augment reading, today's code
    fake_run(runs, "aug", run_params(adopt, spec, "augment"), head="detect", loss="rcq_augment", code=here)
    # the focal rung but a different gamma: another run
    fake_run(runs, "focal-g1", run_params(adopt, spec, "focal", loss__gamma=1.0), head="detect", loss="rcq_replace",
             code=here)
    # the focal_list rung, but a param added since that is NOT at its default: another run
    fake_run(runs, "list-e2e", run_params(adopt, spec, "focal_list", drop=("model.csd_biased",), model__end2end=True),
             head="detect", loss="rcq_replace", code=here)
    # the iou_targets rung, unfinished
    fake_run(runs, "iou", run_params(adopt, spec, "iou_targets"), head="detect", loss="rcq_replace", code=here,
             done=False)
    out = tmp_path / "out"
    ladder = str(REPO / "benchmarks" / "ladder_rcq.yaml")

    assert adopt.main([ladder, str(runs), "--out", str(out)]) == 0
    assert results(tmp_path) == ["augment"]  # the eq. 8 run's code version was not accepted

    assert adopt.main([ladder, str(runs), "--out", str(out), "--same-code", "old"]) == 0
    assert results(tmp_path) == ["augment", "replace"]
    rec = json.loads(next((out / "results").glob("replace-s0-*.json")).read_text())
    assert rec["params_added_since"] == ["model.end2end"] and rec["code"] == "old"
    assert rec["summary"]["metrics"]["map50_95"] == 0.08 and rec["curve"]["map50_95"] == [0.08]
