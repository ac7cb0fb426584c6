"""Loss benchmark (``alignrank profile --loss``): the baseline loss vs RCQ-Loss, measured side by side.

Cases (head outputs are synthesized: random ``boxes`` (B, 4*reg_max, A) and ``scores`` (B, nc, A) leaf
tensors with ``requires_grad``, ``feats`` of the right shapes, random GT boxes of 2-50 % of the image side):

* ``realistic`` — B = 16 images at ``profile.imgsz`` (640 -> 8400 anchors), ``profile.nc`` classes (80),
  7 GTs per image (112 groups); time of loss forward + backward, the two losses alternated,
  ``profile.repeats`` repeats after ``profile.warmup`` untimed ones; target median ratio <= 1.15.
* ``stress`` — the same with 1000 GTs over the batch (62-63 per image); fewer repeats
  (max(3, repeats // 4)); reports the pair-tensor memory of L_rank.
* ``train_step`` — one whole training step (model forward + loss + backward) of ``rcq`` vs ``baseline``
  (same weights) at ``profile.train_batch`` x ``profile.train_imgsz`` with scale ``model.scale``;
  target ratio <= 1.05.

Every case times RCQ-Loss in its replace reading (eq. 8, loss ``rcq_replace``, variant ``rcq_replace`` in the
``train_step`` case), labelled ``rcq``: L_cal's focal BCE does the work of the augment reading's stock BCE and
more, and the group terms are the same, so it bounds the cost of both readings. Both losses get the same ``loss`` params (so with a non-default assigner the baseline is the v8 loss with
that assigner). Runs on ``train.device`` with ``train.threads`` CPU threads. Each timing records wall-clock
and process CPU time; ``ratio`` / ``ok`` use the wall-clock medians, ``cpu_ratio`` / ``cpu_ok`` the CPU-time
medians, which are far less disturbed by other processes on a shared CPU (with one thread they measure
the same work).

Memory of the stress case: on CUDA, ``torch.cuda.max_memory_allocated`` during forward + backward of each
loss. On CPU (no peak counter), two figures: (1) an exact count of the largest L_rank chunk (G_c x Kmax^2
elements, from the real assignment; ~21 bytes per element live at once: 5 float32 + 1 bool tensors) and
(2) unless ``rss=False``, the measured peak-RSS increase of a fresh child process running one forward +
backward of each loss (``resource.getrusage`` ru_maxrss minus the RSS before the loss).

Examples:
    >>> from alignrank.config import load_params
    >>> p = load_params(None, {"profile.repeats": 1, "profile.warmup": 0})
    >>> r = run_loss_benchmark(p, batch=1, imgsz=64, nc=3, gts_per_image=2, stress_gts=4, train_step=False,
    ...                        rss=False, echo=lambda s: None)
    >>> sorted(r["cases"])
    ['realistic', 'stress']
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch

from alignrank.config.schema import Params
from alignrank.io import atomic_write_json
from alignrank.loss.rcq import plan_pair_chunks

PAIR_BYTES_PER_ELEMENT = 21  # dq, hinge, dq*pairs, product, sigmoid difference (float32) + pairs (bool)
TARGETS = {"realistic": 1.15, "train_step": 1.05}


# ----------------------------------------------------------------------------- inputs


def synth_case(
    *,
    batch: int,
    imgsz: int,
    nc: int,
    gts: list[int],
    reg_max: int = 16,
    seed: int = 0,
    device: str = "cpu",
    strides: tuple[int, ...] = (8, 16, 32),
):
    """Synthetic head outputs and GT batch for a loss benchmark.

    Args:
        batch: Images.
        imgsz: Image side (multiple of the largest stride).
        nc: Classes.
        gts: GTs per image (len == batch).
        reg_max: DFL bins.
        seed: RNG seed.
        device: Torch device.

    Returns:
        (preds, targets): ``{"boxes": (B, 4*reg_max, A), "scores": (B, nc, A), "feats": [...]}`` (leaf tensors
        with requires_grad) and ``{"batch_idx", "cls", "bboxes" (normalised xywh)}``.
    """
    gen = torch.Generator().manual_seed(seed)
    feats = [torch.zeros(batch, 1, imgsz // s, imgsz // s, device=device) for s in strides]  # only shapes are read
    a = sum(f.shape[2] * f.shape[3] for f in feats)
    boxes = torch.randn(batch, 4 * reg_max, a, generator=gen).to(device).requires_grad_()
    scores = (torch.randn(batch, nc, a, generator=gen) - 4.0).to(device).requires_grad_()  # sigmoid ~ 0.02 (bias init)
    n = sum(gts)
    idx = torch.repeat_interleave(torch.arange(batch), torch.tensor(gts, dtype=torch.long)).float()
    wh = torch.exp(torch.empty(n, 2).uniform_(-3.9, -0.7, generator=gen))  # 2 % .. 50 % of the side, log-uniform
    xy = wh / 2 + torch.rand(n, 2, generator=gen) * (1 - wh)
    targets = {
        "batch_idx": idx.to(device),
        "cls": torch.randint(0, nc, (n,), generator=gen).float().to(device),
        "bboxes": torch.cat((xy, wh), 1).to(device),
    }
    return {"boxes": boxes, "scores": scores, "feats": feats}, targets


def _spread(total: int, batch: int) -> list[int]:
    """``total`` GTs spread over ``batch`` images as evenly as possible."""
    return [total // batch + (i < total % batch) for i in range(batch)]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- timing


def _timed(fn: Callable[[], None], device: str) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``fn()``."""
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def _loss_step(crit, preds, targets, device: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one loss forward + backward (grads of the synthetic leaves reset first)."""
    preds["boxes"].grad = preds["scores"].grad = None

    def run() -> None:
        loss, _ = crit(preds, targets)
        loss.sum().backward()

    return _timed(run, device)


def _alternate(fns: dict[str, Callable[[], tuple]], repeats: int, warmup: int) -> dict[str, list[tuple]]:
    """Run the timed functions alternately (A B A B ...), ``warmup`` untimed rounds first."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(fn())
    return times


def _summary(times: dict[str, list[tuple]], target: float | None) -> dict[str, Any]:
    """Medians of wall and CPU time, their ratios rcq / baseline, and the verdict against ``target``."""
    base_wall, base_cpu = zip(*times["baseline"])
    rcq_wall, rcq_cpu = zip(*times["rcq"])
    med = statistics.median
    out = {
        "baseline_ms": 1e3 * med(base_wall),
        "rcq_ms": 1e3 * med(rcq_wall),
        "ratio": med(rcq_wall) / med(base_wall),
        "paired_ratio_median": med(r / b for r, b in zip(rcq_wall, base_wall)),
        "baseline_cpu_ms": 1e3 * med(base_cpu),
        "rcq_cpu_ms": 1e3 * med(rcq_cpu),
        "cpu_ratio": med(rcq_cpu) / med(base_cpu),
        "repeats": len(base_wall),
    }
    if target is not None:
        out.update(target=target, ok=out["ratio"] <= target, cpu_ok=out["cpu_ratio"] <= target)
    return out


def _assignment_stats(crit, preds, targets, pair_budget: int) -> dict[str, Any]:
    """Positives, groups, largest group and the largest L_rank chunk of the real assignment."""
    with torch.no_grad():
        (fg, gt_idx, *_), _, _ = crit.get_assigned_targets_and_loss(preds, targets)
    bi, ai = fg.nonzero(as_tuple=True)
    groups = bi * (int(gt_idx.max()) + 1 if gt_idx.numel() else 1) + gt_idx[bi, ai]
    sizes = sorted(torch.unique(groups, return_counts=True)[1].tolist(), reverse=True) if groups.numel() else []
    chunks = plan_pair_chunks(sizes, pair_budget)
    largest = max(((g1 - g0) * k * k for g0, g1, k in chunks), default=0)
    return {
        "positives": int(fg.sum()),
        "groups": len(sizes),
        "kmax": sizes[0] if sizes else 0,
        "pair_chunks": len(chunks),
        "largest_pair_chunk_elements": largest,
        "pair_stage_bytes_estimate": largest * PAIR_BYTES_PER_ELEMENT,
    }


# ----------------------------------------------------------------------------- peak memory


def _cuda_peak(crit, preds, targets) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    _loss_step(crit, preds, targets, "cuda")
    return torch.cuda.max_memory_allocated() - start


def _rss_child(loss_name: str, loss_params, case: dict, queue) -> None:
    """Child process: build the case, run one forward + backward of one loss, report the peak RSS increase."""
    import resource

    from alignrank.env import setup_offline


    setup_offline()  # offline env first
    import alignrank.loss.criterion  # noqa: F401  (registers "rcq_replace")
    from alignrank.loss.registry import LOSSES
    from alignrank.nn.model import build_model

    torch.set_num_threads(1)
    model = build_model("baseline", scale="n", nc=case["nc"])
    crit = LOSSES[loss_name](model, loss_params)
    preds, targets = synth_case(**case)
    with open("/proc/self/statm") as f:
        rss_before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    _loss_step(crit, preds, targets, "cpu")
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before)


