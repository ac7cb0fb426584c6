"""Loss registry: a loss builder returns the criterion of a model (``v8`` = ultralytics' stock
``v8DetectionLoss``; ``rcq_augment`` and ``rcq_replace`` are registered by ``alignrank.loss.criterion``).

:data:`LOSS_ASSIGNERS` tells, from the params alone (no model), which assigner each registered loss uses, so
that tables can label a pair of variants whose losses use different assigners (``loss.rcq_assigner``) as
differing in assigner as well as in loss (:func:`assigner_of`).

Examples:
    >>> "v8" in LOSSES
    True
    >>> from alignrank.config.schema import LossParams
    >>> assigner_of("v8", LossParams(rcq_assigner="simota"))
    'tal'
"""

from __future__ import annotations

from typing import Callable

from alignrank.registry import Registry

LossBuilder = Callable[..., object]  # (model: DetectionModel, params: LossParams) -> criterion
LOSSES = Registry("loss")
register_loss = LOSSES.register  # decorator: @register_loss("name")
LOSS_ASSIGNERS = Registry("loss")  # loss name -> fn(LossParams) -> the assigner name it uses
register_loss_assigner = LOSS_ASSIGNERS.register  # decorator: @register_loss_assigner("name")


def assigner_of(loss: str, params) -> str:
    """The assigner (``loss.assigner`` / ``loss.rcq_assigner`` resolved) that the registered ``loss`` uses."""
    return LOSS_ASSIGNERS.get(loss)(params)


@register_loss("v8")
def build_v8_loss(model, params=None):
    """Ultralytics' stock ``v8DetectionLoss`` (the baseline's, bit-identical) for loss.assigner=tal and
    loss.iou_loss=ciou; otherwise the same v8 loss with the chosen assigner / IoU loss
    (:func:`alignrank.loss.v8.build_v8_loss`)."""
    from alignrank.loss.v8 import build_v8_loss as build

    return build(model, params)


@register_loss_assigner("v8")
def v8_assigner(params) -> str:
    """``loss.assigner``."""
    return params.assigner
