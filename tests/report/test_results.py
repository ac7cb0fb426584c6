"""run_report on fake evaluate outputs: md/csv/tex tables, PNG figures, DVC metrics and plot data."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.config import load_params
from alignrank.errors import DataError
from alignrank.report.results import run_report

from .helpers import fake_eval

PNG = b"\x89PNG\r\n\x1a\n"


def _params(**over):
    return load_params(None, {"report.bootstrap": 200, **over})


def test_report_on_fake_metrics(tmp_path):
    fake_eval(tmp_path)
    out = run_report(_params())
    res = tmp_path / "results"
    assert out["variants"] == ["baseline", "csd", "rcq", "full"] and out["runs"] == 8  # seeds 0, 1 of params.yaml
    for name in ("table1_main", "table2_ablation", "table_paired", "table_paper"):
        for ext in ("md", "csv", "tex"):
            assert (res / "tables" / f"{name}.{ext}").stat().st_size > 50, (name, ext)
    main = (res / "tables" / "table1_main.md").read_text()
    assert "| full | 2 | 45.10 ± 0.14 |" in main and "11.50" in main and "12.5" in main
    paired = (res / "tables" / "table_paired.csv").read_text()
    assert "full,AP," in paired
    assert "NOT COMPARABLE" in (res / "tables" / "table_paper.md").read_text()
    for f in ("ap_per_variant", "score_iou", "reliability", "training_curves"):
        assert (res / "figures" / f"{f}.png").read_bytes()[:8] == PNG
    metrics = json.loads((res / "metrics.json").read_text())
    assert metrics["full"]["AP"] == pytest.approx(45.1) and metrics["full"]["n_seeds"] == 2
    assert metrics["full"]["APs"] is None
    curves = (res / "plots" / "training_curves.csv").read_text().splitlines()
    assert curves[0] == "epoch,baseline,csd,rcq,full" and len(curves) == 4
    assert (res / "plots" / "ap_per_seed.csv").read_text().count("\n") == 9
    assert (res / "plots" / "reliability" / "full.csv").is_file() and (res / "plots" / "score_iou" / "rcq.csv").is_file()


def test_report_without_profile_and_subset_of_variants(tmp_path):
    fake_eval(tmp_path, variants=("baseline", "full"), seeds=(0,), profile=False)
    out = run_report(_params(**{"sweep.seeds": [0]}))
    assert out["variants"] == ["baseline", "full"] and not out["profile"]
    main = (tmp_path / "results" / "tables" / "table1_main.md").read_text()
    assert "n/a" in main and "profile.json not found" in main
    assert "n/a (n<3)" in (tmp_path / "results" / "tables" / "table_paired.md").read_text()
    curves = (tmp_path / "results" / "plots" / "training_curves.csv").read_text().splitlines()
    assert curves[0] == "epoch,baseline,csd,rcq,full" and ",,," in curves[1]  # csd, rcq empty: dvc.yaml names them


def test_report_needs_evaluated_runs(tmp_path):
    with pytest.raises(DataError, match="run `alignrank evaluate`"):
        run_report(_params())
    fake_eval(tmp_path, variants=("csd",))
    with pytest.raises(DataError, match="no evaluated run"):
        run_report(_params(**{"sweep.variants": ["baseline"]}))


def test_cli_report(tmp_path):
    fake_eval(tmp_path)
    r = CliRunner().invoke(app, ["report", "--set", "report.bootstrap=200"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["runs"] == 8
