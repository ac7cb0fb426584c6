"""COCO metrics: known answers, empty predictions, id mapping, crowd regions, cross-checks on real data."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from alignrank.eval.boxes import Detections
from alignrank.eval.coco import STAT_NAMES, CocoGT, coco_accumulate, coco_eval, coco_match, coco_metrics

from .helpers import make_gt, perturb, tide_cases


def _dets(records):
    return Detections.from_coco(records)


def test_perfect_predictions_give_ap_1_with_noncontiguous_ids():
    gt = make_gt([(7, 90, [10, 10, 30, 30]), (7, 1, [50, 50, 20, 40]), (9, 44, [5, 5, 60, 60])],
                 cats=(1, 44, 90), img_ids=(7, 9))
    preds = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
             for a in gt["annotations"]]
    m = coco_metrics(CocoGT(gt), _dets(preds))
    assert list(m) == list(STAT_NAMES)
    assert m["AP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0) and m["AR100"] == pytest.approx(1.0)
    # a wrong category id (e.g. YOLO index instead of the dataset id) scores nothing
    wrong = [{**p, "category_id": {90: 1, 1: 44, 44: 90}[p["category_id"]]} for p in preds]
    assert coco_metrics(CocoGT(gt), _dets(wrong))["AP"] == pytest.approx(0.0)


def test_empty_predictions_give_ap_0():
    gt = make_gt([(1, 1, [10, 10, 30, 30])])
    m = coco_metrics(CocoGT(gt), Detections.empty())
    assert m["AP"] == 0.0 and m["AR100"] == 0.0
    assert math.isnan(m["APl"])  # no large object in the split: pycocotools' -1 becomes NaN


def test_crowd_region_detections_are_ignored():
    gt = make_gt([(1, 1, [10, 10, 20, 20]), (1, 1, [50, 50, 40, 40])], crowd=(1,))
    tp = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.5}
    in_crowd = {"image_id": 1, "category_id": 1, "bbox": [55, 55, 10, 10], "score": 0.9}
    outside = {"image_id": 1, "category_id": 1, "bbox": [0, 70, 10, 10], "score": 0.9}
    assert coco_metrics(CocoGT(gt), _dets([tp, in_crowd]))["AP"] == pytest.approx(1.0)
    assert coco_metrics(CocoGT(gt), _dets([tp, outside]))["AP"] < 0.9


def _pycocotools_direct(gt_path, pred_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO(str(gt_path))
        ev = COCOeval(g, g.loadRes(str(pred_path)), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return np.asarray(ev.stats)


def _faster_coco_eval(gt_path, pred_path):
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        g = COCO(str(gt_path))
        ev = COCOeval_faster(g, g.loadRes(str(pred_path)), "bbox", print_function=lambda *a, **k: None)
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return np.asarray(ev.stats[:12])


@pytest.mark.parametrize("seed", [0, 1])
def test_coco128_matches_pycocotools_and_faster_coco_eval(coco128, coco128_gt, tmp_path, seed):
    preds = perturb(coco128_gt, seed=seed)
    gt_path, pred_path = tmp_path / "instances.json", tmp_path / "pred.json"
    gt_path.write_text(json.dumps(coco128_gt)), pred_path.write_text(json.dumps(preds))
    m = coco_metrics(CocoGT(coco128_gt), _dets(preds))
    ours = np.array([m[k] for k in STAT_NAMES])
    ref = _pycocotools_direct(gt_path, pred_path)
    fast = _faster_coco_eval(gt_path, pred_path)
    ref = np.where(ref < 0, np.nan, ref)
    fast = np.where(fast < 0, np.nan, fast)
    assert 0.2 < ours[0] < 0.9  # a real, non-trivial AP
    np.testing.assert_allclose(ours, ref, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(ours, fast, atol=1e-4, equal_nan=True)


def _stress(gt: dict) -> tuple[dict, list[dict]]:
    """coco128 with pycocotools' corner cases: score ties, a ground truth with id 0, > 100 detections of one
    image and category, detections of categories without ground truth, zero-width boxes."""
    gt = json.loads(json.dumps(gt))
    gt["annotations"][3]["id"] = 0  # unique, but pycocotools never counts a match to id 0
    preds = tide_cases(gt, seed=1)
    for p in preds:
        p["score"] = round(p["score"], 1)  # ties within and across images
    a = gt["annotations"][10]
    x, y, w, h = a["bbox"]
    preds += [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": [x + i * 0.02 * w, y, w, h],
               "score": 0.5} for i in range(150)]  # 150 > maxDets near one object, all tied
    used = {x["category_id"] for x in gt["annotations"]}
    free = next(c["id"] for c in gt["categories"] if c["id"] not in used)
    preds += [{"image_id": a["image_id"], "category_id": free, "bbox": [x, y, w, h], "score": 0.7},
              {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": [x, y, 0.0, h], "score": 0.9}]
    return gt, preds


@pytest.mark.parametrize("case", ["perturb0", "perturb1", "tide", "stress"])
def test_numpy_engine_equals_pycocotools_bit_for_bit(coco128_gt, case):
    if case == "stress":
        gt, preds = _stress(coco128_gt)
    else:
        gt = coco128_gt
        preds = tide_cases(gt, seed=0) if case == "tide" else perturb(gt, seed=int(case[-1]))
    cgt, dets = CocoGT(gt), _dets(preds)
    ev = coco_eval(cgt, dets)
    precision, recall = coco_accumulate(coco_match(cgt.arrays, dets))
    assert np.array_equal(precision, ev.eval["precision"]) and np.array_equal(recall, ev.eval["recall"])
    ours = np.array([coco_metrics(cgt, dets)[k] for k in STAT_NAMES])
    assert np.array_equal(ours, np.where(ev.stats < 0, np.nan, ev.stats), equal_nan=True)  # identical, not close
    assert 0.1 < ours[0] < 0.9 and (ev.eval["precision"] == -1).any()  # non-trivial, with undefined categories


def test_engines_agree_on_handmade_corner_cases():
    a, b = [10, 10, 20, 20], [50, 50, 40, 40]
    gt = make_gt([(1, 1, a), (1, 1, b), (2, 2, [0, 0, 100, 100])], crowd=(1,))
    cases = [
        Detections.empty(),
        _dets([{"image_id": 1, "category_id": 1, "bbox": a, "score": 0.5}]),
        _dets([{"image_id": 1, "category_id": 1, "bbox": [55, 55, 10, 10], "score": 0.9},  # in the crowd region
               {"image_id": 1, "category_id": 1, "bbox": a, "score": 0.5},
               {"image_id": 2, "category_id": 3, "bbox": a, "score": 0.4}]),  # a category without ground truth
    ]
    for d in cases:
        m, ref = coco_metrics(CocoGT(gt), d), coco_metrics(CocoGT(gt), d, engine="pycocotools")
        assert np.array_equal([m[k] for k in STAT_NAMES], [ref[k] for k in STAT_NAMES], equal_nan=True)


def test_equal_iou_goes_to_the_later_ground_truth_as_in_pycocotools():
    # the first detection overlaps both boxes with IoU exactly 0.6; pycocotools gives it the later one,
    # which leaves the first box to the second detection: two true positives
    gt = make_gt([(1, 1, [0, 0, 10, 10]), (1, 1, [5, 0, 10, 10])], img_ids=(1,))
    d = _dets([{"image_id": 1, "category_id": 1, "bbox": [2.5, 0, 10, 10], "score": 0.9},
               {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.8}])
    assert coco_metrics(CocoGT(gt), d)["AP50"] == coco_metrics(CocoGT(gt), d, engine="pycocotools")["AP50"] == 1.0
