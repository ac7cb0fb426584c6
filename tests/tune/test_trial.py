"""Trial internals without Ray: checkpoint restore into the run folder, seed means, the event log."""

from __future__ import annotations

import json
import math

import torch

from alignrank.config import with_overrides
from alignrank.runs.rundir import checkpoint_epoch
from alignrank.tune.search import search_params
from alignrank.tune.trial import TrialContext, TrialRuns, _mean, log_event, read_events


def _runs(tiny_params, tmp_path, **over):
    p = search_params(with_overrides(tiny_params, {"tune.epochs": 3, **over}))
    ctx = TrialContext(params=p, factory=None, parent_run_id=None, exp_dir=str(tmp_path / "exp"))
    return TrialRuns(ctx, "t1", {"loss.margin": 0.2, "epoch": 1})


def _checkpoint(d, epochs: dict, meta: dict):
    from ray.tune import Checkpoint

    d.mkdir(exist_ok=True)
    for seed, e in epochs.items():
        torch.save({"epoch": e}, d / f"seed{seed}.pt")
    (d / "meta.json").write_text(json.dumps(meta))
    return Checkpoint.from_directory(str(d))


def test_restore_copies_newer_last_pt_only(tiny_params, tmp_path):
    runs = _runs(tiny_params, tmp_path, **{"tune.seeds": [0, 1]})
    assert runs.sampled == {"loss.margin": 0.2} and runs.params[1].train.seed == 1
    assert runs.params[0].loss.margin == 0.2 and runs.dirs[0] != runs.dirs[1]
    assert runs.restore(None) is None
    meta = runs.restore(_checkpoint(tmp_path / "ck1", {0: 1, 1: 1}, {"epoch": 2, "mlflow_run_id": "abc"}))
    assert meta["epoch"] == 2 and runs.run_id == "abc"
    last = {s: runs.dirs[s] / "weights" / "last.pt" for s in (0, 1)}
    assert checkpoint_epoch(last[0]) == 1 and checkpoint_epoch(last[1]) == 1  # missing: copied
    torch.save({"epoch": 2}, last[1])  # the run folder got further than the checkpoint
    (runs.dirs[0] / "done.json").write_text("{}")  # seed 0 finished
    runs.restore(_checkpoint(tmp_path / "ck2", {0: 2, 1: 1}, {"epoch": 1}))
    assert checkpoint_epoch(last[0]) == 1  # a finished run is left alone
    assert checkpoint_epoch(last[1]) == 2  # never rolled back
    assert runs.run_id == "abc"


def test_seed_mean_and_event_log(tmp_path):
    m = _mean([{"a": 1.0, "b": 2, "s": "x"}, {"a": 3.0, "b": float("nan")}, {"a": 5.0, "b": 1.0, "c": 1.0}])
    assert m["a"] == 3.0 and math.isnan(m["b"]) and set(m) == {"a", "b"}
    log_event(tmp_path, trial_id="t", event="start")
    log_event(tmp_path, trial_id="t", event="end")
    assert [e["event"] for e in read_events(tmp_path)] == ["start", "end"] and read_events(tmp_path / "none") == []
