"""Profile stage: params, GFLOPs, latency (eager, ONNX Runtime, CUDA fp16), peak memory, training throughput.

All variants are measured in one run on the same machine; latencies are timed alternately (see
:mod:`alignrank.profile.latency`) and reported with their ratios to ``baseline`` (or to the first
variant when ``baseline`` is not profiled). Variants whose inference graph is the same (same head and form:
``rcq`` = ``baseline``'s, ``full`` = ``csd``'s, ``full_e2e`` = ``csd_e2e``'s) share one inference measurement
(``arch_of`` names it); training throughput and memory are measured per variant, in child processes
(:mod:`alignrank.profile.probe`).

An NMS-free model (``*_e2e`` or ``model.end2end``) is profiled in its deployed form: the one-to-one branch
selected before fusing (the one-to-many branch is dropped), its graph ending in top-k. ``latency_eager`` and
``latency_ort`` time the forward pass alone; ``latency_e2e`` and ``latency_ort_e2e`` add the post-processing to
final detections (NMS for one-to-many models, the score threshold of the top-k for NMS-free ones;
:mod:`alignrank.profile.postprocess`).

A quick comparison of two variants (seconds of CPU: models are built and timed, so this is no doctest;
``tests/profile`` runs it)::

    p = load_params(None, {"profile.variants": ["baseline", "csd"], "profile.scale": "n", "profile.imgsz": 64,
                           "profile.repeats": 2, "profile.warmup": 0, "profile.onnx": False})
    out = run_profile(p, json_out=None, memory=False, train=False)
    sorted(out["ratios"]["csd"])  # ['gflops', 'latency_eager', 'params']
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from alignrank.config.schema import Params
from alignrank.env import cpu_model
from alignrank.io import atomic_write_json
from alignrank.profile.flops import METHOD, model_gflops
from alignrank.profile.latency import (
    cuda_fns,
    e2e_fns,
    eager_fns,
    ort_e2e_fns,
    ort_fns,
    summarize,
    time_alternating,
)
from alignrank.profile.postprocess import is_nms_free, nms_input_boxes, postprocess_fn
from alignrank.variants import get_variant, is_end2end


def _hardware() -> dict[str, Any]:
    hw = {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__, "cuda": None}
    try:
        import onnxruntime

        hw["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        hw["onnxruntime"] = None
    if torch.cuda.is_available():
        hw["cuda"] = torch.cuda.get_device_name(0)
    return hw


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def _build(variant: str, params: Params) -> torch.nn.Module:
    from alignrank.nn.model import build_model
    from alignrank.profile.postprocess import inference_form

    pp = params.profile
    m = build_model(variant, scale=pp.scale, nc=pp.nc, model_params=params.model, loss_params=params.loss)
    return inference_form(m.eval()).fuse(verbose=False)


def _thop_gflops(model: torch.nn.Module, imgsz: int) -> float | None:
    try:
        from ultralytics.utils.torch_utils import get_flops

        return round(get_flops(model, imgsz), 3) or None
    except Exception:  # thop absent or failing on custom modules: reference figure only
        return None


def _table(rows: dict[str, dict], ratios: dict[str, dict], ref: str) -> str:
    cols = [
        ("variant", lambda v, r: v),
        ("params(M)", lambda v, r: f"{r['params'] / 1e6:.3f}"),
        ("GFLOPs", lambda v, r: f"{r['gflops']:.2f}"),
        ("eager ms", lambda v, r: f"{r['latency_eager_ms']:.1f}"),
        ("e2e ms", lambda v, r: f"{r['latency_e2e_ms']:.1f} {r['postprocess']}"),
        ("ORT ms", lambda v, r: "-" if r.get("latency_ort_ms") is None else f"{r['latency_ort_ms']:.1f}"),
        ("CUDA ms", lambda v, r: "-" if r.get("latency_cuda_fp16_ms") is None else f"{r['latency_cuda_fp16_ms']:.2f}"),
        ("peak MB", lambda v, r: "-" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:.0f}"),
        ("train img/s", lambda v, r: "-" if r.get("train_img_per_s") is None else f"{r['train_img_per_s']:.2f}"),
        ("x params", lambda v, r: f"{ratios[v]['params']:.3f}"),
        ("x GFLOPs", lambda v, r: f"{ratios[v]['gflops']:.3f}"),
        ("x eager", lambda v, r: f"{ratios[v]['latency_eager']:.3f}"),
        ("x e2e", lambda v, r: f"{ratios[v]['latency_e2e']:.3f}"),
        ("x ORT", lambda v, r: "-" if ratios[v].get("latency_ort") is None else f"{ratios[v]['latency_ort']:.3f}"),
    ]
    body = [[fn(v, r) for _, fn in cols] for v, r in rows.items()]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, (h, _) in enumerate(cols)]
    line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([line([h for h, _ in cols]), *(line(b) for b in body), f"(x = ratio to {ref})"])


def _train_throughput(variants: list[str], params: Params) -> dict[str, dict | str]:
    """Training img/s per variant: one SGD step per variant per round, alternating, after one warm-up step.

    Returns variant -> ``{"train_img_per_s": ...}``, or a one-line note when its loss plugin is absent.
    """
    from alignrank.profile.train_bench import LossUnavailable, make_train_step, synthetic_batch

    pp = params.profile
    batch = synthetic_batch(pp.train_batch, pp.train_imgsz, pp.nc)
    steps, out = {}, {}
    threads_before = torch.get_num_threads()
    torch.set_num_threads(pp.threads)
    try:
        for v in variants:
            torch.manual_seed(0)
            try:
                steps[v] = make_train_step(v, scale=pp.scale, nc=pp.nc, batch=batch, model_params=params.model,
                                           loss_params=params.loss)
            except LossUnavailable as e:
                out[v] = f"training throughput skipped: {e.args[0]}"
        times = time_alternating(steps, pp.train_steps, warmup=1)
    finally:
        torch.set_num_threads(threads_before)
    for v, t in times.items():
        out[v] = {"train_img_per_s": round(pp.train_batch / summarize(t)["median_ms"] * 1e3, 3)}
    return out


def _arch_figures(archs: list[str], params: Params) -> dict[str, dict[str, Any]]:
    """Per architecture: params, GFLOPs, eager / ONNX Runtime / CUDA fp16 latency (models timed alternately)."""
    pp = params.profile
    models = {a: _build(a, params) for a in archs}
    x = torch.rand(1, 3, pp.imgsz, pp.imgsz, generator=torch.Generator().manual_seed(0))
    arch: dict[str, dict[str, Any]] = {}
    for a, m in models.items():
        arch[a] = {
            "params": int(sum(p.numel() for p in m.parameters())),
            "gflops": round(model_gflops(m, pp.imgsz), 4),
            "gflops_ultralytics_thop": _thop_gflops(m, pp.imgsz),
        }

    def record(key: str, times: dict[str, list[float]]) -> None:
        for a in archs:
            arch[a][key] = summarize(times[a])
            arch[a][f"{key}_ms"] = round(arch[a][key]["median_ms"], 3)

    post = {a: postprocess_fn(end2end=is_nms_free(m), conf=pp.conf, iou=pp.iou, max_det=pp.max_det)
            for a, m in models.items()}
    for a, m in models.items():
        arch[a]["postprocess"] = "topk" if is_nms_free(m) else "nms"
        if not is_nms_free(m):
            with torch.inference_mode():
                out = m(x)
            arch[a]["nms_input_boxes"] = nms_input_boxes(out[0] if isinstance(out, tuple) else out, pp.conf)
    record("latency_eager", time_alternating(eager_fns(models, x), pp.repeats, pp.warmup))
    record("latency_e2e", time_alternating(e2e_fns(models, x, post), pp.repeats, pp.warmup))
    if pp.onnx:
        from alignrank.profile.onnx_export import export_onnx, onnx_max_abs_diff, ort_session

        with tempfile.TemporaryDirectory(prefix="alignrank_onnx_") as d:
            paths = {a: export_onnx(m, Path(d) / f"{a}.onnx", imgsz=pp.imgsz) for a, m in models.items()}
            for a in archs:
                arch[a]["onnx_max_abs_diff"] = onnx_max_abs_diff(models[a], paths[a], imgsz=pp.imgsz)
            sessions = {a: ort_session(p, threads=pp.threads) for a, p in paths.items()}
            record("latency_ort", time_alternating(ort_fns(sessions, x.numpy()), pp.repeats, pp.warmup))
            record("latency_ort_e2e", time_alternating(ort_e2e_fns(sessions, x.numpy(), post), pp.repeats, pp.warmup))
            del sessions
    if torch.cuda.is_available():
        dev = torch.device("cuda:0")
        gpu = {a: m.to(dev).half() for a, m in models.items()}
        xg = x.to(dev).half()
        record("latency_cuda_fp16", time_alternating(cuda_fns(gpu, xg), pp.repeats, max(pp.warmup, 3)))
        for a in archs:
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
            with torch.inference_mode():
                gpu[a](xg)
            arch[a]["cuda_peak_mb"] = round((torch.cuda.max_memory_allocated(dev) - base) / 2**20, 1)
    return arch


def _add_memory(rows: dict[str, dict], archs: list[str], params: Params, train: bool) -> None:
    """Peak resident memory from child processes: inference per architecture, training per variant."""
    from alignrank.profile.probe import run_probe

    pp = params.profile
    common = {"scale": pp.scale, "nc": pp.nc, "threads": pp.threads, "model": dataclasses.asdict(params.model)}
    infer = {a: run_probe({"mode": "infer", "variant": a, "imgsz": pp.imgsz, **common}) for a in archs}
    for v, row in rows.items():
        r = dict(infer[row["arch_of"]])
        row["peak_rss_mb"] = r.get("peak_rss_mb")
        if train and "train_img_per_s" in row:
            t = run_probe({"mode": "train", "variant": v, "batch": pp.train_batch, "imgsz": pp.train_imgsz,
                           "loss": dataclasses.asdict(params.loss), **common})
            row["train_peak_rss_mb"] = t.get("train_peak_rss_mb")
            r.update(t)
        for k in ("skipped", "error"):
            if k in r:
                row.setdefault("notes", []).append(r[k])


def _ratios(rows: dict[str, dict], ref: str) -> dict[str, dict[str, float | None]]:
    b = rows[ref]
    out = {}
    for v, r in rows.items():
        out[v] = {"params": _ratio(r["params"], b["params"]), "gflops": _ratio(r["gflops"], b["gflops"]),
                  "latency_eager": _ratio(r["latency_eager_ms"], b["latency_eager_ms"]),
                  "latency_e2e": _ratio(r["latency_e2e_ms"], b["latency_e2e_ms"])}
        for key, field in (("latency_ort", "latency_ort_ms"), ("latency_ort_e2e", "latency_ort_e2e_ms"),
                           ("latency_cuda_fp16", "latency_cuda_fp16_ms"),
                           ("train_img_per_s", "train_img_per_s")):
            if r.get(field) is not None and b.get(field):
                out[v][key] = _ratio(r[field], b[field])
    return out


def run_profile(params: Params, json_out: str | Path | None = None, *, memory: bool = True, train: bool = True) -> dict:
    """Profile ``params.profile.variants`` side by side; print a table and optionally write JSON.

    Args:
        params: Resolved params (``profile`` section; ``model``/``loss`` settings of the variants).
        json_out: Where to write the figures (atomic), or None.
        memory: Measure peak memory: inference (child process per architecture) and, with ``train``, training
            (child process per variant).
        train: Measure training throughput (in this process, variants alternating; median step time).

    Returns:
        The figures: ``settings``, ``hardware``, ``method`` (how GFLOPs are counted), ``reference``,
        ``variants`` (per variant), ``ratios`` (to ``reference``), ``wall_s``.
    """
    t_start = time.perf_counter()
    pp = params.profile
    variants = list(dict.fromkeys(pp.variants))
    ref = "baseline" if "baseline" in variants else variants[0]
    heads = {v: get_variant(v).head for v in variants}
    form = {v: (heads[v], is_end2end(v, params.model)) for v in variants}  # head and NMS-free form: the inference graph
    arch_of = {v: next(u for u in variants if form[u] == form[v]) for v in variants}  # first variant with its graph
    archs = list(dict.fromkeys(arch_of.values()))
    threads_before = torch.get_num_threads()
    torch.set_num_threads(pp.threads)
    try:
        arch = _arch_figures(archs, params)
    finally:
        torch.set_num_threads(threads_before)
    rows = {v: {"head": heads[v], "loss": get_variant(v).loss, "end2end": form[v][1], "arch_of": arch_of[v],
                **json.loads(json.dumps(arch[arch_of[v]]))} for v in variants}
    if train:
        for v, r in _train_throughput(variants, params).items():
            if isinstance(r, dict):
                rows[v].update(r)
            else:
                rows[v].setdefault("notes", []).append(r)
    if memory:
        _add_memory(rows, archs, params, train)
    ratios = _ratios(rows, ref)
    out = {
        "settings": {"variants": variants, "scale": pp.scale, "imgsz": pp.imgsz, "nc": pp.nc, "batch": 1,
                     "repeats": pp.repeats, "warmup": pp.warmup, "threads": pp.threads, "onnx": pp.onnx,
                     "train_batch": pp.train_batch, "train_imgsz": pp.train_imgsz, "train_steps": pp.train_steps,
                     "fused": True, "latency": "median of alternating timed runs (ABBA order), batch 1",
                     "latency_e2e": "forward + post-processing to final detections: NMS (one-to-many) or the score "
                                    "threshold of the graph's top-k (NMS-free)",
                     "conf": pp.conf, "iou": pp.iou, "max_det": pp.max_det,
                     "train_throughput": "train_batch / median SGD step time, variants alternating, in process"},
        "hardware": _hardware(),
        "method": METHOD,
        "reference": ref,
        "variants": rows,
        "ratios": ratios,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    print(_table(rows, ratios, ref) + f"\nGFLOPs method: {METHOD}", flush=True)
    if json_out is not None:
        atomic_write_json(json_out, out)
    return out
