"""Head registry: a head builder turns the stock ``Detect`` built from the YOLOv8 YAML into the head
a variant uses (``detect`` returns it unchanged; ``csd`` is registered by ``alignrank.nn.csd_head``).

Examples:
    >>> "detect" in HEADS
    True
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from alignrank.registry import Registry

HeadBuilder = Callable[..., nn.Module]  # (detect: Detect, params: ModelParams) -> Detect subclass
HEADS = Registry("head")
register_head = HEADS.register  # decorator: @register_head("name")


@register_head("detect")
def build_detect(detect: nn.Module, params=None) -> nn.Module:
    """Stock YOLOv8 ``Detect`` head, unchanged (the baseline's)."""
    return detect
