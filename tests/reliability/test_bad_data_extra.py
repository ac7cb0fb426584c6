"""Drill 5 (extra): bad files in a dataset given to training (files the data stage's record covers, but
ultralytics rejects; a dataset merely hand-edited after the data stage is refused before training).

A zero-byte image and YOLO label files with NaN / out-of-range values are dropped by ultralytics' own label
check; training must name them and count them (warning + ``data_report.json``), go on with the remaining
images, and leave the dataset files untouched. (Truncated / bad-CRC zips: ``tests/data/test_archive.py``.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest

from alignrank.config import with_overrides
from alignrank.data.check import record_files
from alignrank.engine.data_report import parse_msgs

pytestmark = pytest.mark.reliability

BAD_LABELS = {"nan": "0 nan 0.5 0.2 0.2\n", "out_of_range": "0 0.5 0.5 1.7 0.3\n"}


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in (".jpg", ".txt")}


def test_zero_byte_image_and_nan_or_out_of_range_labels_are_named_counted_and_skipped(
        tiny_data, tiny_params, tmp_path, caplog):
    from alignrank.io import read_json
    from alignrank.runs import run as run_mod
    from alignrank.runs.rundir import RunDir
    from alignrank.tracking.base import NullTracker

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns("*.cache"))
    ds = data / "dataset.yaml"
    ds.write_text(ds.read_text().replace(str(tiny_data.resolve()), str(data.resolve())))
    images = sorted((data / "images" / "train").glob("*.jpg"))
    labelled = [p for p in images if (data / "labels" / "train" / f"{p.stem}.txt").is_file()]
    zero, nan, oor = labelled[0], labelled[1], labelled[2]
    zero.write_bytes(b"")
    (data / "labels" / "train" / f"{nan.stem}.txt").write_text(BAD_LABELS["nan"])
    (data / "labels" / "train" / f"{oor.stem}.txt").write_text(BAD_LABELS["out_of_range"])
    before = _hashes(data)
    # as if the data stage had written these files: a dataset merely edited by hand is refused before training
    # (tests/reliability/test_hand_edits.py), so its record is made over the edited files here
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["fingerprint"] = record_files(data)
    (data / "manifest.json").write_text(json.dumps(manifest))

    params = with_overrides(tiny_params, {"data.root": str(data)})
    key = run_mod.run_key(params)
    rd = RunDir(run_mod.run_dir(params, key))
    with caplog.at_level(logging.WARNING, logger="alignrank.data"):
        final = run_mod.train(params, NullTracker(), key=key)

    assert rd.done() is not None and set(final) >= {"map50_95", "map50"}  # training went on and finished
    report = read_json(rd.path / "data_report.json")
    assert report is not None and "val" not in report, report  # only the broken train split is reported
    train = report["train"]
    assert train["count"] == 3 and train["total"] == len(images), train
    assert set(train["files"]) == {zero.name, nan.name, oor.name}
    # ultralytics' reasons: NaN fails its "<= 1.01" check too; a zero-byte image fails PIL, then its HEIF
    # fallback (here: "No module named 'pi_heif'"), so only the name, not the reason, is ours to check
    assert all("out of bounds" in train["files"][p.name] for p in (nan, oor)) and train["files"][zero.name]
    lines = [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()]
    assert len(lines) == 1 and "skipped 3 of" in lines[0] and all(p.name in lines[0] for p in (zero, nan, oor))
    assert _hashes(data) == before  # the dataset's images and labels are untouched


def test_clean_dataset_reports_nothing():
    assert parse_msgs(["train: /d/a.jpg: 1 duplicate labels removed", "WARNING other"], "train") == {}
    msgs = ["\x1b[34m\x1b[1mval: \x1b[0m/d/images/val/b c.jpg: ignoring corrupt image/label: image size (1, 1) <10 pixels"]
    assert parse_msgs(msgs, "val") == {"b c.jpg": "image size (1, 1) <10 pixels"}
    assert json.dumps(parse_msgs(msgs, "val"))
