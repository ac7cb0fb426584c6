"""NMS-free top-k decoding: top-k per image, and duplicates that outscore other objects hurt AP."""

from __future__ import annotations

import numpy as np
import pytest

from alignrank.eval.boxes import Detections
from alignrank.eval.coco import CocoGT, coco_metrics
from alignrank.eval.nms_free import nms_free_ap

from .helpers import make_gt


def test_topk_per_image():
    d = Detections([2, 1, 1, 2, 1], [1] * 5, np.zeros((5, 4)), [0.1, 0.5, 0.9, 0.7, 0.2])
    k = d.topk_per_image(2)
    assert sorted(zip(k.image_id.tolist(), k.score.tolist())) == [(1, 0.5), (1, 0.9), (2, 0.1), (2, 0.7)]


def test_duplicates_above_other_objects_lower_nms_free_ap():
    a, b = [0, 0, 20, 20], [50, 50, 20, 20]
    gt = CocoGT(make_gt([(1, 1, a), (1, 1, b)], img_ids=(1,)))
    clean = Detections([1, 1], [1, 1], [a, b], [0.9, 0.8])
    dup = Detections([1, 1, 1], [1, 1, 1], [a, [0, 1, 20, 20], b], [0.9, 0.85, 0.8])
    assert nms_free_ap(gt, clean, topk=2)["nms_free_AP"] == pytest.approx(1.0)
    assert nms_free_ap(gt, dup, topk=2)["nms_free_AP"] < 0.6  # the duplicate takes b's slot
    assert nms_free_ap(gt, dup, topk=2)["nms_free_AP"] < coco_metrics(gt, dup)["AP"]
