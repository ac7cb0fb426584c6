"""The ``Tracker`` protocol every training path logs through, and the do-nothing ``NullTracker``.

A tracker is one experiment-tracking run. The training code calls only these six methods, so the
MLflow implementation (:class:`alignrank.tracking.tracker.RunTracker`), the no-op one and test doubles
are interchangeable.

Examples:
    >>> t = NullTracker()
    >>> t.log_metrics({"val/map50_95": 0.1}, step=1)
    >>> t.end("FINISHED")
    >>> t.run_id is None
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, runtime_checkable

STATUSES = ("FINISHED", "FAILED", "KILLED")


@runtime_checkable
class Tracker(Protocol):
    """One tracked run: params, tags, step metrics, artifacts, end status."""

    run_id: Optional[str]

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log flat ``{dotted.key: value}`` params (values are stringified)."""

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set string tags."""

    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        """Log numeric metrics at ``step`` (epoch); names must already be MLflow-safe."""

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        """Upload a local file as an artifact (optionally under ``artifact_path``)."""

    def log_input(self, *, name: str, digest: str, source: str, profile: Optional[Mapping[str, Any]] = None,
                  context: str = "train") -> None:
        """Record the dataset the run reads (an MLflow dataset input: name, digest, source URI, profile)."""

    def end(self, status: str = "FINISHED") -> None:
        """Close the run with ``FINISHED``, ``FAILED`` or ``KILLED``."""


class NullTracker:
    """A tracker that records nothing (tracking disabled, dry runs, unit tests)."""

    run_id: Optional[str] = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: Optional[str] = None) -> None:
        pass

    def log_input(self, *, name: str, digest: str, source: str, profile: Optional[Mapping[str, Any]] = None,
                  context: str = "train") -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        pass
