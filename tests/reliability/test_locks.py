"""Concurrent jobs: one job per run folder, the data stage alone on a dataset, a second job told who holds it.

Every lock here is held by another process (:mod:`tests.reliability.holder`), as a second ``alignrank``
command would meet it; no test trains a model (the run that checks its dataset twice fakes ``_fit``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time

import pytest
from typer.testing import CliRunner

from alignrank.config import load_params, with_overrides
from alignrank.data.build import run_data
from alignrank.data.check import side_dir
from alignrank.data.lock import LOCK_NAME as DATA_LOCK
from alignrank.errors import Busy, DataError
from alignrank.locks import hold
from alignrank.runs import run as run_mod
from alignrank.runs.rundir import RunDir
from alignrank.runs.sweep import plan
from tests.conftest import REPO, set_args, tiny_overrides
from tests.reliability.holder import held

pytestmark = pytest.mark.reliability

BUSY = re.compile(r"^error: busy: (?P<folder>\S+) is locked by pid (?P<pid>\d+) on host (?P<host>\S+) since "
                  r"(?P<since>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d); .*train\.lock_wait")
TINY_DATA = {"data.num_train": 3, "data.num_val": 2, "data.imgsz": 64}


def _cli(*args):
    from alignrank.cli import app

    return CliRunner().invoke(app, list(args))


def _busy(r, folder, pid):
    """The command failed with exactly one ``busy`` line naming ``folder`` and the holder ``pid`` on this host."""
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.output, r.stderr
    m = BUSY.match(lines[0])
    assert m, lines[0]
    assert m["folder"] == str(folder) and int(m["pid"]) == pid and m["host"] == socket.gethostname()


def _own_data(tmp_path, **extra):
    root = tmp_path / "data"
    p = load_params(REPO / "params.yaml", {**TINY_DATA, "data.root": str(root), **extra})
    run_data(p)
    return root, p


def test_second_train_of_a_run_is_busy_and_touches_nothing(tiny_params, tmp_path):
    key = run_mod.run_key(tiny_params)
    rd = RunDir(run_mod.run_dir(tiny_params, key))
    args = ["train", "--params", str(REPO / "params.yaml"),
            *set_args(tiny_overrides(tiny_params.data.root, tmp_path))]
    with held(rd.path, rd.path / run_mod.LOCK_NAME) as holder:
        t = time.time()
        r = _cli(*args)
        _busy(r, rd.path, holder.pid)
        assert time.time() - t < 30  # at once (train.lock_wait = 0), nothing trained
        assert sorted(p.name for p in rd.path.iterdir()) == [".lock", ".lock.holders"]  # no run.json/status.json
        r = _cli(*args, "--set", "train.lock_wait=0.5")
        assert r.exit_code == 1 and "(waited 0.5 s)" in r.stderr and "busy: " in r.stderr


def test_waiting_job_gets_the_lock_once_the_holder_is_done(tmp_path):
    folder = tmp_path / "run"
    with held(folder, folder / ".lock") as holder:
        with pytest.raises(Busy, match=f"pid {holder.pid} on host"):
            with hold(folder, folder / ".lock", wait=0):
                pass
        t = time.time()
        holder.stdin.close()  # the holder finishes ~now; this job waits for it
        with hold(folder, folder / ".lock", wait=30):
            waited = time.time() - t
    assert waited < 30
    assert list((folder / ".lock.holders").iterdir()) == []  # holder records are removed on release


def test_dead_holder_leaves_no_lock(tmp_path):
    folder = tmp_path / "run"
    with held(folder, folder / ".lock") as holder:
        holder.kill()  # SIGKILL: the OS drops the lock; its record stays until seen stale
        holder.wait()
        with hold(folder, folder / ".lock", wait=5):
            pass


def test_data_stage_is_busy_while_a_run_reads_the_dataset(tmp_path):
    root, params = _own_data(tmp_path)
    before = json.loads((root / "manifest.json").read_text())
    with held(root, side_dir(root) / DATA_LOCK, mode="read") as reader:
        assert run_data(params)["cached"]  # an unchanged dataset is served alongside the reader
        r = _cli("data", "--params", str(REPO / "params.yaml"),
                 *set_args({**TINY_DATA, "data.root": str(root), "data.seed": 7}))  # a rebuild: busy
        _busy(r, root, reader.pid)
    assert json.loads((root / "manifest.json").read_text()) == before  # untouched


def test_sweep_and_train_are_busy_while_the_dataset_is_rebuilt(tmp_path):
    root, _ = _own_data(tmp_path)
    over = {**tiny_overrides(root, tmp_path), **TINY_DATA, "sweep.variants": ["baseline"], "sweep.seeds": [0]}
    with held(root, side_dir(root) / DATA_LOCK, mode="write") as builder:
        _busy(_cli("sweep", "--params", str(REPO / "params.yaml"), *set_args(over)), root, builder.pid)
        p = load_params(REPO / "params.yaml", over)
        with pytest.raises(Busy, match=f"busy: {root} is locked by pid {builder.pid}"):
            run_mod.train(p, _NoTracker(), key=run_mod.run_key(p))
    assert not list(tmp_path.rglob("run.json")) and not list(tmp_path.rglob("*.pt"))  # nothing started


def test_sweep_with_a_run_another_job_is_training_is_busy_before_starting(tiny_params, tmp_path):
    p = with_overrides(tiny_params, {"sweep.variants": ["baseline"], "sweep.seeds": [0]})
    (spec,) = plan(p)
    spec.dir.mkdir(parents=True)
    with held(spec.dir, spec.dir / run_mod.LOCK_NAME) as holder:
        over = {**tiny_overrides(tiny_params.data.root, tmp_path), "sweep.variants": ["baseline"], "sweep.seeds": [0]}
        _busy(_cli("sweep", "--params", str(REPO / "params.yaml"), *set_args(over)), spec.dir, holder.pid)
    assert not (tmp_path / "runs" / "sweep.json").exists()


class _NoTracker:
    run_id = None

    def __getattr__(self, name):
        return lambda *a, **k: None


@pytest.mark.parametrize("change", ["rebuilt", "edited"])
def test_a_run_whose_dataset_changes_while_it_trains_records_nothing(tmp_path, monkeypatch, change):
    from alignrank.data import build

    root, dp = _own_data(tmp_path)
    p = load_params(REPO / "params.yaml", {**tiny_overrides(root, tmp_path), **TINY_DATA})
    key = run_mod.run_key(p)
    rd = RunDir(run_mod.run_dir(p, key))

    def fit(params, tracker, rd, **kw):  # training, during which the dataset changes without its lock
        if change == "rebuilt":  # e.g. `dvc repro data` (DVC deletes and rebuilds it) or another machine
            other = with_overrides(dp, {"data.seed": 9})
            build._build(other.data, root, build.params_hash(build.content_params(other.data)), time.time(), None)
        else:  # a label edited by hand
            label = next((root / "labels" / "train").glob("*.txt"))
            label.write_text("0 0.5 0.5 0.25 0.25\n")
        return {"map50_95": 0.5}

    monkeypatch.setattr(run_mod, "_fit", fit)
    with pytest.raises(DataError) as e:
        run_mod.train(p, _NoTracker(), key=key)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"run {key.name}: result not recorded: ")
    assert ("was rebuilt" in msg) if change == "rebuilt" else ("1 file(s) differ" in msg and "alignrank data" in msg)
    assert not rd.metrics_json.exists() and rd.done() is None  # nothing recorded under the old fingerprint


def test_checkpoint_temp_names_are_unique_and_only_dead_jobs_temps_are_swept(tmp_path):
    from alignrank.engine.trainer import _drop_stale_temps, _temp_name

    a, b = _temp_name(tmp_path / "last.pt"), _temp_name(tmp_path / "last.pt")
    assert a != b and f".last.pt.{os.getpid()}." in a.name and a.name.endswith(".tmp")
    dead = tmp_path / ".last.pt.999999999.abcd1234.tmp"  # no such pid
    for f in (a, dead):
        f.write_bytes(b"x")
    _drop_stale_temps(tmp_path)
    assert a.exists() and not dead.exists()
