"""TIDE error breakdown on constructed errors: counts and dAP with known answers."""

from __future__ import annotations

import pytest

from alignrank.eval.boxes import Detections, GroundTruth
from alignrank.eval.tide import ERROR_TYPES, tide_errors

from .helpers import make_gt


def _run(gt_boxes, dets, crowd=()):
    gt = GroundTruth.from_coco(make_gt(gt_boxes, crowd=crowd))
    im, cat, box, score = zip(*dets)
    return tide_errors(gt, Detections(im, cat, box, score))


def test_one_error_of_each_type_is_counted():
    gt = [(1, 1, [0, 0, 10, 10]), (1, 1, [50, 50, 10, 10]), (1, 2, [20, 20, 10, 10]), (1, 1, [70, 0, 10, 10]),
          (1, 2, [0, 70, 10, 10])]
    dets = [
        (1, 1, [0, 0, 10, 10], 0.9),  # TP
        (1, 1, [0, 0, 10, 10], 0.8),  # duplicate of the TP
        (1, 2, [50, 50, 10, 10], 0.7),  # right box, wrong class -> cls
        (1, 1, [75, 0, 10, 10], 0.6),  # right class, IoU 1/3 -> loc
        (1, 1, [0, 75, 10, 10], 0.55),  # wrong class and IoU 1/3 -> both
        (1, 1, [90, 90, 5, 5], 0.5),  # nothing near -> background
    ]  # the class-2 boxes at (20, 20) (never detected) and (0, 70) (only a 'both' error) are missed
    r = _run(gt, dets)
    assert {e: r[f"tide_n_{e}"] for e in ERROR_TYPES} == {**{e: 1 for e in ERROR_TYPES}, "miss": 2}
    # class 1: one TP above all its false positives (AP 34/101); class 2: no TP (AP 0)
    assert r["tide_AP50"] == pytest.approx(34 / 101 / 2)
    # fixing cls (or loc) adds a class-1 TP below the duplicate: ((34 + 33 * 2/3) / 101 + 0) / 2
    assert r["tide_dAP_cls"] == pytest.approx(r["tide_dAP_loc"]) == pytest.approx((34 + 22 - 34) / 101 / 2)
    # false positives scored below the only TP cost nothing; class 2's misses leave only its FP (AP 0)
    assert r["tide_dAP_dupe"] == r["tide_dAP_bkg"] == r["tide_dAP_both"] == r["tide_dAP_miss"] == 0.0


def test_dap_known_values():
    a, b = [0, 0, 10, 10], [40, 40, 10, 10]
    # duplicate outscoring the second object's TP: AP (51 + 50 * 2/3) / 101 -> fixed 1
    r = _run([(1, 1, a), (1, 1, b)], [(1, 1, a, 0.9), (1, 1, a, 0.8), (1, 1, b, 0.7)])
    assert r["tide_n_dupe"] == 1
    assert r["tide_AP50"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert r["tide_dAP_dupe"] == pytest.approx(1 - (51 + 50 * 2 / 3) / 101)
    # a missed object: AP 51/101, fixing misses removes it from the count -> 1
    r = _run([(1, 1, a), (1, 1, b)], [(1, 1, a, 0.9)])
    assert r["tide_n_miss"] == 1 and r["tide_dAP_miss"] == pytest.approx(1 - 51 / 101)
    assert r["tide_dAP_fn"] == pytest.approx(1 - 51 / 101)
    # wrong class on the only object: AP 0 -> fixed 1; the GT it could fix is not counted as missed
    r = _run([(1, 1, a)], [(1, 2, a, 0.9)])
    assert (r["tide_n_cls"], r["tide_n_miss"], r["tide_AP50"], r["tide_dAP_cls"]) == (1, 0, 0.0, 1.0)
    # two poor boxes on one object: only the higher-scored one becomes a TP when fixed
    r = _run([(1, 1, a)], [(1, 1, [5, 0, 10, 10], 0.9), (1, 1, [0, 5, 10, 10], 0.8)])
    assert r["tide_n_loc"] == 2 and r["tide_dAP_loc"] == pytest.approx(1.0)
    # a background box above the TPs: precision 1/2, 2/3 -> AP 2/3; fixing bkg -> 1
    r = _run([(1, 1, a), (1, 1, b)], [(1, 1, [80, 80, 5, 5], 0.95), (1, 1, a, 0.9), (1, 1, b, 0.8)])
    assert r["tide_n_bkg"] == 1 and r["tide_dAP_bkg"] == pytest.approx(1 / 3)
    assert r["tide_dAP_fp"] == pytest.approx(1 / 3)


def test_predictions_in_crowd_regions_follow_tidecv():
    # a crowd region (40, 40, 40, 40) with a regular object b inside it; a is detected exactly
    a, b, crowd = [0, 0, 10, 10], [60, 60, 10, 10], [40, 40, 40, 40]
    in_crowd = (1, 1, [45, 45, 10, 10], 0.9)  # ignored: no false positive, but still counted (Bkg)
    r = _run([(1, 1, a), (1, 1, crowd)], [(1, 1, a, 0.5), in_crowd], crowd=(1,))
    assert r["tide_AP50"] == pytest.approx(1.0) and r["tide_n_bkg"] == 1
    assert sum(r[f"tide_n_{e}"] for e in ERROR_TYPES) == 1 and r["tide_dAP_bkg"] == r["tide_dAP_fp"] == 0.0
    # an ignored, poorly placed box on b (IoU 3/7) is a Loc error whose fix recovers b; b is no Miss
    r = _run([(1, 1, a), (1, 1, crowd), (1, 1, b)], [(1, 1, a, 0.5), (1, 1, [64, 60, 10, 10], 0.9)], crowd=(1,))
    assert (r["tide_n_loc"], r["tide_n_miss"]) == (1, 0)
    assert r["tide_AP50"] == pytest.approx(51 / 101) and r["tide_dAP_loc"] == pytest.approx(1 - 51 / 101)
