"""The shared Registry: registration, duplicate names refused, unknown names listed; every registry uses it."""

from __future__ import annotations

import pytest

from alignrank.registry import Registry


def test_register_get_and_errors():
    r = Registry("widget")

    @r.register("a")
    def build_a():
        return 1

    assert r.get("a")() == 1 and list(r) == ["a"]
    with pytest.raises(KeyError, match="widget 'a' is already registered"):
        r.register("a")(build_a)
    with pytest.raises(KeyError, match=r"unknown widget 'b' \(registered: a\)"):
        r.get("b")


def test_project_registries_are_registries():
    from alignrank.loss.assigners import ASSIGNERS
    from alignrank.loss.iou import IOU_LOSSES
    from alignrank.loss.registry import LOSSES
    from alignrank.nn.model import _load_plugins
    from alignrank.nn.registry import HEADS

    _load_plugins()

    for reg in (HEADS, LOSSES, ASSIGNERS, IOU_LOSSES):
        assert isinstance(reg, Registry) and len(reg) >= 2
