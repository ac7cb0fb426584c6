"""Detection ECE: zero for a perfectly calibrated case, known values, TP labelling, reliability PNG."""

from __future__ import annotations

import numpy as np
import pytest

from alignrank.eval.boxes import Detections, GroundTruth
from alignrank.eval.calibration import calibration, detection_dece, detection_ece, save_reliability

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


def test_dece_known_values_equal_width_bins():
    # bins of width 0.5: [0, 0.5) holds 0.2 x4 (TP rate 1), [0.5, 1] holds 0.5 (edge: upper bin) and 1.0 (closed end)
    r = detection_dece(np.array([0.2, 0.2, 0.2, 0.2, 0.5, 1.0]), np.array([1, 1, 1, 1, 0, 1]), bins=2)
    assert r["dece_bin_count"] == [4, 2] and r["dece_bin_lo"] == [0.0, 0.5] and r["dece_bin_hi"] == [0.5, 1.0]
    assert r["dece"] == pytest.approx(4 / 6 * 0.8 + 2 / 6 * abs(0.5 - 0.75))
    # empty bins are skipped; no detections -> NaN
    r = detection_dece(np.array([0.05, 0.95]), np.array([0, 1]), bins=10)
    assert r["dece_bin_count"] == [1, 1] and r["dece"] == pytest.approx(0.05)
    assert np.isnan(detection_dece(np.zeros(0), np.zeros(0))["dece"])


def _netcal_dece(score, tp, bins):
    from netcal.metrics import ECE

    return ECE(bins=bins, detection=True).measure(np.asarray(score, np.float64)[:, None], np.asarray(tp, np.int64))


@pytest.mark.parametrize("bins", [2, 10, 15])
def test_dece_equals_netcal_on_synthetic_scores(bins):
    pytest.importorskip("netcal", reason="netcal is installed --no-deps by `make venv`")
    rng = np.random.default_rng(bins)
    edges = np.linspace(0, 1, bins + 1)
    cases = [
        rng.random(2000),  # spread over [0, 1]
        0.45 * rng.random(2000) ** 3,  # crowded at low scores, as our detectors' post-NMS scores
        np.r_[edges, edges, 0.0, 1.0, rng.random(50)],  # exactly on bin edges and at the ends
        np.round(rng.random(500), 2),  # ties
    ]
    for score in cases:
        tp = rng.random(len(score)) < score
        assert detection_dece(score, tp, bins)["dece"] == pytest.approx(_netcal_dece(score, tp, bins), abs=1e-12)


def test_dece_equals_netcal_on_coco128_matches(coco128_gt):
    pytest.importorskip("netcal", reason="netcal is installed --no-deps by `make venv`")
    from alignrank.eval.matching import greedy_match

    from .helpers import perturb

    gt, dets = GroundTruth.from_coco(coco128_gt), Detections.from_coco(perturb(coco128_gt, seed=3))
    r = calibration(gt, dets, 0.5, bins=15)
    m = greedy_match(gt, dets, 0.5)
    keep = ~m.ignored
    assert m.ignored.any() and r["num_dets"] == keep.sum() < len(dets)  # crowd matches are left out of both
    assert r["dece"] == pytest.approx(_netcal_dece(dets.score[keep], m.tp[keep], 15), abs=1e-12)
    assert 0.05 < r["dece"] < 0.5 and r["ece"] != r["dece"]
    assert sum(r["dece_bin_count"]) == sum(r["bin_count"]) == r["num_dets"]


def test_reliability_png_has_counts_panel_and_data_scaled_axis(tmp_path):
    from alignrank.eval.calibration import reliability_figure, score_axis_limit

    rng = np.random.default_rng(0)
    score = 0.43 * rng.random(3000)  # all scores below 0.45, as a briefly trained detector's
    tp = rng.random(3000) < score
    rel = {**detection_ece(score, tp, 15), **detection_dece(score, tp, 15), "num_dets": 3000}
    fig = reliability_figure(rel, "t")
    ax, axc = fig.axes
    assert ax.get_xlim()[1] == pytest.approx(0.5) == score_axis_limit(0.4667)  # not 0-1: the last bin ends at 7/15
    assert axc.get_yscale() == "log" and len(axc.patches) == 7 and "per bin" in axc.get_ylabel()
    assert sorted(int(t.get_text()) for t in axc.texts) == sorted(rel["dece_bin_count"])  # counts written on the bars
    assert "D-ECE" in ax.get_title() and "score" in axc.get_xlabel()
    save_reliability(rel, tmp_path / "r.png")
    save_reliability({k: v for k, v in rel.items() if not k.startswith("dece")}, tmp_path / "old.png")  # older results
    save_reliability(calibration(GroundTruth.from_coco(make_gt([])), Detections.empty()), tmp_path / "empty.png")
    assert all((tmp_path / f).read_bytes()[:4] == b"\x89PNG" for f in ("r.png", "old.png", "empty.png"))
