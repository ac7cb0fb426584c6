"""``alignrank sweep`` / DVC ``train`` stage: every (variant, seed) of ``sweep.*`` as a Ray task.

1. Plan: one run per (variant, seed), each keyed by :func:`alignrank.runs.key.run_key`; finished runs
   (``done.json``) are reused and never dispatched. When nothing is left, no Ray/MLflow is started.
2. Track: the sweep is an MLflow parent run (tag ``sweep``, a description, the dataset as input, per-variant
   means of the runs' final metrics; the report adds its tables and AP numbers later:
   :mod:`alignrank.report.mlflow_parent`); each run is nested under it. The embedded SQLite store is
   written by one writer actor (:mod:`alignrank.tracking.writer`); a remote tracking URI is used directly.
3. Dispatch: at most ``ray.max_concurrent`` tasks in flight, each with ``ray.cpus_per_run`` CPUs (= its
   torch threads) and ``ray.gpus_per_run`` GPUs. Every wait is bounded (poll every second).
4. Faults: a task that raises or whose worker dies is resubmitted up to ``sweep.max_retries`` times; it
   resumes from its ``last.pt``; every attempt is its own nested MLflow run (tag ``attempt``; a dead
   worker's is marked KILLED here). A run that fails for good is reported with its error and the sweep
   finishes the others, then reports ``failed`` (the CLI exits 1). Ctrl-C cancels the tasks; a re-run
   resumes (finished runs reused, unfinished ones from their last checkpoint).

Examples:
    >>> from alignrank.config import load_params
    >>> from alignrank.data.build import run_data
    >>> p = load_params(None, ["sweep.variants=baseline", "sweep.seeds=0,1", "data.num_train=2", "data.num_val=2",
    ...                        "data.imgsz=64"])
    >>> _ = run_data(p)  # a tiny dataset: runs are keyed by its fingerprint
    >>> [(r["variant"], r["seed"], r["status"]) for r in list_runs(p)]  # run_sweep(p) would train both
    [('baseline', 0, 'missing'), ('baseline', 1, 'missing')]
"""

from __future__ import annotations

import collections
import contextlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from alignrank.config import flatten, params_dict, with_overrides
from alignrank.config.schema import Params
from alignrank.data.check import verified_fingerprint
from alignrank.data.lock import dataset_lock
from alignrank.errors import UsageError
from alignrank.io import atomic_write_json, read_json, resolve_path
from alignrank.runs.key import RunKey, data_root, run_dir, run_key
from alignrank.runs.rundir import RunDir

POLL_S = 1.0


@dataclass(frozen=True)
class RunSpec:
    """One planned run: its resolved params, key and folder."""

    params: Params
    key: RunKey
    dir: Path

    @property
    def name(self) -> str:
        return self.key.name


def run_params(params: Params, variant: str, seed: int) -> Params:
    """Params of one sweep run: variant/seed set, paths absolute, torch threads = ``ray.cpus_per_run``."""
    return with_overrides(params, {
        "train.variant": variant,
        "train.seed": seed,
        "train.threads": max(1, int(params.ray.cpus_per_run)),
        "train.out_dir": str(resolve_path(params.train.out_dir)),
        "data.root": str(resolve_path(params.data.root)),
    })


def plan(params: Params) -> list[RunSpec]:
    """The sweep's runs in (variant, seed) order, duplicates removed.

    Raises:
        DataError: The dataset's files are not those its fingerprint describes (edited since the data stage):
            one line telling to run ``alignrank data``.
    """
    fingerprint = verified_fingerprint(data_root(params))
    specs: dict[str, RunSpec] = {}
    for v in params.sweep.variants:
        for s in params.sweep.seeds:
            rp = run_params(params, v, s)
            key = run_key(rp, fingerprint=fingerprint)
            specs.setdefault(key.name, RunSpec(params=rp, key=key, dir=run_dir(rp, key)))
    return list(specs.values())


