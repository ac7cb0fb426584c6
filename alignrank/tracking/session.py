"""Tracking sessions: a picklable ``TrackerFactory`` that every process of a job opens its runs with.

* Embedded store (local SQLite) + Ray running: runs are written by ONE
  :class:`~alignrank.tracking.writer.TrackingWriter` actor on the driver's node; the factory hands out
  :class:`~alignrank.tracking.writer.ActorTracker` s.
* Remote tracking URI (``mlflow.tracking_uri`` or env ``MLFLOW_TRACKING_URI``), or a single process: each
  process logs straight to the store with :class:`~alignrank.tracking.mlflow_tracker.MlflowTracker`.

Examples:
    >>> # with tracking_session(params) as trackers:          # driver, after ray.init()
    >>> #     parent = trackers.open(run_name="sweep")
    >>> #     task.remote(trackers, parent.run_id)              # worker: trackers.open(parent_run_id=...)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional

from alignrank.config.schema import Params
from alignrank.tracking.base import Tracker
from alignrank.tracking.store import artifact_root_for, is_embedded, resolve_tracking_uri


@dataclass(frozen=True)
class TrackerFactory:
    """Opens tracker runs in one experiment, directly or through the writer actor.

    Attributes:
        uri: Tracking URI of the store.
        experiment: MLflow experiment name.
        artifact_root: Artifact folder of a newly created experiment (embedded store).
        writer: Handle of the writer actor, or None to log directly.
    """

    uri: str
    experiment: str
    artifact_root: Optional[str] = None
    writer: Any = None

    def open(self, *, run_name: str | None = None, parent_run_id: str | None = None, run_id: str | None = None,
             tags: Mapping[str, Any] | None = None) -> Tracker:
        """A new run (nested under ``parent_run_id``), or the existing ``run_id`` reopened."""
        if self.writer is not None:
            from alignrank.tracking.writer import ActorTracker

            return ActorTracker.start(self.writer, run_name=run_name, parent_run_id=parent_run_id, run_id=run_id,
                                      tags=tags)
        from alignrank.tracking.mlflow_tracker import MlflowTracker

        return MlflowTracker.start(tracking_uri=self.uri, experiment=self.experiment, run_name=run_name,
                                   parent_run_id=parent_run_id, run_id=run_id, tags=tags,
                                   artifact_root=self.artifact_root)


def direct_factory(params: Params, tracking_uri: str | None = None) -> TrackerFactory:
    """Factory logging straight to the resolved store (one process: ``alignrank train``)."""
    uri = tracking_uri or resolve_tracking_uri(params)
    return TrackerFactory(uri=uri, experiment=params.mlflow.experiment, artifact_root=artifact_root_for(uri))


@contextlib.contextmanager
def tracking_session(params: Params) -> Iterator[TrackerFactory]:
    """A factory safe for many concurrent writers (start Ray first when the store is embedded).

    The embedded SQLite store gets a writer actor for the duration of the block; a remote URI is
    used directly by every process.
    """
    factory = direct_factory(params)
    if not is_embedded(factory.uri):
        yield factory
        return
    import ray

    from alignrank.tracking.writer import start_writer

    if not ray.is_initialized():
        yield factory  # single process: it is the only writer
        return
    writer = start_writer(uri=factory.uri, experiment=factory.experiment, artifact_root=factory.artifact_root)
    try:
        yield TrackerFactory(uri=factory.uri, experiment=factory.experiment, artifact_root=factory.artifact_root,
                             writer=writer)
    finally:
        with contextlib.suppress(Exception):
            ray.kill(writer)
