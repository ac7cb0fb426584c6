"""Profile stage and ``alignrank profile`` at tiny sizes: figures, ratios, shared architectures, JSON, probes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.config import load_params
from alignrank.profile.compare import run_profile
from tests.conftest import REPO, set_args

TINY = {"profile.scale": "n", "profile.imgsz": 64, "profile.nc": 3, "profile.repeats": 2, "profile.warmup": 0,
        "profile.train_batch": 2, "profile.train_imgsz": 64, "profile.train_steps": 1}


def test_run_profile_figures_and_ratios(tmp_path, capsys):
    p = load_params(REPO / "params.yaml", {**TINY, "profile.variants": ["baseline", "csd", "rcq"]})
    out = run_profile(p, json_out=tmp_path / "p.json", memory=False, train=False)
    assert json.loads((tmp_path / "p.json").read_text()) == json.loads(json.dumps(out, default=str))
    v, r = out["variants"], out["ratios"]
    assert out["reference"] == "baseline" and "grid_sampler_2d" in out["method"]
    assert v["rcq"]["arch_of"] == "baseline" and v["rcq"]["params"] == v["baseline"]["params"]
    assert v["csd"]["arch_of"] == "csd" and v["csd"]["params"] != v["baseline"]["params"]
    for name in ("baseline", "csd"):
        row = v[name]
        assert row["latency_eager_ms"] > 0 and row["latency_ort_ms"] > 0 and row["gflops"] > 0
        assert row["onnx_max_abs_diff"] <= 1e-3 and row["latency_eager"]["n"] == 2
    assert r["baseline"] == {"params": 1.0, "gflops": 1.0, "latency_eager": 1.0, "latency_e2e": 1.0, "latency_ort": 1.0,
                             "latency_ort_e2e": 1.0}
    assert r["csd"]["params"] == round(v["csd"]["params"] / v["baseline"]["params"], 4)
    printed = capsys.readouterr().out
    assert "x eager" in printed and "GFLOPs method: torch.utils.flop_counter" in printed


def test_cli_profile_with_memory_and_training(tmp_path):
    args = ["profile", "--params", str(REPO / "params.yaml"), "--variants", "baseline,csd", "--scale", "n", "--imgsz",
            "64", "--json", str(tmp_path / "out.json"), "--set", "profile.onnx=false"]
    args += set_args({k: v for k, v in TINY.items() if k not in ("profile.scale", "profile.imgsz")})
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["settings"]["imgsz"] == 64 and out["settings"]["variants"] == ["baseline", "csd"]
    for name in ("baseline", "csd"):
        row = out["variants"][name]
        assert row.get("notes") is None, row.get("notes")
        assert row["peak_rss_mb"] >= 0 and row["train_img_per_s"] > 0 and row["train_peak_rss_mb"] >= 0
        assert "latency_ort_ms" not in row
    assert "train_img_per_s" in out["ratios"]["csd"] and "baseline" in res.output


def test_profile_times_end_to_end_latency_with_each_models_post_processing(tmp_path, monkeypatch):
    """One-to-many models: forward + NMS; NMS-free ones: their one-to-one graph (top-k) + the score threshold, no NMS.
    NMS-free variants share a graph by head and form, apart from their one-to-many twins."""
    import ultralytics.utils.nms as unms

    calls = {"n": 0}
    real = unms.non_max_suppression

    def counted(*a, **k):
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(unms, "non_max_suppression", counted)
    p = load_params(REPO / "params.yaml", {**TINY, "profile.variants": ["baseline", "csd_e2e", "full_e2e"],
                                           "profile.repeats": 1})
    out = run_profile(p, json_out=None, memory=False, train=False)
    v = out["variants"]
    assert v["full_e2e"]["arch_of"] == "csd_e2e" and v["csd_e2e"]["end2end"] and not v["baseline"]["end2end"]
    assert v["baseline"]["postprocess"] == "nms" and v["csd_e2e"]["postprocess"] == "topk"
    assert "nms_input_boxes" in v["baseline"] and "nms_input_boxes" not in v["csd_e2e"]
    for name in ("baseline", "csd_e2e"):
        row = v[name]
        assert row["latency_e2e_ms"] > 0 and row["latency_ort_e2e_ms"] > 0
    assert v["baseline"]["onnx_max_abs_diff"] <= 1e-3  # (top-k rows of an untrained model may swap near-ties)
    assert calls["n"] == 2 * 1  # eager + ORT end-to-end runs of the one model that needs NMS (no warm-up)
    assert out["ratios"]["csd_e2e"]["latency_e2e"] > 0 and out["settings"]["conf"] == p.profile.conf
