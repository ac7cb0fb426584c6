"""Box IoU metrics for the regression loss: CIoU (YOLOv8's), DIoU and SIoU, plus plain IoU.

Every function takes two broadcastable (..., 4) xyxy tensors and returns the metric with a trailing
singleton dimension (..., 1), like ultralytics' ``bbox_iou``; the box loss is ``1 - metric``.
CIoU and DIoU are ultralytics' own ``bbox_iou`` (so ``ciou`` is bit-identical to the stock loss);
SIoU follows Gevorgyan (2022, arXiv:2205.12740) in the YOLOv6 form:

    SIoU = IoU - (Delta + Omega) / 2
    Lambda = sin(2 * arcsin(min(|dx|, |dy|) / sigma))          angle cost, sigma = centre distance
    Delta  = sum_{t in x,y} 1 - exp(-(2 - Lambda) * (d_t / c_t)^2)   distance cost, c = enclosing box side
    Omega  = sum_{t in w,h} (1 - exp(-|w1 - w2| / max(w1, w2)))^4    shape cost (theta = 4)

Examples:
    >>> import torch
    >>> a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    >>> round(float(IOU_LOSSES["diou"](a, a + 1.0)), 4)  # IoU 1/7, rho^2/c^2 = 2/18
    0.0317
"""

from __future__ import annotations

from typing import Callable

import torch
from ultralytics.utils.metrics import bbox_iou

from alignrank.config.choices import IOU_LOSS_NAMES
from alignrank.registry import Registry

IoUFn = Callable[..., torch.Tensor]  # (box1 (...,4) xyxy, box2 (...,4) xyxy, eps) -> (..., 1)
IOU_LOSSES = Registry("IoU loss", names=IOU_LOSS_NAMES)  # names validated by params (loss.iou_loss)
register_iou = IOU_LOSSES.register  # decorator: @register_iou("name")


def get_iou(name: str) -> IoUFn:
    """Look up an IoU metric; unknown names get a one-line error listing the known ones."""
    try:
        return IOU_LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss.iou_loss '{name}' (registered: {', '.join(IOU_LOSSES)})") from None


def box_iou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Plain IoU of xyxy boxes, (..., 4) x (..., 4) -> (..., 1) (ultralytics' ``bbox_iou``, no penalty)."""
    return bbox_iou(box1, box2, xywh=False, eps=eps)


@register_iou("ciou")
def ciou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU (Zheng et al. 2020), exactly ultralytics' ``bbox_iou(..., CIoU=True)``; (..., 1)."""
    return bbox_iou(box1, box2, xywh=False, CIoU=True, eps=eps)


@register_iou("diou")
def diou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Distance IoU: IoU - rho^2 / c^2 (ultralytics' ``bbox_iou(..., DIoU=True)``); (..., 1)."""
    return bbox_iou(box1, box2, xywh=False, DIoU=True, eps=eps)


@register_iou("siou")
def siou(box1: torch.Tensor, box2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """SCYLLA IoU (angle + distance + shape costs, theta = 4); (..., 1). Symmetric in its arguments."""
    b1_x1, b1_y1, b1_x2, b1_y2 = box1.chunk(4, -1)  # each (..., 1)
    b2_x1, b2_y1, b2_x2, b2_y2 = box2.chunk(4, -1)
    w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
    w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps
    inter_w = (b1_x2.minimum(b2_x2) - b1_x1.maximum(b2_x1)).clamp(0)
    inter = inter_w * (b1_y2.minimum(b2_y2) - b1_y1.maximum(b2_y1)).clamp(0)
    iou = inter / (w1 * h1 + w2 * h2 - inter + eps)
    cw = b1_x2.maximum(b2_x2) - b1_x1.minimum(b2_x1) + eps  # enclosing box width
    ch = b1_y2.maximum(b2_y2) - b1_y1.minimum(b2_y1) + eps  # enclosing box height
    dx = (b2_x1 + b2_x2 - b1_x1 - b1_x2) * 0.5  # centre offsets
    dy = (b2_y1 + b2_y2 - b1_y1 - b1_y2) * 0.5
    sigma = (dx.pow(2) + dy.pow(2) + eps**2).sqrt()  # centre distance (eps keeps the gradient finite at 0)
    sin_a = dx.abs().minimum(dy.abs()) / sigma  # sine of the angle to the nearest axis, in [0, 1/sqrt(2)]
    angle = 2 * sin_a * (1 - sin_a.pow(2)).clamp(min=0).sqrt()  # sin(2 arcsin x) = cos(2 arcsin x - pi/2)
    gamma = 2 - angle
    distance = 2 - torch.exp(-gamma * (dx / cw).pow(2)) - torch.exp(-gamma * (dy / ch).pow(2))
    omega_w = (w1 - w2).abs() / w1.maximum(w2)
    omega_h = (h1 - h2).abs() / h1.maximum(h2)
    shape = (1 - torch.exp(-omega_w)).pow(4) + (1 - torch.exp(-omega_h)).pow(4)
    return iou - 0.5 * (distance + shape)

