"""ASSIGNERS registry: ``name -> builder(num_classes=, stride=, params=LossParams) -> nn.Module``.

Examples:
    >>> from alignrank.loss.assigners import ASSIGNERS
    >>> "tal" in ASSIGNERS
    True
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from alignrank.config.choices import ASSIGNER_NAMES
from alignrank.registry import Registry

AssignerBuilder = Callable[..., nn.Module]
ASSIGNERS = Registry("assigner", names=ASSIGNER_NAMES)  # names validated by params (loss.assigner)
register_assigner = ASSIGNERS.register  # decorator: @register_assigner("name")


def build_assigner(name: str, *, num_classes: int, stride: list[float], params) -> nn.Module:
    """Build the assigner ``name`` for ``num_classes`` classes and the model's level strides.

    Args:
        name: Registered assigner name (``loss.assigner``).
        num_classes: Number of classes.
        stride: Strides of the detection levels, e.g. ``[8.0, 16.0, 32.0]``.
        params: ``LossParams`` (tal_topk, simota_radius, atss_topk).
    """
    try:
        builder = ASSIGNERS[name]
    except KeyError:
        raise KeyError(f"unknown loss.assigner '{name}' (registered: {', '.join(ASSIGNERS)})") from None
    return builder(num_classes=num_classes, stride=list(stride), params=params)
