"""Local spool of tracking records: a run keeps training when the tracking server goes away mid-run.

:class:`SpoolingTracker` wraps a run's tracker. When a call fails because the store is unreachable
(connection refused / timed out, after the tracker's own bounded retries), the record (run id, kind,
payload) is appended to a JSONL spool in the run folder (``<run_dir>/tracking_spool.jsonl``, append +
fsync) and every later call of the run is spooled too (order kept; the server is probed again every
``RECHECK_S`` seconds and, once it answers, the spool is replayed and logging goes on directly). At
``end`` the spool is flushed once if the server answers; what is left is replayed by ``alignrank sync``
(:mod:`alignrank.tracking.sync`). Other tracking errors (a refused value, a missing run) still raise.

A run that STARTS while the server is unreachable (a later run of a sweep, a retry: the sweep's own
start already proved the server was up) is created offline (:meth:`SpoolingTracker.offline_run`): it
gets a provisional id ``offline-<uuid>`` and its first spooled record is ``create`` (experiment, name,
parent, tags, start time). Replay creates the MLflow run tagged ``alignrank.offline_id = <that id>``, so
later records, a second replay and :meth:`~alignrank.tracking.mlflow_tracker.MlflowTracker.start` (by
``run_id``) all find the same run: never a duplicate.

Replay is idempotent: metrics carry the timestamp and step they were logged with (MLflow ignores an
identical (key, step, timestamp, value)), params/tags are re-set to the same value, ``end`` re-sets
the same status, artifacts overwrite the same path, ``create`` finds the run it made before. Entries
are removed only after all were replayed.

Examples:
    >>> import tempfile
    >>> from alignrank.tracking.base import NullTracker
    >>> p = Path(tempfile.mkdtemp()) / SPOOL_NAME
    >>> t = SpoolingTracker(NullTracker(), p)
    >>> t.log_metrics({"val/map50": 0.1}, step=1)   # logged directly: nothing spooled
    >>> p.exists()
    False
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

from alignrank.errors import TrackingError

SPOOL_NAME = "tracking_spool.jsonl"
OFFLINE_PREFIX = "offline-"  # provisional run id of a run created while the server was unreachable
OFFLINE_TAG = "alignrank.offline_id"  # set on the MLflow run that replay creates for such a run
RECHECK_S = 30.0  # while offline: probe the server at most this often
PROBE_TIMEOUT_S = 3.0
_UNREACHABLE_TEXT = ("Max retries exceeded", "Failed to establish a new connection", "Connection refused",
                     "Connection reset", "Connection aborted", "Read timed out", "RemoteDisconnected")


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


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[Any]:
    """The spool opened for append+read under an exclusive lock (re-opened if a replay removed it meanwhile)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        f = open(path, "a+", encoding="utf-8")
        fcntl.flock(f, fcntl.LOCK_EX)
        if os.fstat(f.fileno()).st_nlink > 0:  # still the live file (not unlinked by a replay)
            break
        f.close()
    try:
        yield f
    finally:
        f.close()  # releases the lock


