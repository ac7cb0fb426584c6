"""The TIDE table (alignrank.report.tide_table) and the TIDE bar figure (alignrank.report.figures_eval)."""

from __future__ import annotations

import csv
import io
import math

import pytest

from alignrank.eval.boxes import Detections, GroundTruth
from alignrank.eval.tide import ERROR_TYPES, tide_errors
from alignrank.report.figures_eval import tide_bars
from alignrank.report.tide_table import tide_table

from .helpers import perturb, tide_cases


@pytest.fixture
def runs(coco128_gt):
    """Real TIDE numbers of two 'variants' x two 'seeds' on coco128 (perturbed ground truth as predictions)."""
    gt = GroundTruth.from_coco(coco128_gt)
    return {"baseline": {s: tide_errors(gt, Detections.from_coco(tide_cases(coco128_gt, seed=s))) for s in (0, 1)},
            "full": {0: tide_errors(gt, Detections.from_coco(perturb(coco128_gt, seed=0)))}}


def test_tide_table_rows_are_mean_std_and_counts(runs):
    t = tide_table(runs, ["baseline", "full", "rcq"])
    assert t.columns[:3] == ["Variant", "n", "AP50 (TIDE, %)"] and len(t.columns) == 3 + len(ERROR_TYPES) + 2
    base, full, rcq = t.rows
    assert base[:2] == ["baseline", "2"] and full[:2] == ["full", "1"] and rcq == ["rcq", "0"] + ["n/a"] * 9
    b0, b1 = runs["baseline"][0], runs["baseline"][1]
    mu = 100 * (b0["tide_dAP_cls"] + b1["tide_dAP_cls"]) / 2
    sd = 100 * abs(b0["tide_dAP_cls"] - b1["tide_dAP_cls"]) / math.sqrt(2)
    n = (b0["tide_n_cls"] + b1["tide_n_cls"]) / 2
    assert base[3].startswith(f"{mu:.2f} ± {sd:.2f} (") and base[3].endswith(f"({n:.0f})" if n.is_integer() else f"({n:.1f})")
    assert full[3] == f"{100 * runs['full'][0]['tide_dAP_cls']:.2f} ({runs['full'][0]['tide_n_cls']})"  # one seed: no ±
    rows = list(csv.DictReader(io.StringIO(t.csv())))
    assert float(rows[0]["n_miss_mean"]) == pytest.approx((b0["tide_n_miss"] + b1["tide_n_miss"]) / 2)
    assert float(rows[1]["dAP_fn_mean"]) == pytest.approx(100 * runs["full"][0]["tide_dAP_fn"])
    assert "| baseline | 2 |" in t.markdown() and "\\begin{tabular}" in t.latex()


def test_tide_bars_png_is_written(runs, tmp_path):
    p = tmp_path / "figures" / "tide.png"
    tide_bars(runs, p)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    tide_bars({"baseline": {}}, tmp_path / "empty.png")  # no numbers yet: an empty panel, no crash
    assert (tmp_path / "empty.png").is_file()
