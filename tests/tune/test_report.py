"""Search outputs: ranking, best.yaml (a valid --set-file fragment), tables and plot."""

from __future__ import annotations

import csv

import yaml

from alignrank.config import load_params
from alignrank.tune import report as tune_report
from tests.conftest import REPO

KEYS = ["loss.margin", "loss.temperature"]


def _rows():
    return [
        {"trial_id": "a", "outcome": "completed", "epochs": 2, "completed": True, "score": 0.30,
         "loss.margin": 0.1, "loss.temperature": 0.5},
        {"trial_id": "b", "outcome": "completed", "epochs": 2, "completed": True, "score": 0.45,
         "loss.margin": 0.35, "loss.temperature": 1.5},
        {"trial_id": "c", "outcome": "stopped_early", "epochs": 1, "completed": False, "score": 0.90,
         "loss.margin": 0.2, "loss.temperature": 0.2},  # better score but from an earlier epoch: not comparable
        {"trial_id": "d", "outcome": "failed", "epochs": 0, "completed": False, "score": None,
         "loss.margin": 0.4, "loss.temperature": 0.3},
    ]


def test_ranking_prefers_completed_trials_and_respects_mode():
    assert [r["trial_id"] for r in tune_report.ranked(_rows(), "max")] == ["b", "a", "c", "d"]
    assert [r["trial_id"] for r in tune_report.ranked(_rows(), "min")] == ["a", "b", "c", "d"]
    assert tune_report.best_row(_rows(), "max")["trial_id"] == "b"
    stopped_only = [dict(r, completed=False) for r in _rows()]
    assert tune_report.best_row(stopped_only, "max")["trial_id"] == "c"
    assert tune_report.best_row([_rows()[3]], "max") is None


def test_best_yaml_is_a_set_file_fragment_that_validates(tmp_path):
    best = tune_report.best_row(_rows(), "max")
    path = tune_report.write_best(tmp_path / "best.yaml", best, KEYS, metric="map50_95", name="full-x", ties=1)
    text = path.read_text()
    assert text.startswith("# Best configuration") and "tie" in text and "--set-file" in text
    assert yaml.safe_load(text) == {"loss.margin": 0.35, "loss.temperature": 1.5}
    p = load_params(REPO / "params.yaml", set_files=[path])
    assert (p.loss.margin, p.loss.temperature) == (0.35, 1.5)


def test_tables_and_plot(tmp_path):
    files = tune_report.write_tables(tmp_path, _rows(), KEYS, metric="map50_95", mode="max", top=2)
    rows = list(csv.DictReader(files["csv"].open()))
    assert [r["trial_id"] for r in rows] == ["b", "a", "c", "d"] and rows[0]["loss.margin"] == "0.35"
    md = files["md"].read_text().splitlines()
    assert "map50_95" in md[2] and len([ln for ln in md if ln.startswith("| ") and "trial_id" not in ln]) == 2
    png = tune_report.write_plot(tmp_path / "p.png", _rows(), KEYS, metric="map50_95", mode="max",
                                 log_keys=["loss.temperature"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temp files
