"""``RunTracker``: one tracked run whose calls become :mod:`~alignrank.tracking.records`.

Each call (params, tags, metrics with their step and timestamp, artifact, end) is turned into one record
and handed to ``deliver``: :meth:`StoreClient.apply <alignrank.tracking.client.StoreClient.apply>` (straight
to the store), the writer actor (:func:`alignrank.tracking.writer.via_writer`) or a file
(:func:`file_tracker`: a seed child's relay, or a dead run's spool).

With a ``spool`` file, a record that cannot be delivered because the store is unreachable (after the
client's bounded retries) is appended there, and so is every later record of the run (order kept); the
server is probed again every ``RECHECK_S`` seconds and, once it answers, the spool is replayed and
delivery goes on. ``end`` flushes the spool once; what is left is replayed by ``alignrank sync``. Other
tracking errors (a refused value, a missing run) still raise. A run created while the store was
unreachable starts ``offline`` with a provisional ``offline-`` id (:meth:`TrackerFactory.open
<alignrank.tracking.session.TrackerFactory.open>`); the client resolves that id once its ``create``
record was replayed.

Examples:
    >>> import tempfile
    >>> from alignrank.tracking.records import read
    >>> relay = Path(tempfile.mkdtemp()) / "relay.jsonl"
    >>> t = file_tracker(relay, run_id="r1")
    >>> t.log_metrics({"train/box_loss": 1.5}, step=1)
    >>> [(r["kind"], r["payload"]["metrics"]) for r in read(relay)]
    [('metrics', {'train/box_loss': 1.5})]
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from alignrank.errors import TrackingError
from alignrank.tracking import client
from alignrank.tracking.records import append, record

RECHECK_S = 30.0  # while offline: probe the server at most this often


def _now_ms() -> int:
    return int(time.time() * 1000)


class RunTracker:
    """A :class:`~alignrank.tracking.base.Tracker` of one run: every call is one record handed to ``deliver``.

    Args:
        run_id: MLflow run id (or the provisional ``offline-`` id of a run created while the store was down).
        deliver: Sends one record to the store (or appends it to a file).
        spool: Where records go while the store is unreachable (None: such a failure raises).
        uri: Tracking URI (probe and replay of the spool).
        offline: Start offline (every record spooled until the server answers a probe).
        stream: Where the one-line "spooling" notices go (None: silent).
    """

    def __init__(self, run_id: str, deliver: Callable[[dict], None], *, spool: Optional[Path] = None,
                 uri: Optional[str] = None, offline: bool = False, stream=sys.stderr) -> None:
        self.run_id, self.deliver, self.uri, self.stream = run_id, deliver, uri, stream
        self.spool = Path(spool) if spool is not None else None
        self.offline = offline
        self._probed = time.time() if offline else 0.0
        self._ended = False

    def _note(self, text: str) -> None:
        if self.stream is not None:
            print(f"tracking: {text}", file=self.stream, flush=True)

    def send(self, rec: Mapping[str, Any]) -> None:
        """Deliver one record of this run (spooled while the store is unreachable, when there is a spool)."""
        rec = {**rec, "run_id": self.run_id}
        if self.offline and not self._back_online():
            append(self.spool, rec)
            return
        try:
            self.deliver(rec)
        except TrackingError as e:
            if self.spool is None or not client.is_unreachable(e):
                raise
            self.offline, self._probed = True, time.time()
            append(self.spool, rec)
            self._note(f"{str(e).splitlines()[0][:200]} -> training goes on; records spooled to {self.spool} "
                       f"(replayed when the server is back, or by `alignrank sync`)")

    def _back_online(self) -> bool:
        """While offline: every ``RECHECK_S``, probe the server and replay the spool if it answers."""
        if not self.uri or time.time() - self._probed < RECHECK_S:
            return False
        self._probed = time.time()
        return self.flush()

    def flush(self) -> bool:
        """Try once to replay the spool (if the server answers); True when nothing is left spooled."""
        pending = self.spool is not None and self.spool.is_file()
        if not pending and not self.offline:
            return True
        if not self.uri or not client.reachable(self.uri):
            return False
        try:
            n = client.StoreClient(self.uri).replay(self.spool) if pending else 0
        except TrackingError as e:
            self._note(f"spool {self.spool} kept ({e}); run `alignrank sync` later")
            return False
        if n:
            self._note(f"server back: replayed {n} spooled records of run {self.run_id}")
        self.offline = False
        return True

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log flat ``{dotted.key: value}`` params (values stringified, cut at MLflow's 6000 chars)."""
        self.send(record(self.run_id, "params", params={str(k): str(v)[:6000] for k, v in params.items()}))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set string tags (cut at MLflow's 5000 chars)."""
        self.send(record(self.run_id, "tags", tags={str(k): str(v)[:5000] for k, v in tags.items()}))

    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        """Log metrics at ``step``, all with one timestamp (the same online and on replay: no duplicate)."""
        self.send(record(self.run_id, "metrics", metrics={str(k): float(v) for k, v in metrics.items()},
                         step=int(step or 0), timestamp=_now_ms()))

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        """Upload a local file (optionally under ``artifact_path``)."""
        self.send(record(self.run_id, "artifact", path=str(Path(path).resolve()), artifact_path=artifact_path))

    def log_input(self, *, name: str, digest: str, source: str, profile: Optional[Mapping[str, Any]] = None,
                  context: str = "train") -> None:
        """Record the dataset the run reads as an MLflow dataset input (``digest``: at most 36 characters,
        MLflow's limit; ``source``: a URI or local path; ``profile``: JSON-able summary shown with it)."""
        self.send(record(self.run_id, "input", name=str(name), digest=str(digest)[:36], source=str(source),
                         profile=dict(profile or {}), context=str(context)))

    def end(self, status: str = "FINISHED") -> None:
        """Close the run (idempotent), then try once to flush what is spooled."""
        if self._ended:
            return
        self.send(record(self.run_id, "end", status=status, timestamp=_now_ms()))
        self._ended = True
        if self.offline and not self.flush():
            self._note(f"tracking server still unreachable: {self.spool} kept; run `alignrank sync` once it is back")


def file_tracker(path: Path, run_id: str) -> RunTracker:
    """A tracker of ``run_id`` that appends its records to ``path`` (a relay, or a spool)."""
    return RunTracker(run_id, functools.partial(append, Path(path)), stream=None)
