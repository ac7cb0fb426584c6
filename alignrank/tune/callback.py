"""Driver-side Ray Tune callback of ``alignrank tune``: trial outcomes to MLflow and the event log, progress.

A module-level class on purpose: Tune pickles its callbacks into the experiment (``tuner.pkl``), and a
class pickled by reference carries no state but the search name. The live tracker factory and params
are looked up in :data:`ACTIVE` (filled by :func:`alignrank.tune.search.run_tune` for the search's
duration), so a restored search uses the current session's factory, never a stale actor handle.

Examples:
    >>> TrialTracking("full-abc-123").name
    'full-abc-123'
"""

from __future__ import annotations

import sys

from ray.tune import Callback

from alignrank.tune.trial import log_event

ACTIVE: dict[str, dict] = {}  # search name -> {"factory", "params", "exp_dir"}


class TrialTracking(Callback):
    """Closes each finished trial's MLflow run with its outcome and records it in the event log.

    Outcomes: ``completed`` (reached ``tune.epochs``; FINISHED), ``stopped_early`` (ASHA; KILLED),
    ``failed`` (out of retries; FAILED). A trial stopped by ASHA is killed inside its report call, so
    only the driver can close its run. Prints one progress line per result to stderr.

    Args:
        name: The search name (key into :data:`ACTIVE`).
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        act = ACTIVE.get(self.name)
        if act is None:
            return
        t = act["params"].tune
        v = result.get(t.metric)
        shown = f"{v:.4g}" if isinstance(v, (int, float)) else v
        print(f"[tune] {trial.trial_id} epoch {result.get('epoch')}/{t.epochs} {t.metric}={shown}",
              file=sys.stderr, flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        act = ACTIVE.get(self.name)
        epochs = act["params"].tune.epochs if act else 0
        done = int((trial.last_result or {}).get("epoch", 0) or 0) >= epochs
        self._close(trial, "FINISHED" if done else "KILLED", "completed" if done else "stopped_early")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._close(trial, "FAILED", "failed")

    def _close(self, trial, status: str, outcome: str) -> None:
        act = ACTIVE.get(self.name)
        if act is None:
            return
        last = trial.last_result or {}
        epoch = int(last.get("epoch", 0) or 0)
        log_event(act["exp_dir"], trial_id=trial.trial_id, event=outcome, side="driver", epoch=epoch)
        print(f"[tune] {trial.trial_id} {outcome}", file=sys.stderr, flush=True)
        run_id = last.get("trial_mlflow_run_id")
        if not run_id:
            return
        try:
            tr = act["factory"].open(run_id=run_id, reopen=False)  # closed as it is: no RUNNING in between
            tr.set_tags({"tune_outcome": outcome})
            score = last.get(act["params"].tune.metric)
            if isinstance(score, (int, float)):
                tr.log_metrics({"tune/score": float(score)}, step=epoch)
            tr.end(status)
        except Exception as e:  # noqa: BLE001 - tracking must not stop the search
            print(f"[tune] warning: could not close the MLflow run of {trial.trial_id}: {e}", file=sys.stderr)
