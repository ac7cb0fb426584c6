"""Fixtures of the evaluation tests."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def coco128_gt(coco128) -> dict:
    """The coco128 instances dict (real COCO annotations, non-contiguous category ids, crowd regions)."""
    return json.loads((coco128 / "annotations" / "instances_train2017.json").read_text())
