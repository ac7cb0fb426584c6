"""Tracking sessions: a picklable ``TrackerFactory`` that every process of a job opens its runs with.

* Embedded store (local SQLite) + Ray running: runs are written by ONE
  :class:`~alignrank.tracking.writer.TrackingWriter` actor on the driver's node.
* Remote tracking URI (``mlflow.tracking_uri`` or env ``MLFLOW_TRACKING_URI``), or a single process: each
  process writes straight to the store with :class:`~alignrank.tracking.client.StoreClient`.

Either way the factory hands out :class:`~alignrank.tracking.tracker.RunTracker` s. The factory also
carries the driver's MLflow credentials (``MLFLOW_TRACKING_TOKEN`` / ``_USERNAME`` / ``_PASSWORD``) to
the workers as part of a task argument, never through Ray's runtime environment (which Ray writes to
its logs): :meth:`TrackerFactory.open` puts them in the worker's environment before the MLflow client
is made.

A job uses it as (driver, after ``ray.init()``)::

    with tracking_session(params) as trackers:
        parent = trackers.open(run_name="sweep")
        task.remote(trackers, parent.run_id)  # the worker calls trackers.open(parent_run_id=...)

Examples:
    >>> from alignrank.config import load_params
    >>> direct_factory(load_params(None)).uri  # no server configured: the project's embedded store
    'sqlite:///.../outputs/mlflow/mlflow.db'
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

from alignrank.config.schema import Params
from alignrank.errors import TrackingError
from alignrank.tracking import client
from alignrank.tracking.records import SPOOL_NAME, is_offline_id, new_offline_id, record
from alignrank.tracking.store import artifact_root_for, credentials_from_env, is_embedded, resolve_tracking_uri
from alignrank.tracking.tracker import RunTracker, file_tracker


@dataclass(frozen=True)
class TrackerFactory:
    """Opens tracked runs in one experiment, directly or through the writer actor.

    Attributes:
        uri: Tracking URI of the store.
        experiment: MLflow experiment name.
        artifact_root: Artifact folder of a newly created experiment (embedded store).
        writer: Handle of the writer actor, or None to log directly.
        credentials: ``MLFLOW_*`` credentials of the driver (not shown in the repr).
    """

    uri: str
    experiment: str
    artifact_root: Optional[str] = None
    writer: Any = None
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:  # never a credential: no password in the URI, no credentials
        return (f"TrackerFactory(uri={client.redact_uri(self.uri)!r}, experiment={self.experiment!r}, "
                f"artifact_root={self.artifact_root!r}, writer={self.writer!r})")

    def open(self, *, run_name: str | None = None, parent_run_id: str | None = None, run_id: str | None = None,
             tags: Mapping[str, Any] | None = None, reopen: bool = True, spool_dir: Path | None = None,
             offline_ok: bool = False) -> RunTracker:
        """A new run (nested under ``parent_run_id``), or the existing ``run_id``.

        Args:
            run_name, parent_run_id, tags: Of a new run.
            run_id: An existing run to continue (set RUNNING again), e.g. a resumed trial.
            reopen: False: add to ``run_id`` as it is (its status and times are left alone).
            spool_dir: Spool the run's records in ``<spool_dir>/tracking_spool.jsonl`` while the store is
                unreachable (replayed when it is back, or by ``alignrank sync``).
            offline_ok: With a spool: when the tracking server does not answer (quick ``/health`` probe of an
                HTTP store, or a create failing as unreachable) start the run offline instead of failing (a
                sweep's run: the sweep's own start proved the server was up).
        """
        os.environ.update(self.credentials)  # this process talks to the store as the driver does
        spool = Path(spool_dir) / SPOOL_NAME if spool_dir is not None else None
        kw = dict(experiment=self.experiment, run_name=run_name, parent_run_id=parent_run_id, run_id=run_id,
                  tags={str(k): str(v) for k, v in (tags or {}).items()}, artifact_root=self.artifact_root,
                  reopen=reopen)
        offline_ok = offline_ok and spool is not None
        if offline_ok and not client.reachable(self.uri):
            return self._offline(spool, "tracking server unreachable at run start", kw)
        try:
            if self.writer is not None:
                from alignrank.tracking.writer import open_via_writer, via_writer

                return RunTracker(open_via_writer(self.writer, kw), via_writer(self.writer), spool=spool,
                                  uri=self.uri)
            store = client.StoreClient(self.uri)
            return RunTracker(store.open_run(**kw), store.apply, spool=spool, uri=self.uri)
        except TrackingError as e:
            if not (offline_ok and client.is_unreachable(e)):
                raise
            return self._offline(spool, str(e).splitlines()[0], kw)

    def _offline(self, spool: Path, reason: str, kw: Mapping[str, Any]) -> RunTracker:
        """A run created while the server is unreachable: provisional id, ``create`` record spooled first.

        Everything it logs is spooled until the server answers again (then replayed: the MLflow run is
        created, tagged with the provisional id, and delivery goes on directly), or ``alignrank sync``.
        """
        t = RunTracker(new_offline_id(), client.StoreClient(self.uri).apply, spool=spool, uri=self.uri, offline=True)
        t.send(record(t.run_id, "create", experiment=kw["experiment"], artifact_root=kw["artifact_root"],
                      run_name=kw["run_name"], parent_run_id=kw["parent_run_id"], tags=kw["tags"],
                      start_time=int(time.time() * 1000)))
        print(f"tracking: {reason[:200] or 'server unreachable'} -> run {kw['run_name'] or t.run_id} starts offline "
              f"as {t.run_id}; records spooled to {spool} (replayed when the server is back, or by `alignrank sync`)",
              file=sys.stderr, flush=True)
        return t


def mark_killed(factory, run_id: str, *, spool_dir: Path) -> None:
    """End ``run_id`` KILLED for a process that died without ending it (SIGKILL, lost worker).

    A run with a spool in ``spool_dir`` (it died offline, or was created offline) gets its ``end`` appended
    there, after its other records (replayed in order); any other run is ended in the store (a tracking
    failure is ignored: the run then stays RUNNING).
    """
    spool = Path(spool_dir) / SPOOL_NAME
    if spool.is_file() or is_offline_id(run_id):
        file_tracker(spool, run_id).end("KILLED")
        return
    with contextlib.suppress(Exception):  # tracking trouble must not stop a retry
        factory.open(run_id=run_id, reopen=False).end("KILLED")


def direct_factory(params: Params, tracking_uri: str | None = None) -> TrackerFactory:
    """Factory logging straight to the resolved store (one process: ``alignrank train``)."""
    uri = tracking_uri or resolve_tracking_uri(params)
    return TrackerFactory(uri=uri, experiment=params.mlflow.experiment, artifact_root=artifact_root_for(uri),
                          credentials=credentials_from_env())


def open_tracker(params: Params, *, run_name: str | None = None, run_id: str | None = None,
                 parent_run_id: str | None = None, tags: Mapping[str, Any] | None = None,
                 tracking_uri: str | None = None) -> RunTracker:
    """Open (or reopen, with ``run_id``) a run in ``mlflow.experiment`` of the configured store."""
    return direct_factory(params, tracking_uri).open(run_name=run_name, run_id=run_id, parent_run_id=parent_run_id,
                                                     tags=tags)


def attach_to_run(params: Params, run_id: str) -> RunTracker:
    """A tracker that adds to the existing run ``run_id`` without reopening it: its status, start and end
    time stay as training left them (do not ``end`` it). The evaluation logs its results this way.

    Used as ``t = attach_to_run(params, run["mlflow_run_id"]); t.log_metrics({"eval/ap": 0.3})``.
    """
    return direct_factory(params).open(run_id=run_id, reopen=False)


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
    writer = start_writer(factory.uri)
    try:
        yield TrackerFactory(uri=factory.uri, experiment=factory.experiment, artifact_root=factory.artifact_root,
                             writer=writer, credentials=factory.credentials)
    finally:
        with contextlib.suppress(Exception):
            ray.kill(writer)
