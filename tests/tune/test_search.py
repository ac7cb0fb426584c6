"""End-to-end tiny searches on CPU (variant ``full_replace``: CSD head + RCQ loss as eq. 8, 16 images at 128 px, 2 epochs).

The tiny runs' mAP is 0 for every trial after 2 epochs (a tie ASHA cannot split), so the searches here
optimise a metric that does depend on the sampled settings: ``train/cal_loss`` (mode min).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alignrank.config import load_params, with_overrides
from alignrank.tune.trial import read_events
from tests.conftest import REPO, set_args, tiny_overrides

SEARCH = {
    "tune.variant": "full_replace", "tune.num_samples": 4, "tune.epochs": 2, "tune.max_concurrent": 2,
    "tune.metric": "train/cal_loss", "tune.mode": "min", "ray.num_cpus": 2, "ray.cpus_per_run": 1.0,
}


def _mlflow_runs(root: Path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{root / 'outputs' / 'mlflow' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("alignrank")
    return client, client.search_runs([exp.experiment_id])


def _trial_results(exp_dir: Path) -> dict[str, list[dict]]:
    """Every result Tune recorded per trial (its result.json lines)."""
    out = {}
    for f in exp_dir.glob("*/result.json"):
        out[f.parent.name] = [json.loads(ln) for ln in f.read_text().splitlines() if ln.strip()]
    return out


def test_search_asha_mlflow_best(tiny_params, tmp_path, monkeypatch):
    from alignrank.tune.search import run_tune

    p = with_overrides(tiny_params, {**SEARCH, "tune.scheduler": "asha", "tune.grace_period": 1,
                                     "tune.reduction_factor": 100.0, "tune.max_failures": 1})
    monkeypatch.setenv("ALIGNRANK_FAULT", "kill:full_replace-s0:1")  # every run's worker dies once, after epoch 1
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the embedded store under tmp_path
    s = run_tune(p)
    exp_dir = Path(s["experiment_dir"])

    # 4 trials; ASHA (rung at epoch 1, keep only the best 1%) stopped at least one after its first epoch
    assert s["trials"] == 4 and not s["failed"]
    assert len(s["stopped_early"]) >= 1 and len(s["completed"]) >= 1
    results = _trial_results(exp_dir)
    assert len(results) == 4
    for tid in s["stopped_early"]:
        assert [r["epoch"] for r in results[tid]] == [1]
    for tid in s["completed"]:
        assert [r["epoch"] for r in results[tid]] == [1, 2] and "final/map50_95" in results[tid][-1]
    # ... and the crashed trials were retried (tune.max_failures) from their epoch-1 checkpoint
    events = read_events(exp_dir)
    for tid in s["completed"]:
        assert [(e["event"], e["epoch"]) for e in events if e["trial_id"] == tid and "epoch" in e and
                e["event"] in ("start", "restore")] == [("start", 0), ("restore", 1)]
        states = [json.loads(f.read_text())["start_state"] for f in (exp_dir / "runs" / tid).glob("*/run.json")]
        assert states == ["resume"]

    # every sampled value reached the LIVE criterion (hp/* is read from the loss object each epoch)
    space = list(p.tune.space)
    sampled = {}
    for tid, rs in results.items():
        config = rs[0]["config"]
        sampled[tid] = config
        assert set(config) == set(space)
        for r in rs:
            for k in space:
                assert r[f"hp/{k}"] == pytest.approx(config[k], rel=1e-12), (tid, k)
    assert len({c["loss.margin"] for c in sampled.values()}) == 4  # distinct configurations
    assert len({rs[0]["train/cal_loss"] for rs in results.values()}) == 4  # ... that trained differently

    # MLflow: one parent, all 4 trials nested, sampled values as dotted params, per-epoch metrics, status
    client, runs = _mlflow_runs(tmp_path)
    parent = [r for r in runs if r.data.tags.get("kind") == "tune"]
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"
    pid = parent[0].info.run_id
    assert pid == s["parent_run_id"]
    assert float(parent[0].data.metrics["best/train/cal_loss"]) == pytest.approx(s["best"]["score"])
    trials = {r.data.tags["tune_trial"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == pid}
    assert set(trials) == set(results)
    for tid, run in trials.items():
        for k in space:
            assert float(run.data.params[k]) == pytest.approx(sampled[tid][k], rel=1e-12)
        assert run.data.params["train.variant"] == "full_replace" and run.data.params["train.epochs"] == "2"
        hist = client.get_metric_history(run.info.run_id, "train/cal_loss")
        assert sorted(m.step for m in hist) == [r["epoch"] for r in results[tid]]
        want = ("FINISHED", "completed") if tid in s["completed"] else ("KILLED", "stopped_early")
        assert (run.info.status, run.data.tags.get("tune_outcome")) == want
    artifacts = {a.path for a in client.list_artifacts(pid, "tune")}
    assert {"tune/best.yaml", "tune/trials.md", "tune/trials.csv", "tune/metric_vs_params.png"} <= artifacts

    # outputs: best.yaml is a params fragment that validates; the best is the best completed trial
    best = Path(s["files"]["best"])
    assert best == tmp_path / "results" / "tune" / "best.yaml"
    q = load_params(REPO / "params.yaml", tiny_overrides(p.data.root, tmp_path), set_files=[best])
    for k in space:
        section, name = k.split(".")
        assert getattr(getattr(q, section), name) == pytest.approx(s["best"]["config"][k])
    scores = {tid: results[tid][-1]["train/cal_loss"] for tid in s["completed"]}
    assert s["best"]["trial_id"] == min(scores, key=scores.get)
    for f in ("md", "csv", "plot", "summary"):
        assert Path(s["files"][f]).is_file()

    # a second call with the same params reuses the finished search (no Ray, no training)
    again = run_tune(p)
    assert again["cached"] and again["best"] == s["best"]


def _finished(exp_dir: Path) -> set[str]:
    return {e["trial_id"] for e in read_events(exp_dir) if e.get("side") == "driver"}


def _midway(exp_dir: Path, later: bool = False) -> set[str]:
    """Trials whose epoch-1 result (with its checkpoint) Tune has recorded and that are still training
    (``later``: only those started after the first trial finished)."""
    events = read_events(exp_dir)
    ended = {e["trial_id"] for e in events if e["event"] == "end"}
    if later:
        first = min((e["time"] for e in events if e.get("side") == "driver"), default=float("inf"))
        ended |= {e["trial_id"] for e in events if e["event"] == "start" and e["time"] < first}
    out = set()
    for f in exp_dir.glob("*/result.json"):
        if any(json.loads(ln).get("epoch") == 1 for ln in f.read_text().splitlines() if ln.strip()):
            out.add(f.parent.name)
    return out - ended


def _ran(exp_dir: Path) -> set[str]:
    """Trials with a recorded result (epoch >= 1)."""
    return {f.parent.name for f in exp_dir.glob("*/result.json") if f.read_text().strip()}


def _done_json(exp_dir: Path, trial_id: str) -> str | None:
    found = list((exp_dir / "runs" / trial_id).glob("*/done.json"))
    return found[0].read_text() if found else None


CHILD = """
import json, sys
import alignrank
from alignrank.config import load_params
from alignrank.tune.search import run_tune
p = load_params(sys.argv[1], json.loads(open(sys.argv[2]).read()))
run_tune(p)
"""


@pytest.mark.long  # a full Ray Tune search (110 s / 45 s on 2 cores): make test-long
def test_interrupt_and_resume(tiny_params, tmp_path, monkeypatch):
    from alignrank.tune.search import run_tune, search_status

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    overrides = {**tiny_overrides(tiny_params.data.root, tmp_path), **SEARCH, "tune.scheduler": "none"}
    p = load_params(REPO / "params.yaml", overrides)
    (tmp_path / "ov.json").write_text(json.dumps(overrides))
    (tmp_path / "child.py").write_text(CHILD)
    log = open(tmp_path / "child.log", "wb")
    env = {**os.environ, "ALIGNRANK_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "child.py", str(REPO / "params.yaml"), "ov.json"], cwd=tmp_path, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    exp_dirs = []
    try:
        deadline = time.time() + 400
        while time.time() < deadline and proc.poll() is None:  # until 1 trial finished and a later one
            exp_dirs = list((tmp_path / "outputs" / "tune").glob("full_replace-*"))  # is into its 2nd epoch
            if exp_dirs and _finished(exp_dirs[0]) and _midway(exp_dirs[0], later=True):
                break
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "child.log").read_text()[-3000:]
        proc.send_signal(signal.SIGINT)  # Ctrl-C: Tune stops the running trials and saves the search
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert proc.returncode == 1, (tmp_path / "child.log").read_text()[-3000:]
    assert "continue it with `alignrank tune --resume`" in (tmp_path / "child.log").read_text()
    assert search_status(p) == "interrupted"
    before = read_events(exp_dirs[0])
    finished = _finished(exp_dirs[0])
    midway = {t: _done_json(exp_dirs[0], t) for t in _midway(exp_dirs[0]) | (_ran(exp_dirs[0]) - finished)}
    assert finished and len(finished) < 4 and midway  # some trials were cut off after their first checkpoint

    s = run_tune(p, resume=True)
    after = read_events(exp_dirs[0])[len(before):]
    assert s["trials"] == 4 and len(s["completed"]) == 4 and not s["failed"]
    assert not [e for e in after if e["trial_id"] in finished]  # finished trials are not re-run
    starts = {}
    for e in read_events(exp_dirs[0]):
        if e["event"] in ("start", "restore"):
            starts.setdefault(e["trial_id"], []).append(e["event"])
    assert set(starts) == {*s["completed"]}
    for tid in finished:
        assert starts[tid] == ["start"]  # trained once
    for evs in starts.values():  # a cut-off trial restarts once: from its checkpoint, or anew if it had none
        assert evs[0] == "start" and len(evs) <= 2
    for tid, done_before in midway.items():  # cut-off trials continue from their Tune checkpoint
        restores = [e for e in after if e["trial_id"] == tid and e["event"] == "restore"]
        assert restores and restores[0]["epoch"] == 1
        if done_before is None:  # training was cut off: resumed from last.pt through our trainer
            states = [json.loads(f.read_text())["start_state"] for f in (exp_dirs[0] / "runs" / tid).glob("*/run.json")]
            assert "resume" in states
        else:  # training had finished, Tune had not recorded it yet: reused, not re-trained
            assert _done_json(exp_dirs[0], tid) == done_before
    assert json.loads((exp_dirs[0] / "alignrank_search.json").read_text())["complete"]
    assert Path(s["experiment_dir"]) == exp_dirs[0]


@pytest.mark.long  # a full Ray Tune search (110 s / 45 s on 2 cores): make test-long
def test_seeds_are_trained_apart_and_reported_as_their_mean(tiny_params, tmp_path, monkeypatch):
    """tune.seeds=[0, 1]: one child process per seed, the trial reports the per-epoch mean."""
    from alignrank.tune.search import run_tune

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    p = with_overrides(tiny_params, {**SEARCH, "tune.num_samples": 1, "tune.epochs": 1, "tune.seeds": [0, 1],
                                     "tune.scheduler": "none", "tune.search": "random"})
    s = run_tune(p)
    exp_dir = Path(s["experiment_dir"])
    assert s["trials"] == 1 and len(s["completed"]) == 1
    (tid,) = s["completed"]
    (result,) = _trial_results(exp_dir)[tid]
    seeds = {}
    for f in (exp_dir / "runs" / tid).glob("full_replace-s*/status.json"):
        seeds[f.parent.name.split("-")[1]] = json.loads(f.read_text())["metrics"]
    assert set(seeds) == {"s0", "s1"} and seeds["s0"]["train/cal_loss"] != seeds["s1"]["train/cal_loss"]
    for k in ("train/cal_loss", "train/box_loss", "val/map50_95"):
        assert result[k] == pytest.approx((seeds["s0"][k] + seeds["s1"][k]) / 2, rel=1e-9)
    for k in p.tune.space:
        assert result[f"hp/{k}"] == pytest.approx(result["config"][k], rel=1e-12)

    client, runs = _mlflow_runs(tmp_path)
    (trial,) = [r for r in runs if r.data.tags.get("kind") == "tune-trial"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == trial.info.run_id]
    assert sorted(r.data.params["train.seed"] for r in children) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in (trial, *children))
    assert trial.data.metrics["train/cal_loss"] == pytest.approx(result["train/cal_loss"])
    assert "train.seed" not in trial.data.params
    assert trial.data.params["loss.margin"] == children[0].data.params["loss.margin"]


@pytest.mark.long
def test_search_on_a_two_node_cluster_by_address(two_node_cluster, tiny_data, tmp_path):
    """`alignrank tune` with ray.address = a running 2-node cluster: trials spread over both nodes."""
    from tests.runs.test_ray_cluster import AUTH

    sets = {**tiny_overrides(tiny_data, tmp_path), **SEARCH, "tune.num_samples": 2, "tune.epochs": 1,
            "tune.scheduler": "none", "ray.address": two_node_cluster}
    sets.pop("ray.num_cpus")
    cmd = [sys.executable, "-m", "alignrank.cli", "tune", "--params", str(REPO / "params.yaml"), *set_args(sets)]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    r = subprocess.run(cmd, env={**env, **AUTH, "ALIGNRANK_ROOT": str(tmp_path)}, cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert s["trials"] == 2 and len(s["completed"]) == 2 and Path(s["files"]["best"]).is_file()
    nodes = {e["node_id"] for e in read_events(Path(s["experiment_dir"])) if e["event"] == "start"}
    assert len(nodes) == 2  # 1 CPU per node, 2 concurrent trials: both nodes trained
