"""Report figures of the evaluation: score-vs-IoU scatter and reliability grid (alignrank.report.plots)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from alignrank.eval.boxes import Detections, GroundTruth
from alignrank.eval.calibration import calibration
from alignrank.eval.rank import rank_consistency
from alignrank.report import plots

from .helpers import perturb


@pytest.fixture
def evaluated(coco128_gt):
    """Two 'variants' on coco128 with scores squeezed below 0.45, as a briefly trained detector's."""
    gt = GroundTruth.from_coco(coco128_gt)
    out = {}
    for i, v in enumerate(("baseline", "full")):
        d = Detections.from_coco(perturb(coco128_gt, seed=i))
        d.score *= 0.45
        stats, score, iou = rank_consistency(gt, d, 0.5)
        out[v] = (stats, score, iou, calibration(gt, d, 0.5, 15))
    return out


def _capture(monkeypatch):
    figs = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: (figs.append(fig), path.write_bytes(b"\x89PNG")))
    return figs


def test_scatter_titles_show_the_tables_kendall_and_spearman(evaluated, tmp_path, monkeypatch):
    figs = _capture(monkeypatch)
    pairs = {v: (s, q) for v, (_, s, q, _) in evaluated.items()}
    stats = {v: st for v, (st, _, _, _) in evaluated.items()}
    plots.score_iou_scatter(pairs, tmp_path / "a.png", stats=stats)
    plots.score_iou_scatter(pairs, tmp_path / "b.png")  # no table numbers: pooled ones, labelled so
    (a, b) = figs
    t = a.axes[0].get_title()
    assert f"τ={stats['baseline']['kendall_tau']:.3f}" in t and f"ρ={stats['baseline']['spearman_rho']:.3f}" in t
    assert "per-GT mean" in t and "Pearson" not in t and "pooled τ=" in b.axes[0].get_title()
    assert a.axes[0].get_ylim()[1] == pytest.approx(0.5)  # scores end at 0.45: axis scaled to the data, not 0-1
    assert a.axes[0].get_xlim()[0] == pytest.approx(0.5) and "0-1" in a.axes[0].get_xlabel()
    for f in figs:
        matplotlib.pyplot.close(f)


def test_reliability_grid_has_count_panels_and_data_scaled_axes(evaluated, tmp_path, monkeypatch):
    figs = _capture(monkeypatch)
    rel = {v: {0: r, 1: r} for v, (_, _, _, r) in evaluated.items()}
    plots.reliability_grid(rel, tmp_path / "r.png")
    (fig,) = figs
    top, counts = fig.axes[0], fig.axes[2]
    assert top.get_xlim()[1] == pytest.approx(0.5) and counts.get_yscale() == "log"
    assert "D-ECE=" in top.get_title() and "ECE=" in top.get_title()
    stairs = [p for p in counts.patches if type(p).__name__ == "StepPatch"]
    assert len(stairs) == 2 and np.array_equal(stairs[0].get_data().values, rel["baseline"][0]["dece_bin_count"])
    matplotlib.pyplot.close(fig)


def test_figures_are_written_as_png(evaluated, tmp_path):
    pairs = {v: (s, q) for v, (_, s, q, _) in evaluated.items()}
    plots.score_iou_scatter(pairs, tmp_path / "s.png")
    plots.reliability_grid({v: {0: r} for v, (_, _, _, r) in evaluated.items()}, tmp_path / "r.png")
    old = {"ece": 0.1, "bin_conf": [0.1, 0.5], "bin_acc": [0.05, 0.5], "bin_count": [10, 10], "bin_lo": [0, 0.3],
           "bin_hi": [0.3, 0.7]}  # results written before D-ECE existed
    plots.reliability_grid({"baseline": {0: old}}, tmp_path / "old.png")
    plots.score_iou_scatter({"baseline": (np.zeros(0), np.zeros(0))}, tmp_path / "empty.png")
    assert all((tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in ("s.png", "r.png", "old.png", "empty.png"))
