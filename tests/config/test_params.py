"""params.yaml loading: typed, frozen, validated; overrides; every rule fails with one line naming the key."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import yaml

from alignrank.config import ParamsError, flatten, load_params, params_dict, params_hash, with_overrides
from alignrank.config.fields import build
from alignrank.config.schema import Params
from tests.conftest import REPO

PARAMS = REPO / "params.yaml"


def test_params_yaml_equals_schema_defaults_and_every_key_is_commented():
    p = load_params(PARAMS)
    assert p == build(Params, {}, "")
    raw = yaml.safe_load(PARAMS.read_text())
    assert set(raw) == {f.name for f in dataclasses.fields(Params)}
    for line in PARAMS.read_text().splitlines():
        if line.startswith("  ") and not line.startswith("    ") and ":" in line:
            assert "  # " in line, f"params.yaml key without a one-line comment: {line!r}"


def test_frozen_and_picklable():
    p = load_params(PARAMS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train.epochs = 3  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(p)) == p


def test_overrides_and_hash():
    p = load_params(PARAMS, ["train.epochs=3", "loss.margin=0.25", "sweep.seeds=[0,1,2]", "ray.address=null"])
    assert (p.train.epochs, p.loss.margin, p.sweep.seeds, p.ray.address) == (3, 0.25, (0, 1, 2), None)
    q = with_overrides(p, {"loss.margin": 0.3})
    assert q.loss.margin == 0.3 and p.loss.margin == 0.25
    assert params_hash(p) != params_hash(q) and params_hash(p) == params_hash(load_params(PARAMS, ["train.epochs=3", "loss.margin=0.25", "sweep.seeds=[0,1,2]"]))
    assert flatten(params_dict(p))["loss.margin"] == 0.25


def test_set_file_fragment(tmp_path):
    frag = tmp_path / "best.yaml"
    frag.write_text("loss.lambda_rank: 2.0\nloss:\n  temperature: 0.7\n")
    p = load_params(PARAMS, ["loss.margin=0.3"], set_files=[frag])
    assert (p.loss.lambda_rank, p.loss.temperature, p.loss.margin) == (2.0, 0.7, 0.3)


BAD = [
    ("loss.temperature=0", "loss.temperature", "> 0"),
    ("loss.temperature=-1", "loss.temperature", "> 0"),
    ("loss.lambda_cal=-0.1", "loss.lambda_cal", ">= 0"),
    ("loss.lambda_list=-1", "loss.lambda_list", ">= 0"),
    ("loss.lambda_rank=-1", "loss.lambda_rank", ">= 0"),
    ("loss.margin=-0.1", "loss.margin", ">= 0"),
    ("loss.eps=-0.1", "loss.eps", ">= 0"),
    ("loss.assigner=hungarian", "loss.assigner", "tal"),
    ("loss.iou_loss=giou", "loss.iou_loss", "ciou"),
    ("train.variant=yolov9", "train.variant", "baseline"),
    ("sweep.variants=[baseline,nope]", "sweep.variants", "baseline"),
    ("train.epochs=0", "train.epochs", ">= 1"),
    ("train.epochs=three", "train.epochs", "integer"),
    ("train.imgsz=100", "train.imgsz", "multiple of 32"),
    ("train.amp=maybe", "train.amp", "true/false"),
    ("model.scale=q", "model.scale", "one of"),
    ("data.source=imagenet", "data.source", "one of"),
    ("report.ci=1.5", "report.ci", "< 1"),
    ("train.epochz=3", "train.epochz", "unknown key"),
    ("nosection.x=1", "nosection", "unknown key"),
    ("tune.space.loss.margin.low=5", "tune.space.loss.margin", "low"),
    ("tune.space.loss.temperature.low=0", "tune.space.loss.temperature", "> 0"),
    ("tune.space.loss.nope={type: uniform, low: 0, high: 1}", "loss.nope", "unknown key"),
    ("tune.space.loss.margin={type: gaussian, low: 0, high: 1}", "tune.space.loss.margin.type", "one of"),
    ("tune.search=grid", "tune.search", "one of"),
]


@pytest.mark.reliability
@pytest.mark.parametrize("override,key,allowed", BAD, ids=[b[0] for b in BAD])
def test_every_bad_value_fails_with_one_line_naming_the_key(override, key, allowed):
    with pytest.raises(ParamsError) as e:
        load_params(PARAMS, [override])
    msg = str(e.value)
    assert "\n" not in msg and key in msg and allowed in msg, msg


@pytest.mark.reliability
def test_malformed_yaml_and_unknown_top_level(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("train:\n  epochs: [1,\n")
    with pytest.raises(ParamsError, match=r"malformed YAML at line"):
        load_params(bad)
    bad.write_text("trian:\n  epochs: 3\n")
    with pytest.raises(ParamsError, match="unknown key 'trian'"):
        load_params(bad)
    with pytest.raises(ParamsError, match="expected dotted.key=value"):
        load_params(PARAMS, ["train.epochs"])
