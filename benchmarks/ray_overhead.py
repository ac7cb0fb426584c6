"""Ray overhead of the sweep, measured side by side in one run (prints ratios, asserts nothing).

1. Scheduling overhead per run: N trivial runs (a no-op task returning a summary) go through the sweep's
   own dispatch loop (bounded concurrency, retries bookkeeping, progress view), sequentially
   (``max_concurrent=1``) and concurrently; and the bare Ray task round trip for reference.
2. Concurrency: two tiny real training runs through the sweep's dispatch (Ray tasks, tracking writer,
   run folders) one after another vs. two at once, each with ``train.threads = ray.cpus_per_run = 1``,
   on warmed-up workers, alternating the order over ``--reps`` repetitions. Target on the 2-core
   machine: <= 0.65. The per-sweep set-up (tracking writer, parent run) is printed separately, and a
   control (two pure torch compute tasks, before and after) shows what the machine gives at that time.

Usage:
    .venv/bin/python benchmarks/ray_overhead.py [--trivial 50] [--reps 3] [--epochs 3] [--train 96]

Everything is written under a temporary project root (deleted at the end).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import alignrank  # noqa: E402,F401  (offline env first)


def trivial_task(params, factory, parent_run_id, provenance, key) -> dict:
    """A run that does nothing: what is left of its wall time is the dispatch overhead."""
    return {"run": key.name, "metrics": {}, "status": "done"}


def warm(_=None) -> int:
    """Import what a training worker imports (torch, ultralytics, the package) in a worker process."""
    import os

    import alignrank.engine.trainer  # noqa: F401
    import alignrank.runs.run  # noqa: F401

    return os.getpid()


def spin(n: int) -> float:
    """Pure single-thread torch compute (the control: what 2 cores give right now, without our stack)."""
    import torch

    torch.set_num_threads(1)
    a, t = torch.randn(400, 400), time.perf_counter()
    for _ in range(n):
        a = (a @ a).tanh()
    return time.perf_counter() - t


def bench_control(reps: int, n: int = 1500) -> float:
    """Ratio concurrent / sequential of two pure-compute tasks, alternating order like the real runs."""
    import ray

    f = ray.remote(num_cpus=1)(spin)
    ray.get([f.remote(1), f.remote(1)])
    seq, conc = [], []
    for rep in range(reps):
        for mode in ("seq", "conc") if rep % 2 == 0 else ("conc", "seq"):
            t = time.perf_counter()
            if mode == "seq":
                ray.get(f.remote(n))
                ray.get(f.remote(n))
                seq.append(time.perf_counter() - t)
            else:
                ray.get([f.remote(n), f.remote(n)])
                conc.append(time.perf_counter() - t)
    return statistics.mean(conc) / statistics.mean(seq)


def bench_trivial(params, n: int) -> dict:
    import ray

    from alignrank.config import with_overrides
    from alignrank.runs.key import RunKey
    from alignrank.runs.progress import Progress
    from alignrank.runs.sweep import RunSpec, _dispatch

    specs = [RunSpec(params=params, key=RunKey("trivial", i, f"{i:010d}", {}), dir=Path("/nonexistent"))
             for i in range(n)]
    out = {}
    f = ray.remote(num_cpus=1)(lambda: 0)
    ray.get(f.remote())
    t = time.perf_counter()
    for _ in range(n):
        ray.get(f.remote())
    out["bare_task_roundtrip_ms"] = (time.perf_counter() - t) / n * 1e3
    for conc in (1, 2):
        p = with_overrides(params, {"ray.max_concurrent": conc})
        progress = Progress({s.name: None for s in specs}, stream=io.StringIO(), tty=False)
        t = time.perf_counter()
        res, err, _ = _dispatch(specs, p, None, None, {}, progress, task_fn=trivial_task)
        assert len(res) == n and not err
        out[f"dispatch_per_run_ms_concurrency{conc}"] = (time.perf_counter() - t) / n * 1e3
    return out


def bench_concurrency(base, root: Path, reps: int) -> dict:
    """Two real runs through the sweep's dispatch, 1 vs 2 at a time, in one Ray + tracking session.

    The session set-up (Ray, tracking writer, parent run) is paid once per sweep whatever the
    concurrency, so it is timed separately and left out of the ratio.
    """
    from alignrank.config import with_overrides
    from alignrank.runs.progress import Progress
    from alignrank.runs.sweep import _dispatch, plan
    from alignrank.tracking.session import tracking_session

    times: dict[str, list[float]] = {"sequential": [], "concurrent": []}
    order = ["sequential", "concurrent"]
    t = time.perf_counter()
    with tracking_session(base) as factory:
        parent = factory.open(run_name="bench-ray-overhead")
        setup = time.perf_counter() - t
        for rep in range(reps):
            for mode in order if rep % 2 == 0 else order[::-1]:
                p = with_overrides(base, {"ray.max_concurrent": 1 if mode == "sequential" else 2,
                                          "train.out_dir": str(root / f"runs-{mode}-{rep}")})
                specs = plan(p)
                progress = Progress({s.name: s.dir for s in specs}, stream=io.StringIO(), tty=False)
                t = time.perf_counter()
                res, err, _ = _dispatch(specs, p, factory, parent.run_id, {}, progress)
                times[mode].append(time.perf_counter() - t)
                assert len(res) == 2 and not err, err
        parent.end()
    seq, conc = statistics.mean(times["sequential"]), statistics.mean(times["concurrent"])
    return {"sequential_s": times["sequential"], "concurrent_s": times["concurrent"], "ratio": conc / seq,
            "session_setup_s": setup}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trivial", type=int, default=50, help="number of trivial runs")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the sequential/concurrent pair")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train", type=int, default=96, help="training images of the tiny dataset")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="ar-bench-"))
    os.environ["ALIGNRANK_ROOT"] = str(root)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        import ray

        from alignrank.config import load_params
        from alignrank.data.build import run_data

        repo = Path(__file__).resolve().parents[1]
        base = load_params(repo / "params.yaml", {
            "data.root": str(root / "data"), "data.num_train": args.train, "data.num_val": 8, "data.imgsz": 128,
            "train.imgsz": 128, "train.epochs": args.epochs, "train.batch": 8, "model.scale": "n",
            "sweep.variants": ["baseline"], "sweep.seeds": [0, 1], "ray.num_cpus": 2, "ray.cpus_per_run": 1,
        })
        run_data(base)
        from alignrank.runs.cluster import ensure_local_token

        ensure_local_token()  # token auth without writing ~/.ray/auth_token
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"ALIGNRANK_ROOT": str(root), "TQDM_DISABLE": "1"}})
        pids = set(ray.get([ray.remote(num_cpus=1)(warm).remote() for _ in range(2)]))
        trivial = bench_trivial(base, args.trivial)
        control_before = bench_control(args.reps)
        conc = bench_concurrency(base, root, args.reps)
        control_after = bench_control(args.reps)
        ray.shutdown()
        print(f"machine: {os.cpu_count()} CPUs; warmed workers: {len(pids)}; load avg at end: {os.getloadavg()[0]:.1f}")
        print(f"Ray task round trip (bare):           {trivial['bare_task_roundtrip_ms']:.1f} ms")
        print(f"sweep dispatch overhead per run (1 at a time): {trivial['dispatch_per_run_ms_concurrency1']:.1f} ms"
              f"  (N={args.trivial} trivial runs)")
        print(f"sweep dispatch overhead per run (2 at a time): {trivial['dispatch_per_run_ms_concurrency2']:.1f} ms")
        print("two tiny runs one after another: " + ", ".join(f"{x:.1f}s" for x in conc["sequential_s"]))
        print("two tiny runs at once:           " + ", ".join(f"{x:.1f}s" for x in conc["concurrent_s"]))
        print(f"ratio concurrent / sequential: {conc['ratio']:.2f}  (target <= 0.65)")
        print(f"control, pure torch compute on the same 2 slots (before / after): {control_before:.2f} / "
              f"{control_after:.2f}  (~0.5 on an idle 2-core machine; higher = other load on the machine)")
        print("per-sweep session set-up (tracking writer + parent run, not in the ratio): "
              f"{conc['session_setup_s']:.1f}s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
