"""Metric-name table: ultralytics keys become MLflow-safe names; short aliases for tune/report."""

from __future__ import annotations

import math

from alignrank.tracking.names import METRIC_NAMES, aliases, finite, sanitize, sanitize_metrics


def test_table_names_are_mlflow_safe_and_stable():
    from mlflow.utils.validation import _validate_metric_name

    for dst in METRIC_NAMES.values():
        _validate_metric_name(dst)  # raises on names MLflow rejects
    assert sanitize("metrics/mAP50-95(B)") == "val/map50_95"
    assert sanitize("metrics/mAP50(B)") == "val/map50"


def test_generic_names_are_cleaned():
    from mlflow.utils.validation import _validate_metric_name

    for raw in ("train/box_loss", "lr/pg0", "metrics/weird(K)", "Val Loss [x]", "a--b"):
        out = sanitize(raw)
        _validate_metric_name(out)
        assert "(" not in out and out == out.lower()
    assert sanitize("train/box_loss") == "train/box_loss"


def test_sanitize_metrics_drops_non_numeric_and_aliases_short_names():
    m = sanitize_metrics({"metrics/mAP50-95(B)": 0.25, "fitness": 0.3, "note": "x", "train/cls_loss": 1})
    assert m == {"val/map50_95": 0.25, "val/fitness": 0.3, "train/cls_loss": 1.0}
    a = aliases(m)
    assert a["map50_95"] == 0.25 and a["fitness"] == 0.3 and "cls_loss" not in a
    assert finite({"a": math.nan, "b": 1.0}) == {"b": 1.0}
