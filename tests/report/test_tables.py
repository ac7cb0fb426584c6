"""Result tables: mean ± std, profile figures or n/a, paired t/Holm, power, paper comparison, renderers."""

from __future__ import annotations

import numpy as np
import pytest

from alignrank.report.paired import paired_rows, paired_table, power_rows, power_table
from alignrank.report.power import images_needed, seeds_needed
from alignrank.report.stats import holm
from alignrank.report.tables import ablation_table, main_table, paper_table


def _runs():
    return {"baseline": {0: {"AP": 0.40, "ece": 0.10}, 1: {"AP": 0.42, "ece": 0.12}},
            "full": {0: {"AP": 0.45, "ece": 0.05}, 1: {"AP": 0.47, "ece": 0.07}}}


def test_main_table_mean_std_and_missing_profile():
    t = main_table(_runs(), ["baseline", "full"], profile=None)
    assert t.rows[0][:3] == ["baseline", "2", "41.00 ± 1.41"] and t.rows[1][2] == "46.00 ± 1.41"
    assert t.rows[0][-4:] == ["n/a"] * 4 and "n/a" in t.notes[-1]
    assert t.rows[0][3] == "n/a"  # AP50 never measured
    prof = {"models": {"baseline": {"params": 11_200_000, "gflops": 28.6, "latency_ms": {"eager": 21.0}}}}
    t = main_table(_runs(), ["baseline", "full"], profile=prof)
    assert t.rows[0][-4:] == ["11.20", "28.60", "21.0", "n/a"] and t.rows[1][-4:] == ["n/a"] * 4
    actual = {"settings": {"scale": "s", "imgsz": 640, "nc": 80}, "variants": {  # the profile stage's own layout
        "full": {"params": 11_500_000, "gflops": 30.0, "latency_eager_ms": 25.0, "latency_ort_ms": 14.0}}}
    t2 = main_table(_runs(), ["baseline", "full"], profile=actual)
    assert t2.rows[1][-4:] == ["11.50", "30.00", "25.0", "14.0"] and "scale=s" in t2.notes[-1]
    csv = t.csv().splitlines()
    assert csv[0].startswith("variant,n,AP_mean,AP_std") and csv[1].startswith("baseline,2,41.0")


def test_paired_table_t_interval_holm_and_significance():
    t = paired_table(_runs(), ["baseline", "full"], min_seeds=2)
    assert t.columns[3] == "95% CI (paired t over seeds)" and t.columns[5].startswith("p (Holm, ")
    ap = next(r for r in t.rows if r[1] == "AP (%)")
    assert ap[2] == "+5.00" and ap[3] == "[+5.00, +5.00]" and ap[6] == "2" and ap[8] == "yes"  # sd 0: exact
    assert next(r for r in t.rows if r[1] == "ECE")[2] == "-0.050"
    assert next(r for r in t.rows if r[1] == "AP50 (%)")[8] == "n/a (n<2)"
    assert any("Holm family" in n for n in t.notes) and "Image interval: n/a" in t.notes[-1]
    default = paired_table(_runs(), ["baseline", "full"])  # 2 seeds: never "significant" (report.min_seeds 3)
    assert {r[8] for r in default.rows} == {"n/a (n<3)"}