def list_runs(params: Params) -> list[dict]:
    """Per planned run: ``variant``, ``seed``, ``run``, ``run_dir``, ``weights`` (best.pt), ``mlflow_run_id``,
    ``status`` (``done`` | ``incomplete`` | ``missing``), ``metrics``.
    """
    out = []
    for s in plan(params):
        rd = RunDir(s.dir)
        meta, done = rd.meta(), rd.done()
        out.append({
            "variant": s.key.variant, "seed": s.key.seed, "run": s.name, "run_dir": str(s.dir),
            "weights": str(rd.weights),
            "mlflow_run_id": (done or meta).get("mlflow_run_id"),
            "status": "done" if done else ("incomplete" if s.dir.exists() else "missing"),
            "metrics": (done or {}).get("metrics", {}),
        })
    return out


def _train_task(params: Params, factory, parent_run_id: Optional[str], provenance: dict, key: RunKey) -> dict:
    """Body of one Ray task: the single training path (:func:`alignrank.runs.run.execute`)."""
    import ray

    from alignrank.env import setup_offline


    setup_offline()  # offline env in the worker
    from alignrank.runs.run import execute

    out = execute(params, factory, parent_run_id=parent_run_id, provenance=provenance, key=key)
    return {**out, "node_id": ray.get_runtime_context().get_node_id()}


def _error_line(e: BaseException) -> str:
    """One line describing a task failure (the cause, not Ray's wrapper)."""
    import ray

    if isinstance(e, ray.exceptions.RayTaskError):
        e = e.as_instanceof_cause()
        text = str(e).strip().splitlines()
        lines = [ln for ln in text if ln.strip() and not ln.startswith(("Traceback", "  ", "ray::"))]
        return (lines[-1] if lines else type(e).__name__)[:300]
    if isinstance(e, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)):
        return f"worker died ({type(e).__name__})"
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def _dispatch(todo: list[RunSpec], params: Params, factory, parent_id: Optional[str], provenance: dict,
              progress, task_fn=None) -> tuple[dict, dict, dict]:
    """Run ``todo`` on Ray with bounded concurrency and retries; ``(results, errors, attempts)`` by run name.

    ``task_fn`` replaces the training task (same signature as ``_train_task``; benchmarks of the overhead).
    """
    import ray

    from alignrank.runs.cluster import release, submit, task_options
    from alignrank.runs.run import end_dead_attempt

    task = ray.remote(task_fn or _train_task).options(**task_options(params))
    queue = collections.deque(todo)
    inflight: dict = {}
    attempts: collections.Counter = collections.Counter()
    results, errors = {}, {}
    try:
        while queue or inflight:
            while queue and len(inflight) < params.ray.max_concurrent:
                s = queue.popleft()
                attempts[s.name] += 1
                inflight[submit(task, params, s.params, factory, parent_id, provenance, s.key)] = s  # (own placement group: >1 GPU)
                progress.set(s.name, "running", attempt=attempts[s.name])
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=POLL_S)
            progress.poll()
            for ref in ready:
                s = inflight.pop(ref)
                release(ref)
                try:
                    results[s.name] = ray.get(ref, timeout=60)
                    final = results[s.name]["metrics"]  # validation of best.pt, from its best epoch
                    progress.set(s.name, "done", metric=final.get("map50_95"), best_epoch=final.get("best_epoch"))
                except Exception as e:  # noqa: BLE001 - any task failure: retry, then report
                    err = _error_line(e)
                    if not isinstance(e, ray.exceptions.RayTaskError):  # the worker died: its MLflow run is open
                        end_dead_attempt(RunDir(s.dir), factory)
                    if attempts[s.name] <= params.sweep.max_retries:
                        queue.append(s)
                        progress.set(s.name, "retrying", note=f"after: {err}")
                    else:
                        errors[s.name] = err
                        progress.set(s.name, "failed", note=err)
    except BaseException:  # Ctrl-C (or a driver error): stop the workers, keep what finished
        for ref, s in inflight.items():
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
            with contextlib.suppress(Exception):  # its attempt's MLflow run ends KILLED now, not at the re-run
                end_dead_attempt(RunDir(s.dir), factory)
            progress.set(s.name, "interrupted")
        raise
    return results, errors, dict(attempts)


