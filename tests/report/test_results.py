"""run_report on fake evaluate outputs: md/csv/tex tables, PNG figures, DVC metrics and plot data."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.config import load_params
from alignrank.errors import DataError
from alignrank.report.results import run_report
from alignrank.report.summary import DELTA_KEYS, HEADLINE_KEYS
from alignrank.variants import VARIANTS

from .helpers import fake_eval

PNG = b"\x89PNG\r\n\x1a\n"


def _params(**over):
    return load_params(None, {"report.bootstrap": 200, **over})


def test_report_on_fake_metrics(tmp_path):
    ev = fake_eval(tmp_path, per_image=True)
    out = run_report(_params(**{"sweep.seeds": [0, 1, 2]}))
    res = tmp_path / "results"
    assert out["variants"] == ["baseline", "csd", "rcq", "full"] and out["runs"] == 12
    for name in ("table1_main", "table2_ablation", "table_tide", "table_paired", "table_power", "table_paper"):
        for ext in ("md", "csv", "tex"):
            assert (res / "tables" / f"{name}.{ext}").stat().st_size > 50, (name, ext)
    summary = json.loads((ev / "summary.json").read_text())
    full_ap = [100 * summary["full"][f"seed{s}"]["AP"] for s in range(3)]
    main = (res / "tables" / "table1_main.md").read_text()
    assert f"| full | 3 | {np.mean(full_ap):.2f} ± {np.std(full_ap, ddof=1):.2f} |" in main
    assert "11.50" in main and "12.5" in main
    paired = (res / "tables" / "table_paired.md").read_text()
    assert "95% CI (paired t over seeds)" in paired and "95% CI (paired bootstrap over 40 images)" in paired
    assert "p (Holm, 30 tests)" in paired and "200 replicates" in paired
    csv_rows = {(r[0], r[1]): r for r in (ln.split(",") for ln in (res / "tables" / "table_paired.csv").read_text().splitlines())}
    full = csv_rows["full", "AP"]
    assert float(full[2]) == pytest.approx(np.mean(full_ap) - np.mean([100 * summary["baseline"][f"seed{s}"]["AP"]
                                                                      for s in range(3)]))
    assert float(full[8]) < float(full[2]) < float(full[9])  # image interval around the same difference
    assert csv_rows["full", "kendall_tau"][8] == ""  # no image interval for non-AP metrics
    assert "seeds needed" in (res / "tables" / "table_power.md").read_text()
    assert "NOT COMPARABLE" in (res / "tables" / "table_paper.md").read_text()
    assert "D-ECE" in (res / "tables" / "table2_ablation.md").read_text()
    tide = (res / "tables" / "table_tide.md").read_text()
    assert "Loc dAP (count)" in tide and "5.00 ± 0.00 (7)" in tide  # tide_dAP_loc 0.05 -> 5.00 points, 7 errors
    for f in ("ap_per_variant", "score_iou", "reliability", "tide", "training_curves"):
        assert (res / "figures" / f"{f}.png").read_bytes()[:8] == PNG
    metrics = json.loads((res / "metrics.json").read_text())
    assert metrics["means"]["full"]["AP"] == pytest.approx(np.mean(full_ap)) and metrics["means"]["full"]["n_seeds"] == 3
    assert metrics["means"]["full"]["APs"] is None
    assert metrics["paired"]["full"]["AP"]["image_lo"] == pytest.approx(float(full[8]))
    assert metrics["power"]["full"]["seeds_needed"] >= 2 and metrics["image_bootstrap"]["n_images"] == 40
    _check_every_ap_like_number_is_in_percent(summary, metrics)
    _check_headline_is_small_and_fixed(json.loads((res / "headline.json").read_text()))
    curves = (res / "plots" / "training_curves.csv").read_text().splitlines()
    assert curves[0] == "epoch," + ",".join(VARIANTS) and len(curves) == 4
    assert (res / "plots" / "ap_per_seed.csv").read_text().count("\n") == 13
    assert (res / "plots" / "reliability" / "full.csv").is_file() and (res / "plots" / "score_iou" / "rcq.csv").is_file()


def _check_every_ap_like_number_is_in_percent(summary: dict, metrics: dict, seeds=(0, 1, 2)) -> None:
    ap_like = re.compile(r"(^|_)d?A[PR]")
    checked = set()
    for v, means in metrics["means"].items():
        for k, x in means.items():
            fractions = [summary[v][f"seed{s}"].get(k) for s in seeds]
            if not ap_like.search(k) or x is None:
                continue
            assert x == pytest.approx(100 * np.mean(fractions)), (v, k)
            assert k in metrics["units"]["percent"]
            checked.add(k)
    assert {"AP", "AP50", "AR1", "AR100", "nms_free_AP", "tide_AP50", "tide_dAP_loc"} <= checked
    assert metrics["means"]["full"]["tide_n_loc"] == 7 and "tide_n_loc" in metrics["units"]["count"]
    assert metrics["means"]["full"]["ece"] == pytest.approx(0.05) and "ece" in metrics["units"]["fraction"]


def _check_headline_is_small_and_fixed(h: dict) -> None:
    assert tuple(h) == HEADLINE_KEYS and h["units"] == "percent"
    assert set(h["AP"]) == {"baseline", "csd", "rcq", "full"} and set(h["delta_AP"]) == {"csd", "rcq", "full"}
    assert all(set(x) == {"mean", "std", "n"} for x in h["AP"].values())
    assert all(tuple(x) == DELTA_KEYS for x in h["delta_AP"].values())
    flat = [k for x in (*h["AP"].values(), *h["delta_AP"].values()) for k in x]
    assert len(flat) == 4 * 3 + 3 * len(DELTA_KEYS) <= 40  # one readable row in `dvc metrics show`
    assert h["delta_AP"]["full"]["image_ci_lo"] is not None


def test_report_without_per_image_records_or_with_bootstrap_off(tmp_path):
    fake_eval(tmp_path, variants=("baseline", "full"))
    run_report(_params(**{"sweep.variants": ["baseline", "full"]}))
    paired = (tmp_path / "results" / "tables" / "table_paired.md").read_text()
    assert "Image interval: n/a (no per-image records for baseline seed 0" in paired
    run_report(_params(**{"report.bootstrap": 0, "sweep.variants": ["baseline", "full"]}))
    assert "n/a (report.bootstrap is 0)" in (tmp_path / "results" / "tables" / "table_paired.md").read_text()


def test_report_without_profile_and_subset_of_variants(tmp_path):
    fake_eval(tmp_path, variants=("baseline", "full"), seeds=(0,), profile=False)
    out = run_report(_params(**{"sweep.seeds": [0]}))
    assert out["variants"] == ["baseline", "full"] and not out["profile"]
    main = (tmp_path / "results" / "tables" / "table1_main.md").read_text()
    assert "n/a" in main and "profile.json not found" in main
    assert "n/a (n<3)" in (tmp_path / "results" / "tables" / "table_paired.md").read_text()
    curves = (tmp_path / "results" / "plots" / "training_curves.csv").read_text().splitlines()
    assert curves[0] == "epoch," + ",".join(VARIANTS) and ",,," in curves[1]  # csd, rcq empty: dvc.yaml names them


def test_report_needs_evaluated_runs(tmp_path):
    with pytest.raises(DataError, match="run `alignrank evaluate`"):
        run_report(_params())
    fake_eval(tmp_path, variants=("csd",))
    with pytest.raises(DataError, match="no evaluated run"):
        run_report(_params(**{"sweep.variants": ["baseline"]}))


def test_cli_report(tmp_path):
    fake_eval(tmp_path)
    r = CliRunner().invoke(app, ["report", "--json", "--set", "report.bootstrap=200", "--set", "sweep.seeds=[0,1]"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["runs"] == 8
