"""Result tables: mean ± std, profile figures or n/a, paired CIs, paper comparability, renderers."""

from __future__ import annotations

from alignrank.report.tables import ablation_table, main_table, paired_table, paper_table


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


def test_paired_table_marks_significance():
    t = paired_table(_runs(), ["baseline", "full"], n_resamples=500, min_seeds=2)
    ap = next(r for r in t.rows if r[1] == "AP (%)")
    assert ap[2] == "+5.00" and ap[3] == "[+5.00, +5.00]" and ap[5] == "yes"
    assert next(r for r in t.rows if r[1] == "ECE")[2] == "-0.050"
    assert next(r for r in t.rows if r[1] == "AP50 (%)")[5] == "n/a (n<2)"
    default = paired_table(_runs(), ["baseline", "full"], n_resamples=500)  # 2 seeds: never "significant"
    assert {r[5] for r in default.rows} == {"n/a (n<3)"}


def test_paper_table_labels_comparability_and_latex_escapes():
    data = {"source": "synthetic", "fingerprint": "f" * 64, "counts": {"val": 80}}
    t = paper_table(_runs(), None, data, {"scale": "n", "imgsz": 256})
    assert [r[0] for r in t.rows] == ["AP (%)", "Params (M)", "GFLOPs"]
    assert t.rows[0][1:4] == ["44.9", "46.9", "+2.0"] and t.rows[0][4:7] == ["41.00", "46.00", "+5.00"]
    assert all(r[-1] == "NO" for r in t.rows) and any("NOT COMPARABLE" in n for n in t.notes)
    coco = {"source": "coco2017", "counts": {"val": 5000}}
    prof = {"scale": "s", "imgsz": 640, "nc": 80, "models": {"baseline": {"params": 11.2e6, "gflops": 28.6},
                                                             "full": {"params": 11.5e6, "gflops": 30.0}}}
    t = paper_table(_runs(), prof, coco, {"scale": "s", "imgsz": 640})
    assert [r[-1] for r in t.rows] == ["yes", "yes", "yes"] and t.rows[1][4:7] == ["11.20", "11.50", "+0.30"]
    tex = ablation_table(_runs(), ["baseline", "full"]).latex()
    assert "\\begin{tabular}" in tex and "$\\tau$" in tex and "$\\pm$" in tex and "\\%" in tex
    md = ablation_table(_runs(), ["baseline", "full"]).markdown()
    assert md.count("\n|") >= 3 and "0.110 ± 0.014" in md
