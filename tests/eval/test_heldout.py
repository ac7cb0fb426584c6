"""``alignrank evaluate --run --gt --images``: a trained run scored on another COCO-format dataset, through the
evaluate stage's prediction path; classes matched by id and name; refusals are one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.config import load_params
from alignrank.data.build import run_data
from alignrank.errors import DataError, UsageError
from alignrank.eval import runs as stage
from alignrank.eval.heldout import evaluate_heldout, resolve_run
from alignrank.eval.predict import read_dataset_yaml
from alignrank.io import sha256_file
from alignrank.runs.key import run_dir, run_key
from alignrank.runs.run import train
from alignrank.tracking.base import NullTracker
from tests.conftest import REPO, set_args, tiny_overrides


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """One finished 1-epoch baseline run on the tiny synthetic dataset (trained once for this module)."""
    p = load_params(REPO / "params.yaml", {**tiny_overrides(tiny_data, tmp_path_factory.mktemp("heldout_run")),
                                           "train.variant": "baseline", "train.seed": 0})
    train(p, NullTracker())
    return p


@pytest.fixture
def other_dataset(tmp_path, trained):
    """A held-out COCO-format dataset: another synthetic draw (other seed), category ids shifted by 100, the
    last category left out (its class has no category there), images in their own folder."""
    p = load_params(REPO / "params.yaml", {**tiny_overrides(tmp_path / "other_data", tmp_path), "data.seed": 7})
    run_data(p)
    src = tmp_path / "other_data"
    gt = json.loads((src / "annotations" / "instances_val.json").read_text())
    dropped = max(c["id"] for c in gt["categories"])
    gt["categories"] = [{**c, "id": c["id"] + 100} for c in gt["categories"] if c["id"] != dropped]
    gt["annotations"] = [{**a, "category_id": a["category_id"] + 100} for a in gt["annotations"]
                         if a["category_id"] != dropped]
    out = tmp_path / "heldout"
    shutil.copytree(src / "images" / "val", out / "images")
    (out / "instances_val.json").write_text(json.dumps(gt))
    return out


def test_cli_heldout_end_to_end(trained, other_dataset, tmp_path):
    args = ["evaluate", "--params", str(REPO / "params.yaml"), *set_args(tiny_overrides(trained.data.root, tmp_path)),
            "--set", f"train.out_dir={trained.train.out_dir}",
            "--run", "baseline/0", "--gt", str(other_dataset / "instances_val.json"),
            "--images", str(other_dataset / "images"), "--json", str(tmp_path / "m.json")]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    nc = read_dataset_yaml(trained.data.root)["nc"]
    assert out["status"] == "evaluated" and out["num_images"] == 8
    assert out["classes"]["matched"] == nc - 1 and len(out["classes"]["unmatched"]) == 1
    gt_ids = {c["id"] for c in json.loads((other_dataset / "instances_val.json").read_text())["categories"]}
    preds = json.loads((Path(out["out_dir"]) / "predictions.json").read_text())
    assert preds and {d["category_id"] for d in preds} <= gt_ids  # mapped by name to the held-out ids
    assert 0.0 <= out["metrics"]["AP"] <= 1.0 and json.loads((tmp_path / "m.json").read_text())["AP"] == out["metrics"]["AP"]
    again = json.loads(CliRunner().invoke(app, args).stdout)
    assert again["status"] == "cached" and again["metrics"] == out["metrics"]


def test_same_numbers_as_the_evaluate_stage(trained):
    """On the run's own val split, the held-out path gives exactly the evaluate stage's numbers."""
    key = run_key(trained)
    rd = run_dir(trained, key)
    ds = read_dataset_yaml(trained.data.root)
    gt = json.loads(Path(ds["_val_json"]).read_text())
    run = {"variant": "baseline", "seed": 0, "run_dir": str(rd), "weights": str(rd / "weights" / "best.pt")}
    staged = stage.evaluate_run(run, trained, gt, sha256_file(ds["_val_json"])[:16], Path(trained.data.root))
    held = evaluate_heldout(trained, str(rd), ds["_val_json"], ds["_val_dir"], device="cpu")
    assert held["classes"]["unmatched"] == [] and held["metrics"] == staged["metrics"]
    assert (Path(held["out_dir"]) / "predictions.json").read_bytes() == \
        (Path(staged["eval_dir"]) / "predictions.json").read_bytes()


def test_refusals_are_one_line(trained, other_dataset, tmp_path):
    gt = other_dataset / "instances_val.json"
    next((other_dataset / "images").iterdir()).unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) missing image file under") as e:
        evaluate_heldout(trained, "baseline/0", gt, other_dataset / "images")
    assert "\n" not in str(e.value)
    with pytest.raises(UsageError, match="no run folder there or under train.out_dir"):
        resolve_run(trained, "nothing-here")
    foreign = tmp_path / "elsewhere" / "baseline-s0-x"
    shutil.copytree(run_dir(trained, run_key(trained)), foreign)
    with pytest.raises(UsageError, match="outside train.out_dir"):
        evaluate_heldout(trained, str(foreign), gt, other_dataset / "images")
    r = CliRunner().invoke(app, ["evaluate", "--run", "baseline/0", "--gt", str(gt)])
    assert r.exit_code == 2 and "give --run, --gt and --images" in r.output
