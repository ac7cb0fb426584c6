"""Fixtures shared by the reliability drills."""

from tests.reliability.test_tracking_midrun import server  # noqa: F401  (a real `mlflow server` on loopback)
