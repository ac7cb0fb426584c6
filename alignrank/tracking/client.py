"""The ONE MLflow client of the project: every read and write of the tracking store goes through here.

:class:`StoreClient` opens runs (experiment lookup/creation, reopen, nesting) and applies
:mod:`~alignrank.tracking.records` to the store: the live tracker, the writer actor and the replay of a
spool all send the same records through :meth:`StoreClient.apply`, so batching (MLflow's limits: 100
params/tags, 1000 metrics per call), retries and timestamps are the same online and on replay. It uses
``MlflowClient`` (no global active-run state), so runs never mix inside one process.

Every call is retried with a bounded, jittered back-off on transient errors (SQLite "database is locked",
connection resets, HTTP 5xx); a refused/timed-out connection gives up after ``UNREACHABLE_ATTEMPTS``
tries; then one :class:`~alignrank.errors.TrackingError` line names the (redacted) URI and the fix.

Examples:
    >>> calls = []
    >>> def flaky():  # a store call that fails once with a transient error
    ...     calls.append(1)
    ...     if len(calls) == 1:
    ...         raise ConnectionResetError("Connection reset by peer")
    ...     return "ok"
    >>> retry("log metrics", flaky, uri="http://bob:s3cret@127.0.0.1:5000", base=0.0), len(calls)
    ('ok', 2)
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, TypeVar

from alignrank.errors import TrackingError
from alignrank.tracking.records import consumed, is_offline_id

# Bounded HTTP behaviour of the MLflow REST client (defaults would wait minutes on a dead server).
for _k, _v in {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}.items():
    os.environ.setdefault(_k, _v)

T = TypeVar("T")
RETRY_ATTEMPTS = 8  # with the back-off below: about 30 s of retries before a TrackingError
UNREACHABLE_ATTEMPTS = 2  # a refused/timed-out connection (each try already has MLflow's own HTTP retries)
PROBE_TIMEOUT_S = 3.0
PARENT_TAG = "mlflow.parentRunId"
OFFLINE_TAG = "alignrank.offline_id"  # on the MLflow run that a replay created for an offline-created run
BATCH = {"params": 100, "tags": 100, "metrics": 1000}  # MLflow's per-call limits
_NO_RETRY = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST",
             "PERMISSION_DENIED", "UNAUTHENTICATED", "INVALID_STATE"}
_UNREACHABLE_TEXT = ("Max retries exceeded", "Failed to establish a new connection", "Connection refused",
                     "Connection reset", "Connection aborted", "Read timed out", "RemoteDisconnected")


def redact_uri(uri: str) -> str:
    """``uri`` with any ``user:password@`` replaced by ``***@`` (safe for messages and logs).

    >>> redact_uri("http://bob:s3cret@127.0.0.1:5000")
    'http://***@127.0.0.1:5000'
    """
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1***@", str(uri), flags=re.I)


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` (or an error it wraps) says the tracking store could not be reached."""
    import requests

    seen: set[int] = set()
    e: Optional[BaseException] = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (ConnectionError, TimeoutError, requests.exceptions.ConnectionError,
                          requests.exceptions.Timeout)):
            return True
        if not isinstance(e, TrackingError) and any(t in str(e) for t in _UNREACHABLE_TEXT):
            return True
        e = e.__cause__ or e.__context__
    return False


