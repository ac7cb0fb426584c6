"""Assigners: hand-made cases with known answers (TAL, SimOTA, ATSS) and the shared contract for every option."""

from __future__ import annotations

import pytest
import torch
from ultralytics.utils.tal import TaskAlignedAssigner

from alignrank.config.schema import LossParams
from alignrank.loss.assigners import ASSIGNERS, build_assigner
from alignrank.loss.assigners.atss import ATSSAssigner
from alignrank.loss.assigners.simota import SimOTAAssigner


def grid(size: int, stride: float) -> torch.Tensor:
    """(size*size, 2) anchor points of one level, row-major (x fastest), at (i + 0.5) * stride."""
    c = (torch.arange(size, dtype=torch.float32) + 0.5) * stride
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), -1)


def anchors(levels):
    """Points (A, 2) and strides (A, 1) of several (size, stride) levels, concatenated like make_anchors."""
    pts = torch.cat([grid(n, s) for n, s in levels])
    strides = torch.cat([torch.full((n * n, 1), float(s)) for n, s in levels])
    return pts, strides


def far_boxes(a: int, b: int = 1) -> torch.Tensor:
    """(b, a, 4) tiny predicted boxes far outside the image (IoU 0 with any GT)."""
    return torch.tensor([500.0, 500.0, 501.0, 501.0]).repeat(b, a, 1)


