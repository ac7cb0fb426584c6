"""Child-process measurements: peak memory (resident high-water mark delta) of inference and training.

The resident high-water mark belongs to the whole process, so each measurement runs in a fresh
interpreter (``python -m alignrank.profile.probe '<json>'``): after the model is built the mark is reset
(Linux ``/proc/self/clear_refs``; without it, ``ru_maxrss`` of the fresh process) and the rise of the mark
during the work is that work's peak extra resident memory. The child prints one JSON line.

A measurement starts a fresh interpreter and builds a model (seconds of CPU, so this is no doctest)::

    out = run_probe({"mode": "infer", "variant": "baseline", "scale": "n", "nc": 3, "imgsz": 64})
    out["peak_rss_mb"] > 0  # True (a failure comes back as {"error": "<one line>"})
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys


def _status_mb(key: str) -> float | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0  # kB -> MiB
    except OSError:
        pass
    return None


def _reset_peak() -> float:
    """Reset the resident high-water mark where Linux allows it (``clear_refs`` 5); return the current level."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        now = _status_mb("VmRSS")
        if now is not None:
            return now
    except OSError:
        pass
    return _peak_mb()


def _peak_mb() -> float:
    """Resident high-water mark: ``VmHWM`` (resettable) or else ``ru_maxrss`` (process lifetime)."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure_infer(cfg: dict) -> dict:
    """Peak extra RSS of one fused eval forward at batch 1 (an NMS-free model in its one-to-one form)."""
    import torch

    from alignrank.config.fields import build
    from alignrank.config.schema import ModelParams
    from alignrank.nn.model import build_model
    from alignrank.profile.postprocess import inference_form

    torch.set_num_threads(int(cfg.get("threads", 1)))
    mp = build(ModelParams, cfg.get("model", {}), "model")
    model = build_model(cfg["variant"], scale=cfg["scale"], nc=cfg["nc"], model_params=mp).eval()
    model = inference_form(model).fuse(verbose=False)
    x = torch.zeros(1, 3, cfg["imgsz"], cfg["imgsz"])
    base = _reset_peak()
    with torch.inference_mode():
        model(x)
    return {"peak_rss_mb": round(_peak_mb() - base, 1)}


def measure_train(cfg: dict) -> dict:
    """Peak extra RSS of training: one warm-up step and one measured SGD step (optimizer state included)."""
    import torch

    from alignrank.config.fields import build
    from alignrank.config.schema import LossParams, ModelParams
    from alignrank.profile.train_bench import LossUnavailable, make_train_step, synthetic_batch

    torch.set_num_threads(int(cfg.get("threads", 1)))
    torch.manual_seed(0)
    batch = synthetic_batch(cfg["batch"], cfg["imgsz"], cfg["nc"])
    mp, lp = build(ModelParams, cfg.get("model", {}), "model"), build(LossParams, cfg.get("loss", {}), "loss")
    try:
        step = make_train_step(cfg["variant"], scale=cfg["scale"], nc=cfg["nc"], batch=batch, model_params=mp,
                               loss_params=lp)
    except LossUnavailable as e:
        return {"skipped": f"training skipped: {e.args[0]}"}
    base = _reset_peak()
    for _ in range(2):
        step()
    return {"train_peak_rss_mb": round(_peak_mb() - base, 1)}


def run_probe(cfg: dict, timeout: float = 600.0) -> dict:
    """Run one measurement in a fresh interpreter; errors come back as ``{"error": one line}``."""
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg.get("threads", 1)), "TQDM_DISABLE": "1"}
    try:
        r = subprocess.run(
            [sys.executable, "-m", "alignrank.profile.probe", json.dumps(cfg)],
            capture_output=True, text=True, timeout=timeout, env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"probe {cfg.get('mode')} {cfg.get('variant')} timed out after {timeout:.0f}s"}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"probe {cfg.get('mode')} {cfg.get('variant')} failed: {tail}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    """Child entry point: one JSON argument in, one JSON line out."""
    from alignrank.env import setup_offline

    setup_offline()  # offline env before ultralytics

    cfg = json.loads((argv or sys.argv[1:])[0])
    out = measure_infer(cfg) if cfg["mode"] == "infer" else measure_train(cfg)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
