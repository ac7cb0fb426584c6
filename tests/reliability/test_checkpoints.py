"""A planted checkpoint is never unpickled: every checkpoint a run writes is recorded by sha256 in its
``checkpoints.json``, and resume, exact resume and evaluation refuse any other file with one line.

The planted files carry a pickle that creates a marker file when unpickled: the marker must never appear.
"""

from __future__ import annotations

import json
import pathlib
import re

import pytest
import torch
from typer.testing import CliRunner

from alignrank.config import load_params
from alignrank.engine import checkpoints
from alignrank.errors import CheckpointRefused
from alignrank.io import sha256_file
from alignrank.runs import run as run_mod
from alignrank.runs.rundir import RunDir, checkpoint_epoch
from tests.conftest import REPO, set_args, tiny_overrides

pytestmark = pytest.mark.reliability

REFUSED = re.compile(r"refusing to load (?P<path>\S+): .*\(expected sha256 (?P<expected>[0-9a-f]{64}|none recorded), "
                     r"found (?P<found>[0-9a-f]{64})\); .*remove it")


class _Planted:
    """Unpickling this runs code: it creates ``marker``."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _plant(path: pathlib.Path, marker: pathlib.Path, epoch: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epoch, "model": _Planted(marker), "train_args": {}}, path)
    assert not marker.exists()


def test_planted_last_pt_in_a_fresh_run_folder_is_refused_by_train(tiny_params, tmp_path):
    from alignrank.cli import app

    marker = tmp_path / "PWNED"
    rd = RunDir(run_mod.run_dir(tiny_params, run_mod.run_key(tiny_params)))
    _plant(rd.last, marker)  # the run's predictable path, in a shared train.out_dir
    r = CliRunner().invoke(app, ["train", "--params", str(REPO / "params.yaml"),
                                 *set_args(tiny_overrides(tiny_params.data.root, tmp_path))])
    assert r.exit_code == 1, r.output
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    m = REFUSED.search(line)
    assert m and m["path"] == str(rd.last) and m["expected"] == "none recorded", line
    assert m["found"] == sha256_file(rd.last) and "Traceback" not in r.output
    assert not marker.exists()  # never unpickled
    assert rd.last.is_file() and not rd.run_json.exists()  # nothing deleted, nothing started


def test_replaced_last_pt_of_a_recorded_run_is_refused_naming_both_hashes(tmp_path):
    marker = tmp_path / "PWNED"
    rd = RunDir(tmp_path / "runs" / "full-s0-abc")
    rd.last.parent.mkdir(parents=True)
    torch.save({"epoch": 0, "model": None}, rd.last)
    ours = checkpoints.record_file(rd.last, epoch=0)["sha256"]
    assert rd.state(epochs=3) == "resume"
    _plant(rd.last, marker)
    with pytest.raises(CheckpointRefused) as e:
        rd.state(epochs=3)
    m = REFUSED.search(str(e.value))
    assert m and m["expected"] == ours and m["found"] == sha256_file(rd.last) != ours
    assert "\n" not in str(e.value) and not marker.exists()


def test_planted_exact_resume_file_is_refused_and_loaded_weights_only(tmp_path):
    from alignrank.engine.trainer import _restore_rng_state

    marker = tmp_path / "PWNED"
    wdir = tmp_path / "run" / "weights"
    _plant(wdir / "last_exact.pt", marker)
    checkpoints.record(wdir.parent, {"last.pt": {"sha256": "0" * 64, "epoch": 0}})

    class Trainer:
        start_epoch = 1

    t = Trainer()
    t.wdir = wdir
    with pytest.raises(CheckpointRefused, match="last_exact.pt"):
        _restore_rng_state(t)
    checkpoints.record_file(wdir / "last_exact.pt", epoch=0)  # even a recorded one is loaded weights-only
    with pytest.raises(Exception, match="(?i)weights.only|unsupported global"):
        _restore_rng_state(t)
    assert not marker.exists()


def test_planted_best_pt_is_refused_by_the_evaluation(tiny_params, tmp_path):
    from alignrank.eval import runs as eval_runs
    from alignrank.eval.predict import load_model

    marker = tmp_path / "PWNED"
    rd = tmp_path / "runs" / "baseline-s0-x"
    _plant(rd / "weights" / "best.pt", marker, epoch=-1)
    run = {"variant": "baseline", "seed": 0, "run_dir": str(rd), "weights": str(rd / "weights" / "best.pt")}
    gt = {"images": [], "annotations": [], "categories": []}
    res = eval_runs.evaluate_run(run, tiny_params, gt, "x", pathlib.Path(tiny_params.data.root))
    assert res["status"] == "refused" and REFUSED.search(res["error"]), res  # no record: refused
    checkpoints.record(rd, {"best.pt": {"sha256": "0" * 64, "epoch": -1}})  # a record that lists another file
    res = eval_runs.evaluate_run(run, tiny_params, gt, "x", pathlib.Path(tiny_params.data.root))
    assert res["status"] == "refused" and REFUSED.search(res["error"])["expected"] == "0" * 64
    with pytest.raises(CheckpointRefused):
        load_model(rd / "weights" / "best.pt")  # the loader itself, too
    assert not marker.exists()


def test_the_trainer_refuses_a_resume_file_beside_a_record_it_does_not_match(tiny_params, tmp_path):
    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides

    marker = tmp_path / "PWNED"
    last = tmp_path / "run" / "weights" / "last.pt"
    _plant(last, marker)
    checkpoints.record(last.parent.parent, {"last.pt": {"sha256": "0" * 64, "epoch": 0}})
    data = pathlib.Path(tiny_params.data.root) / "dataset.yaml"
    with pytest.raises(CheckpointRefused):
        AlignRankTrainer(tiny_params, ultralytics_overrides(tiny_params, data=data, save_dir=last.parent.parent,
                                                            resume=last))
    assert not marker.exists()


def test_reading_a_checkpoints_epoch_runs_none_of_its_code(tmp_path):
    marker = tmp_path / "PWNED"
    _plant(tmp_path / "x.pt", marker, epoch=4)
    assert checkpoint_epoch(tmp_path / "x.pt") == 4 and not marker.exists()
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert checkpoint_epoch(tmp_path / "bad.pt") is None


@pytest.mark.long  # (~30 s: real training; the fast resume tests in tests/runs and tests/engine load recorded files too)
def test_training_records_every_checkpoint_and_a_restored_copy_of_one_resumes(tiny_data, tmp_path):
    """One epoch of 2 (stopped after the first): last/best/exact are recorded when saved, last/best again when
    stripped; the pre-strip ``last.pt`` (a copy, as Ray Tune restores one) is accepted and resumes."""
    from tests.conftest import train_first_epoch_only

    p = load_params(REPO / "params.yaml", {**tiny_overrides(tiny_data, tmp_path), "train.epochs": 2,
                                           "train.variant": "baseline"})
    run, keep = tmp_path / "run", tmp_path / "unfinished.pt"
    train_first_epoch_only(p, tiny_data / "dataset.yaml", run, keep)
    rec = json.loads((run / checkpoints.RECORD_NAME).read_text())
    assert set(rec["files"]) == {"last.pt", "best.pt", "last_exact.pt"}
    for name in ("last.pt", "best.pt", "last_exact.pt"):
        assert rec["files"][name]["sha256"] == sha256_file(run / "weights" / name)
        checkpoints.verify(run / "weights" / name)
    assert rec["files"]["last.pt"]["epoch"] == -1  # stripped at the end, recorded again
    assert sha256_file(keep) in rec["known"]  # the saved (pre-strip) one is known too
    (run / "weights" / "last.pt").write_bytes(keep.read_bytes())
    assert RunDir(run).state(epochs=2) == "resume"
    assert not list((run / "weights").glob("*.tmp"))
