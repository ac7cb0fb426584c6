"""Fixtures shared by the tune tests."""

from tests.runs.test_ray_cluster import two_node_cluster  # noqa: F401  (a 2-node Ray cluster on 127.0.0.1)
