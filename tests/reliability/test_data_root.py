"""The data stage replaces only a folder it wrote: ``data.root`` holding anything else is refused, untouched."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from alignrank.config import load_params
from alignrank.data.build import MARKER_NAME, run_data
from tests.conftest import REPO, set_args

pytestmark = pytest.mark.reliability

TINY = {"data.num_train": 3, "data.num_val": 2, "data.imgsz": 64}


def _data_cli(root, **extra):
    from alignrank.cli import app

    over = {**TINY, "data.root": str(root), **extra}
    return CliRunner().invoke(app, ["data", "--params", str(REPO / "params.yaml"), *set_args(over)])


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_folder_with_an_unrelated_manifest_is_refused_with_one_line_and_left_untouched(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"name": "my-app", "files": ["a.txt"]}))
    (root / "a.txt").write_text("precious")
    (root / "images").mkdir()
    (root / "images" / "cat.jpg").write_bytes(b"\xff\xd8 my photo")
    before = _tree(root)
    r = _data_cli(root)
    assert r.exit_code == 1, r.output
    err = r.stderr.strip()
    assert "\n" not in err and err.startswith(f"error: data.root={root} holds files the data stage did not write")
    assert "new or empty folder" in err  # the fix
    assert _tree(root) == before and sorted(os.listdir(root)) == ["a.txt", "images", "manifest.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mine.")]  # nothing built beside it


def test_missing_empty_and_own_folders_are_built_and_replaced(tmp_path):
    assert _data_cli(tmp_path / "missing").exit_code == 0
    (tmp_path / "empty").mkdir()
    assert _data_cli(tmp_path / "empty").exit_code == 0
    own = tmp_path / "missing"
    marker = json.loads((own / MARKER_NAME).read_text())
    assert marker == {"written_by": "alignrank data stage", "marker_version": 1}
    r = _data_cli(own, **{"data.seed": 5})  # new params: our own folder is replaced
    assert r.exit_code == 0 and not json.loads(r.stdout)["cached"]


def test_a_marker_with_foreign_fields_does_not_count(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    (root / MARKER_NAME).write_text(json.dumps({"written_by": "someone else"}))
    (root / "notes.txt").write_text("x")
    assert _data_cli(root).exit_code == 1 and (root / "notes.txt").read_text() == "x"


def test_a_dataset_of_the_stage_before_the_marker_is_still_replaced(tmp_path):
    root = tmp_path / "d"
    p = load_params(REPO / "params.yaml", {**TINY, "data.root": str(root)})
    run_data(p)
    (root / MARKER_NAME).unlink()  # as an earlier version wrote it: only the layout, our manifest
    (root / "files.json").unlink()
    assert not run_data(load_params(REPO / "params.yaml", {**TINY, "data.root": str(root), "data.seed": 2}))["cached"]
    assert (root / MARKER_NAME).is_file()