def append(path: Path, record: Mapping[str, Any]) -> None:
    """Append one record as a JSON line and fsync it."""
    line = json.dumps(dict(record), allow_nan=True) + "\n"
    with _locked(Path(path)) as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read(path: Path) -> list[dict]:
    """Records of a spool in order ([] if absent). A torn last line (killed mid-append) is ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        try:
            out.append(json.loads(ln))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                continue
            raise TrackingError(f"{path}:{i + 1}: corrupt spool record; fix or remove that line and re-run "
                                f"`alignrank sync`") from None
    return out


def is_offline_id(run_id: Optional[str]) -> bool:
    """True for the provisional id of a run created while the server was unreachable."""
    return bool(run_id) and str(run_id).startswith(OFFLINE_PREFIX)


def find_offline(client, offline_id: str, *, uri: str) -> Optional[str]:
    """The MLflow id of the run that a replay created for ``offline_id`` (None: not replayed yet)."""
    from alignrank.tracking.mlflow_tracker import _retry

    exps = _retry("list experiments", lambda: [e.experiment_id for e in client.search_experiments()], uri=uri)
    if not exps:
        return None
    runs = _retry("find offline run", lambda: client.search_runs(
        exps, filter_string=f"tags.`{OFFLINE_TAG}` = '{offline_id}'", max_results=1), uri=uri)
    return runs[0].info.run_id if runs else None


def _resolve(client, run_id: str, ids: dict, *, uri: str) -> str:
    """``run_id`` itself, or the MLflow id of the offline-created run it names."""
    if not is_offline_id(run_id):
        return run_id
    if run_id not in ids:
        real = find_offline(client, run_id, uri=uri)
        if real is None:
            raise TrackingError(f"run {run_id} was created offline but its 'create' record was never replayed; "
                                f"restore that record in its spool and re-run `alignrank sync`")
        ids[run_id] = real
    return ids[run_id]


def _create(client, offline_id: str, p: Mapping[str, Any], ids: dict, *, uri: str) -> str:
    """Create (once) the MLflow run of an offline-created run; returns its id."""
    from alignrank.tracking.mlflow_tracker import PARENT_TAG, _retry, get_or_create_experiment

    real = find_offline(client, offline_id, uri=uri)  # a previous replay made it already
    if real is None:
        exp_id = get_or_create_experiment(client, p["experiment"], uri=uri, artifact_root=p.get("artifact_root"))
        tags = {**p.get("tags", {}), OFFLINE_TAG: offline_id}
        if p.get("parent_run_id"):
            tags[PARENT_TAG] = _resolve(client, p["parent_run_id"], ids, uri=uri)
        real = _retry("replay create run", lambda: client.create_run(
            exp_id, start_time=int(p["start_time"]), tags=tags, run_name=p.get("run_name")), uri=uri).info.run_id
    ids[offline_id] = real
    return real


def apply(client, record: Mapping[str, Any], *, uri: str, ids: Optional[dict] = None) -> None:
    """Send one spooled record to the store with explicit timestamps (idempotent).

    ``ids`` maps provisional ``offline-`` ids to the MLflow ids replay created (filled in here).
    """
    from mlflow.entities import Metric, Param, RunTag

    from alignrank.tracking.mlflow_tracker import _retry

    ids = {} if ids is None else ids
    rid, kind, p = record["run_id"], record["kind"], record["payload"]
    if kind == "create":
        _create(client, rid, p, ids, uri=uri)
        return
    rid = _resolve(client, rid, ids, uri=uri)
    if kind == "metrics":
        items = [Metric(k, float(v), int(p["timestamp"]), int(p["step"])) for k, v in p["metrics"].items()]
        for i in range(0, len(items), 1000):
            _retry("replay metrics", lambda b=items[i:i + 1000]: client.log_batch(rid, metrics=b, synchronous=True),
                   uri=uri)
    elif kind == "params":
        items = [Param(k, v) for k, v in p["params"].items()]
        for i in range(0, len(items), 100):
            _retry("replay params", lambda b=items[i:i + 100]: client.log_batch(rid, params=b, synchronous=True),
                   uri=uri)
    elif kind == "tags":
        items = [RunTag(k, v) for k, v in p["tags"].items()]
        for i in range(0, len(items), 100):
            _retry("replay tags", lambda b=items[i:i + 100]: client.log_batch(rid, tags=b, synchronous=True), uri=uri)
    elif kind == "artifact":
        if not Path(p["path"]).is_file():
            raise TrackingError(f"spooled artifact {p['path']} of run {rid} is gone; restore it or remove its "
                                f"line from the spool and re-run `alignrank sync`")
        _retry(f"replay artifact {Path(p['path']).name}",
               lambda: client.log_artifact(rid, p["path"], p.get("artifact_path")), uri=uri)
    elif kind == "end":
        with contextlib.redirect_stdout(sys.stderr):
            _retry("replay end", lambda: client.set_terminated(rid, status=p["status"], end_time=int(p["timestamp"])),
                   uri=uri)
    else:
        raise TrackingError(f"unknown spool record kind {kind!r} (run {rid}); remove that line and re-run")


def replay(path: Path, uri: str, ids: Optional[dict] = None) -> int:
    """Replay every record of the spool at ``path`` to ``uri`` in order, then remove the spool.

    Holds the spool's lock meanwhile (a live run appending waits). On any failure nothing is removed
    (a later replay re-sends everything; duplicates are ignored by the store). Returns the record count;
    ``ids`` (optional) receives ``{offline id: MLflow id}`` of the runs created offline.
    """
    import mlflow

    path = Path(path)
    if not path.is_file():
        return 0
    with _locked(path) as f:
        f.seek(0)
        records = read(path)
        if records:
            client = mlflow.MlflowClient(tracking_uri=uri)
            ids = {} if ids is None else ids
            for r in records:
                apply(client, r, uri=uri, ids=ids)
        os.unlink(path)  # under the lock: an appender waiting on it re-opens a fresh file
    return len(records)


class _Pending:
    """Inner tracker of a run created offline, until a replay creates its MLflow run: every call fails as
    unreachable (so :class:`SpoolingTracker` spools it)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def _unreachable(self, *args: Any, **kwargs: Any) -> None:
        raise TrackingError(f"run {self.run_id} is offline") from ConnectionError("not in the tracking store yet")

    log_params = set_tags = log_metrics = log_artifact = end = _unreachable


