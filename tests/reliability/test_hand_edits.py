"""A dataset edited by hand after the data stage is never served under its old fingerprint: ``alignrank data``
rebuilds it, ``alignrank sweep`` / ``train`` refuse it with one line telling to run ``alignrank data``."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from alignrank.config import load_params
from alignrank.data import check
from alignrank.data.build import run_data
from tests.conftest import REPO, set_args, tiny_overrides

pytestmark = pytest.mark.reliability

TINY_DATA = {"data.num_train": 3, "data.num_val": 2, "data.imgsz": 64}


def _cli(*args):
    from alignrank.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    run_data(load_params(REPO / "params.yaml", {**TINY_DATA, "data.root": str(root)}))
    label = sorted((root / "labels" / "train").glob("*.txt"))[0]
    return root, label


def test_edited_label_is_rebuilt_not_served_from_cache(dataset):
    root, label = dataset
    original = label.read_text()
    label.write_text("0 0.5 0.5 0.2 0.2\n")  # a hand edit
    r = _cli("data", "--params", str(REPO / "params.yaml"), *set_args({**TINY_DATA, "data.root": str(root)}))
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["cached"] is False and s["rebuilt_changed_files"] == 1
    assert label.read_text() == original  # the stage's own labels again: its fingerprint describes the files
    assert json.loads(_cli("data", "--params", str(REPO / "params.yaml"),
                           *set_args({**TINY_DATA, "data.root": str(root)})).stdout)["cached"] is True


@pytest.mark.parametrize("edit", ["label", "added image", "removed label", "annotations"])
def test_every_kind_of_edit_is_seen(dataset, edit):
    root, label = dataset
    if edit == "label":
        label.write_text(label.read_text().replace("0.", "0.1", 1) or "0 0.5 0.5 0.1 0.1\n")
        want = [f"labels/train/{label.name}"]
    elif edit == "added image":
        (root / "images" / "train" / "extra.jpg").write_bytes(b"\xff\xd8\xff\xd9")
        want = ["images/train/extra.jpg"]
    elif edit == "removed label":
        label.unlink()
        want = [f"labels/train/{label.name}"]
    else:
        f = root / "annotations" / "instances_val.json"
        f.write_text(f.read_text().replace('"iscrowd":0', '"iscrowd":1', 1))
        want = ["annotations/instances_val.json"]
    assert check.changed_files(root) == want


def test_touched_files_keep_the_cache_and_the_check_is_one_stat_per_file(dataset, monkeypatch):
    root, label = dataset
    st = label.stat()
    os.utime(label, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: same bytes, new mtime
    assert check.changed_files(root) == []  # hashed once, found equal, remembered
    assert run_data(load_params(REPO / "params.yaml", {**TINY_DATA, "data.root": str(root)}))["cached"]

    def no_hashing(path):
        raise AssertionError(f"hashed {path}: sizes and mtimes are unchanged")

    monkeypatch.setattr(check, "sha256_file", no_hashing)
    assert check.changed_files(root) == []  # fast path: stat only
    label.write_text("0 0.5 0.5 0.3 0.3\n")
    assert check.changed_files(root) == [f"labels/train/{label.name}"]  # another size: no hash needed


def test_sweep_and_train_refuse_an_edited_dataset_with_one_line(dataset, tmp_path):
    root, label = dataset
    label.write_text("0 0.5 0.5 0.2 0.2\n")
    over = {**tiny_overrides(root, tmp_path), **TINY_DATA, "sweep.variants": ["baseline"], "sweep.seeds": [0]}
    for command in ("sweep", "train"):
        r = _cli(command, "--params", str(REPO / "params.yaml"), *set_args(over))
        assert r.exit_code == 1, r.output
        (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert f"labels/train/{label.name}" in line and "run `alignrank data`" in line and "Traceback" not in r.output
    assert not (tmp_path / "runs").exists()  # nothing planned, trained or tracked
