"""``alignrank tune``: Ray Tune search over ``tune.space`` (RCQ/CSD hyper-parameters) on OUR trainer.

Ultralytics' ``model.tune(use_ray=True)`` rebuilds the stock model and rejects unknown keys, so it can
never tune the CSD head or RCQ loss. Here every trial is a real run of :func:`alignrank.runs.run.train`
with the sampled values applied as params overrides (:mod:`alignrank.tune.trial`).

* Search: Optuna TPE (``ray.tune.search.optuna.OptunaSearch``, seeded by ``tune.search_seed``) or
  random (``BasicVariantGenerator``), at most ``tune.max_concurrent`` trials at once; each trial
  reserves ``ray.cpus_per_run`` / ``ray.gpus_per_run`` per seed of ``tune.seeds``.
* Scheduler: ASHA on the per-epoch ``tune.metric`` (``time_attr=epoch``, ``max_t=tune.epochs``,
  ``tune.grace_period``, ``tune.reduction_factor``), or none.
* Faults: a crashed trial is retried ``tune.max_failures`` times from its last Tune checkpoint (its
  ``last.pt``). Ctrl-C stops the search and keeps its state; ``alignrank tune --resume`` continues it
  (finished trials are not re-run, unfinished ones resume from their checkpoints).
* Tracking: one MLflow parent run per search, every trial's run nested under it (no Ray MLflow callback).
* Outputs (``tune.out_dir``): ``best.yaml`` (params fragment for ``--set-file``), ``trials.md`` /
  ``trials.csv``, ``metric_vs_params.png``, ``summary.json``.

The search lives in ``<tune.storage_dir>/<variant>-<params hash>-<code version>`` (see :func:`search_name`):
re-running finished params only rewrites the outputs; a changed param or training code is a new search.
The Ray Tune state there (``tuner.pkl``, trial checkpoints) is what ``--resume`` restores; the trials'
training runs are under ``runs/<trial id>/`` and ``trial_events.jsonl`` logs every trial start/outcome.
On a cluster (``ray.address`` = ``auto`` / ``host:port`` / ``ray://...``, Ray started exactly as for the
sweep) ``tune.storage_dir``, ``data.root`` and the MLflow store must be on a filesystem shared by all
nodes: ``RunConfig(storage_path=<absolute tune.storage_dir>)`` is where every node writes.

Examples:
    >>> from alignrank.config import load_params
    >>> p = load_params(None, ["tune.variant=rcq"])
    >>> name = search_name(p, fingerprint="f" * 64)  # the experiment folder under tune.storage_dir
    >>> name.split("-")[0], name == search_name(load_params(None, ["tune.variant=rcq", "tune.max_concurrent=4"]), "f" * 64)
    ('rcq', True)
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

from alignrank.config import flatten, params_dict, params_hash, with_overrides
from alignrank.config.load import build_params
from alignrank.config.schema import Params
from alignrank.errors import AlignRankError, RunFailed, UsageError
from alignrank.io import atomic_write_json, read_json, resolve_path
from alignrank.tune import report as tune_report
from alignrank.tune.space import check_metric, check_space, search_space

STATE_FILE = "alignrank_search.json"
PLOT_FILE = "metric_vs_params.png"
_HASH_IGNORED = {"tune": ("out_dir", "storage_dir", "max_concurrent", "max_failures"),
                 "train": ("variant", "seed", "epochs", "out_dir", "save_period")}


def search_params(params: Params) -> Params:
    """Params shipped to trials: absolute paths, torch threads = ``ray.cpus_per_run``."""
    return with_overrides(params, {"data.root": str(resolve_path(params.data.root)),
                                   "train.threads": max(1, int(params.ray.cpus_per_run))})


def search_name(params: Params, fingerprint: str) -> str:
    """``<variant>-<params hash>-<code version>`` of a search.

    The params hash covers what determines the trials' results (the space and search settings, the
    model/loss/train params, the dataset fingerprint), not where or how many run at once; the code
    version (:func:`alignrank.runs.key.code_version`, first 8) makes a code change a new search.
    """
    from alignrank.runs.key import code_version

    d = params_dict(params)
    keyed = {s: {k: v for k, v in d[s].items() if k not in _HASH_IGNORED.get(s, ())}
             for s in ("tune", "model", "loss", "train")}
    return f"{params.tune.variant}-{params_hash({**keyed, 'data': fingerprint})}-{code_version()[:8]}"


def _locate(params: Params) -> tuple[Params, str, Path]:
    """``(search params, search name, experiment folder)``; a missing dataset raises DataError."""
    from alignrank.runs.key import data_fingerprint

    params = search_params(params)
    name = search_name(params, data_fingerprint(params))
    return params, name, resolve_path(params.tune.storage_dir) / name


def _is_complete(exp_dir: Path) -> bool:
    return bool((read_json(exp_dir / STATE_FILE) or {}).get("complete"))


def _interrupted(exp_dir: Path) -> Optional[Path]:
    """The interrupted search of the same params: this code version's first, else the latest of any.

    Resuming after a code edit is allowed (finished trials keep their results; unfinished ones
    continue from their checkpoints with the new code).
    """
    prefix = exp_dir.name.rsplit("-", 1)[0]
    found = [d for d in exp_dir.parent.glob(f"{prefix}-*") if (d / "tuner.pkl").is_file() and not _is_complete(d)]
    if not found:
        return None
    return exp_dir if exp_dir in found else max(found, key=lambda d: d.stat().st_mtime)


def search_status(params: Params) -> str:
    """``complete`` (a re-run only rewrites the outputs) | ``interrupted`` (``--resume`` continues it) | ``new``.

    The DVC stage runs ``run_tune(p, resume=search_status(p) == "interrupted")``.
    """
    _, _, exp_dir = _locate(params)
    if _is_complete(exp_dir):
        return "complete"
    return "interrupted" if _interrupted(exp_dir) is not None else "new"


def trial_dirname(trial) -> str:
    """Trial folder name (the default embeds the config, dotted keys and all)."""
    return trial.trial_id


def _resources(params: Params) -> dict[str, float]:
    n = len(params.tune.seeds)
    return {"cpu": float(params.ray.cpus_per_run) * n, "gpu": float(params.ray.gpus_per_run) * n}


def _searcher(params: Params):
    t = params.tune
    if t.search == "optuna":
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        optuna = OptunaSearch(metric=t.metric, mode=t.mode, seed=t.search_seed)  # TPE sampler
        return ConcurrencyLimiter(optuna, max_concurrent=t.max_concurrent)
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(max_concurrent=t.max_concurrent, random_state=t.search_seed)


def _scheduler(params: Params):
    t = params.tune
    if t.scheduler == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="epoch", max_t=t.epochs, grace_period=min(t.grace_period, t.epochs),
                         reduction_factor=t.reduction_factor)


def _tuner(params: Params, name: str, storage: Path, ctx, *, restore: bool):
    """A new :class:`ray.tune.Tuner`, or the interrupted one restored from ``storage/name``."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from alignrank.tune.callback import TrialTracking
    from alignrank.tune.trial import trainable

    fn = tune.with_resources(tune.with_parameters(trainable, ctx=ctx), _resources(params))
    if restore:
        return tune.Tuner.restore(str(storage / name), fn, resume_unfinished=True, resume_errored=True,
                                  restart_errored=False)
    t = params.tune
    return tune.Tuner(
        fn,
        param_space=search_space(params),
        tune_config=tune.TuneConfig(metric=t.metric, mode=t.mode, search_alg=_searcher(params),
                                    scheduler=_scheduler(params), num_samples=t.num_samples, reuse_actors=False,
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=name, storage_path=str(storage), verbose=0,
            failure_config=tune.FailureConfig(max_failures=t.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[TrialTracking(name), JsonLoggerCallback(), CSVLoggerCallback()],  # result.json, progress.csv
        ),
    )


OUTCOMES = {"completed": "TERMINATED", "stopped_early": "TERMINATED", "failed": "ERROR"}


def outcomes(exp_dir: Path) -> dict[str, str]:
    """Latest driver-side outcome per trial (``completed`` | ``stopped_early`` | ``failed``).

    Written by the driver callback when Tune finishes a trial. This, not ``Trial.status``, tells a
    finished trial: on Ctrl-C Tune marks the running trials TERMINATED in memory (its saved state
    keeps them resumable), and a resumed search has no callbacks for trials finished before.
    """
    from alignrank.tune.trial import read_events

    return {e["trial_id"]: e["event"] for e in read_events(exp_dir) if e.get("side") == "driver"}


def trial_rows(trials, params: Params, done: dict[str, str]) -> list[dict[str, Any]]:
    """One plain row per Tune trial (see :mod:`alignrank.tune.report`); ``done`` from :func:`outcomes`."""
    t = params.tune
    rows = []
    for tr in trials:
        last = tr.last_result or {}
        epochs = int(last.get("epoch", 0) or 0)
        outcome = done.get(tr.trial_id)
        score = last.get(t.metric)
        rows.append({
            "trial_id": tr.trial_id, "status": OUTCOMES.get(outcome, "UNFINISHED"), "outcome": outcome or "unfinished",
            "epochs": epochs, "completed": outcome == "completed", "stopped_early": outcome == "stopped_early",
            "score": float(score) if isinstance(score, (int, float)) else None,
            "mlflow_run_id": last.get("trial_mlflow_run_id"),
            "hp": {k[3:]: v for k, v in last.items() if isinstance(k, str) and k.startswith("hp/")},
            "error": _error_line(tr) if outcome == "failed" else None,
            **{k: tr.config[k] for k in t.space if k in tr.config},
        })
    return rows


def _error_line(trial) -> str:
    """Last line of a failed trial's error (the cause, e.g. ``UsageError: tune.metric ...``)."""
    try:
        text = str(trial.get_error() or "")
    except Exception:  # noqa: BLE001 - an unreadable error file
        text = ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[-1] if lines else "unknown error")[:300]


