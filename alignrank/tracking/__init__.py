"""Experiment tracking: the ONLY package that imports mlflow.

``Tracker`` protocol (``log_params``, ``set_tags``, ``log_metrics``, ``log_artifact``, ``end``) and the
do-nothing tracker (:mod:`~alignrank.tracking.base`); :class:`~alignrank.tracking.tracker.RunTracker`, whose
calls are records (:mod:`~alignrank.tracking.records`) applied by the one MLflow client
(:mod:`~alignrank.tracking.client`), spooled while the store is unreachable and replayed by
``alignrank sync`` (:mod:`~alignrank.tracking.sync`); the factory every process opens runs with
(:mod:`~alignrank.tracking.session`), the single writer of the embedded store (:mod:`~alignrank.tracking.writer`),
the metric-name table and the provenance tags.

Examples:
    >>> from alignrank.tracking import NullTracker, sanitize
    >>> sanitize("metrics/mAP50(B)")
    'val/map50'
"""

from alignrank.tracking.base import NullTracker, Tracker
from alignrank.tracking.names import METRIC_NAMES, aliases, sanitize, sanitize_metrics

_LAZY = {  # importing mlflow costs ~1 s: NullTracker users should not pay it
    "resolve_tracking_uri": "store",
    "open_tracker": "session", "attach_to_run": "session", "mark_killed": "session", "tracking_session": "session",
    "direct_factory": "session", "TrackerFactory": "session",
    "RunTracker": "tracker",
}
__all__ = ["METRIC_NAMES", "NullTracker", "Tracker", "aliases", "sanitize", "sanitize_metrics", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"alignrank.tracking.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'alignrank.tracking' has no attribute {name!r}")
