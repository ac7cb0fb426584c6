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


def test_unknown_name_suggests_the_closest():
    r = Registry("widget")
    r.add("full", 1)
    with pytest.raises(KeyError, match=r"unknown widget 'ful' \(did you mean 'full'\? registered: full\)"):
        r.get("ful")


def test_variants_use_the_registry_class():
    from alignrank.variants import VARIANTS, get_variant

    assert isinstance(VARIANTS, Registry) and get_variant("full").head == "csd"
    with pytest.raises(KeyError, match="did you mean 'full'"):
        get_variant("fulll")


def test_a_bound_registry_lists_its_names_in_the_catalogue():
    names = Registry("loss.widget")
    impl = Registry("widget", names=names)

    @impl.register("ota")
    def build_ota():
        """Optimal transport assignment."""

    assert names["ota"] == "Optimal transport assignment."


def test_catalogues_equal_the_registries_of_implementations():
    """Every name params accept has an implementation, and every implementation is accepted."""
    from alignrank.config.choices import ASSIGNER_NAMES, IOU_LOSS_NAMES
    from alignrank.loss.assigners import ASSIGNERS
    from alignrank.loss.iou import IOU_LOSSES

    assert set(ASSIGNER_NAMES) == set(ASSIGNERS) and set(IOU_LOSS_NAMES) == set(IOU_LOSSES)
    assert ASSIGNERS.names is ASSIGNER_NAMES and IOU_LOSSES.names is IOU_LOSS_NAMES


def test_params_accept_a_plugin_assigner_once_it_is_registered():
    from alignrank.config import ParamsError, load_params
    from alignrank.config.choices import ASSIGNER_NAMES
    from alignrank.loss.assigners import ASSIGNERS, register_assigner

    with pytest.raises(ParamsError, match="loss.assigner: must be one of"):
        load_params(None, ["loss.assigner=plugin_ota"])
    try:
        register_assigner("plugin_ota")(lambda **kw: None)
        assert load_params(None, ["loss.assigner=plugin_ota"]).loss.assigner == "plugin_ota"
    finally:
        ASSIGNERS.pop("plugin_ota", None)
        ASSIGNER_NAMES.pop("plugin_ota", None)