def _parent_metrics(results: dict, specs: list[RunSpec]) -> dict[str, float]:
    """Per-variant mean of the final metrics, for the parent run (``mean/<variant>/map50_95``)."""
    by_variant: dict[str, list[dict]] = collections.defaultdict(list)
    for s in specs:
        if s.name in results:
            by_variant[s.key.variant].append(results[s.name]["metrics"])
    out = {}
    for v, ms in by_variant.items():
        for k in ("map50_95", "map50"):
            vals = [m[k] for m in ms if isinstance(m.get(k), (int, float))]
            if vals:
                out[f"mean/{v}/{k}"] = sum(vals) / len(vals)
    return out


def _previous_parent(params: Params, specs: list[RunSpec]) -> Optional[str]:
    """The MLflow parent run of the last sweep in ``sweep.json`` when it planned exactly these runs (a sweep with
    nothing left to train opens no MLflow run: the report still finds the parent that holds its runs)."""
    prev = read_json(resolve_path(params.train.out_dir) / "sweep.json") or {}
    names = {r.get("run") for r in prev.get("runs", [])} | {r.get("run") for r in prev.get("failed", [])}
    return prev.get("parent_run_id") if names == {s.name for s in specs} else None


def _parent_description(params: Params, specs: list[RunSpec], cached: list[RunSpec]) -> str:
    """The parent run's MLflow description (the report replaces it with its results table)."""
    s = params.sweep
    return (f"**Sweep** of {', '.join(s.variants)} x seeds {list(s.seeds)}: {len(specs)} runs "
            f"({len(specs) - len(cached)} to train, {len(cached)} cached, not nested here). Per-variant means of "
            f"ultralytics' val mAP50-95 are the `mean/<variant>/...` metrics; the COCO AP and its paired "
            f"differences to the baseline arrive as `report/...` metrics and `report/` artifacts after "
            f"`alignrank evaluate` and `alignrank report`.")


def _check_settings(params: Params) -> None:
    """Refuse settings that cannot work before starting anything: a GPU device without reserved GPUs, and
    Ray Client (``ray://``, whose tasks and tracking writer run on the head node, where this machine's
    embedded SQLite path means nothing) without a tracking server."""
    from alignrank.tracking.store import is_embedded, resolve_tracking_uri

    if params.train.device not in ("cpu", "mps") and params.ray.gpus_per_run <= 0:
        raise UsageError(f"train.device={params.train.device} but ray.gpus_per_run=0: Ray hides the GPUs from a task "
                         f"that reserves none; set ray.gpus_per_run (e.g. 1) or train.device=cpu")
    if (params.ray.address or "").startswith("ray://") and is_embedded(resolve_tracking_uri(params)):
        raise UsageError(
            f"ray.address={params.ray.address}: Ray Client cannot write the embedded MLflow store of this machine; "
            f"set mlflow.tracking_uri (or MLFLOW_TRACKING_URI) to a tracking server the cluster reaches"
        )


def _check_not_busy(todo: list[RunSpec], params: Params) -> None:
    """Refuse at once (:class:`~alignrank.errors.Busy`, one line) a sweep with a run another job is training,
    unless ``train.lock_wait`` says to wait (the run's own lock, taken by its task, is what guards it)."""
    from alignrank.locks import hold
    from alignrank.runs.run import LOCK_NAME

    if params.train.lock_wait != 0:
        return
    for s in todo:
        lock = s.dir / LOCK_NAME
        if lock.is_file():  # (never creates a run folder)
            with hold(s.dir, lock, wait=0):
                pass