def write_outputs(rows: list[dict], params: Params, name: str) -> dict[str, str]:
    """best.yaml, trials.md/csv and the plot under ``tune.out_dir``; returns their paths."""
    t = params.tune
    out = resolve_path(t.out_dir)
    keys = list(t.space)
    files = {k: str(v) for k, v in tune_report.write_tables(out, rows, keys, metric=t.metric, mode=t.mode).items()}
    files["plot"] = str(tune_report.write_plot(out / PLOT_FILE, rows, keys, metric=t.metric, mode=t.mode,
                                               log_keys=[k for k, s in t.space.items() if s.type == "loguniform"]))
    best = tune_report.best_row(rows, t.mode)
    if best is None:
        (out / "best.yaml").unlink(missing_ok=True)  # never leave another search's best behind
        return files
    ties = sum(1 for r in rows if r["trial_id"] != best["trial_id"] and r["completed"] == best["completed"]
               and r["score"] == best["score"])
    files["best"] = str(tune_report.write_best(out / "best.yaml", best, keys, metric=t.metric, name=name, ties=ties))
    return files


def _summary(rows: list[dict], params: Params, name: str, exp_dir: Path, files: dict, **extra) -> dict:
    best = tune_report.best_row(rows, params.tune.mode)
    return {
        "name": name, "experiment_dir": str(exp_dir), "metric": params.tune.metric, "mode": params.tune.mode,
        "trials": len(rows), "completed": [r["trial_id"] for r in rows if r["completed"]],
        "stopped_early": [r["trial_id"] for r in rows if r["stopped_early"]],
        "failed": [{"trial_id": r["trial_id"], "error": r.get("error")} for r in rows if r["status"] == "ERROR"],
        "best": None if best is None else {"trial_id": best["trial_id"], "score": best["score"],
                                           "config": {k: best[k] for k in params.tune.space}},
        "files": files, **extra,
    }


