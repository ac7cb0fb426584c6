"""COCO metrics: known answers, empty predictions, id mapping, crowd regions, cross-checks on real data."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from alignrank.eval.boxes import Detections
from alignrank.eval.coco import STAT_NAMES, CocoGT, coco_metrics

from .helpers import make_gt, perturb


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
