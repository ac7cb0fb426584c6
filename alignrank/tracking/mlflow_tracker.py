"""``MlflowTracker``: one MLflow run logged through ``MlflowClient`` (no global active-run state).

The client API keeps every run explicit (``run_id``), so a Ray worker that runs several trainings in
one process, or a driver that holds a parent run while its children log elsewhere, never mixes runs.
Every call is retried with a bounded back-off on transient errors (SQLite "database is locked",
connection resets, HTTP 5xx), then fails with one :class:`~alignrank.errors.TrackingError` line.
Batches respect MLflow's limits (100 params/tags, 1000 metrics per call).

Examples:
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> t = MlflowTracker.start(tracking_uri=f"sqlite:///{d}/mlflow.db", experiment="demo",
    ...                         run_name="r", artifact_root=f"{d}/artifacts")
    >>> t.log_metrics({"val/map50_95": 0.25}, step=1)
    >>> t.end()
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, TypeVar

from alignrank.errors import TrackingError
from alignrank.tracking.spool import find_offline, is_offline_id, is_unreachable

# Bounded HTTP behaviour of the MLflow REST client (defaults would wait minutes on a dead server).
for _k, _v in {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}.items():
    os.environ.setdefault(_k, _v)

T = TypeVar("T")
RETRY_ATTEMPTS = 8  # with the back-off below: about 30 s of retries before a TrackingError
UNREACHABLE_ATTEMPTS = 2  # a refused/timed-out connection (each try already has MLflow's own HTTP retries)
PARENT_TAG = "mlflow.parentRunId"
_NO_RETRY = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST",
             "PERMISSION_DENIED", "UNAUTHENTICATED", "INVALID_STATE"}


def redact_uri(uri: str) -> str:
    """``uri`` with any ``user:password@`` replaced by ``***@`` (safe for messages and logs).

    >>> redact_uri("http://bob:s3cret@127.0.0.1:5000")
    'http://***@127.0.0.1:5000'
    """
    import re

    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1***@", str(uri), flags=re.I)


def _retry(what: str, fn: Callable[[], T], *, uri: str, base: float = 0.25) -> T:
    """Call ``fn`` with jittered exponential back-off (``RETRY_ATTEMPTS`` tries) on transient failures."""
    attempts = RETRY_ATTEMPTS
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - classified below
            code = getattr(e, "error_code", None)
            if code in _NO_RETRY or i == attempts - 1 or (i >= UNREACHABLE_ATTEMPTS - 1 and is_unreachable(e)):
                msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
                raise TrackingError(
                    f"MLflow at {redact_uri(uri)}: {what} failed ({msg.replace(uri, redact_uri(uri))}); "
                    f"check the server/database is reachable "
                    f"(mlflow.tracking_uri / MLFLOW_TRACKING_URI) and re-run"
                ) from e
            time.sleep(min(8.0, base * 2**i) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def get_or_create_experiment(client, name: str, *, uri: str, artifact_root: str | None = None) -> str:
    """Experiment id of ``name``, creating it (race-safe) with artifacts in ``artifact_root/<name>`` when new."""

    def get() -> Optional[str]:
        exp = client.get_experiment_by_name(name)
        return exp.experiment_id if exp is not None else None

    exp_id = _retry(f"get experiment '{name}'", get, uri=uri)
    if exp_id is not None:
        return exp_id
    location = None
    if artifact_root:
        local = "://" not in artifact_root
        location = (Path(artifact_root) / name).resolve().as_uri() if local else f"{artifact_root}/{name}"
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # noqa: BLE001 - a concurrent creator won the race, or a transient error
        exp_id = _retry(f"get experiment '{name}'", get, uri=uri)
        if exp_id is None:
            return _retry(f"create experiment '{name}'",
                          lambda: client.create_experiment(name, artifact_location=location), uri=uri)
        return exp_id


class MlflowTracker:
    """A :class:`~alignrank.tracking.base.Tracker` backed by one MLflow run.

    Args:
        client: An ``mlflow.MlflowClient``.
        run_id: The MLflow run logged to.
        uri: Tracking URI (for error messages).
    """

    def __init__(self, client, run_id: str, *, uri: str) -> None:
        self.client = client
        self.run_id = run_id
        self.uri = uri
        self._ended = False

    @classmethod
    def start(
        cls,
        *,
        tracking_uri: str,
        experiment: str,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        artifact_root: str | None = None,
    ) -> "MlflowTracker":
        """Open a run: reopen ``run_id`` when given and present (resume), else create a new one.

        Args:
            tracking_uri: ``sqlite:///...``, ``http://host:port`` or any MLflow URI.
            experiment: Experiment name (created if missing, with ``artifact_root``).
            run_name: Display name of a new run.
            parent_run_id: Nest the new run under this one (sweep parent).
            run_id: Existing run to continue (a resumed training); an ``offline-`` id (a run created while
                the server was down) names the run its replay created (TrackingError until synced).
            tags: Extra tags of a new run.
            artifact_root: Artifact folder/URI of a newly created experiment.
        """
        import mlflow  # the only package that imports mlflow is alignrank.tracking

        client = _retry("connect", lambda: mlflow.MlflowClient(tracking_uri=tracking_uri), uri=tracking_uri)
        if is_offline_id(run_id):  # created while the server was down: the run its replay made
            real = find_offline(client, run_id, uri=tracking_uri)
            if real is None:
                raise TrackingError(f"run {run_id} was created while the tracking server was unreachable and is "
                                    f"not in {redact_uri(tracking_uri)} yet; run `alignrank sync` first")
            run_id = real
        if run_id:
            try:
                run = client.get_run(run_id)
                if run.info.lifecycle_stage == "active":
                    _retry("reopen run", lambda: client.update_run(run_id, status="RUNNING"), uri=tracking_uri)
                    return cls(client, run_id, uri=tracking_uri)
            except Exception:  # noqa: BLE001 - unknown in this store: start a fresh run
                pass
        exp_id = get_or_create_experiment(client, experiment, uri=tracking_uri, artifact_root=artifact_root)
        all_tags = {k: str(v) for k, v in (tags or {}).items()}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        run = _retry("create run", lambda: client.create_run(exp_id, tags=all_tags, run_name=run_name),
                     uri=tracking_uri)
        return cls(client, run.info.run_id, uri=tracking_uri)

    def _batch(self, what: str, **kw) -> None:
        _retry(what, lambda: self.client.log_batch(self.run_id, synchronous=True, **kw), uri=self.uri)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params in batches of 100 (values stringified, truncated to MLflow's 6000 chars)."""
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._batch("log params", params=items[i : i + 100])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags in batches of 100."""
        from mlflow.entities import RunTag

        items = [RunTag(str(k), str(v)[:5000]) for k, v in tags.items()]
        for i in range(0, len(items), 100):
            self._batch("set tags", tags=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None, *,
                    timestamp_ms: Optional[int] = None) -> None:
        """Log metrics in batches of 1000 at ``step`` (one timestamp for the whole call: ``timestamp_ms`` or now)."""
        from mlflow.entities import Metric

        ts = int(timestamp_ms if timestamp_ms is not None else time.time() * 1000)
        items = [Metric(str(k), float(v), ts, int(step or 0)) for k, v in metrics.items()]
        for i in range(0, len(items), 1000):
            self._batch("log metrics", metrics=items[i : i + 1000])

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        """Upload one file (retried)."""
        _retry(f"log artifact {Path(path).name}",
               lambda: self.client.log_artifact(self.run_id, str(path), artifact_path), uri=self.uri)

    def end(self, status: str = "FINISHED") -> None:
        """Terminate the run (idempotent). MLflow prints "View run" links: sent to stderr, stdout stays clean."""
        if self._ended:
            return
        with contextlib.redirect_stdout(sys.stderr):
            _retry("end run", lambda: self.client.set_terminated(self.run_id, status=status), uri=self.uri)
        self._ended = True