def idx(x: float, y: float, size: int = 4, stride: float = 8.0) -> int:
    """Anchor index of the point (x, y) on a (size x size, stride) level."""
    return int(y // stride) * size + int(x // stride)


# ----------------------------------------------------------------------------- TAL


def test_tal_hand_case():
    # 4x4 grid, stride 8 (32 px). GT [0,0,16,16] holds anchors (4,4) (12,4) (4,12) (12,12).
    # (4,4) predicts the GT exactly (CIoU 1); (12,12) predicts [4,4,12,12] (same centre and aspect: CIoU = IoU = .25);
    # the others predict far boxes. With top-k 2 the positives are (4,4) and (12,12); the normalised target scores are
    # align / max_align * max_iou: 1 and .25^6 (align = score^.5 * iou^6, equal scores).
    pts, strides = anchors([(4, 8)])
    pd = far_boxes(16)
    pd[0, idx(4, 4)] = torch.tensor([0.0, 0.0, 16.0, 16.0])
    pd[0, idx(12, 12)] = torch.tensor([4.0, 4.0, 12.0, 12.0])
    scores = torch.full((1, 16, 3), 0.5)
    gt_labels, gt = torch.tensor([[[2.0]]]), torch.tensor([[[0.0, 0.0, 16.0, 16.0]]])
    a = build_assigner("tal", num_classes=3, stride=[8.0], params=LossParams(tal_topk=2))
    labels, boxes, tscores, fg, gt_idx = a(scores, pd, pts, gt_labels, gt, torch.ones(1, 1, 1), anc_strides=strides)
    assert fg[0].nonzero().flatten().tolist() == [idx(4, 4), idx(12, 12)]
    assert tscores[0, idx(4, 4)].tolist() == pytest.approx([0, 0, 1.0], abs=1e-5)
    assert tscores[0, idx(12, 12), 2].item() == pytest.approx(0.25**6, rel=1e-3)
    assert labels[0, idx(4, 4)].item() == 2 and boxes[0, idx(12, 12)].tolist() == [0.0, 0.0, 16.0, 16.0]


def test_tal_is_stock():
    gen = torch.Generator().manual_seed(0)
    pts, strides = anchors([(8, 8), (4, 16), (2, 32)])
    xy = torch.rand(2, 84, 2, generator=gen) * 48
    pd = torch.cat((xy, xy + 4 + torch.rand(2, 84, 2, generator=gen) * 20), -1)
    scores = torch.rand(2, 84, 4, generator=gen)
    gxy = torch.rand(2, 3, 2, generator=gen) * 30
    gt = torch.cat((gxy, gxy + 10 + torch.rand(2, 3, 2, generator=gen) * 20), -1)
    labels = torch.randint(0, 4, (2, 3, 1), generator=gen).float()
    mask = torch.tensor([[[1.0], [1.0], [1.0]], [[1.0], [1.0], [0.0]]])
    gt[1, 2] = 0
    ours = build_assigner("tal", num_classes=4, stride=[8.0, 16.0, 32.0], params=LossParams())
    stock = TaskAlignedAssigner(topk=10, num_classes=4, alpha=0.5, beta=6.0, stride=[8.0, 16.0, 32.0])
    ours, stock = ours(scores, pd, pts, labels, gt, mask, anc_strides=strides), stock(scores, pd, pts, labels, gt, mask)
    for x, y in zip(ours, stock):
        assert torch.equal(x, y)


# ----------------------------------------------------------------------------- SimOTA


def test_simota_dynamic_k():
    # GT [0,0,16,16]: in-box anchors (4,4) (12,4) (4,12) (12,12) predict boxes of IoU 1, .9, .8 and 0.
    # Top-10 IoU sum 2.7 -> dynamic k = 2 -> the two cheapest: (4,4) and (12,4); target = one-hot * IoU.
    pts, strides = anchors([(4, 8)])
    pd = far_boxes(16)
    pd[0, idx(4, 4)] = torch.tensor([0.0, 0.0, 16.0, 16.0])
    pd[0, idx(12, 4)] = torch.tensor([0.0, 0.0, 16.0, 14.4])
    pd[0, idx(4, 12)] = torch.tensor([0.0, 0.0, 16.0, 12.8])
    scores = torch.full((1, 16, 2), 0.5)
    a = SimOTAAssigner(num_classes=2, radius=2.5)
    gt_labels, gt = torch.tensor([[[1.0]]]), torch.tensor([[[0.0, 0.0, 16.0, 16.0]]])
    labels, boxes, tscores, fg, gt_idx = a(scores, pd, pts, gt_labels, gt, torch.ones(1, 1, 1), anc_strides=strides)
    assert fg[0].nonzero().flatten().tolist() == [idx(4, 4), idx(12, 4)]
    assert tscores[0, idx(4, 4)].tolist() == pytest.approx([0.0, 1.0], abs=1e-5)
    assert tscores[0, idx(12, 4)].tolist() == pytest.approx([0.0, 0.9], abs=1e-5)
    assert labels[0, fg[0]].tolist() == [1, 1]


def test_simota_class_cost_and_conflict():
    pts, strides = anchors([(4, 8)])
    gt = torch.tensor([[[0.0, 0.0, 16.0, 16.0], [0.0, 0.0, 8.0, 8.0]]])
    # 1) class cost: (4,4) IoU 1 but p(class) .01; (12,4) IoU .9 and p .99; sum of IoUs 1.9 -> k = 1.
    #    cost(4,4) = -ln .01 - ln .5 = 5.30 ; cost(12,4) = -ln .99 - ln .5 + 3 * -ln .9 = 1.02 -> (12,4) wins.
    pd = far_boxes(16)
    pd[0, idx(4, 4)] = torch.tensor([0.0, 0.0, 16.0, 16.0])
    pd[0, idx(12, 4)] = torch.tensor([0.0, 0.0, 16.0, 14.4])
    scores = torch.full((1, 16, 2), 0.5)
    scores[0, idx(4, 4), 0], scores[0, idx(12, 4), 0] = 0.01, 0.99
    a = SimOTAAssigner(num_classes=2, radius=2.5)
    one = a(scores, pd, pts, torch.zeros(1, 1, 1), gt[:, :1], torch.ones(1, 1, 1), anc_strides=strides)
    assert one[3][0].nonzero().flatten().tolist() == [idx(12, 4)]
    # 2) conflict: GT0 [0,0,16,16] and GT1 [0,0,8,8] (same class, equal scores). (4,4) predicts GT0 exactly (IoU 1 with
    #    GT0, .25 with GT1), (12,12) predicts [4,4,12,12]. Both GTs get k = 1 and both pick (4,4): for GT1 the other
    #    candidates lie outside its box (+1e5). (4,4) costs GT0 cls + 0 and GT1 cls + 3 * -ln .25 -> it goes to GT0.
    pd = far_boxes(16)
    pd[0, idx(4, 4)] = torch.tensor([0.0, 0.0, 16.0, 16.0])
    pd[0, idx(12, 12)] = torch.tensor([4.0, 4.0, 12.0, 12.0])
    scores = torch.full((1, 16, 2), 0.5)
    labels, boxes, tscores, fg, gt_idx = a(scores, pd, pts, torch.zeros(1, 2, 1), gt, torch.ones(1, 2, 1), strides)
    assert fg[0].nonzero().flatten().tolist() == [idx(4, 4)]
    assert gt_idx[0, idx(4, 4)].item() == 0 and boxes[0, idx(4, 4)].tolist() == [0.0, 0.0, 16.0, 16.0]


def test_simota_centre_region_radius():
    # A 2 px GT at (17,17) holds no anchor point; with radius 0.25 strides (2 px) no anchor is a candidate,
    # with radius 1 (8 px) the four anchors (12|20, 12|20) are (at cost + 1e5) and k = 1 picks one of them.
    pts, strides = anchors([(4, 8)])
    gt = torch.tensor([[[16.0, 16.0, 18.0, 18.0]]])
    pd = far_boxes(16)
    pd[0, idx(20, 20)] = torch.tensor([15.0, 15.0, 18.0, 18.0])  # the only one overlapping the GT
    args = (torch.full((1, 16, 1), 0.5), pd, pts, torch.zeros(1, 1, 1), gt, torch.ones(1, 1, 1))
    assert not SimOTAAssigner(1, radius=0.25)(*args, anc_strides=strides)[3].any()
    fg = SimOTAAssigner(1, radius=1.0)(*args, anc_strides=strides)[3]
    assert fg[0].nonzero().flatten().tolist() == [idx(20, 20)]


# ----------------------------------------------------------------------------- ATSS

LEVELS = [(8, 8), (4, 16), (2, 32)]  # 64-px image: 64 + 16 + 4 anchors


def test_atss_hand_case():
    # GT0 [8,8,48,48] (centre (28,28)); top-1 closest anchor per level: (28,28) on P3 (anchor box [8,8,48,48], IoU 1),
    # (24,24) on P4 (box side 80, IoU 1600/6400 = .25), (16,16) on P5 (side 160, IoU .0625).
    # mean .4375 + std(unbiased) .4961 = .9336 -> only the P3 anchor (28,28) (index 3*8+3 = 27), inside the GT.
    # GT1 [12,12,44,44]: IoUs .64, .16, .04 -> threshold .5975 -> (28,28) again; it goes to GT0 (IoU 1 > .64).
    pts, strides = anchors(LEVELS)
    pd = far_boxes(84)
    pd[0, 27] = torch.tensor([8.0, 8.0, 48.0, 28.0])  # IoU .5 with GT0
    gt = torch.tensor([[[8.0, 8.0, 48.0, 48.0], [12.0, 12.0, 44.0, 44.0]]])
    a = ATSSAssigner(num_classes=3, topk=1)
    scores = torch.full((1, 84, 3), 0.5)
    gt_labels = torch.tensor([[[1.0], [2.0]]])
    labels, boxes, tscores, fg, gt_idx = a(scores, pd, pts, gt_labels[:, :1], gt[:, :1], torch.ones(1, 1, 1), strides)
    assert fg[0].nonzero().flatten().tolist() == [27]
    assert tscores[0, 27].tolist() == pytest.approx([0.0, 0.5, 0.0], abs=1e-5)
    labels, boxes, tscores, fg, gt_idx = a(scores, pd, pts, gt_labels, gt, torch.ones(1, 2, 1), anc_strides=strides)
    assert fg[0].nonzero().flatten().tolist() == [27] and gt_idx[0, 27].item() == 0 and labels[0, 27].item() == 1
    # GT1 alone takes (28,28) too
    fg1 = a(scores, pd, pts, torch.tensor([[[2.0]]]), gt[:, 1:], torch.ones(1, 1, 1), anc_strides=strides)[3]
    assert fg1[0].nonzero().flatten().tolist() == [27]


def test_atss_threshold_is_mean_plus_std():
    # GT [9,8,49,48] (centre (29,28)), top-2 closest per level: P3 (28,28) IoU 1560/1640 = .9512 and (36,28)
    # IoU 1320/1880 = .7021; P4 (24,24) and (40,24) .25 each; P5 (16,16) and (48,16) .0625 each.
    # mean .3797 + std(unbiased) .3648 = .7445 -> only (28,28) (index 27); a mean-only threshold would admit
    # (36,28) (index 28) too.
    pts, strides = anchors(LEVELS)
    ious = [1560 / 1640, 1320 / 1880, 0.25, 0.25, 0.0625, 0.0625]
    thr = torch.tensor(ious).mean() + torch.tensor(ious).std()
    assert ious[1] < float(thr) < ious[0] and abs(float(thr) - 0.7445) < 1e-3
    args = (torch.full((1, 84, 1), 0.5), far_boxes(84), pts, torch.zeros(1, 1, 1))
    fg = ATSSAssigner(num_classes=1, topk=2)(*args, torch.tensor([[[9.0, 8.0, 49.0, 48.0]]]), torch.ones(1, 1, 1), strides)[3]
    assert fg[0].nonzero().flatten().tolist() == [27]


def test_atss_needs_centre_inside_box():
    # A thin GT [25,0,27,64] (centre (26,32)): candidates on P3 are (28,28) and (28,36) (closest), but no anchor point
    # lies strictly inside x in (25,27) -> no positive at all; widening it to [19,0,33,64] admits x = 20 / 28 anchors.
    pts, strides = anchors(LEVELS)
    args = (torch.full((1, 84, 1), 0.5), far_boxes(84), pts, torch.zeros(1, 1, 1))
    a = ATSSAssigner(num_classes=1, topk=2)
    assert not a(*args, torch.tensor([[[25.0, 0.0, 27.0, 64.0]]]), torch.ones(1, 1, 1), anc_strides=strides)[3].any()
    fg = a(*args, torch.tensor([[[19.0, 0.0, 33.0, 64.0]]]), torch.ones(1, 1, 1), anc_strides=strides)[3]
    inside = pts[fg[0]]
    assert len(inside) > 0 and ((inside[:, 0] > 19) & (inside[:, 0] < 33)).all()


# ----------------------------------------------------------------------------- every assigner: the shared contract


@pytest.mark.parametrize("name", sorted(ASSIGNERS))
def test_contract(name):
    gen = torch.Generator().manual_seed(1)
    pts, strides = anchors(LEVELS)
    b, nc = 2, 4
    xy = pts.expand(b, -1, -1) - 6 + torch.rand(b, 84, 2, generator=gen) * 4
    pd = torch.cat((xy, xy + 8 + torch.rand(b, 84, 2, generator=gen) * 20), -1)
    scores = torch.rand(b, 84, nc, generator=gen)
    gt = torch.tensor(
        [
            [[4.0, 4.0, 30.0, 40.0], [30.0, 20.0, 60.0, 60.0], [10.0, 40.0, 30.0, 62.0]],
            [[8.0, 8.0, 50.0, 50.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],  # image 1: one GT + padding
        ]
    )
    mask = (gt.sum(-1, keepdim=True) > 0).float()
    labels = torch.tensor([[[0.0], [3.0], [1.0]], [[2.0], [0.0], [0.0]]])
    a = build_assigner(name, num_classes=nc, stride=[8.0, 16.0, 32.0], params=LossParams())
    tl, tb, ts, fg, gi = a(scores, pd, pts, labels, gt, mask, anc_strides=strides)
    assert tl.shape == (b, 84) and tb.shape == (b, 84, 4) and ts.shape == (b, 84, nc)
    assert fg.shape == gi.shape == (b, 84)
    assert fg.dtype == torch.bool and fg[0].any() and fg[1].any()
    assert (gi[1][fg[1]] == 0).all()  # padded GTs never assigned
    assert torch.equal(tl[fg], labels[torch.arange(b)[:, None].expand(b, 84)[fg], gi[fg], 0].long())
    assert (ts[~fg] == 0).all() and (ts[fg].sum(-1) <= 1 + 1e-6).all() and (ts >= 0).all()
    # no GT at all
    empty = a(scores, pd, pts, torch.zeros(b, 0, 1), torch.zeros(b, 0, 4), torch.zeros(b, 0, 1), anc_strides=strides)
    assert not empty[3].any() and empty[2].sum() == 0


def test_unknown_assigner():
    with pytest.raises(KeyError, match="loss.assigner 'ota'"):
        build_assigner("ota", num_classes=1, stride=[8.0], params=LossParams())
