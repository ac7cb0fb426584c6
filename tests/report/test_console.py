"""One-screen summaries of `alignrank sweep` / `alignrank report` (the JSON stays behind --json)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.report.console import report_text, sweep_text
from alignrank.report.stats import paired_t

from .helpers import fake_eval

HEADLINE = {"units": "percent", "ci": 0.95,
            "AP": {"baseline": {"mean": 40.1, "std": 0.141, "n": 2}, "full": {"mean": 45.1, "std": None, "n": 1}},
            "delta_AP": {"full": {"mean": 5.0, "ci_lo": None, "ci_hi": None, "p_holm": None, "n": 1,
                                  "image_ci_lo": 4.21, "image_ci_hi": 5.83}}}


def test_report_text_is_the_table_and_where_things_are(tmp_path):
    out = {"out_dir": str(tmp_path / "results"), "variants": ["baseline", "full"], "runs": 3,
           "figures": ["figures/a.png", "figures/b.png"],
           "mlflow": {"parent_run_id": "abc123", "experiment": "alignrank", "uri": "sqlite:///x/mlflow.db"}}
    text = report_text(out, HEADLINE)
    lines = text.splitlines()
    assert lines[0].startswith("report: 2 variants, 3 evaluated runs (1/2 seeds per variant)")
    assert lines[2:5] == [
        "variant   AP (%)        n  Δ AP vs baseline  95% CI (seeds)  95% CI (images)  Holm p",
        "baseline  40.10 ± 0.14  2  -                 -               -                -",
        "full      45.10         1  +5.00             n/a             [+4.21, +5.83]   n/a",
    ]
    assert f"tables:  {tmp_path / 'results' / 'tables' / 'report.md'}" in text
    assert "figures: " in text and "(2 PNG)" in text and "dvc metrics show" in text
    assert "MLflow:  parent run abc123 in experiment alignrank (sqlite:///x/mlflow.db)" in text
    assert len(lines) <= 25 and "{" not in text  # one screen, no JSON
    skipped = report_text({**out, "mlflow": {"skipped": "no sweep recorded"}}, HEADLINE)
    assert skipped.splitlines()[-1] == "MLflow:  no sweep recorded"


def _run(v, s, ap, status="done"):
    return {"variant": v, "seed": s, "run": f"{v}-s{s}-k", "status": status, "metrics": {"map50_95": ap, "best_epoch": 2}}


def test_sweep_text_means_paired_deltas_failures_and_places(tmp_path):
    runs = [_run("baseline", 0, 0.30), _run("baseline", 1, 0.32), _run("full", 0, 0.33), _run("full", 1, 0.36)]
    out = {"runs": runs, "trained": ["full-s0-k", "full-s1-k"], "cached": ["baseline-s0-k", "baseline-s1-k"],
           "failed": [{"run": "rcq-s0-k", "error": "injected failure", "attempts": 2}], "parent_run_id": "p1",
           "wall_s": 125.4}
    text = sweep_text(out, runs_dir=tmp_path / "runs", ci=0.95, mlflow={"experiment": "alignrank", "uri": "sqlite:///db"})
    lines = text.splitlines()
    assert lines[0] == "sweep: 5 runs: 2 trained, 2 cached, 1 failed, in 2m05s"
    t = paired_t([3.0, 4.0], ci=0.95)
    assert lines[2].split() == ["variant", "val", "map50_95", "(%)", "n", "Δ", "vs", "baseline", "95%", "CI",
                                "(paired", "over", "seeds)"]
    assert lines[3].split() == ["baseline", "31.00", "±", "1.41", "2", "-", "-"]
    assert lines[4].split() == ["full", "34.50", "±", "2.12", "2", "+3.50", "(n=2)",
                                f"[{t['lo']:+.2f},", f"{t['hi']:+.2f}]"]
    assert "failed:  rcq-s0-k after 2 attempt(s): injected failure" in text
    assert f"runs:    {tmp_path / 'runs'} (summary: {tmp_path / 'runs' / 'sweep.json'})" in text
    assert lines[-1] == "MLflow:  parent run p1 in experiment alignrank (sqlite:///db); browse: make mlflow-ui"
    none = sweep_text({**out, "parent_run_id": None, "failed": []}, runs_dir=tmp_path)
    assert none.splitlines()[-1] == "MLflow:  no parent run (nothing was trained)"


def test_cli_report_prints_the_summary_and_json_on_request(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    fake_eval(tmp_path, variants=("baseline", "full"), seeds=(0, 1))
    args = ["report", "--set", "report.bootstrap=0", "--set", "sweep.seeds=[0,1]", "--set", "sweep.variants=[baseline,full]"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("report: 2 variants, 4 evaluated runs") and "\x1b" not in r.stdout
    assert "Δ AP vs baseline" in r.stdout and "MLflow:  no sweep recorded" in r.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.stdout)
    r = CliRunner().invoke(app, [*args, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["runs"] == 4
