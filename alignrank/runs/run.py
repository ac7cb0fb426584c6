"""THE training path: ``train(params, tracker)`` is what ``alignrank train``, every sweep run (a Ray task),
the DVC ``train`` stage and Ray Tune trials execute.

A run trains ``train.variant`` with ``train.seed`` into its keyed folder (:mod:`alignrank.runs.key`):

* ``done.json`` present -> nothing is recomputed, its final metrics are returned;
* ``metrics.json`` present (trained, tracking unfinished) -> only the final tracking is redone;
* a valid ``weights/last.pt`` -> ultralytics resume through :class:`AlignRankTrainer` (head and loss survive);
* otherwise -> partial outputs are cleared and training starts from scratch.

Everything is logged through the ``tracker`` (params, tags, per-epoch and final metrics, artifacts);
``done.json`` is written last.

One job at a time works in a run folder (``<run>/.lock``, :mod:`alignrank.locks`), and a run reads its
dataset under the dataset's shared lock (:mod:`alignrank.data.lock`): a second job is told ``busy: ...`` or
waits (``train.lock_wait``). The dataset's files are checked against the fingerprint the run is keyed by
(:mod:`alignrank.data.check`) when the run starts and again before its result is recorded: a run never
records a result under a fingerprint that does not describe the images and labels it trained on.

Examples:
    >>> from alignrank.config import load_params
    >>> run_single(load_params(None, ["train.variant=baseline"]))  # `alignrank train` before `alignrank data`
    Traceback (most recent call last):
    ...
    alignrank.errors.DataError: .../dataset.yaml: dataset not found; build it with `alignrank data` (or `dvc repro data`)
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from typing import Optional, TextIO

import yaml

from alignrank.config import flatten, params_dict
from alignrank.config.schema import Params
from alignrank.data.check import verified_fingerprint
from alignrank.data.lock import dataset_lock
from alignrank.engine import faults
from alignrank.engine.callbacks import EpochLogger, ReportFn
from alignrank.engine.guards import FiniteLossGuard
from alignrank.engine.quiet import quiet_ultralytics
from alignrank.env import machine
from alignrank.errors import DataError, write_error
from alignrank.io import atomic_write_json, atomic_write_text, read_json
from alignrank.locks import hold
from alignrank.runs.describe import describe_run
from alignrank.runs.key import RunKey, data_root, run_dir, run_key
from alignrank.runs.rundir import RunDir
from alignrank.tracking.base import Tracker
from alignrank.tracking.names import ALIASES

FINAL_KEYS = tuple(ALIASES.values())  # map50_95, map50, precision, recall, fitness
LOCK_NAME = ".lock"  # <run folder>/.lock: one job at a time per run folder


def run_tags(params: Params, key: RunKey, provenance: Optional[dict] = None) -> dict[str, str]:
    """Tags of a training run: variant, seed, run key, dataset fingerprint, device, host, machine, git, DVC stage."""
    from alignrank.variants import get_variant

    v = get_variant(params.train.variant)
    tags = {
        "variant": v.name, "seed": params.train.seed, "head": v.head, "loss": v.loss,
        "run_key": key.hash, "run_name": key.name, "dataset_fingerprint": key.payload["data"],
        "code_version": key.payload["code"], "device": params.train.device, "host": socket.gethostname(),
        "dvc_stage": os.environ.get("DVC_STAGE") or "cli",
    }
    if provenance is None:
        from alignrank.tracking.provenance import git_info

        provenance = git_info()
    tags.update(provenance)
    tags["host"] = socket.gethostname()  # where it ran, not where it was dispatched from
    tags["machine"] = machine()  # a CPU run reproduces bit for bit only on the same CPU kind
    return {k: str(x) for k, x in tags.items()}


def run_lock(rd: RunDir, *, wait: float):
    """Hold ``<run folder>/.lock``: one job at a time writes a run folder (``busy:`` line, or wait ``wait`` s)."""
    return hold(rd.path, rd.path / LOCK_NAME, wait=wait)


def check_dataset(params: Params, key: RunKey, *, done: bool = False) -> None:
    """Refuse (:class:`DataError`, one line) a dataset whose files are not those of the fingerprint ``key`` was
    planned with: edited by hand since the data stage, or rebuilt since. ``done``: checked before the result is
    recorded (a run that trained on another dataset than its key names records nothing)."""
    root = data_root(params)
    head = f"run {key.name}: result not recorded: " if done else ""
    try:
        fp = verified_fingerprint(root)
    except DataError as e:
        raise DataError(head + str(e)) from None
    if fp != key.payload["data"]:
        raise DataError(f"{head}the dataset at {root} was rebuilt (fingerprint {fp[:12]}) since run {key.name} was "
                        f"planned on fingerprint {str(key.payload['data'])[:12]}; re-run the command (it plans on "
                        f"the current dataset)")


def _fit(params: Params, tracker: Tracker, rd: RunDir, *, resume: bool, report: Optional[ReportFn],
         stream: Optional[TextIO], verbose: bool) -> dict:
    """Run ultralytics training through :class:`AlignRankTrainer`; return the final metrics."""
    import torch

    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides

    data_yaml = data_root(params) / "dataset.yaml"
    if not data_yaml.is_file():
        raise DataError(f"{data_yaml}: dataset not found; build it with `alignrank data` (or `dvc repro data`)")
    threads = torch.get_num_threads()
    torch.set_num_threads(params.train.threads)
    try:
        overrides = ultralytics_overrides(params, data=data_yaml, save_dir=rd.path, resume=rd.last if resume else None)
        overrides["save_dir"] = str(rd.path)  # also on resume, where ultralytics would reuse the checkpoint's path
        cb = EpochLogger(tracker, epochs=params.train.epochs, report=report, run_dir=rd.path,
                         status=rd.write_status, stream=stream)
        with quiet_ultralytics(verbose):
            trainer = AlignRankTrainer(params, overrides)
            tracker.set_tags({"device": str(trainer.device)})
            trainer.add_callback("on_fit_epoch_end", cb)
            trainer.add_callback("on_train_batch_end", FiniteLossGuard(run_name=rd.name, last=rd.last))
            trainer.add_callback("on_train_epoch_start", faults.nan_hook(rd.path))  # inert unless ALIGNRANK_FAULT
            trainer.train()
    except OSError as e:  # full disk / read-only folder under ultralytics' own writes: one line, not a traceback
        err = write_error(rd.path, e)
        if err is e:
            raise
        raise err from e
    finally:
        torch.set_num_threads(threads)
    src = cb.final or cb.last or {}
    final = {k: src[k] for k in FINAL_KEYS if k in src}
    final["best_epoch"] = cb.best_epoch
    return final


def train(
    params: Params,
    tracker: Tracker,
    *,
    report: Optional[ReportFn] = None,
    key: Optional[RunKey] = None,
    provenance: Optional[dict] = None,
    stream: Optional[TextIO] = None,
    verbose: bool = False,
) -> dict:
    """Train (or reuse / resume) the run of ``params`` and return its final metrics.

    Args:
        params: Resolved params; ``train.variant`` and ``train.seed`` pick the run.
        tracker: Receives params, tags, per-epoch metrics (step = epoch), final metrics and artifacts.
            The caller owns it (``tracker.end`` is not called here).
        report: Optional ``report(epoch, metrics)`` after every epoch; ``metrics`` holds the tracker's
            names plus short aliases (``map50_95``, ``map50``, ``precision``, ``recall``, ``fitness``).
        key: Precomputed run key (the sweep driver passes it so workers need not hash the code again).
        provenance: Tags computed by the dispatcher (git commit/dirty, DVC stage); None = computed here.
        stream: Where to print one progress line per epoch (None: silent).
        verbose: Keep ultralytics' own INFO log and progress bars.

    Returns:
        Final metrics (validation of ``best.pt``): ``map50_95``, ``map50``, ``precision``,
        ``recall``, ``best_epoch``.

    Raises:
        Busy: Another job holds the run folder, or rebuilds the dataset (``train.lock_wait``).
        DataError: The dataset's files are not those of the run's fingerprint (at the start, or before the
            result is recorded: then no ``metrics.json``/``done.json`` is written).
    """
    key = key or run_key(params)
    rd = RunDir(run_dir(params, key))
    if rd.done() is not None:
        return rd.done()["metrics"]
    wait = params.train.lock_wait
    with run_lock(rd, wait=wait), dataset_lock(data_root(params), write=False, wait=wait):
        return _train(params, tracker, rd, key, report=report, provenance=provenance, stream=stream, verbose=verbose)


def _train(params: Params, tracker: Tracker, rd: RunDir, key: RunKey, *, report: Optional[ReportFn],
           provenance: Optional[dict], stream: Optional[TextIO], verbose: bool) -> dict:
    """:func:`train` with the run folder and the dataset locked."""
    done = rd.done()
    if done is not None:  # finished by another job while this one waited
        return done["metrics"]
    check_dataset(params, key)
    rd.path.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    state = rd.state(params.train.epochs)
    if state == "fresh":
        rd.reset()
    attempts = int(rd.meta().get("attempts", 0)) + 1
    atomic_write_json(rd.run_json, {
        "name": key.name, "key": key.hash, "payload": key.payload, "variant": key.variant, "seed": key.seed,
        "mlflow_run_id": tracker.run_id, "attempts": attempts, "start_state": state,
    })
    faults.inject(rd.path)  # after run.json: an attempt that fails at its start still counts as one
    atomic_write_text(rd.params_yaml, yaml.safe_dump(params_dict(params), sort_keys=False))
    tracker.set_tags({**run_tags(params, key, provenance), "attempts": str(attempts), "start_state": state})
    tracker.log_params(flatten(params_dict(params)))
    describe_run(tracker, params, key)  # description (vs baseline, non-default reads) and the dataset input
    rd.write_status(state="running", epoch=0, epochs=params.train.epochs, attempt=attempts, pid=os.getpid(),
                    host=socket.gethostname(), updated=time.time())
    if state == "finalize":
        final = read_json(rd.metrics_json) or {}
    else:
        final = _fit(params, tracker, rd, resume=state == "resume", report=report, stream=stream, verbose=verbose)
    check_dataset(params, key, done=True)  # trained on the dataset its key names, or nothing is recorded
    if state != "finalize":
        atomic_write_json(rd.metrics_json, final)
    tracker.log_metrics({f"final/{k}": float(v) for k, v in final.items() if isinstance(v, (int, float))},
                        step=params.train.epochs)
    if rd.weights.is_file():
        tracker.log_artifact(rd.weights, "weights")
    tracker.log_artifact(rd.params_yaml)
    atomic_write_json(rd.done_json, {
        "name": key.name, "variant": key.variant, "seed": key.seed, "key": key.hash, "metrics": final,
        "run_dir": str(rd.path), "weights": str(rd.weights), "mlflow_run_id": tracker.run_id,
        "attempts": attempts, "wall_s": round(time.time() - t0, 2), "finished": time.time(), "machine": machine(),
    })
    rd.write_status(state="done", updated=time.time())
    return final


def summary(rd: RunDir, *, cached: bool) -> dict:
    """The per-run record used by the CLI, the sweep and :func:`alignrank.runs.sweep.list_runs`."""
    d = rd.done() or {}
    meta = rd.meta()
    return {
        "variant": d.get("variant", meta.get("variant")), "seed": d.get("seed", meta.get("seed")), "run": rd.name,
        "run_dir": str(rd.path), "weights": str(rd.weights),
        "mlflow_run_id": d.get("mlflow_run_id", meta.get("mlflow_run_id")),
        "status": "done" if d else "incomplete", "cached": cached, "metrics": d.get("metrics", {}),
    }


def _end(tracker: Tracker, status: str) -> None:
    with contextlib.suppress(Exception):  # the original error matters more than a tracking hiccup
        tracker.end(status)


def end_dead_attempt(rd: RunDir, factory) -> Optional[str]:
    """Mark KILLED the MLflow run of an attempt that died without ending it (SIGKILL, lost worker).

    Such an attempt left ``status.json`` at ``running`` (a raising or interrupted attempt records
    ``failed`` / ``interrupted`` and ends its run itself). Called by the sweep driver when it sees a
    worker die, and by the next attempt. Returns the run id marked, or None.
    """
    from alignrank.tracking.session import mark_killed

    status = read_json(rd.status_json) or {}
    run_id = status.get("mlflow_run_id") or rd.meta().get("mlflow_run_id")  # status: written as the run opened
    if not run_id or status.get("state") != "running" or rd.done() is not None:
        return None
    mark_killed(factory, run_id, spool_dir=rd.path)  # (after its spooled records, if it died offline)
    rd.write_status(state="killed", updated=time.time())
    return run_id


def open_attempt(factory, rd: RunDir, *, run_name: str, parent_run_id: Optional[str], tags: dict) -> Tracker:
    """The tracker of one attempt: spools in the run folder while the server is unreachable; a sweep's run
    starts offline if the server went away meanwhile.

    A run of a sweep (``parent_run_id`` given: the sweep's start proved the server was up) whose server
    is unreachable now (quick ``/health`` probe, or a failed create) is created offline
    (:meth:`~alignrank.tracking.session.TrackerFactory.open` with ``offline_ok``) and trains on. A run on
    its own (``alignrank train``) fails with the one-line :class:`~alignrank.errors.TrackingError` instead.
    """
    return factory.open(run_name=run_name, parent_run_id=parent_run_id, tags=tags, spool_dir=rd.path,
                        offline_ok=parent_run_id is not None)


def execute(
    params: Params,
    factory,
    *,
    parent_run_id: Optional[str] = None,
    provenance: Optional[dict] = None,
    key: Optional[RunKey] = None,
    report: Optional[ReportFn] = None,
    stream: Optional[TextIO] = None,
) -> dict:
    """Open a new MLflow run for this attempt (tags ``attempt``, ``run_key``), :func:`train`, close; return :func:`summary`.

    A retried / resumed run gets one MLflow run per attempt: earlier ones end FAILED / KILLED with their
    per-epoch metrics, the final metrics go to the attempt that finishes (``done.json``'s ``mlflow_run_id``).
    While the tracking server is unreachable the records are spooled (:mod:`alignrank.tracking.tracker`);
    a sweep's run that starts while it is down is created offline (:func:`open_attempt`).

    Args:
        params: Resolved params of the run.
        factory: :class:`alignrank.tracking.session.TrackerFactory` (or anything with ``open(...) -> Tracker``).
        parent_run_id: MLflow parent (the sweep's run).
        provenance, key, report, stream: see :func:`train`.

    Raises:
        Busy: Another job holds the run folder (``train.lock_wait``): nothing of the run is touched.
    """
    key = key or run_key(params)
    rd = RunDir(run_dir(params, key))
    if rd.done() is not None:
        return summary(rd, cached=True)
    # the run folder's lock first: an attempt another job is running is not a dead one
    with run_lock(rd, wait=params.train.lock_wait):
        return _attempt(params, factory, rd, key, parent_run_id=parent_run_id, provenance=provenance,
                        report=report, stream=stream)


def _attempt(params: Params, factory, rd: RunDir, key: RunKey, *, parent_run_id: Optional[str],
             provenance: Optional[dict], report: Optional[ReportFn], stream: Optional[TextIO]) -> dict:
    """:func:`execute` with the run folder locked."""
    if rd.done() is not None:  # finished by another job while this one waited
        return summary(rd, cached=True)
    if rd.last.is_file():
        rd.state(params.train.epochs)  # a last.pt this run did not write is refused before any MLflow run opens
    end_dead_attempt(rd, factory)
    attempt = int(rd.meta().get("attempts", 0)) + 1  # = train()'s count: each attempt is its own MLflow run
    rd.path.mkdir(parents=True, exist_ok=True)  # an unwritable folder fails here, before an MLflow run exists
    tracker = open_attempt(factory, rd, run_name=key.name if attempt == 1 else f"{key.name}-attempt{attempt}",
                           parent_run_id=parent_run_id,
                           tags={"variant": key.variant, "seed": str(key.seed), "run_key": key.hash,
                                 "attempt": str(attempt)})
    try:
        # the run id first: end_dead_attempt can close this attempt's run if the worker dies from here on
        rd.write_status(state="running", mlflow_run_id=tracker.run_id, attempt=attempt, updated=time.time())
        train(params, tracker, report=report, key=key, provenance=provenance, stream=stream)
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # (a full disk must not hide the interrupt)
            rd.write_status(state="interrupted", updated=time.time())
        _end(tracker, "KILLED")
        raise
    except BaseException as e:
        with contextlib.suppress(OSError):  # (a full disk must not hide the original error)
            if rd.path.is_dir():
                rd.write_status(state="failed", error=str(e).splitlines()[0][:300] if str(e) else type(e).__name__,
                                updated=time.time())
        _end(tracker, "FAILED")
        raise
    tracker.end("FINISHED")
    return summary(rd, cached=False)


def run_single(params: Params) -> dict:
    """``alignrank train``: one (train.variant, train.seed) in-process on ``train.device``; returns the summary.

    Prints one line per epoch to stderr; an interrupted run resumes from its ``last.pt`` when re-run.
    """
    from alignrank.tracking.session import direct_factory

    key = run_key(params, fingerprint=verified_fingerprint(data_root(params)))  # (a hand-edited dataset: refused)
    rd = RunDir(run_dir(params, key))
    print(f"run {key.name}: {rd.path}", file=sys.stderr, flush=True)
    return execute(params, direct_factory(params), key=key, stream=sys.stderr)