def reachable(uri: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Quick probe: does the HTTP server at ``uri`` answer ``GET <uri>/health``? (other stores: True).

    Any HTTP answer counts (a server behind an auth proxy may say 401/403/404 there) except a gateway's
    502/503/504; a refused or timed-out connection does not.
    """
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return True
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):  # noqa: S310 - our URI
            return True
    except urllib.error.HTTPError as e:
        return e.code not in (502, 503, 504)
    except Exception:  # noqa: BLE001 - no answer at all: not now
        return False


def retry(what: str, fn: Callable[[], T], *, uri: str, base: float = 0.25) -> T:
    """Call ``fn`` with jittered exponential back-off (``RETRY_ATTEMPTS`` tries) on transient failures."""
    for i in range(RETRY_ATTEMPTS):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - classified below
            code = getattr(e, "error_code", None)
            if code in _NO_RETRY or i == RETRY_ATTEMPTS - 1 or (i >= UNREACHABLE_ATTEMPTS - 1 and is_unreachable(e)):
                msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
                raise TrackingError(
                    f"MLflow at {redact_uri(uri)}: {what} failed ({msg.replace(uri, redact_uri(uri))}); "
                    f"check the server/database is reachable "
                    f"(mlflow.tracking_uri / MLFLOW_TRACKING_URI) and re-run"
                ) from e
            time.sleep(min(8.0, base * 2**i) * (0.5 + random.random()))
    raise AssertionError("unreachable")


def schema_lock(uri: str, wait: float = 600.0):
    """The lock that one process at a time holds while its client creates or migrates a SQLite store's schema.

    MLflow creates (and upgrades) the tables of a SQLite store when a client first connects; two processes
    doing that at once leave the database half-migrated ("table _alembic_tmp_... already exists") and every
    later run fails. A remote store migrates on its server: no lock.

    Examples:
        >>> schema_lock("http://127.0.0.1:5000")  # doctest: +ELLIPSIS
        <contextlib.nullcontext object at ...>
    """
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    from alignrank.locks import hold

    db = Path(uri.removeprefix("sqlite:///"))
    return hold(db.parent, db.parent / f"{db.name}.schema.lock", wait=wait)


def dataset_input(payload: Mapping[str, Any]):
    """The ``mlflow.entities.DatasetInput`` of an ``input`` record: an ``mlflow.data`` dataset of metadata only
    (name, digest, source URI, JSON profile) tagged with its context (``mlflow.data.context``, e.g. ``train``)."""
    import json

    import mlflow.data
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import Dataset, DatasetInput, InputTag

    src = str(payload["source"])
    uri = src if "://" in src else Path(src).resolve().as_uri()
    if uri.startswith("file:"):
        source = mlflow.data.sources.LocalArtifactDatasetSource(uri)
    else:
        from mlflow.data.dataset_source_registry import resolve_dataset_source

        source = resolve_dataset_source(uri)
    d = MetaDataset(source, name=str(payload["name"]), digest=str(payload["digest"])).to_dict()
    profile = json.dumps(payload["profile"], sort_keys=True, default=str) if payload.get("profile") else None
    entity = Dataset(name=d["name"], digest=d["digest"], source_type=d["source_type"], source=d["source"],
                     schema=d.get("schema"), profile=profile)
    return DatasetInput(entity, tags=[InputTag("mlflow.data.context", str(payload.get("context") or "train"))])


class StoreClient:
    """The tracking store at ``uri``: opens runs and applies records to them.

    Args:
        uri: ``sqlite:///...``, ``http://host:port`` or any MLflow URI (credentials come from the
            ``MLFLOW_TRACKING_*`` environment of this process).

    Attributes:
        mlflow: The ``mlflow.MlflowClient``.
        ids: Provisional ``offline-`` run ids resolved so far -> MLflow run ids.
    """

    def __init__(self, uri: str) -> None:
        import mlflow  # the only package that imports mlflow is alignrank.tracking

        self.uri = uri
        with schema_lock(uri):
            self.mlflow = retry("connect", lambda: mlflow.MlflowClient(tracking_uri=uri), uri=uri)
        self.ids: dict[str, str] = {}

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        return retry(what, fn, uri=self.uri)

    # -- runs ---------------------------------------------------------------------------------------
    def experiment_id(self, name: str, artifact_root: Optional[str] = None) -> str:
        """Id of experiment ``name``, created (race-safe) with artifacts in ``artifact_root/<name>`` when new."""

        def get() -> Optional[str]:
            exp = self.mlflow.get_experiment_by_name(name)
            return exp.experiment_id if exp is not None else None

        exp_id = self._retry(f"get experiment '{name}'", get)
        if exp_id is not None:
            return exp_id
        location = None
        if artifact_root:
            local = "://" not in artifact_root
            location = (Path(artifact_root) / name).resolve().as_uri() if local else f"{artifact_root}/{name}"
        try:
            return self.mlflow.create_experiment(name, artifact_location=location)
        except Exception:  # noqa: BLE001 - a concurrent creator won the race, or a transient error
            return self._retry(f"get experiment '{name}'", get) or self._retry(
                f"create experiment '{name}'", lambda: self.mlflow.create_experiment(name, artifact_location=location))

    def create_run(self, *, experiment: str, run_name: Optional[str] = None, parent_run_id: Optional[str] = None,
                   tags: Optional[Mapping[str, Any]] = None, artifact_root: Optional[str] = None,
                   start_time: Optional[int] = None) -> str:
        """A new run in ``experiment`` (nested under ``parent_run_id``, itself possibly an offline id)."""
        exp_id = self.experiment_id(experiment, artifact_root)
        all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
        if parent_run_id:
            all_tags[PARENT_TAG] = self.real_id(parent_run_id)
        return self._retry("create run", lambda: self.mlflow.create_run(
            exp_id, start_time=start_time, tags=all_tags, run_name=run_name)).info.run_id

    def open_run(self, *, experiment: str, run_name: Optional[str] = None, parent_run_id: Optional[str] = None,
                 run_id: Optional[str] = None, tags: Optional[Mapping[str, Any]] = None,
                 artifact_root: Optional[str] = None, reopen: bool = True) -> str:
        """The id of run ``run_id`` (a resumed run: set RUNNING again unless ``reopen`` is False), else of a new run.

        An ``offline-`` ``run_id`` names the run its replay created (TrackingError until synced). With
        ``reopen=False`` the run must exist and its status, start and end time are left as they are
        (records are added to it as it is, e.g. the evaluation of a finished run).
        """
        if run_id:
            run_id = self.real_id(run_id)
            try:
                run = self.mlflow.get_run(run_id)
            except Exception as e:  # noqa: BLE001 - unknown in this store
                if not reopen:
                    raise TrackingError(f"MLflow at {redact_uri(self.uri)}: run {run_id} not found ({type(e).__name__})"
                                        f"; check mlflow.tracking_uri / MLFLOW_TRACKING_URI") from e
                run = None
            if run is not None and (not reopen or run.info.lifecycle_stage == "active"):
                if reopen:
                    self._retry("reopen run", lambda: self.mlflow.update_run(run_id, status="RUNNING"))
                return run_id
        return self.create_run(experiment=experiment, run_name=run_name, parent_run_id=parent_run_id, tags=tags,
                               artifact_root=artifact_root)

    def find_offline(self, offline_id: str) -> Optional[str]:
        """The MLflow id of the run that a replay created for ``offline_id`` (None: not replayed yet)."""
        if offline_id in self.ids:
            return self.ids[offline_id]
        exps = self._retry("list experiments", lambda: [e.experiment_id for e in self.mlflow.search_experiments()])
        runs = self._retry("find offline run", lambda: self.mlflow.search_runs(
            exps, filter_string=f"tags.`{OFFLINE_TAG}` = '{offline_id}'", max_results=1)) if exps else []
        if runs:
            self.ids[offline_id] = runs[0].info.run_id
        return self.ids.get(offline_id)

    def real_id(self, run_id: str) -> str:
        """``run_id`` itself, or the MLflow id of the offline-created run it names."""
        if not is_offline_id(run_id):
            return run_id
        real = self.find_offline(run_id)
        if real is None:
            raise TrackingError(f"run {run_id} was created while the tracking server was unreachable and is not in "
                                f"{redact_uri(self.uri)} yet; run `alignrank sync` first (its 'create' record is "
                                f"in its run folder's spool)")
        return real

    # -- records ------------------------------------------------------------------------------------
    def _batches(self, run_id: str, kind: str, items: list) -> None:
        n = BATCH[kind]
        for i in range(0, len(items), n):
            self._retry(f"log {kind}", lambda b=items[i:i + n]: self.mlflow.log_batch(
                run_id, synchronous=True, **{kind: b}))

    def apply(self, rec: Mapping[str, Any]) -> None:
        """Send one record to the store with its own step/timestamps (sending it again changes nothing)."""
        from mlflow.entities import Metric, Param, RunTag

        kind, p = rec["kind"], rec["payload"]
        if kind == "create":  # once: a previous replay may have made it already
            if self.find_offline(rec["run_id"]) is None:
                self.ids[rec["run_id"]] = self.create_run(
                    experiment=p["experiment"], run_name=p.get("run_name"), parent_run_id=p.get("parent_run_id"),
                    tags={**p.get("tags", {}), OFFLINE_TAG: rec["run_id"]}, artifact_root=p.get("artifact_root"),
                    start_time=int(p["start_time"]))
            return
        rid = self.real_id(rec["run_id"])
        if kind == "metrics":
            ts, step = int(p["timestamp"]), int(p["step"])
            self._batches(rid, kind, [Metric(k, float(v), ts, step) for k, v in p["metrics"].items()])
        elif kind == "params":
            self._batches(rid, kind, [Param(k, v) for k, v in p["params"].items()])
        elif kind == "tags":
            self._batches(rid, kind, [RunTag(k, v) for k, v in p["tags"].items()])
        elif kind == "artifact":
            if not Path(p["path"]).is_file():
                raise TrackingError(f"artifact {p['path']} of run {rid} is gone; restore it (or remove its line "
                                    f"from the spool) and re-run `alignrank sync`")
            self._retry(f"log artifact {Path(p['path']).name}",
                        lambda: self.mlflow.log_artifact(rid, p["path"], p.get("artifact_path")))
        elif kind == "input":
            self._retry(f"log dataset {p['name']}", lambda: self.mlflow.log_inputs(rid, datasets=[dataset_input(p)]))
        elif kind == "end":  # MLflow prints "View run" links: sent to stderr, stdout stays clean for JSON
            with contextlib.redirect_stdout(sys.stderr):
                self._retry("end run", lambda: self.mlflow.set_terminated(rid, status=p["status"],
                                                                          end_time=int(p["timestamp"])))
        else:
            raise TrackingError(f"unknown record kind {kind!r} (run {rid}); remove that line and re-run")

    def replay(self, path: Path) -> int:
        """Apply every record of the spool at ``path`` in order, then remove it; returns the record count.

        Holds the spool's lock meanwhile (a live run appending waits). On any failure nothing is removed
        (a later replay sends everything again; the store ignores what it already has).
        """
        path = Path(path)
        if not path.is_file():
            return 0
        with consumed(path) as recs:
            for r in recs:
                self.apply(r)
        return len(recs)
