"""IoU metrics: hand-computed CIoU / DIoU / SIoU values, symmetry, perfect boxes, gradients for every option."""

from __future__ import annotations

import math

import pytest
import torch

from alignrank.loss.iou import IOU_LOSSES, box_iou, get_iou

A = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
B = torch.tensor([[1.0, 0.0, 3.0, 4.0]])  # w 2, h 4
C = torch.tensor([[2.0, 0.0, 4.0, 2.0]])  # A shifted right by 2 (touching)

# A vs B by hand: intersection x [1,2] * y [0,2] = 2; union 4 + 8 - 2 = 10 -> IoU 0.2
# enclosing box [0,0,3,4]: c^2 = 9 + 16 = 25; centres (1,1) and (2,2): rho^2 = 2
IOU_AB = 0.2
DIOU_AB = 0.2 - 2 / 25  # 0.12
V_AB = 4 / math.pi**2 * (math.atan(2 / 4) - math.atan(2 / 2)) ** 2  # aspect term 0.041956
CIOU_AB = DIOU_AB - V_AB * V_AB / (1 - IOU_AB + V_AB)  # 0.117909
# SIoU: dx = dy = 1 -> sin = 1/sqrt2 -> angle = sin(2 * pi/4) = 1 -> gamma 2 - 1 = 1
# distance = 2 - exp(-(1/3)^2) - exp(-(1/4)^2); shape: w equal (0), h: (1 - exp(-|2-4|/4))^4
SIOU_AB = 0.2 - 0.5 * ((2 - math.exp(-1 / 9) - math.exp(-1 / 16)) + (1 - math.exp(-0.5)) ** 4)  # 0.105141
# A vs C: IoU 0, dx = 2, dy = 0 -> angle 0 -> gamma 2; enclosing 4 x 2; shapes equal
SIOU_AC = 0.0 - 0.5 * (1 - math.exp(-2 * (2 / 4) ** 2))  # -0.196735


def test_hand_values():
    assert abs(CIOU_AB - 0.117909) < 1e-5 and abs(SIOU_AB - 0.105141) < 1e-5 and abs(SIOU_AC + 0.196735) < 1e-5
    assert float(box_iou(A, B)) == pytest.approx(IOU_AB, abs=1e-5)
    assert float(get_iou("diou")(A, B)) == pytest.approx(DIOU_AB, abs=1e-5)
    assert float(get_iou("ciou")(A, B)) == pytest.approx(CIOU_AB, abs=1e-5)
    assert float(get_iou("siou")(A, B)) == pytest.approx(SIOU_AB, abs=1e-5)
    assert float(get_iou("siou")(A, C)) == pytest.approx(SIOU_AC, abs=1e-5)
    assert float(get_iou("siou")(B, A)) == pytest.approx(SIOU_AB, abs=1e-5)  # symmetric


def test_unknown_name():
    with pytest.raises(KeyError, match="loss.iou_loss 'giou'"):
        get_iou("giou")


@pytest.mark.parametrize("name", sorted(IOU_LOSSES))
def test_every_iou_loss_forward_backward(name):
    fn = get_iou(name)
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(64, 2, generator=gen) * 50
    pred = torch.cat((xy, xy + 1 + torch.rand(64, 2, generator=gen) * 30), 1).requires_grad_()
    gt = torch.cat((xy + 3, xy + 20), 1)
    gt[0] = pred[0].detach()  # one perfect box (coincident centres)
    val = fn(pred, gt)
    assert val.shape == (64, 1)
    assert float(val[0].detach()) == pytest.approx(1.0, abs=1e-5)  # loss 1 - metric = 0 for a perfect box
    assert (val <= 1 + 1e-6).all() and (val >= -1.5).all()
    (1 - val).sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[1:].abs().sum() > 0
    # moving the prediction towards the GT improves every metric
    closer = pred.detach() + 0.5 * (gt - pred.detach())
    assert (fn(closer[1:], gt[1:]) > val.detach()[1:] - 1e-6).float().mean() > 0.9