def test_paired_rows_match_scipy_and_holm_over_the_table():
    from scipy import stats

    rng = np.random.default_rng(0)
    runs = {v: {s: {"AP": 0.4 + d + 0.01 * rng.normal(), "kendall_tau": 0.2 + 0.02 * rng.normal()} for s in range(4)}
            for v, d in (("baseline", 0.0), ("csd", 0.002), ("full", 0.03))}
    rows = paired_rows(runs, ["baseline", "csd", "full"])
    full = next(r for r in rows if (r["variant"], r["metric"]) == ("full", "AP"))
    a = [100 * runs["full"][s]["AP"] for s in range(4)]
    b = [100 * runs["baseline"][s]["AP"] for s in range(4)]
    assert full["p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    ps = [r["p"] for r in rows]
    assert [r["p_holm"] for r in rows] == pytest.approx(holm(ps), nan_ok=True)
    k = sum(np.isfinite(ps))
    assert k == 4  # AP and kendall_tau of csd and full: one family
    assert full["significant"] == (full["p_holm"] < 0.05)
    t = paired_table(runs, ["baseline", "csd", "full"])
    assert t.columns[5] == "p (Holm, 4 tests)" and "all 4 variant × metric rows" in t.notes[0]


def test_power_table_uses_observed_seed_sd():
    runs = {"baseline": {s: {"AP": 0.40} for s in range(3)},
            "full": {s: {"AP": 0.40 + x} for s, x in enumerate((0.01, 0.02, 0.03))}}  # Δ 1, 2, 3 points: sd 1
    rows = power_rows(runs, ["baseline", "full"], delta=1.0)
    assert rows[0]["sd_seeds"] == pytest.approx(1.0) and rows[0]["seeds_needed"] == seeds_needed(1.0, 1.0) == 10
    assert rows[0]["images_needed"] is None  # no image bootstrap
    image = {"n_images": 64, "paired": {"full": {"AP": {"se": 0.5}}}}
    r = power_rows(runs, ["baseline", "full"], delta=1.0, image=image)[0]
    assert r["images_needed"] == images_needed(0.5, 64, 1.0) and r["se_images"] == 0.5
    t = power_table(runs, ["baseline", "full"], delta=2.0, power=0.9)
    assert t.rows[0][1:4] == ["+2.00", "1.00 (3)", str(seeds_needed(1.0, 2.0, power=0.9))]
    assert "noncentral t" in t.notes[0] and "90% power" in t.notes[0]


def test_paper_table_says_what_is_compared_and_the_direction():
    data = {"source": "synthetic", "fingerprint": "f" * 64, "counts": {"val": 80}}
    t = paper_table(_runs(), None, data, {"scale": "n", "imgsz": 256})
    assert [r[0] for r in t.rows] == ["AP (%)", "Params (M)", "GFLOPs"]
    assert t.rows[0][1:8] == ["44.9", "46.9", "41.00", "46.00", "Δ full − baseline", "+2.00", "+5.00"]
    assert t.rows[0][8:] == ["NO", "same"] and t.rows[1][7:] == ["n/a", "NO", "n/a"]
    assert any("NOT COMPARABLE" in n for n in t.notes)
    coco = {"source": "coco2017", "counts": {"val": 5000}}
    prof = {"scale": "s", "imgsz": 640, "nc": 80, "models": {"baseline": {"params": 11.2e6, "gflops": 28.6},
                                                             "full": {"params": 11.5e6, "gflops": 30.0}}}
    t = paper_table(_runs(), prof, coco, {"scale": "s", "imgsz": 640})
    assert [r[8] for r in t.rows] == ["yes", "yes", "yes"] and [r[9] for r in t.rows] == ["same"] * 3
    assert t.rows[1][3:8] == ["11.20", "11.50", "ratio full / baseline", "1.027", "1.027"]
    # our head smaller than the baseline while the paper's is larger: the row says so, per row
    ours = {"scale": "s", "imgsz": 640, "nc": 80, "models": {"baseline": {"params": 11.16e6, "gflops": 28.6},
                                                             "full": {"params": 11.01e6, "gflops": 26.79}}}
    t = paper_table(_runs(), ours, coco, {"scale": "s", "imgsz": 640})
    assert t.rows[1][5:8] == ["ratio full / baseline", "1.027", "0.987"]
    assert t.rows[1][9] == t.rows[2][9] == "OPPOSITE (paper larger, ours smaller)"
    assert "ratio full / baseline" in t.csv().splitlines()[2]
    tex = ablation_table(_runs(), ["baseline", "full"]).latex()
    assert "\\begin{tabular}" in tex and "$\\tau$" in tex and "$\\pm$" in tex and "\\%" in tex
    md = ablation_table(_runs(), ["baseline", "full"]).markdown()
    assert md.count("\n|") >= 3 and "0.110 ± 0.014" in md


def test_ablation_table_shows_one2one_ap_beside_nms_ap_only_when_present():
    runs = _runs()
    plain = ablation_table(runs, ["baseline", "full"])
    assert "AP with NMS, one-to-many (%)" in plain.columns and "top-k AP w/o NMS, one-to-many (%)" in plain.columns
    assert not any("one-to-one" in c for c in plain.columns)
    runs["full_e2e"] = {0: {"AP": 0.44, "nms_free_AP": 0.2, "o2o_AP": 0.43}, 1: {"AP": 0.46, "o2o_AP": 0.45}}
    t = ablation_table(runs, ["baseline", "full", "full_e2e"])
    i, j = t.columns.index("AP with NMS, one-to-many (%)"), t.columns.index("AP w/o NMS, one-to-one (%)")
    assert j == i + 1  # beside the NMS AP
    assert [r[j] for r in t.rows] == ["n/a", "n/a", "44.00 ± 1.41"] and t.rows[2][i] == "45.00 ± 1.41"
    assert "o2o_AP_mean" in t.csv().splitlines()[0] and any("one-to-one" in n for n in t.notes)
