"""Experiment tracking: the ONLY package that imports mlflow.

``Tracker`` protocol (``log_params``, ``set_tags``, ``log_metrics``, ``log_artifact``, ``end``), the
MLflow implementation with parent/nested runs, the do-nothing tracker, the metric-name table and
the local tracking server that makes the embedded SQLite store safe for parallel workers.

Examples:
    >>> from alignrank.tracking import NullTracker, sanitize
    >>> sanitize("metrics/mAP50(B)")
    'val/map50'
"""

from alignrank.tracking.base import NullTracker, Tracker
from alignrank.tracking.names import METRIC_NAMES, aliases, sanitize, sanitize_metrics

__all__ = ["METRIC_NAMES", "NullTracker", "Tracker", "aliases", "open_tracker", "resolve_tracking_uri",
           "sanitize", "sanitize_metrics", "tracking_session", "direct_factory", "TrackerFactory", "MlflowTracker"]


def __getattr__(name: str):  # lazy: importing mlflow costs ~1 s, NullTracker users should not pay it
    if name in ("open_tracker", "resolve_tracking_uri"):
        from alignrank.tracking import store

        return getattr(store, name)
    if name in ("tracking_session", "direct_factory", "TrackerFactory"):
        from alignrank.tracking import session

        return getattr(session, name)
    if name == "MlflowTracker":
        from alignrank.tracking.mlflow_tracker import MlflowTracker

        return MlflowTracker
    raise AttributeError(f"module 'alignrank.tracking' has no attribute {name!r}")
