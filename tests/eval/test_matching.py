"""Greedy COCO-style matching equals pycocotools' own matches (dtMatches/dtIgnore) on real data."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from alignrank.eval.boxes import Detections, GroundTruth, box_iou
from alignrank.eval.matching import greedy_match

from .helpers import make_gt, perturb


def test_box_iou_regular_and_crowd():
    d = np.array([[0, 0, 10, 10.0]])
    g = np.array([[5, 0, 10, 10.0], [0, 0, 20, 20.0]])
    iou = box_iou(d, g, np.array([False, True]))
    assert iou[0, 0] == pytest.approx(50 / 150)
    assert iou[0, 1] == pytest.approx(1.0)  # crowd: intersection over the detection's area


def test_duplicate_and_crowd_on_handmade_case():
    gt = GroundTruth.from_coco(make_gt([(1, 1, [0, 0, 10, 10]), (1, 1, [50, 50, 40, 40])], crowd=(1,)))
    d = Detections([1, 1, 1, 1], [1, 1, 1, 2], [[0, 0, 10, 10], [0, 1, 10, 10], [60, 60, 5, 5], [0, 0, 10, 10]],
                   [0.5, 0.9, 0.3, 0.99])
    m = greedy_match(gt, d, 0.5)
    assert m.tp.tolist() == [False, True, False, False]  # the higher score takes the box; wrong class never matches
    assert m.ignored.tolist() == [False, False, True, False]


@pytest.mark.parametrize("thr", [0.5, 0.75])
def test_matches_pycocotools_on_coco128(coco128_gt, thr):
    from pycocotools.cocoeval import COCOeval

    from alignrank.eval.coco import CocoGT

    preds = perturb(coco128_gt, seed=3)
    dets = Detections.from_coco(preds)
    cgt = CocoGT(coco128_gt)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(cgt.coco, cgt.results(dets), "bbox")
        ev.params.iouThrs = np.array([thr])
        ev.params.maxDets = [10_000]
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.evaluate()
    tp = np.zeros(len(dets), bool)
    ign = np.zeros(len(dets), bool)
    for e in ev.evalImgs:
        if e is None:
            continue
        ids = np.asarray(e["dtIds"], dtype=np.int64) - 1  # loadRes numbers results from 1
        matched, ignore = np.asarray(e["dtMatches"][0]) > 0, np.asarray(e["dtIgnore"][0]).astype(bool)
        tp[ids], ign[ids] = matched & ~ignore, matched & ignore
    m = greedy_match(GroundTruth.from_coco(coco128_gt), dets, thr)
    assert tp.sum() > 100 and ign.sum() >= 1  # real matches and at least one crowd hit
    np.testing.assert_array_equal(m.tp, tp)
    np.testing.assert_array_equal(m.ignored, ign)
