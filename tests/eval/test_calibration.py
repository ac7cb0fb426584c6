"""Detection ECE: zero for a perfectly calibrated case, known values, TP labelling, reliability PNG."""

from __future__ import annotations

import numpy as np
import pytest

from alignrank.eval.boxes import Detections, GroundTruth
from alignrank.eval.calibration import calibration, detection_ece, save_reliability

from .helpers import make_gt


def test_perfectly_calibrated_synthetic_case_has_zero_ece():
    rng = np.random.default_rng(0)
    levels = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    score = np.repeat(levels, 100)  # equal-mass bins of 100 detections each
    tp = np.concatenate([rng.permutation(np.arange(100) < round(100 * p)) for p in levels])
    r = detection_ece(score, tp, bins=5)
    assert r["ece"] == pytest.approx(0.0, abs=1e-12)
    assert r["bin_count"] == [100] * 5 and np.allclose(r["bin_acc"], levels)


def test_known_ece_value_and_equal_mass_bins():
    score = np.array([0.9, 0.9, 0.9, 0.9, 0.2, 0.2, 0.2, 0.2])
    tp = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    r = detection_ece(score, tp, bins=2)
    assert r["ece"] == pytest.approx(0.5 * 0.8 + 0.5 * 0.9)
    assert r["bin_count"] == [4, 4]


def test_calibration_labels_with_greedy_matching(tmp_path):
    gt = GroundTruth.from_coco(make_gt([(1, 1, [0, 0, 10, 10]), (2, 1, [0, 0, 10, 10])]))
    # image 1: TP then duplicate; image 2: one TP and a false positive elsewhere
    d = Detections([1, 1, 2, 2], [1, 1, 1, 1], [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 5, 5]],
                   [1.0, 0.0, 1.0, 0.0])
    r = calibration(gt, d, 0.5, bins=2)
    assert r["ece"] == pytest.approx(0.0) and r["num_dets"] == 4
    save_reliability(r, tmp_path / "rel.png")
    assert (tmp_path / "rel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
