"""The report on the sweep's MLflow parent run: headline metrics, tables/figures/JSON artifacts, description."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignrank.config import load_params
from alignrank.report.results import run_report

from .helpers import fake_eval


@pytest.fixture(autouse=True)
def _embedded_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _params(tmp_path, **over):
    return load_params(None, {"report.bootstrap": 200, "sweep.variants": ["baseline", "full"], "sweep.seeds": [0, 1],
                              "train.out_dir": str(tmp_path / "runs"), **over})


def _sweep_json(tmp_path, parent_id, names):
    (tmp_path / "runs").mkdir(exist_ok=True)
    (tmp_path / "runs" / "sweep.json").write_text(json.dumps({
        "runs": [{"run": n} for n in names], "failed": [], "parent_run_id": parent_id}))


def test_report_lands_on_the_sweeps_parent_run(tmp_path):
    import mlflow

    from alignrank.tracking.session import direct_factory

    ev = fake_eval(tmp_path, variants=("baseline", "full"), seeds=(0, 1), per_image=True)
    p = _params(tmp_path)
    parent = direct_factory(p).open(run_name="sweep-test", tags={"sweep": "true"})
    parent.end("FINISHED")
    names = [Path(r["run_dir"]).name for r in json.loads((ev / "runs" / "index.json").read_text())["runs"]]
    _sweep_json(tmp_path, parent.run_id, names)

    out = run_report(p)
    assert out["mlflow"]["parent_run_id"] == parent.run_id and "error" not in out["mlflow"], out["mlflow"]
    c = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow' / 'mlflow.db'}")
    run = c.get_run(parent.run_id)
    head = json.loads((tmp_path / "results" / "headline.json").read_text())
    m = run.data.metrics
    for v in ("baseline", "full"):
        assert m[f"report/AP/{v}/mean"] == pytest.approx(head["AP"][v]["mean"])
        assert m[f"report/AP/{v}/std"] == pytest.approx(head["AP"][v]["std"]) and m[f"report/AP/{v}/n"] == 2
    d = head["delta_AP"]["full"]
    for k in ("mean", "ci_lo", "ci_hi", "image_ci_lo", "image_ci_hi", "p_holm"):
        assert m[f"report/delta_AP/full/{k}"] == pytest.approx(d[k]), k
    assert d["ci_lo"] < d["mean"] < d["ci_hi"]
    arts = {a.path for folder in ("report", "report/tables", "report/figures") for a in c.list_artifacts(parent.run_id, folder)}
    assert {"report/headline.json", "report/metrics.json", "report/tables/report.md", "report/tables/table_paired.csv",
            "report/tables/table1_main.tex", "report/figures/ap_per_variant.png"} <= arts, sorted(arts)
    note = run.data.tags["mlflow.note.content"]
    assert "Δ AP vs baseline" in note and "full" in note and run.data.tags["report.variants"] == "baseline,full"
    assert run.info.status == "FINISHED"  # the parent is added to, not reopened
    exps = {e.name: e.experiment_id for e in c.search_experiments()}
    assert set(exps) == {"alignrank", "Default"}  # "Default": created by MLflow's SQLite store itself, on init
    assert c.search_runs([exps["Default"]]) == []  # ... and nothing is ever logged to it
    assert not (tmp_path / "mlruns").exists()


def test_report_is_kept_when_it_cannot_go_to_a_parent(tmp_path):
    fake_eval(tmp_path, variants=("baseline", "full"), seeds=(0, 1))
    out = run_report(_params(tmp_path))  # no sweep recorded
    assert "sweep.json" in out["mlflow"]["skipped"] and (tmp_path / "results" / "headline.json").is_file()
    _sweep_json(tmp_path, "abc", ["baseline-s0-other"])
    assert "not runs of the sweep" in run_report(_params(tmp_path))["mlflow"]["skipped"]
    _sweep_json(tmp_path, "0123456789abcdef0123456789abcdef", ["seed0", "seed1"])  # a run id this store lacks
    out = run_report(_params(tmp_path))
    assert "report not logged to MLflow run 0123456789abcdef" in out["mlflow"]["error"] and "\n" not in out["mlflow"]["error"]
    assert (tmp_path / "results" / "tables" / "report.md").is_file()
