"""End to end against the embedded store: `alignrank sweep` -> evaluate -> `alignrank report`; what a researcher
sees in MLflow (parent run with the report, nested runs with their dataset and description, no stray runs
in the Default experiment) and on the console (one-screen summaries, plain progress lines off a terminal)."""

from __future__ import annotations

import json

import mlflow
import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.config import load_params
from alignrank.eval.runs import run_evaluate
from alignrank.io import read_json
from tests.conftest import REPO, set_args, tiny_overrides


@pytest.mark.long
def test_sweep_evaluate_report_land_in_mlflow(tiny_data, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    over = {**tiny_overrides(tiny_data, tmp_path), "train.imgsz": 64, "sweep.variants": ["baseline", "csd"],
            "sweep.seeds": [0, 1], "ray.num_cpus": 2, "ray.max_concurrent": 2, "report.bootstrap": 100}
    r = CliRunner().invoke(app, ["sweep", "--params", str(REPO / "params.yaml"), *set_args(over)])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("sweep: 4 runs: 4 trained, 0 cached, 0 failed") and "\x1b" not in r.output
    assert "csd" in r.stdout and "MLflow:  parent run" in r.stdout
    assert "[sweep 4/4 elapsed" in r.stderr and "best epoch 1/1" in r.stderr  # plain progress lines, no redraw
    sweep = read_json(tmp_path / "runs" / "sweep.json")
    p = load_params(REPO / "params.yaml", over)
    run_evaluate(p)
    r = CliRunner().invoke(app, ["report", "--params", str(REPO / "params.yaml"), *set_args(over)])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("report: 2 variants, 4 evaluated runs") and "Δ AP vs baseline" in r.stdout
    assert f"MLflow:  parent run {sweep['parent_run_id']}" in r.stdout

    c = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}")
    exps = {e.name: e.experiment_id for e in c.search_experiments()}
    assert set(exps) == {"alignrank", "Default"} and c.search_runs([exps["Default"]]) == []
    parent = c.get_run(sweep["parent_run_id"])
    head = json.loads((tmp_path / "results" / "headline.json").read_text())
    for v in ("baseline", "csd"):
        assert parent.data.metrics[f"report/AP/{v}/mean"] == pytest.approx(head["AP"][v]["mean"])
    for k in ("mean", "ci_lo", "ci_hi"):
        assert parent.data.metrics[f"report/delta_AP/csd/{k}"] == pytest.approx(head["delta_AP"]["csd"][k])
    arts = {a.path for a in c.list_artifacts(parent.info.run_id, "report/tables")}
    assert "report/tables/report.md" in arts and "report/tables/table_paired.csv" in arts
    assert {a.path for a in c.list_artifacts(parent.info.run_id, "report/figures")}
    fp = read_json(tiny_data / "manifest.json")["fingerprint"]
    children = c.search_runs([exps["alignrank"]], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(ch.data.tags["variant"] for ch in children) == ["baseline", "baseline", "csd", "csd"]
    for ch in children:
        (ds,) = ch.inputs.dataset_inputs
        assert ds.dataset.digest == fp[:36]
        note = ch.data.tags["mlflow.note.content"]
        assert note.startswith(f"**{ch.data.tags['variant']}**, seed {ch.data.tags['seed']}")
        if ch.data.tags["variant"] == "csd":
            assert "head `csd` (baseline `detect`)" in note
        assert "eval/ap" in ch.data.metrics  # the evaluation went to each run
    assert not (tmp_path / "mlruns").exists()
