"""Per-image match records: weighted AP equals pycocotools' AP (weights 1, and weight 2 = a duplicated image)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from alignrank.eval.boxes import Detections
from alignrank.eval.coco import CocoGT, coco_metrics
from alignrank.eval.per_image import RECORDS_FILE, ImageRecords, ensure_records, image_records, weighted_ap

from .helpers import make_gt, perturb


def _dets(gt: dict, seed: int) -> Detections:
    return Detections.from_coco(perturb(gt, seed=seed))


def test_all_weights_one_equal_pycocotools_on_coco128(coco128_gt):
    assert any(a["iscrowd"] for a in coco128_gt["annotations"])  # crowd regions are exercised
    cgt = CocoGT(coco128_gt)
    for seed in (0, 1):
        dets = _dets(coco128_gt, seed)
        ref = coco_metrics(cgt, dets)
        rec = image_records(cgt, dets)
        got = weighted_ap(rec, np.ones((3, rec.num_images)))
        for k in ("AP", "AP50", "AP75"):
            assert got[k] == pytest.approx([ref[k]] * 3, abs=1e-12), (seed, k)
        assert len(rec.det_score) < len(dets)  # ignored / after-the-last-TP detections are not stored


def test_weight_two_equals_a_duplicated_image_and_zero_a_removed_one(coco128_gt):
    gt = copy.deepcopy(coco128_gt)
    dets = _dets(gt, 3)
    ids = [im["id"] for im in gt["images"]]
    dup, drop = ids[5], ids[9]
    new_id = max(ids) + 1
    gt2 = copy.deepcopy(gt)  # image `dup` twice (new id, same annotations and detections), image `drop` gone
    gt2["images"] = [im for im in gt2["images"] if im["id"] != drop] + [{**next(i for i in gt["images"] if i["id"] == dup),
                                                                          "id": new_id}]
    top = max(a["id"] for a in gt["annotations"])
    gt2["annotations"] = [a for a in gt2["annotations"] if a["image_id"] != drop] + [
        {**a, "id": top + 1 + j, "image_id": new_id} for j, a in enumerate(a for a in gt["annotations"] if a["image_id"] == dup)]
    keep = dets.image_id != drop
    extra = dets.select(dets.image_id == dup)
    dets2 = Detections(np.r_[dets.image_id[keep], np.full(len(extra), new_id)], np.r_[dets.category_id[keep], extra.category_id],
                       np.r_[dets.bbox[keep], extra.bbox], np.r_[dets.score[keep], extra.score])
    ref = coco_metrics(CocoGT(gt2), dets2)
    rec = image_records(CocoGT(gt), dets)
    w = np.ones(rec.num_images)
    w[list(rec.image_ids).index(dup)], w[list(rec.image_ids).index(drop)] = 2, 0
    got = weighted_ap(rec, w)
    for k in ("AP", "AP50", "AP75"):
        assert got[k][0] == pytest.approx(ref[k], abs=1e-12), k


def test_chunking_small_cases_and_files(tmp_path):
    gt = make_gt([(1, 1, [10, 10, 30, 30]), (2, 1, [5, 5, 20, 20]), (2, 2, [50, 50, 20, 20]), (1, 2, [0, 0, 90, 90])],
                 cats=(1, 2, 3), crowd=(3,))
    cgt = CocoGT(gt)
    dets = Detections.from_coco(perturb(gt, seed=1, drop=0.0, fp=2.0))
    rec = image_records(cgt, dets)
    w = np.random.default_rng(0).integers(0, 3, (40, 2))
    a, b = weighted_ap(rec, w), weighted_ap(rec, w, max_elems=1)
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)  # chunking changes nothing
    assert weighted_ap(rec, [0, 0])["AP"][0] != weighted_ap(rec, [0, 0])["AP"][0]  # no ground truth: NaN
    with pytest.raises(ValueError, match="3 images"):
        weighted_ap(rec, [1, 1, 1])
    empty = image_records(cgt, Detections.empty())
    assert weighted_ap(empty, [1, 1])["AP"][0] == 0.0 == coco_metrics(cgt, Detections.empty())["AP"]
    (tmp_path / "predictions.json").write_text(json.dumps(dets.to_coco()))
    p = ensure_records(tmp_path, cgt, "gt1")
    assert p == tmp_path / RECORDS_FILE and ImageRecords.load_meta(p)["gt_sha256"] == "gt1"
    back = ImageRecords.load_npz(p)
    assert all(np.array_equal(getattr(back, f), getattr(rec, f)) for f in ImageRecords.FIELDS)
    mtime = p.stat().st_mtime_ns
    assert ensure_records(tmp_path, cgt, "gt1") == p and p.stat().st_mtime_ns == mtime  # unchanged: not rebuilt
    ensure_records(tmp_path, cgt, "gt2")
    assert ImageRecords.load_meta(p)["gt_sha256"] == "gt2"
    assert ensure_records(tmp_path / "none", cgt, "gt1") is None
