"""Compare two checkouts' `make repro` outputs: did a code change (a refactor) leave the science unchanged?

For every run folder both checkouts trained (matched by variant and seed, not by run key, which hashes the
code): the training curve (``results.csv`` without its wall-clock column), the weights of ``best.pt``
(every tensor of the model's state dict, bit for bit) and ``metrics.json``; then every number of the
evaluation summary (``outputs/eval/summary.json``), and the result tables (``results/tables/*.md``) line
by line. Prints one line per run and the differing numbers and table lines; exits 1 when a run differs.

Usage:
    .venv/bin/python benchmarks/compare_repro.py CHECKOUT_A CHECKOUT_B

Examples:
    >>> flat({"a": {"b": [1, 2]}, "c": 3})
    {'a.b.0': 1, 'a.b.1': 2, 'c': 3}
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any


def run_folders(root: Path) -> dict[str, Path]:
    """``<variant>-s<seed>`` -> run folder, of every run under ``root/outputs/runs``."""
    return {"-".join(p.name.split("-")[:2]): p for p in (root / "outputs" / "runs").iterdir() if p.is_dir()}


def curve(run: Path) -> list[dict[str, str]]:
    """The run's ``results.csv`` rows without the wall-clock ``time`` column."""
    with open(run / "results.csv") as f:
        return [{k.strip(): v for k, v in row.items() if k.strip() != "time"} for row in csv.DictReader(f)]


def same_weights(a: Path, b: Path) -> tuple[bool, int]:
    """Whether every tensor of the two checkpoints' models is bit-identical, and how many tensors there are."""
    import torch

    sa, sb = (torch.load(p, map_location="cpu", weights_only=False)["model"].float().state_dict() for p in (a, b))
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), len(sa)


def flat(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts/lists -> ``{"dotted.path": leaf}``."""
    if isinstance(d, dict):
        return {k2: v2 for k, v in d.items() for k2, v2 in flat(v, f"{prefix}{k}.").items()}
    if isinstance(d, list):
        return {k2: v2 for i, v in enumerate(d) for k2, v2 in flat(v, f"{prefix}{i}.").items()}
    return {prefix[:-1]: d}


def differing_numbers(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys present in both whose numeric values differ (NaN equals NaN)."""
    def num(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    def equal(x: Any, y: Any) -> bool:
        return x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))

    return [k for k in a if k in b and num(a[k]) and not equal(a[k], b[k])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    ra, rb = run_folders(args.a), run_folders(args.b)
    if ra.keys() != rb.keys():
        print(f"different runs: only in A {sorted(ra.keys() - rb.keys())}, only in B {sorted(rb.keys() - ra.keys())}")
    failed = False
    for name in sorted(ra.keys() & rb.keys()):
        c = curve(ra[name]) == curve(rb[name])
        w, n = same_weights(ra[name] / "weights" / "best.pt", rb[name] / "weights" / "best.pt")
        m = json.loads((ra[name] / "metrics.json").read_text()) == json.loads((rb[name] / "metrics.json").read_text())
        failed |= not (c and w and m)
        print(f"{name:16s} curve equal {c}  weights equal {w} ({n} tensors)  metrics equal {m}")
    ea, eb = (flat(json.loads((r / "outputs" / "eval" / "summary.json").read_text())) for r in (args.a, args.b))
    diff = differing_numbers(ea, eb)
    print(f"evaluation summary: {sum(k in eb for k in ea)} keys in both, {len(diff)} numbers differ; "
          f"only in A: {sorted(ea.keys() - eb.keys())[:8]}, only in B: {sorted(eb.keys() - ea.keys())[:8]}")
    for k in diff:
        print(f"  {k}: {ea[k]!r} -> {eb[k]!r}")
    for table in sorted((args.a / "results" / "tables").glob("*.md")):
        other = args.b / "results" / "tables" / table.name
        if not other.is_file():
            print(f"table {table.name}: only in A")
            continue
        la, lb = table.read_text().splitlines(), other.read_text().splitlines()
        changed = [i for i, (x, y) in enumerate(zip(la, lb)) if x != y] + list(range(min(len(la), len(lb)), max(len(la), len(lb))))
        print(f"table {table.name}: {'identical' if not changed else f'{len(changed)} lines differ'}")
        for i in changed[:10]:
            print(f"  line {i + 1}:\n    A {la[i] if i < len(la) else ''}\n    B {lb[i] if i < len(lb) else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