def _finish(rows: list[dict], params: Params, name: str, exp_dir: Path, **extra) -> dict:
    files = write_outputs(rows, params, name)
    summary = _summary(rows, params, name, exp_dir, files, **extra)
    out = resolve_path(params.tune.out_dir) / "summary.json"
    atomic_write_json(out, summary)
    summary["files"]["summary"] = str(out)
    if summary["best"] is None:
        errors = [r["error"] for r in rows if r.get("error")]
        cause = f" (first trial error: {errors[0]})" if errors else ""
        raise RunFailed(f"tune search '{name}': no trial reported tune.metric '{params.tune.metric}'{cause}; see "
                        f"{resolve_path(params.tune.out_dir) / 'trials.md'} and {exp_dir}")
    return summary


def run_tune(params: Params, resume: bool = False) -> dict:
    """Run (or with ``resume`` continue) the search of ``params.tune``; write its outputs.

    Returns:
        Summary: ``name``, ``experiment_dir``, ``trials``, ``completed`` / ``stopped_early`` / ``failed``
        trial ids, ``best`` (``trial_id``, ``score``, ``config``), ``files``, ``parent_run_id``, ``wall_s``.

    Raises:
        ParamsError: a bad search space (before Ray starts). UsageError: ``--resume`` with nothing to
        resume, or an interrupted search without ``--resume``. AlignRankError: interrupted (Ctrl-C).
    """
    t0 = time.time()
    # one checkpoint per epoch is intended: no snapshot-frequency warnings
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    check_space(params)  # bad spaces and metrics fail here, before Ray or any trial starts
    check_metric(params)
    params, name, exp_dir = _locate(params)
    if _is_complete(exp_dir):  # finished before: only the outputs are rewritten
        state = read_json(exp_dir / STATE_FILE) or {}
        return _finish(state["rows"], build_params(state["params"]), name, exp_dir,
                       parent_run_id=state.get("parent_run_id"), cached=True, wall_s=round(time.time() - t0, 2))
    found = _interrupted(exp_dir)
    if resume and found is None:
        raise UsageError(f"tune --resume: no interrupted search for these params under {exp_dir.parent}; "
                         f"run `alignrank tune`")
    if not resume and found is not None:
        raise UsageError(f"an interrupted search exists at {found}; continue it with `alignrank tune --resume` "
                         f"(or delete that folder to start over)")
    if found is not None and found != exp_dir:
        print(f"[tune] resuming {found.name}: the training code changed since it started; unfinished trials "
              f"continue with the current code", file=sys.stderr)
    exp_dir = found or exp_dir
    state = read_json(exp_dir / STATE_FILE) or {}
    base = build_params(state["params"]) if resume and state.get("params") else params  # the original search
    return _search(params, base, exp_dir.name, exp_dir.parent, state, resume=resume, t0=t0)


