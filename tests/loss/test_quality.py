"""Quality q = IoU^alpha * centerness^beta: hand values and detachment."""

from __future__ import annotations

import math

import pytest
import torch

from alignrank.loss.quality import centerness, positive_quality, quality


def test_centerness_hand_values():
    gt = torch.tensor([[0.0, 0.0, 4.0, 2.0]] * 3)
    pts = torch.tensor([[1.0, 1.0], [2.0, 1.0], [5.0, 1.0]])
    # (1,1): l 1 r 3, t 1 b 1 -> sqrt(1/3); (2,1): centre -> 1; (5,1): outside -> 0
    assert centerness(pts, gt).tolist() == pytest.approx([math.sqrt(1 / 3), 1.0, 0.0], abs=1e-6)


def test_quality_exponents_and_detach():
    iou = torch.tensor([0.25, 0.81], requires_grad=True)
    ctr = torch.tensor([0.5, 1.0])
    assert quality(iou, ctr, alpha=0.5, beta=0.0).tolist() == pytest.approx([0.5, 0.9])  # beta 0 ignores ctr
    q = quality(iou, ctr, alpha=1.0, beta=2.0)
    assert q.tolist() == pytest.approx([0.25 * 0.25, 0.81])
    assert not q.requires_grad


def test_positive_quality_from_boxes():
    pred = torch.tensor([[0.0, 0.0, 4.0, 2.0], [0.0, 0.0, 2.0, 2.0]], requires_grad=True)
    gt = torch.tensor([[0.0, 0.0, 4.0, 2.0], [0.0, 0.0, 4.0, 2.0]])
    pts = torch.tensor([[2.0, 1.0], [1.0, 1.0]])
    q, iou = positive_quality(pred, gt, pts, alpha=2.0, beta=1.0)
    assert iou.tolist() == pytest.approx([1.0, 0.5], abs=1e-6)
    assert q.tolist() == pytest.approx([1.0, 0.25 * math.sqrt(1 / 3)], abs=1e-6)
    assert not q.requires_grad
