"""One writer for the embedded SQLite store: a Ray actor on the driver's node that owns the store client.

SQLite tolerates one writer. When many Ray workers train at once, each worker's
:class:`~alignrank.tracking.tracker.RunTracker` delivers its records (synchronously, bounded by a timeout)
to a single :class:`TrackingWriter` actor, which applies them one at a time with
:class:`~alignrank.tracking.client.StoreClient`, so the database never sees two writers; and since a call
returns only once the row is committed, a metric is either stored or the worker gets a
:class:`~alignrank.errors.TrackingError` (its run is then retried): never silently lost. Artifacts travel
as bytes, so workers need no shared filesystem for tracking.

On a Ray driver (after ``ray.init()``; the sweep does this through
:func:`~alignrank.tracking.session.tracking_session`)::

    writer = start_writer("sqlite:////abs/outputs/mlflow/mlflow.db")
    run_id = open_via_writer(writer, {"experiment": "alignrank", "run_name": "baseline-s0"})
    RunTracker(run_id, via_writer(writer)).log_metrics({"val/map50": 0.1}, step=1)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from alignrank.errors import TrackingError

CALL_TIMEOUT_S = 180.0  # a writer call includes the store's own SQLite busy wait (20 s) and retries


class TrackingWriter:
    """The single writer of the store at ``uri`` (instantiated as a Ray actor by :func:`start_writer`)."""

    def __init__(self, uri: str) -> None:
        from alignrank.env import setup_offline
        from alignrank.tracking.client import StoreClient

        setup_offline()  # offline env in the actor process
        self.store = StoreClient(uri)

    def open_run(self, kwargs: Mapping[str, Any]) -> str:
        """:meth:`StoreClient.open_run <alignrank.tracking.client.StoreClient.open_run>` in the actor."""
        return self.store.open_run(**kwargs)

    def apply(self, rec: Mapping[str, Any], data: Optional[bytes] = None) -> None:
        """Apply one record; an artifact's bytes (``data``) are written under its own name first."""
        if rec["kind"] != "artifact":
            self.store.apply(rec)
            return
        d = Path(tempfile.mkdtemp(prefix="ar-writer-"))
        try:
            f = d / Path(rec["payload"]["path"]).name
            f.write_bytes(data or b"")
            self.store.apply({**rec, "payload": {**rec["payload"], "path": str(f)}})
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def ping(self) -> str:
        return self.store.uri


def start_writer(uri: str):
    """Start the :class:`TrackingWriter` actor on this (the driver's) node; Ray must be initialised."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    actor = ray.remote(TrackingWriter).options(
        num_cpus=0, max_restarts=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False)
    ).remote(uri)
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


def open_via_writer(writer, kwargs: Mapping[str, Any]) -> str:
    """Open a run (``StoreClient.open_run`` keyword arguments) through the writer; returns its id."""
    return _get(writer.open_run.remote(dict(kwargs)), "start run")


def via_writer(writer) -> Callable[[dict], None]:
    """A ``deliver`` function for :class:`~alignrank.tracking.tracker.RunTracker`: records go to the writer."""

    def deliver(rec: dict) -> None:
        data = Path(rec["payload"]["path"]).read_bytes() if rec["kind"] == "artifact" else None
        _get(writer.apply.remote(rec, data), f"log {rec['kind']}")

    return deliver