def run_sweep(params: Params) -> dict:
    """Train every (variant, seed) of ``sweep.*`` on Ray, cached and resumable.

    The dataset is locked for reading for the whole sweep (``alignrank data`` cannot rebuild it meanwhile) and
    its files are checked against its fingerprint first; each run locks its own folder.

    Returns:
        ``{"runs": [per-run summary], "trained": [...], "cached": [...], "failed": [{"run", "error"}],
        "parent_run_id", "wall_s"}``, also written to ``<train.out_dir>/sweep.json``. ``failed``
        non-empty means the CLI exits 1. ``parent_run_id``: this sweep's MLflow run; with nothing to train
        (no MLflow run opened), the previous sweep's when it planned exactly these runs, else None.

    Raises:
        Busy: The dataset is being rebuilt, or a run is being trained by another job (``train.lock_wait``).
        DataError: The dataset was edited since the data stage (run ``alignrank data``).
    """
    _check_settings(params)
    with dataset_lock(data_root(params), write=False, wait=params.train.lock_wait):
        return _sweep(params)


def _sweep(params: Params) -> dict:
    """:func:`run_sweep` with the dataset locked for reading."""
    from alignrank.runs.progress import Progress

    t0 = time.time()
    specs = plan(params)
    cached = [s for s in specs if RunDir(s.dir).done() is not None]
    todo = [s for s in specs if s not in cached]
    _check_not_busy(todo, params)
    progress = Progress({s.name: s.dir for s in specs}, stream=sys.stderr, epochs=params.train.epochs)
    try:
        return _track_and_dispatch(params, specs, cached, todo, progress, t0)
    finally:
        progress.close()


def _track_and_dispatch(params: Params, specs: list[RunSpec], cached: list[RunSpec], todo: list[RunSpec], progress,
                        t0: float) -> dict:
    """:func:`_sweep` once planned: the parent MLflow run, the dispatch, ``sweep.json``."""
    from alignrank.runs.run import summary

    for s in cached:
        final = (RunDir(s.dir).done() or {}).get("metrics", {})
        progress.set(s.name, "cached", metric=final.get("map50_95"), best_epoch=final.get("best_epoch"))
    results: dict = {s.name: summary(RunDir(s.dir), cached=True) for s in cached}
    errors: dict = {}
    attempts: dict = {}
    parent_id = None if todo else _previous_parent(params, specs)
    if todo:
        from alignrank.runs.cluster import ray_session
        from alignrank.runs.describe import dataset_info
        from alignrank.tracking.provenance import provenance_tags
        from alignrank.tracking.session import tracking_session
        from alignrank.tracking.sync import sync_spools

        provenance = provenance_tags()
        # Ray prints worker-death notices on stdout: keep stdout for the CLI's JSON summary
        with contextlib.redirect_stdout(sys.stderr), ray_session(params), tracking_session(params) as factory:
            parent = factory.open(run_name=f"sweep-{time.strftime('%Y%m%d-%H%M%S')}",
                                  tags={"sweep": "true", **provenance, "runs": len(specs), "cached": len(cached)},
                                  spool_dir=resolve_path(params.train.out_dir))  # server gone: spool
            parent_id = parent.run_id
            status = "KILLED"
            try:
                parent.log_params(flatten(params_dict(params)))
                parent.set_tags({"mlflow.note.content": _parent_description(params, specs, cached)})
                parent.log_input(**dataset_info(specs[0].params, specs[0].key), context="train")
                new, errors, attempts = _dispatch(todo, params, factory, parent_id, provenance, progress)
                results.update(new)
                status = "FAILED" if errors else "FINISHED"
                parent.log_metrics({**_parent_metrics(results, specs), "runs_done": len(results),
                                    "runs_failed": len(errors), "runs_cached": len(cached),
                                    "wall_s": time.time() - t0}, step=0)
            finally:
                with contextlib.suppress(Exception):
                    parent.end(status)
                with contextlib.suppress(Exception):  # once more for runs that spooled (rest: `alignrank sync`)
                    sync_spools(resolve_path(params.train.out_dir), factory.uri)
    out = {
        "runs": [results[s.name] for s in specs if s.name in results],
        "trained": [s.name for s in todo if s.name in results],
        "cached": [s.name for s in cached],
        "failed": [{"run": n, "error": e, "attempts": attempts.get(n, 0)} for n, e in errors.items()],
        "parent_run_id": parent_id,
        "wall_s": round(time.time() - t0, 2),
    }
    atomic_write_json(resolve_path(params.train.out_dir) / "sweep.json", out)
    return out