def _search(params: Params, base: Params, name: str, storage: Path, state: dict, *, resume: bool, t0: float) -> dict:
    from alignrank.runs.cluster import ray_session
    from alignrank.tracking.provenance import provenance_tags
    from alignrank.tracking.session import tracking_session
    from alignrank.tune.callback import ACTIVE
    from alignrank.tune.trial import TrialContext

    exp_dir = storage / name
    exp_dir.mkdir(parents=True, exist_ok=True)
    with ray_session(params), tracking_session(params) as factory:
        parent = factory.open(run_name=f"tune-{name}", run_id=state.get("parent_run_id"),
                              tags={"kind": "tune", "tune_search": name, "variant": base.tune.variant,
                                    **provenance_tags()})
        if not state.get("parent_run_id"):
            parent.log_params(flatten(params_dict(base)))
        state = {"name": name, "parent_run_id": parent.run_id, "params": params_dict(base), "complete": False}
        atomic_write_json(exp_dir / STATE_FILE, state)
        ACTIVE[name] = {"factory": factory, "params": base, "exp_dir": str(exp_dir)}
        status = "KILLED"
        try:
            ctx = TrialContext(params=base, factory=factory, parent_run_id=parent.run_id, exp_dir=str(exp_dir))
            tuner = _tuner(base, name, storage, ctx, restore=resume)
            grid = tuner.fit()
            trials = grid._experiment_analysis.trials  # Trial objects (status, config, last_result)
            rows = trial_rows(trials, base, outcomes(exp_dir))
            finished = [r for r in rows if r["outcome"] != "unfinished"]
            if len(finished) < len(rows) or len(rows) < base.tune.num_samples:
                _kill_runs(factory, rows)
                raise AlignRankError(
                    f"tune search '{name}' interrupted with {len(finished)}/{base.tune.num_samples} trials finished; "
                    f"continue it with `alignrank tune --resume`")
            summary = _finish(rows, base, name, exp_dir, parent_run_id=parent.run_id, cached=False,
                              wall_s=round(time.time() - t0, 2))
            _log_parent(parent, summary, base)
            atomic_write_json(exp_dir / STATE_FILE, {**state, "complete": True, "rows": rows})
            status = "FINISHED"
            return summary
        except KeyboardInterrupt:
            raise AlignRankError(f"tune search '{name}' interrupted; "
                                 f"continue it with `alignrank tune --resume`") from None
        finally:
            ACTIVE.pop(name, None)
            with contextlib.suppress(Exception):
                parent.end(status)


def _kill_runs(factory, rows: list[dict]) -> None:
    """Mark the MLflow runs of unfinished trials KILLED (a resume reopens them)."""
    for r in rows:
        if r["outcome"] == "unfinished" and r.get("mlflow_run_id"):
            with contextlib.suppress(Exception):
                factory.open(run_id=r["mlflow_run_id"]).end("KILLED")


def _log_parent(parent, summary: dict, params: Params) -> None:
    """Best score/config, counts and the output files on the search's MLflow run."""
    best = summary["best"]
    parent.set_tags({"best_trial": best["trial_id"]})
    parent.log_params({f"best.{k}": v for k, v in best["config"].items()})
    parent.log_metrics({f"best/{params.tune.metric}": float(best["score"]), "trials": summary["trials"],
                        "trials_completed": len(summary["completed"]),
                        "trials_stopped_early": len(summary["stopped_early"]),
                        "trials_failed": len(summary["failed"])}, step=0)
    for key in ("best", "md", "csv", "plot", "summary"):
        if key in summary["files"] and Path(summary["files"][key]).is_file():
            parent.log_artifact(summary["files"][key], "tune")
