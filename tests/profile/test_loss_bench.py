"""Loss benchmark: runs end to end at tiny sizes, writes its JSON atomically, reports ratios and memory."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignrank.config import load_params
from alignrank.profile.loss_bench import PAIR_BYTES_PER_ELEMENT, run_loss_benchmark, synth_case


def test_synth_case_shapes():
    preds, targets = synth_case(batch=2, imgsz=64, nc=3, gts=[2, 1])
    assert preds["boxes"].shape == (2, 64, 84) and preds["scores"].shape == (2, 3, 84)
    assert preds["scores"].requires_grad and len(targets["cls"]) == 3
    xywh = targets["bboxes"]
    assert ((xywh[:, :2] - xywh[:, 2:] / 2) >= 0).all() and ((xywh[:, :2] + xywh[:, 2:] / 2) <= 1).all()


def test_tiny_benchmark_writes_json(tmp_path):
    small = {"profile.repeats": 2, "profile.warmup": 0, "profile.train_imgsz": 64, "profile.train_batch": 2}
    p = load_params(None, {**small, "loss.pair_budget": 1024})
    lines = []
    out = tmp_path / "bench" / "loss.json"
    sizes = dict(batch=2, imgsz=96, nc=3, gts_per_image=3, stress_gts=60)
    r = run_loss_benchmark(p, out, **sizes, rss=False, echo=lines.append)
    assert json.loads(out.read_text()) == json.loads(json.dumps(r))
    assert not [f for f in out.parent.iterdir() if f.name != "loss.json"]  # no temp file left
    real, stress, step = r["cases"]["realistic"], r["cases"]["stress"], r["train_step"]
    for c in (real, stress, step):
        assert c["baseline_ms"] > 0 and c["rcq_ms"] > 0 and c["ratio"] == pytest.approx(c["rcq_ms"] / c["baseline_ms"])
        assert c["cpu_ratio"] == pytest.approx(c["rcq_cpu_ms"] / c["baseline_cpu_ms"]) and c["baseline_cpu_ms"] > 0
        assert c["repeats"] >= 2 or c is stress
    assert real["target"] == 1.15 and step["target"] == 1.05 and isinstance(real["ok"], bool)
    assert stress["gts"] == 60 and real["gts"] == 6 and stress["groups"] > real["groups"] > 0
    # the chunk plan respects the budget unless a single group is larger than it
    assert stress["largest_pair_chunk_elements"] <= max(1024, stress["kmax"] ** 2)
    assert stress["memory"]["pair_stage_estimate"] == stress["largest_pair_chunk_elements"] * PAIR_BYTES_PER_ELEMENT
    text = "\n".join(lines)
    assert "realistic" in text and "stress" in text and "train_step" in text


def test_cli_profile_loss_with_rss(tmp_path):
    from alignrank.cli import app

    out = tmp_path / "loss.json"
    res = CliRunner().invoke(
        app,
        ["profile", "--loss", "--imgsz", "64", "--json", str(out)]
        + [f"--set=profile.{k}" for k in ("nc=2", "repeats=1", "warmup=0", "train_imgsz=64", "train_batch=1")],
    )
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    assert r["cases"]["stress"]["gts"] == 1000 and r["cases"]["realistic"]["gts"] == 16 * 7
    mem = r["cases"]["stress"]["memory"]
    assert mem["baseline_peak_rss"] >= 0 and mem["rcq_peak_rss"] >= 0 and "RSS" in mem["method"]
