"""benchmarks/mlflow_screens.py: `mlflow ui` on 127.0.0.1 over an embedded store, headless Chromium screenshots of
the runs table (nested runs), the compare view of the variants and the per-epoch chart (skipped without Chromium)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from alignrank.config import load_params
from tests.conftest import REPO


def _screens():
    spec = importlib.util.spec_from_file_location("mlflow_screens", REPO / "benchmarks" / "mlflow_screens.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def small_sweep_store(tmp_path) -> tuple[str, list[str]]:
    """A store like a sweep's: a parent run (tag sweep) and one nested run per variant with 3 epochs of metrics."""
    from alignrank.tracking.session import direct_factory

    f = direct_factory(load_params(None, {"mlflow.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}))
    parent = f.open(run_name="sweep-20250101-000000", tags={"sweep": "true"})
    names = []
    for i, v in enumerate(("baseline", "csd", "rcq", "full")):
        name = f"{v}-s0-{i:010d}"
        t = f.open(run_name=name, parent_run_id=parent.run_id, tags={"variant": v, "seed": "0"})
        t.log_params({"train.variant": v, "train.seed": "0"})
        for e in (1, 2, 3):
            t.log_metrics({"val/map50_95": 0.1 * e + 0.01 * i, "train/box_loss": 2.0 - 0.2 * e}, step=e)
        t.end("FINISHED")
        names.append(name)
    parent.end("FINISHED")
    return parent.run_id, names


@pytest.mark.long
def test_screenshots_of_runs_compare_and_chart(tmp_path):
    screens = _screens()
    if screens.find_browser() is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    _, names = small_sweep_store(tmp_path)
    out = tmp_path / "screens"
    assert screens.main(["--db", str(tmp_path / "mlflow.db"), "--out", str(out), "--wait", "300"]) == 0
    for page in ("runs_table", "compare", "epoch_chart", "charts"):
        png = (out / f"{page}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 20_000, page  # a rendered page, not a blank one
    table = (out / "runs_table.dom.html").read_text()
    assert "sweep-20250101-000000" in table and all(n in table for n in names)  # the parent, expanded
    compare = (out / "compare.dom.html").read_text()
    assert all(n in compare for n in names)  # the four variants side by side
    assert "val/map50_95" in (out / "epoch_chart.dom.html").read_text()
    pages = json.loads((out / "pages.json").read_text())
    assert pages["nested_runs"] == names and all(p["complete"] for p in pages["pages"].values())
    assert not list(tmp_path.glob("screens/.chromium"))
