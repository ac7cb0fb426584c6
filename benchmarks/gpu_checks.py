"""The checks of ``benchmarks/gpu_check.sh``, one per call: ``python benchmarks/gpu_checks.py <check> <work dir>``.

Each prints ONE summary line, ``<check>: ok: ...`` / ``<check>: FAILED: ...`` / ``<check>: skipped: ...``, and
exits 1 on failure:

* ``amp``: every variant of ``profile.variants`` (baseline, csd, rcq, full) at YOLOv8-S / 640 px, 80 classes, batch
  4 on CUDA: one forward + loss + backward under fp16 autocast with a gradient scaler; losses and unscaled
  gradients finite, and the fp16 loss within 5 % of the fp32 one;
* ``sweep``: ``alignrank data`` + ``alignrank sweep`` of ``full``, seed 0, 2 epochs on a tiny synthetic dataset
  with ``train.device=cuda``, AMP, one GPU per run through Ray: the run finishes with finite final metrics;
* ``profile``: ``alignrank profile`` (all four variants, YOLOv8-S, 640 px, no ONNX): a CUDA fp16 latency and its
  ratio to the baseline for every variant;
* ``ddp``: with >= 2 GPUs visible, ``alignrank train`` of ``full`` on ``train.device=0,1`` (our DDP launcher),
  1 epoch: the run finishes, its epochs relayed from rank 0 (``ddp/epochs.jsonl``) and its final metrics recorded.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
VARIANTS = ("baseline", "csd", "rcq", "full")


def _alignrank(args: list[str], work: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "ALIGNRANK_ROOT": str(work), "TQDM_DISABLE": "1"}
    return subprocess.run([str(BIN / "alignrank"), *args, "--params", str(ROOT / "params.yaml")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _sets(d: dict) -> list[str]:
    return [a for k, v in d.items() for a in ("--set", f"{k}={v}")]


def _tail(r: subprocess.CompletedProcess) -> str:
    return ((r.stderr or r.stdout).strip().splitlines() or ["(no output)"])[-1][:200]


def check_amp(work: Path) -> str:
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.utils import DEFAULT_CFG

    from alignrank.nn.model import build_model
    from alignrank.profile.train_bench import synthetic_batch

    out = []
    for v in VARIANTS:
        torch.manual_seed(0)
        model = build_model(v, scale="s", nc=80).cuda().train()
        lp = model.loss_params
        model.args = get_cfg(DEFAULT_CFG, {"box": lp.box, "cls": lp.cls, "dfl": lp.dfl})
        model.criterion = model.init_criterion()
        batch = {k: t.cuda() for k, t in synthetic_batch(4, 640, 80).items()}
        with torch.no_grad():
            ref, _ = model.loss(batch)  # fp32
        opt = torch.optim.SGD(model.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler("cuda", init_scale=1024.0)
        with torch.autocast("cuda", dtype=torch.float16):
            loss, _ = model.loss(batch)
        scaler.scale(loss.sum()).backward()
        scaler.unscale_(opt)
        grads_ok = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        lsum, rsum = float(loss.sum()), float(ref.sum())
        if not (math.isfinite(lsum) and grads_ok):
            raise AssertionError(f"{v}: fp16 loss {lsum} / gradients finite: {grads_ok}")
        if abs(lsum - rsum) > 0.05 * abs(rsum):
            raise AssertionError(f"{v}: fp16 loss {lsum:.4g} vs fp32 {rsum:.4g}")
        out.append(f"{v} {lsum:.3g}")
        del model, opt
        torch.cuda.empty_cache()
    return "finite fp16 losses and gradients (loss sum at batch 4: " + ", ".join(out) + ")"


TINY = {"data.source": "synthetic", "data.num_train": 64, "data.num_val": 16, "data.imgsz": 128, "train.imgsz": 128,
        "train.batch": 16, "train.epochs": 2, "train.amp": "true", "model.scale": "n"}


def check_sweep(work: Path) -> str:
    over = {**TINY, "data.root": str(work / "data"), "train.out_dir": str(work / "runs"), "train.device": "cuda",
            "ray.gpus_per_run": 1, "ray.cpus_per_run": 2, "ray.max_concurrent": 1}
    r = _alignrank(["data", *_sets(over)], work, 300)
    if r.returncode:
        raise AssertionError(f"alignrank data: {_tail(r)}")
    t0 = time.time()
    r = _alignrank(["sweep", "--variants", "full", "--seeds", "0", *_sets(over)], work, 420)
    if r.returncode:
        raise AssertionError(f"alignrank sweep: {_tail(r)}")
    s = json.loads((work / "runs" / "sweep.json").read_text())
    m = s["runs"][0]["metrics"]
    if s["failed"] or len(s["trained"]) != 1 or not all(math.isfinite(float(v)) for v in m.values() if v is not None):
        raise AssertionError(f"sweep summary: trained {s['trained']}, failed {s['failed']}, metrics {m}")
    return f"full trained 2 epochs on CUDA with AMP through Ray in {time.time() - t0:.0f} s (map50_95 {m.get('map50_95')})"


def check_profile(work: Path) -> str:
    out = work / "profile.json"
    r = _alignrank(["profile", "--variants", ",".join(VARIANTS), "--scale", "s", "--imgsz", "640", "--no-onnx",
                    "--json", str(out), *_sets({"profile.train_steps": 2, "profile.repeats": 20})], work, 420)
    if r.returncode:
        raise AssertionError(f"alignrank profile: {_tail(r)}")
    p = json.loads(out.read_text())
    ms = {v: p["variants"][v].get("latency_cuda_fp16_ms") for v in VARIANTS}
    ratios = {v: p["ratios"][v].get("latency_cuda_fp16") for v in VARIANTS}
    if any(x is None or not x > 0 for x in [*ms.values(), *ratios.values()]):
        raise AssertionError(f"CUDA fp16 latency missing: {ms}, ratios {ratios}")
    return (f"CUDA fp16 latency on {p['hardware'].get('cuda')} (ms, x baseline): "
            + ", ".join(f"{v} {ms[v]:.2f} ({ratios[v]:.2f}x)" for v in VARIANTS))


def check_ddp(work: Path) -> str:
    import torch

    if torch.cuda.device_count() < 2:
        return f"skipped: {torch.cuda.device_count()} GPU visible (DDP needs 2)"
    over = {**TINY, "data.root": str(work / "data_ddp"), "train.out_dir": str(work / "runs_ddp"),
            "train.device": "0,1", "train.epochs": 1, "train.workers": 2}
    r = _alignrank(["data", *_sets(over)], work, 300)
    if r.returncode:
        raise AssertionError(f"alignrank data: {_tail(r)}")
    r = _alignrank(["train", "--variant", "full", "--seed", "0", *_sets(over)], work, 420)
    if r.returncode:
        raise AssertionError(f"alignrank train on 0,1: {_tail(r)}")
    s = json.loads(r.stdout)
    relay = Path(s["run_dir"]) / "ddp" / "epochs.jsonl"
    if s["status"] != "done" or not s["metrics"] or not relay.is_file():
        raise AssertionError(f"DDP run: status {s['status']}, metrics {s['metrics']}, relay {relay.is_file()}")
    return f"full trained 1 epoch on GPUs 0,1 (DDP, our launcher), metrics {s['metrics']}"


CHECKS = {"amp": check_amp, "sweep": check_sweep, "profile": check_profile, "ddp": check_ddp}


def main() -> int:
    name, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    from alignrank.env import setup_offline

    setup_offline()
    try:
        text = CHECKS[name](work)
    except Exception as e:  # noqa: BLE001  (one line per check, whatever failed)
        print(f"{name}: FAILED: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}", flush=True)
        return 1
    print(f"{name}: {text if text.startswith('skipped') else 'ok: ' + text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
