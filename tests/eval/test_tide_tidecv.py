"""Our TIDE breakdown against the reference package ``tidecv`` on the real coco128 annotations.

Predictions are built from the ground truth with every error type (class swaps, box shifts, both,
duplicates, background boxes, missed objects, boxes inside crowd regions, an image past max_dets).
Tolerance: counts equal; AP and each dAP (tidecv's x100 scale) within 1e-9 points, i.e. equal up
to float summation order. Crowd regions are included: we follow tidecv's crowd rule (ignored
predictions are still classified and counted), so they make no difference; the test checks that
some predictions really are ignored so that the rule is exercised.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from alignrank.eval.boxes import Detections, GroundTruth
from alignrank.eval.matching import greedy_match
from alignrank.eval.tide import ERROR_TYPES, tide_errors

from .helpers import perturb, tide_cases

tidecv = pytest.importorskip("tidecv", reason="tidecv is a dev dependency (pip install -e '.[dev]')")
SHORT = {"cls": "Cls", "loc": "Loc", "both": "Both", "dupe": "Dupe", "bkg": "Bkg", "miss": "Miss"}
TOL = 1e-9  # dAP points (x100)


def _tidecv(gt_path, pred_path) -> tuple[float, dict, dict, dict]:
    from tidecv import TIDE, datasets

    with contextlib.redirect_stdout(io.StringIO()):
        tide = TIDE()
        run = tide.evaluate(datasets.COCO(str(gt_path)), datasets.COCOResult(str(pred_path), name="p"), mode=TIDE.BOX)
        main, special = tide.get_main_errors()["p"], tide.get_special_errors()["p"]
    counts = {k.short_name: v for k, v in run.count_errors().items()}
    return run.ap, main, special, counts


@pytest.mark.parametrize("make", [tide_cases, perturb], ids=["every-error-type", "perturbed"])
def test_dap_and_counts_equal_tidecv_on_coco128(coco128, coco128_gt, tmp_path, make):
    preds = make(coco128_gt, seed=0)
    gt_path, pred_path = tmp_path / "instances.json", tmp_path / "pred.json"
    gt_path.write_text(json.dumps(coco128_gt)), pred_path.write_text(json.dumps(preds))
    gt, dets = GroundTruth.from_coco(coco128_gt), Detections.from_coco(preds)
    assert gt.iscrowd.sum() >= 5 and greedy_match(gt, dets, 0.5).ignored.any()  # crowd regions are exercised

    ours = tide_errors(gt, dets)
    ap, main, special, counts = _tidecv(gt_path, pred_path)
    assert 20 < ap < 90
    assert 100 * ours["tide_AP50"] == pytest.approx(ap, abs=TOL)
    for e in ERROR_TYPES:
        assert ours[f"tide_n_{e}"] == counts[SHORT[e]], e
        assert 100 * ours[f"tide_dAP_{e}"] == pytest.approx(main[SHORT[e]], abs=TOL), e
    assert 100 * ours["tide_dAP_fp"] == pytest.approx(special["FalsePos"], abs=TOL)
    assert 100 * ours["tide_dAP_fn"] == pytest.approx(special["FalseNeg"], abs=TOL)
    if make is tide_cases:  # every error type occurs and costs AP
        assert all(ours[f"tide_n_{e}"] > 0 for e in ERROR_TYPES)
        assert np.all([ours[f"tide_dAP_{e}"] > 0 for e in ("cls", "loc", "both", "miss")])