def _rss_peaks(loss_params, case: dict) -> dict[str, int]:
    """Measured peak-RSS increase (bytes) of one forward + backward of each loss, each in a fresh process."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = {}
    for key, loss_name in (("baseline", "v8"), ("rcq", "rcq_replace")):
        queue = ctx.Queue()
        proc = ctx.Process(target=_rss_child, args=(loss_name, loss_params, case, queue))
        proc.start()
        out[key] = queue.get(timeout=600)
        proc.join()
    return out


# ----------------------------------------------------------------------------- training step


def _train_step_ratio(params: Params, repeats: int, warmup: int, device: str, nc: int) -> dict[str, Any]:
    """One training step (forward + loss + backward) of rcq_replace vs baseline models with identical weights."""
    from alignrank.loss.v8 import ensure_loss_args
    from alignrank.nn.model import build_model

    pp = params.profile
    b, s = pp.train_batch, pp.train_imgsz
    models = {}
    for key, variant in (("baseline", "baseline"), ("rcq", "rcq_replace")):
        m = build_model(variant, scale=params.model.scale, nc=nc, model_params=params.model, loss_params=params.loss)
        ensure_loss_args(m, params.loss)
        models[key] = m.to(device).train()
    models["rcq"].load_state_dict(models["baseline"].state_dict())
    gen = torch.Generator().manual_seed(0)
    _, targets = synth_case(batch=b, imgsz=s, nc=nc, gts=[7] * b, device=device)
    batch = {"img": torch.rand(b, 3, s, s, generator=gen).to(device), **targets}

    def step(m):
        def run() -> None:
            loss, _ = m.loss(batch)
            loss.sum().backward()

        def timed() -> tuple[float, float]:
            m.zero_grad(set_to_none=True)
            return _timed(run, device)

        return timed

    times = _alternate({"baseline": step(models["baseline"]), "rcq": step(models["rcq"])}, repeats, warmup)
    return {**_summary(times, TARGETS["train_step"]), "scale": params.model.scale, "batch": b, "imgsz": s}


# ----------------------------------------------------------------------------- entry point


def _table(result: dict) -> str:
    rows = [f"{'case':<12}{'baseline ms':>13}{'rcq ms':>10}{'ratio':>8}{'cpu ratio':>11}{'target':>8}  note"]
    items = list(result["cases"].items()) + ([("train_step", result["train_step"])] if result.get("train_step") else [])
    for name, c in items:
        if "groups" in c:
            note = f"{c['positives']} pos / {c['groups']} groups / kmax {c['kmax']} / {c['anchors']} anchors"
        else:
            note = f"scale {c['scale']}, batch {c['batch']} @ {c['imgsz']}"
        target = f"{c['target']:.2f}" if "target" in c else "-"
        flag = "" if "ok" not in c else (" ok" if c["ok"] else " MISSED")
        times = f"{c['baseline_ms']:>13.1f}{c['rcq_ms']:>10.1f}{c['ratio']:>8.3f}{c['cpu_ratio']:>11.3f}"
        rows.append(f"{name:<12}{times}{target:>8}{flag}  {note}")
    mem = result["cases"].get("stress", {}).get("memory", {})
    if mem:
        sizes = ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in mem.items() if isinstance(v, (int, float)))
        rows.append(f"stress memory ({mem['method']}): {sizes}")
    return "\n".join(rows)


def run_loss_benchmark(
    params: Params,
    json_out: str | Path | None = None,
    *,
    batch: int = 16,
    imgsz: int | None = None,
    nc: int | None = None,
    gts_per_image: int = 7,
    stress_gts: int = 1000,
    train_step: bool = True,
    rss: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Time baseline vs RCQ loss (realistic, stress) and a training step; print a table, write JSON.

    Args:
        params: Resolved params (``profile.*`` sizes and repeats, ``loss.*``, ``train.device/threads``).
        json_out: Where to write the figures (atomic); None = only print.
        batch: Images of the loss cases.
        imgsz: Image side of the loss cases (default ``profile.imgsz``).
        nc: Classes (default ``profile.nc``).
        gts_per_image: GTs per image of the realistic case.
        stress_gts: Total GTs of the stress case.
        train_step: Also time a whole training step.
        rss: On CPU, also measure the peak-RSS increase of the stress case in child processes.
        echo: Printer of the table.

    Returns:
        The figures (also written to ``json_out``).
    """
    import alignrank.loss.criterion  # noqa: F401  (registers "rcq_replace")
    from alignrank.loss.registry import LOSSES
    from alignrank.loss.v8 import ensure_loss_args
    from alignrank.nn.model import build_model

    pp = params.profile
    imgsz, nc = imgsz or pp.imgsz, nc or pp.nc
    device = params.train.device if params.train.device != "cpu" and torch.cuda.is_available() else "cpu"
    if device.replace(",", "").isdigit():  # ultralytics style "0" / "0,1": the first GPU
        device = f"cuda:{device.split(',')[0]}"
    threads = torch.get_num_threads()
    torch.set_num_threads(params.train.threads)
    try:
        model = build_model("baseline", scale="n", nc=nc)
        ensure_loss_args(model, params.loss)
        model.to(device)
        crits = {"baseline": LOSSES["v8"](model, params.loss), "rcq": LOSSES["rcq_replace"](model, params.loss)}
        result: dict[str, Any] = {
            "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
            "threads": params.train.threads,
            "loss_params": {"assigner": params.loss.assigner, "iou_loss": params.loss.iou_loss},
            "baseline_loss": type(crits["baseline"]).__name__,
            "cases": {},
        }
        cases = {
            "realistic": (_spread(gts_per_image * batch, batch), pp.repeats, TARGETS["realistic"]),
            "stress": (_spread(stress_gts, batch), max(3, pp.repeats // 4), None),
        }
        for name, (gts, repeats, target) in cases.items():
            case = dict(batch=batch, imgsz=imgsz, nc=nc, gts=gts, reg_max=crits["rcq"].reg_max, seed=1)
            preds, targets = synth_case(**case, device=device)
            fns = {k: (lambda c=c, p=preds, t=targets: _loss_step(c, p, t, device)) for k, c in crits.items()}
            times = _alternate(fns, repeats, pp.warmup)
            info = {**_summary(times, target), "gts": sum(gts), "anchors": preds["scores"].shape[-1]}
            info.update(nc=nc, batch=batch)
            info.update(_assignment_stats(crits["rcq"], preds, targets, params.loss.pair_budget))
            if name == "stress":
                mem: dict[str, Any] = {"pair_stage_estimate": info["pair_stage_bytes_estimate"]}
                if device.startswith("cuda"):
                    mem.update(method="torch.cuda.max_memory_allocated (forward + backward)")
                    mem.update({f"{k}_peak": _cuda_peak(c, preds, targets) for k, c in crits.items()})
                elif rss:
                    mem.update(method="largest L_rank chunk (exact count x 21 B) + child-process peak-RSS increase")
                    mem.update({f"{k}_peak_rss": v for k, v in _rss_peaks(params.loss, case).items()})
                else:
                    mem.update(method="largest L_rank chunk (exact count x 21 B)")
                info["memory"] = mem
            result["cases"][name] = info
            del preds, targets
        if train_step:
            result["train_step"] = _train_step_ratio(params, pp.repeats, pp.warmup, device, nc)
    finally:
        torch.set_num_threads(threads)
    echo(_table(result))
    if json_out is not None:
        atomic_write_json(json_out, result)
    return result