class SpoolingTracker:
    """A tracker that spools its records locally while the tracking store is unreachable.

    Args:
        inner: The run's tracker (``MlflowTracker``, ``ActorTracker``, ...).
        path: Spool file (``<run_dir>/tracking_spool.jsonl``).
        uri: Tracking URI (probe and replay); default ``inner.uri`` when it has one.
        stream: Where the one-line "spooling" notices go.
    """

    def __init__(self, inner, path: Path, *, uri: Optional[str] = None, stream=sys.stderr) -> None:
        self.inner, self.path, self.run_id = inner, Path(path), inner.run_id
        self.uri = uri or getattr(inner, "uri", None)
        self.stream = stream
        self.offline = False
        self._probed = 0.0

    def _note(self, text: str) -> None:
        if self.stream is not None:
            print(f"tracking: {text}", file=self.stream, flush=True)

    def _back_online(self) -> bool:
        """While offline: every ``RECHECK_S``, probe the server and replay the spool if it answers."""
        if not self.uri or time.time() - self._probed < RECHECK_S:
            return False
        self._probed = time.time()
        return self.flush()

    @classmethod
    def offline_run(cls, path: Path, *, uri: str, experiment: str, run_name: Optional[str] = None,
                    parent_run_id: Optional[str] = None, tags: Optional[Mapping[str, Any]] = None,
                    artifact_root: Optional[str] = None, reason: str = "",
                    stream=sys.stderr) -> "SpoolingTracker":
        """A run created while the server is unreachable: provisional id, ``create`` record spooled first.

        Everything it logs is spooled until the server answers again (then replayed: the MLflow run is
        created, nested under ``parent_run_id``, and logging goes on directly), or ``alignrank sync``.
        """
        rid = OFFLINE_PREFIX + uuid.uuid4().hex
        append(path, {"run_id": rid, "kind": "create", "payload": {
            "experiment": experiment, "artifact_root": artifact_root, "run_name": run_name,
            "parent_run_id": parent_run_id, "tags": {str(k): str(v) for k, v in (tags or {}).items()},
            "start_time": int(time.time() * 1000)}})
        t = cls(_Pending(rid), path, uri=uri, stream=stream)
        t.offline, t._probed = True, time.time()
        t._note(f"{reason[:200] or 'server unreachable'} -> run {run_name or rid} starts offline as {rid}; records "
                f"spooled to {path} (replayed when the server is back, or by `alignrank sync`)")
        return t

    def _attach(self, ids: Mapping[str, str]) -> bool:
        """After a replay: log an offline-created run directly to the MLflow run made for it."""
        if not isinstance(self.inner, _Pending):
            return True
        import mlflow

        from alignrank.tracking.mlflow_tracker import MlflowTracker

        client = mlflow.MlflowClient(tracking_uri=self.uri)
        real = ids.get(self.run_id) or find_offline(client, self.run_id, uri=self.uri)
        if real is None:
            return False
        self.inner = MlflowTracker(client, real, uri=self.uri)
        return True

    def flush(self) -> bool:
        """Try once to replay the spool (if the server answers); True when nothing is left spooled."""
        pending = isinstance(self.inner, _Pending)
        if not self.path.is_file() and not pending:
            self.offline = False
            return True
        if not self.uri or not reachable(self.uri):
            return False
        ids: dict = {}
        try:
            n = replay(self.path, self.uri, ids)
            if not self._attach(ids):
                return False
        except TrackingError as e:
            self._note(f"spool {self.path} kept ({e}); run `alignrank sync` later")
            return False
        if n:
            self._note(f"server back: replayed {n} spooled records of run {self.run_id}")
        self.offline = False
        return True

    def _do(self, kind: str, payload: dict, call: Callable[[], None]) -> None:
        if self.offline and not self._back_online():
            append(self.path, {"run_id": self.run_id, "kind": kind, "payload": payload})
            return
        try:
            call()
        except TrackingError as e:
            if not is_unreachable(e):
                raise
            self.offline, self._probed = True, time.time()
            append(self.path, {"run_id": self.run_id, "kind": kind, "payload": payload})
            self._note(f"{str(e).splitlines()[0][:200]} -> training goes on; records spooled to {self.path} "
                       f"(replayed when the server is back, or by `alignrank sync`)")

    def log_params(self, params: Mapping[str, Any]) -> None:
        flat = {str(k): str(v)[:6000] for k, v in params.items()}
        self._do("params", {"params": flat}, lambda: self.inner.log_params(params))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        flat = {str(k): str(v)[:5000] for k, v in tags.items()}
        self._do("tags", {"tags": flat}, lambda: self.inner.set_tags(tags))

    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        from alignrank.tracking.mlflow_tracker import MlflowTracker

        ts = int(time.time() * 1000)  # the same timestamp online and on replay: a retried batch is no duplicate
        payload = {"metrics": {str(k): float(v) for k, v in metrics.items()}, "step": int(step or 0), "timestamp": ts}
        if isinstance(self.inner, MlflowTracker):
            call = lambda: self.inner.log_metrics(metrics, step=step, timestamp_ms=ts)  # noqa: E731
        else:
            call = lambda: self.inner.log_metrics(metrics, step=step)  # noqa: E731
        self._do("metrics", payload, call)

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        payload = {"path": str(Path(path).resolve()), "artifact_path": artifact_path}
        self._do("artifact", payload, lambda: self.inner.log_artifact(path, artifact_path))

    def end(self, status: str = "FINISHED") -> None:
        """End the run (spooled when offline), then try once to flush what is spooled."""
        self._do("end", {"status": status, "timestamp": int(time.time() * 1000)}, lambda: self.inner.end(status))
        if self.offline and not self.flush():
            self._note(f"tracking server still unreachable: {self.path} kept; run `alignrank sync` once it is back")


def spooling(tracker, run_dir: Path, *, uri: Optional[str] = None) -> SpoolingTracker:
    """``tracker`` wrapped to spool into ``<run_dir>/tracking_spool.jsonl`` while the store is unreachable."""
    return SpoolingTracker(tracker, Path(run_dir) / SPOOL_NAME, uri=uri)
