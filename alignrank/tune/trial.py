"""One Ray Tune trial: real training runs through :func:`alignrank.runs.run.train`, reported every epoch.

A trial trains the sampled configuration once per seed of ``tune.seeds``:

* one seed (the default): in the trial's process; its MLflow run (nested under the search's) IS the
  training run (params with the sampled values as dotted keys, per-epoch and final metrics);
* several seeds: one child process per seed (:mod:`alignrank.tune.seeds`), all at once (the trial
  reserves ``ray.cpus_per_run`` x seeds CPUs), each a full training run tracked as an MLflow run nested
  under the trial's run. The trial reports to Tune, at each epoch, the MEAN over the seeds (so ASHA
  compares configurations, not lucky seeds) and logs those means to its own run. Children are
  seed-exact (own process, own RNG), unlike seeds interleaved in one process.

Every epoch the trial reports ``epoch``, the metrics (``map50_95``, losses ...), the live criterion's
hyper-parameters (``hp/loss.margin`` ..., read from the loss object by the epoch hook, not from
params) and a Tune checkpoint holding each seed's ``last.pt``. The last epoch is reported only once
``train`` has returned (with ``final/*`` metrics), since Tune stops a trial that reaches ``max_t``. A
trial restarted by Tune (failure retry, ``--resume``) copies the checkpoint back into its run folders
and ``train`` resumes from there through our trainer. Trial starts are appended to
``<experiment>/trial_events.jsonl`` (``start`` / ``restore`` / ``end``; the driver adds the outcomes).

The search runs ``tune.with_parameters(trainable, ctx=TrialContext(params, factory, parent_run_id, exp_dir))``.

Examples:
    >>> import tempfile
    >>> exp = tempfile.mkdtemp()
    >>> log_event(exp, event="start", trial="t1"); log_event(exp, event="end", trial="t1")
    >>> [(e["event"], e["trial"]) for e in read_events(exp)]
    [('start', 't1'), ('end', 't1')]
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from alignrank.config import flatten, params_dict
from alignrank.config.schema import Params
from alignrank.errors import UsageError
from alignrank.io import atomic_write_json, read_json
from alignrank.runs.rundir import checkpoint_epoch
from alignrank.tracking.names import numeric
from alignrank.tune.space import sampled_overrides, trial_params

EVENTS = "trial_events.jsonl"
POLL_S = 0.5


@dataclass(frozen=True)
class TrialContext:
    """What every trial needs from the driver (picklable; shipped once via ``tune.with_parameters``).

    Attributes:
        params: The search's params (paths absolute).
        factory: :class:`alignrank.tracking.session.TrackerFactory` of the search.
        parent_run_id: MLflow run of the search.
        exp_dir: Absolute experiment folder (on shared storage for a cluster).
    """

    params: Params
    factory: Any
    parent_run_id: Optional[str]
    exp_dir: str


def log_event(exp_dir: str | Path, **fields: Any) -> None:
    """Append one JSON line to the experiment's event log (O_APPEND: safe across processes)."""
    line = json.dumps({"time": time.time(), "host": socket.gethostname(), "pid": os.getpid(), **fields}) + "\n"
    fd = os.open(Path(exp_dir) / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_events(exp_dir: str | Path) -> list[dict]:
    """All events of an experiment (empty when none)."""
    path = Path(exp_dir) / EVENTS
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def _run_dir(params: Params) -> Path:
    from alignrank.runs.key import run_dir, run_key

    return run_dir(params, run_key(params))


class TrialRuns:
    """The training runs of one trial (one per seed), their checkpoints and the Tune reports.

    Args:
        ctx: The search's :class:`TrialContext`.
        trial_id: Tune trial id.
        config: The sampled Tune config (dotted keys).
    """

    def __init__(self, ctx: TrialContext, trial_id: str, config: Mapping[str, Any]) -> None:
        self.ctx, self.trial_id = ctx, trial_id
        self.sampled = sampled_overrides(ctx.params, config)
        self.root = Path(ctx.exp_dir) / "runs" / trial_id
        self.seeds = list(ctx.params.tune.seeds)
        self.params = {s: trial_params(ctx.params, self.sampled, seed=s, out_dir=self.root) for s in self.seeds}
        self.dirs = {s: _run_dir(p) for s, p in self.params.items()}
        self.meta_path = self.root / "trial.json"
        self.reported = 0
        self.pending: Optional[tuple[int, dict]] = None  # the last epoch, reported once training is final
        self.run_id: Optional[str] = (read_json(self.meta_path) or {}).get("mlflow_run_id")

    # -- checkpoints ------------------------------------------------------------------------------
    def restore(self, checkpoint) -> Optional[dict]:
        """Put each seed's ``last.pt`` from a Tune checkpoint back into its run folder (when newer)."""
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as d:
            meta = read_json(Path(d) / "meta.json") or {}
            for s in self.seeds:
                src = Path(d) / f"seed{s}.pt"
                dst = self.dirs[s] / "weights" / "last.pt"
                if not src.is_file() or (self.dirs[s] / "done.json").is_file():
                    continue
                have = checkpoint_epoch(dst) if dst.is_file() else None
                got = checkpoint_epoch(src)
                if got is not None and (have is None or have < got):
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    tmp = dst.with_name(".last.pt.restore")
                    shutil.copyfile(src, tmp)
                    os.replace(tmp, dst)
        self.run_id = self.run_id or meta.get("mlflow_run_id")
        return meta

    def report(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        """The per-epoch ``report`` of ``train``: every epoch but the last goes to Tune now.

        The last epoch is held back until ``train`` has finished (final validation, ``done.json``,
        final metrics): a scheduler stops a trial when it reports ``max_t``, which would cut that short.
        """
        if epoch >= self.ctx.params.tune.epochs:
            self.pending = (int(epoch), dict(metrics))
            return
        self._tune_report(epoch, metrics)

    def _tune_report(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        """``ray.tune.report`` of one epoch with a checkpoint of every seed's ``last.pt``."""
        from ray import tune

        metric = self.ctx.params.tune.metric
        if metric not in metrics:
            raise UsageError(f"tune.metric '{metric}' is not a reported metric; use one of: "
                             f"{', '.join(sorted(k for k in metrics if not k.startswith('hp/')))}")
        result = {**numeric(metrics), "epoch": int(epoch), "trial_mlflow_run_id": self.run_id or ""}
        with tempfile.TemporaryDirectory(prefix="ar-tune-ckpt-") as d:
            for s in self.seeds:
                last = self.dirs[s] / "weights" / "last.pt"
                if last.is_file():
                    shutil.copyfile(last, Path(d) / f"seed{s}.pt")
            atomic_write_json(Path(d) / "meta.json", {"epoch": int(epoch), "mlflow_run_id": self.run_id,
                                                      "trial_id": self.trial_id, "sampled": self.sampled})
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(d))
        self.reported += 1

    # -- tracking ---------------------------------------------------------------------------------
    def open_tracker(self):
        """The trial's MLflow run (reopened on a retry/restore), nested under the search's run."""
        tags = {"tune_search": Path(self.ctx.exp_dir).name, "tune_trial": self.trial_id, "kind": "tune-trial",
                **{f"sampled.{k}": v for k, v in self.sampled.items()}}
        t = self.ctx.factory.open(run_name=f"tune-{self.trial_id}", parent_run_id=self.ctx.parent_run_id,
                                  run_id=self.run_id, tags=tags)
        self.run_id = t.run_id
        atomic_write_json(self.meta_path, {"trial_id": self.trial_id, "mlflow_run_id": t.run_id,
                                           "sampled": self.sampled, "seeds": self.seeds,
                                           "runs": {str(s): str(d) for s, d in self.dirs.items()}})
        return t

    # -- training ---------------------------------------------------------------------------------
    def train_single(self, tracker) -> dict:
        """One seed, in this process: the trial's run is the training run."""
        from alignrank.runs.run import train

        (seed,) = self.seeds
        return train(self.params[seed], tracker, report=self.report)

    def train_seeds(self, tracker) -> dict:
        """Several seeds as child processes; report the per-epoch mean once every seed has the epoch."""
        flat = flatten(params_dict(self.params[self.seeds[0]]))
        flat.pop("train.seed")  # the trial's run stands for every seed (tune.seeds); each seed has its own run
        tracker.log_params(flat)
        from alignrank.tune.seeds import SeedChild

        children = {s: SeedChild(self, s) for s in self.seeds}
        epochs: dict[int, dict[int, dict]] = {}
        try:
            for c in children.values():
                c.start()
            while True:
                for s, c in children.items():
                    for epoch, m in c.poll():
                        epochs.setdefault(epoch, {})[s] = m
                for epoch in sorted(e for e, by in epochs.items() if len(by) == len(self.seeds)):
                    mean = _mean(list(epochs.pop(epoch).values()))
                    tracker.log_metrics({k: v for k, v in mean.items() if "/" in k}, step=epoch)
                    self.report(epoch, mean)
                if all(c.finished for c in children.values()):
                    break
                time.sleep(POLL_S)
        finally:
            for c in children.values():
                c.stop()
        finals = [c.final for c in children.values()]
        final = _mean(finals)
        tracker.log_metrics({f"final/{k}": v for k, v in final.items()}, step=self.ctx.params.tune.epochs)
        return {**final, "seed_runs": {str(s): c.final for s, c in children.items()}}

    def finish(self, final: Mapping[str, Any]) -> None:
        """Report the held-back last epoch plus the final metrics (``final/<name>``)."""
        final = {k: v for k, v in final.items() if k != "seed_runs"}
        if self.pending is not None:
            epoch, metrics = self.pending
        else:  # some run was trained before (done.json): the last epoch's metrics from the runs' status.json
            epoch = self.ctx.params.tune.epochs
            last = [(read_json(d / "status.json") or {}).get("metrics", {}) for d in self.dirs.values()]
            metrics = {**final, **_mean(last)}
        self._tune_report(epoch, {**metrics, **{f"final/{k}": v for k, v in numeric(final).items()}})


def _mean(rows: list[Mapping[str, Any]]) -> dict[str, float]:
    """Mean of the numeric keys present in every row (NaN-aware: NaN if any is NaN)."""
    rows = [numeric(r) for r in rows]
    keys = set.intersection(*(set(r) for r in rows)) if rows else set()
    return {k: math.fsum(r[k] for r in rows) / len(rows) for k in sorted(keys)}


def trainable(config: dict, ctx: TrialContext) -> None:
    """The Ray Tune function trainable (see the module docstring)."""
    import ray
    from ray import tune

    from alignrank.env import setup_offline


    setup_offline()  # offline env in the trial's worker

    trial_id = tune.get_context().get_trial_id()
    runs = TrialRuns(ctx, trial_id, config)
    checkpoint = tune.get_checkpoint()
    meta = runs.restore(checkpoint)
    log_event(ctx.exp_dir, trial_id=trial_id, event="restore" if checkpoint is not None else "start",
              epoch=(meta or {}).get("epoch", 0), sampled=runs.sampled, node_id=ray.get_runtime_context().get_node_id())
    tracker = runs.open_tracker()
    try:
        final = runs.train_single(tracker) if len(runs.seeds) == 1 else runs.train_seeds(tracker)
    except SystemExit:
        raise  # Tune stopped the trial (ASHA) inside report(): the driver closes its MLflow run
    except BaseException:
        with contextlib.suppress(Exception):
            tracker.end("FAILED")
        raise
    tracker.set_tags({"tune_outcome": "completed"})
    tracker.end("FINISHED")
    log_event(ctx.exp_dir, trial_id=trial_id, event="end")
    runs.finish(final)  # last: Tune stops the trial (SystemExit) once it has the final epoch
