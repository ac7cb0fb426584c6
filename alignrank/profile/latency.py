"""Latency measured side by side: every model runs once per round, in alternating order, medians compared.

Timing models alternately in one process spreads machine noise (other jobs, turbo, caches) over all of
them, so the *ratios* of the medians are meaningful even on a busy machine; absolute times are not.

Examples:
    >>> t = time_alternating({"a": lambda: None, "b": lambda: None}, repeats=3, warmup=1)
    >>> sorted(t), len(t["a"])
    (['a', 'b'], 3)
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np
import torch


def time_alternating(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in rounds; the order reverses every other round (ABBA).

    Args:
        fns: Name -> zero-argument callable (must block until its work is done).
        repeats: Timed calls per function.
        warmup: Untimed calls per function first.

    Returns:
        Name -> list of ``repeats`` durations in seconds.
    """
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in names if r % 2 == 0 else reversed(names):
            t0 = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t0)
    return times


def summarize(times: list[float]) -> dict[str, float]:
    """Median, min and inter-quartile range in milliseconds."""
    ms = sorted(1e3 * t for t in times)
    q1, q3 = (np.percentile(ms, 25), np.percentile(ms, 75)) if len(ms) > 1 else (ms[0], ms[0])
    return {"median_ms": statistics.median(ms), "min_ms": ms[0], "iqr_ms": float(q3 - q1), "n": len(ms)}


def eager_fns(models: dict[str, torch.nn.Module], x: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """Zero-argument eager forward passes (no grad) of each model on ``x``."""

    def make(m):
        def run():
            with torch.inference_mode():
                return m(x)

        return run

    return {n: make(m) for n, m in models.items()}


def e2e_fns(
    models: dict[str, torch.nn.Module], x: torch.Tensor, post: dict[str, Callable[[torch.Tensor], Any]]
) -> dict[str, Callable[[], Any]]:
    """Zero-argument eager forward passes followed by each model's post-processing to final detections."""

    def make(m, p):
        def run():
            with torch.inference_mode():
                y = m(x)
                return p(y[0] if isinstance(y, tuple) else y)

        return run

    return {n: make(m, post[n]) for n, m in models.items()}


def ort_e2e_fns(
    sessions: dict[str, Any], x: np.ndarray, post: dict[str, Callable[[torch.Tensor], Any]]
) -> dict[str, Callable[[], Any]]:
    """Zero-argument ONNX Runtime runs followed by each model's post-processing (in torch) to final detections."""

    def make(s, p):
        def run():
            y = torch.from_numpy(s.run(None, {"images": x})[0])
            with torch.inference_mode():
                return p(y)

        return run

    return {n: make(s, post[n]) for n, s in sessions.items()}


def ort_fns(sessions: dict[str, Any], x: np.ndarray) -> dict[str, Callable[[], Any]]:
    """Zero-argument ONNX Runtime runs of each session on ``x`` (input name ``images``)."""
    return {n: (lambda s=s: s.run(None, {"images": x})) for n, s in sessions.items()}


def cuda_fns(models: dict[str, torch.nn.Module], x: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """Zero-argument CUDA forward passes that synchronise (so wall time = GPU time)."""

    def make(m):
        def run():
            with torch.inference_mode():
                y = m(x)
            torch.cuda.synchronize(x.device)
            return y

        return run

    return {n: make(m) for n, m in models.items()}
