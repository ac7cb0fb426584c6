"""One writer for the embedded SQLite store: a Ray actor on the driver's node that owns the MLflow client.

SQLite tolerates one writer. When many Ray workers train at once, each logs through an
:class:`ActorTracker`, which forwards every call (synchronously, bounded by a timeout) to a single
:class:`TrackingWriter` actor. The actor runs calls one at a time, so the database never sees two
writers; and since a call returns only once the row is committed, a metric is either stored or the
worker gets a :class:`~alignrank.errors.TrackingError` (its run is then retried) — never silently lost.
Artifacts travel as bytes, so workers need no shared filesystem for tracking.

Examples:
    >>> # writer = start_writer(uri="sqlite:////abs/outputs/mlflow/mlflow.db", experiment="alignrank")
    >>> # t = ActorTracker.start(writer, run_name="baseline-s0"); t.log_metrics({"val/map50": 0.1}, step=1)
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional

from alignrank.errors import TrackingError

CALL_TIMEOUT_S = 180.0  # a writer call includes the store's own SQLite busy wait (20 s) and retries


class TrackingWriter:
    """The single MLflow writer (instantiated as a Ray actor by :func:`start_writer`).

    Args:
        uri: Tracking URI of the store (embedded ``sqlite:///...``).
        experiment: Experiment name.
        artifact_root: Artifact folder of the experiment when it is created here.
    """

    def __init__(self, uri: str, experiment: str, artifact_root: str | None = None) -> None:
        from alignrank.env import setup_offline

        setup_offline()  # offline env in the actor process

        self.uri, self.experiment, self.artifact_root = uri, experiment, artifact_root
        self.runs: dict = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="ar-writer-"))

    def _tracker(self, run_id: str):
        from alignrank.tracking.mlflow_tracker import MlflowTracker

        if run_id not in self.runs:
            self.runs[run_id] = MlflowTracker.start(tracking_uri=self.uri, experiment=self.experiment, run_id=run_id,
                                                    artifact_root=self.artifact_root)
            if self.runs[run_id].run_id != run_id:
                raise TrackingError(f"MLflow run {run_id} not found in {self.uri}")
        return self.runs[run_id]

    def start_run(self, run_name: str | None, parent_run_id: str | None, run_id: str | None,
                  tags: Mapping[str, Any] | None) -> str:
        from alignrank.tracking.mlflow_tracker import MlflowTracker

        t = MlflowTracker.start(tracking_uri=self.uri, experiment=self.experiment, run_name=run_name,
                                parent_run_id=parent_run_id, run_id=run_id, tags=tags, artifact_root=self.artifact_root)
        self.runs[t.run_id] = t
        return t.run_id

    def call(self, run_id: str, method: str, *args) -> None:
        if method == "log_artifact_bytes":
            name, data, artifact_path = args
            d = self.tmp / run_id
            d.mkdir(parents=True, exist_ok=True)
            (d / name).write_bytes(data)
            self._tracker(run_id).log_artifact(d / name, artifact_path)
            (d / name).unlink()
            return
        getattr(self._tracker(run_id), method)(*args)
        if method == "end":
            self.runs.pop(run_id, None)

    def ping(self) -> str:
        return self.uri


def start_writer(*, uri: str, experiment: str, artifact_root: str | None = None):
    """Start the :class:`TrackingWriter` actor on this (the driver's) node; Ray must be initialised."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    actor = ray.remote(TrackingWriter).options(
        num_cpus=0, max_restarts=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False)
    ).remote(uri, experiment, artifact_root)
    _get(actor.ping.remote(), "start the tracking writer")
    return actor


def _get(ref, what: str):
    import ray

    try:
        return ray.get(ref, timeout=CALL_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        raise TrackingError(f"tracking writer: {what} timed out after {CALL_TIMEOUT_S:.0f}s; re-run the sweep") \
            from None
    except ray.exceptions.RayTaskError as e:  # (Ray re-raises it as a subclass of the cause: catch it first)
        cause = getattr(e, "cause", None) or e
        if isinstance(cause, TrackingError):
            raise TrackingError(cause.args[0] if cause.args else what) from None
        text = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise TrackingError(f"tracking writer: {what} failed ({text[:300]})") from None
    except ray.exceptions.RayError as e:
        raise TrackingError(f"tracking writer: {what} failed ({type(e).__name__}); re-run the sweep") from None


class ActorTracker:
    """A :class:`~alignrank.tracking.base.Tracker` whose calls are executed by the writer actor.

    Args:
        writer: Handle of the :class:`TrackingWriter` actor.
        run_id: MLflow run id.
    """

    def __init__(self, writer, run_id: str) -> None:
        self.writer, self.run_id = writer, run_id

    @classmethod
    def start(cls, writer, *, run_name: str | None = None, parent_run_id: str | None = None,
              run_id: str | None = None, tags: Mapping[str, Any] | None = None) -> "ActorTracker":
        """Create (or reopen ``run_id``) a run through the writer."""
        rid = _get(writer.start_run.remote(run_name, parent_run_id, run_id, dict(tags or {})), "start run")
        return cls(writer, rid)

    def _call(self, method: str, *args) -> None:
        _get(self.writer.call.remote(self.run_id, method, *args), method)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._call("log_params", dict(params))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._call("set_tags", dict(tags))

    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        self._call("log_metrics", {k: float(v) for k, v in metrics.items()}, step)

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        path = Path(path)
        self._call("log_artifact_bytes", path.name, path.read_bytes(), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        self._call("end", status)
