"""Loss registry: a loss builder returns the criterion of a model (``v8`` = ultralytics' stock
``v8DetectionLoss``; ``rcq`` is registered by ``alignrank.loss.criterion``).

Examples:
    >>> "v8" in LOSSES
    True
"""

from __future__ import annotations

from typing import Callable

from alignrank.registry import Registry

LossBuilder = Callable[..., object]  # (model: DetectionModel, params: LossParams) -> criterion
LOSSES = Registry("loss")
register_loss = LOSSES.register  # decorator: @register_loss("name")


@register_loss("v8")
def build_v8_loss(model, params=None):
    """Ultralytics' stock ``v8DetectionLoss`` (the baseline's, bit-identical) for loss.assigner=tal and
    loss.iou_loss=ciou; otherwise the same v8 loss with the chosen assigner / IoU loss
    (:func:`alignrank.loss.v8.build_v8_loss`)."""
    from alignrank.loss.v8 import build_v8_loss as build

    return build(model, params)
