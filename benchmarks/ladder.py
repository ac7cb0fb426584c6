"""Ablation ladders: train each rung of a YAML ladder for each seed, then write its markdown table.

A ladder file (e.g. ``benchmarks/ladder_rcq.yaml``) names a dataset (``data:`` settings of ``alignrank
data``), a training budget (``train:`` settings), the seeds, and the rungs; a rung is a registered variant
plus ``--set`` overrides. Every (rung, seed) is one ``alignrank train`` subprocess (the project's own
training path, tracked in MLflow like any run), seed by seed (every rung's first seed before any second
seed), at most ``jobs`` at a time, each logging to
``<out>/logs/<rung>-s<seed>.log``. Its summary, plus the per-epoch validation mAP of its
``results.csv``, is stored as ``<out>/results/<rung>-s<seed>-<hash>.json``; the hash covers the variant
and the resolved ``data``/``model``/``loss``/``train`` params of the run (params.yaml + the ladder's and
the rung's settings; not the output folders), so an edited rung or default is re-trained and an unchanged
one is not (re-running the command resumes an interrupted ladder). The table (``doc:``) is
GENERATED from those files: edit the ladder, not the table. Beside it, ``<doc>.json`` keeps the records the
table was made from (the curves and metrics, keyed by rung, seed and hash): commit both, and ``--table``
regenerates the same table on a fresh clone. The doc is written only when every (rung, seed) of the ladder
has a result whose hash is the rung's today; otherwise it is kept as it is, a partial table goes to
``<out>/<name>.partial.md``, and one line says what is missing and how to get it.

Usage:
    .venv/bin/python benchmarks/ladder.py benchmarks/ladder_rcq.yaml            # train what is missing, write the doc
    .venv/bin/python benchmarks/ladder.py benchmarks/ladder_rcq.yaml --table    # only rewrite the doc
    .venv/bin/python benchmarks/ladder.py benchmarks/ladder_rcq.yaml --rungs stock,focal --seeds 0

Runs are CPU-deterministic (``train.deterministic``), so the same command reproduces the numbers on the
same machine type; every result records the git commit it was trained at.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alignrank.env import machine  # noqa: E402
from alignrank.io import atomic_write_json, atomic_write_text, read_json  # noqa: E402

CURVE_KEY = "metrics/mAP50-95(B)"
CURVE50_KEY = "metrics/mAP50(B)"


def load_ladder(path: Path) -> dict[str, Any]:
    """The ladder YAML with defaults (jobs 2, seeds [0, 1], epochs marked in the table: 10, 20, last)."""
    spec = yaml.safe_load(path.read_text())
    spec.setdefault("jobs", 2)
    spec.setdefault("seeds", [0, 1])
    spec.setdefault("data", {})
    spec.setdefault("train", {})
    names = [r["name"] for r in spec["rungs"]]
    if len(set(names)) != len(names):
        raise SystemExit(f"{path}: rung names must be unique, got {names}")
    return spec


def rung_seeds(spec: dict[str, Any], rung: dict[str, Any]) -> list[int]:
    """The rung's seeds (its own ``seeds:``, else the ladder's)."""
    return list(rung.get("seeds", spec["seeds"]))


def sets(mapping: dict[str, Any], prefix: str = "") -> list[str]:
    """``--set key=value`` arguments (non-strings as JSON, which the CLI reads as YAML: lists, bools survive)."""
    out = []
    for k, v in mapping.items():
        out += ["--set", f"{prefix}{k}={v if isinstance(v, str) else json.dumps(v)}"]
    return out


def overrides(spec: dict[str, Any], rung: dict[str, Any], seed: int) -> dict[str, Any]:
    """The run's params overrides: the ladder's data/train settings, the rung's, variant and seed."""
    out = {f"data.{k}": v for k, v in spec["data"].items()}
    out.update({f"train.{k}": v for k, v in spec["train"].items()})
    out.update(rung.get("set", {}))
    out.update({"train.variant": rung["variant"], "train.seed": seed})
    return out


def resolved(spec: dict[str, Any], rung: dict[str, Any], seed: int):
    """The run's params (params.yaml of this checkout + :func:`overrides`)."""
    from alignrank.config import load_params

    return load_params(ROOT / "params.yaml", [f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                                              for k, v in overrides(spec, rung, seed).items()])


def rung_hash(spec: dict[str, Any], rung: dict[str, Any], seed: int) -> str:
    """12 hex of what determines a rung's run: the resolved data/model/loss/train params (not where it writes)."""
    from alignrank.config import params_dict

    d = params_dict(resolved(spec, rung, seed))
    payload = {k: d[k] for k in ("data", "model", "loss", "train")}
    payload["data"] = {k: v for k, v in payload["data"].items() if k != "root"}
    payload["train"] = {k: v for k, v in payload["train"].items() if k not in ("out_dir", "lock_wait")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def result_file(spec: dict[str, Any], results: Path, rung: dict[str, Any], seed: int) -> Path:
    """Where a (rung, seed)'s result record is stored: ``<results>/<rung>-s<seed>-<hash>.json``."""
    return results / f"{rung['name']}-s{seed}-{rung_hash(spec, rung, seed)}.json"


def validated_epochs(spec: dict[str, Any]) -> list[int]:
    """Epochs whose validation the table shows: multiples of 10 that were validated, and the last one."""
    t = resolved(spec, spec["rungs"][0], 0).train
    period = t.val_period if hasattr(t, "val_period") else 1
    marks = [e for e in range(10, t.epochs, 10) if period and e % period == 0]
    return [*marks, t.epochs]


def git_commit() -> str:
    """HEAD commit (12 hex) with ``+dirty`` when tracked files differ."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "alignrank"], cwd=ROOT).returncode != 0
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def alignrank_cmd() -> list[str]:
    """The CLI of THIS checkout (``python -m`` from its root, so a copy of the tree runs its own code)."""
    return [sys.executable, "-m", "alignrank.cli"]


def code_version() -> str:
    """The run key's code version of this checkout (hash of the sources that compute a run)."""
    from alignrank.runs.key import code_version as version

    return version()


def build_data(spec: dict[str, Any], out: Path) -> None:
    """``alignrank data`` into ``<out>/data`` (cached by the data stage itself)."""
    cmd = [*alignrank_cmd(), "data", *sets(spec["data"], "data."), "--set", f"data.root={out / 'data'}"]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def read_curve(run_dir: Path) -> dict[str, list[float]]:
    """epoch, mAP50-95 and mAP50 columns of the run's ultralytics ``results.csv``."""
    import csv

    path = run_dir / "results.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
    return {
        "epoch": [int(float(r["epoch"])) for r in rows],
        "map50_95": [float(r[CURVE_KEY]) for r in rows],
        "map50": [float(r[CURVE50_KEY]) for r in rows],
    }


def parse_summary(stdout: str) -> dict[str, Any]:
    """The CLI's JSON summary: the last top-level JSON object in ``stdout`` (a library line printed to stdout
    before it, e.g. ultralytics' "Overriding model.yaml nc=...", is skipped)."""
    lines = stdout.splitlines()
    for i in reversed([i for i, line in enumerate(lines) if line.startswith("{")]):
        try:
            return json.loads("\n".join(lines[i:]))
        except json.JSONDecodeError:
            continue
    raise ValueError(f"no JSON summary in the output: {stdout[-300:]!r}")


def train_one(spec: dict[str, Any], out: Path, rung: dict[str, Any], seed: int, result: Path) -> dict[str, Any]:
    """Train one (rung, seed) in a subprocess; store and return its result record."""
    log = out / "logs" / f"{rung['name']}-s{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*alignrank_cmd(), "train", "--variant", rung["variant"], "--seed", str(seed), *sets(spec["train"], "train."),
           *sets(rung.get("set", {})), "--set", f"data.root={out / 'data'}", "--set", f"train.out_dir={out / 'runs'}"]
    t0 = time.time()
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=f, text=True,
                              env={**os.environ, "TQDM_DISABLE": "1"})
    if proc.returncode != 0:
        print(f"FAILED {rung['name']} seed {seed} (exit {proc.returncode}); see {log}", flush=True)
        return {}
    try:
        summary = parse_summary(proc.stdout)
    except ValueError as e:
        print(f"FAILED {rung['name']} seed {seed}: {e}", flush=True)
        return {}
    record = {"rung": rung["name"], "variant": rung["variant"], "set": rung.get("set", {}), "seed": seed,
              "seconds": round(time.time() - t0, 1), "commit": git_commit(), "code": code_version(), "machine": machine(),
              "summary": summary, "curve": read_curve(Path(summary["run_dir"]))}
    atomic_write_json(result, record)
    last = record["curve"].get("map50_95", [math.nan])[-1]
    print(f"done {rung['name']} seed {seed}: final-epoch mAP50-95 {last:.3f} ({record['seconds']:.0f} s)", flush=True)
    return record


def records_file(spec: dict[str, Any]) -> Path:
    """The committed records beside the doc (``docs/ladders_rcq.md`` -> ``docs/ladders_rcq.json``)."""
    return ROOT / Path(spec["doc"]).with_suffix(".json")


def kept(record: dict[str, Any], digest: str) -> dict[str, Any]:
    """What the committed records keep of a result: provenance, the run's metrics and its curve, and its hash."""
    keys = ("rung", "variant", "set", "seed", "seconds", "commit", "code", "machine", "adopted_from",
            "params_added_since")
    return {**{k: record[k] for k in keys if k in record}, "hash": digest,
            "summary": {"metrics": record.get("summary", {}).get("metrics", {})}, "curve": record.get("curve", {})}


def collect(spec: dict[str, Any], results: Path) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Every (rung, seed)'s record, from ``results`` or else the committed records, and the missing ones.

    A record is used only under the rung's hash of today: a rung or default edited since is missing, not
    served from an older run.
    """
    stored = {(r["rung"], r["seed"], r["hash"]): r for r in (read_json(records_file(spec)) or {}).get("records", [])}
    records: dict[str, list[dict[str, Any]]] = {}
    missing = []
    for rung in spec["rungs"]:
        for seed in rung_seeds(spec, rung):
            digest = rung_hash(spec, rung, seed)
            rec = read_json(result_file(spec, results, rung, seed)) or stored.get((rung["name"], seed, digest))
            if rec:
                records.setdefault(rung["name"], []).append(kept(rec, digest))
            else:
                missing.append(f"{rung['name']} seed {seed}")
    return records, missing


def mean_sd(xs: list[float]) -> str:
    """``mean ± sd`` (sd over seeds, n - 1), ``mean`` for one value, ``–`` for none."""
    xs = [x for x in xs if x == x]
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}"


def at_epoch(curve: dict[str, list[float]], key: str, epoch: int) -> float:
    """The curve's value at ``epoch`` (NaN when absent)."""
    for e, v in zip(curve.get("epoch", []), curve.get(key, [])):
        if e == epoch:
            return v
    return math.nan


def paired_delta(recs: list[dict[str, Any]], ref: list[dict[str, Any]], epoch: int) -> str:
    """Mean difference to the reference rung over the seeds both have, with a 95 % paired t-interval
    (:func:`alignrank.report.stats.paired_t`, the report's own).

    Two seeds give an interval 6x wider than their spread (t with 1 degree of freedom): that width is the
    honest uncertainty of a two-seed comparison, not a formatting choice.
    """
    from alignrank.report.stats import paired_t

    base = {r["seed"]: at_epoch(r["curve"], "map50_95", epoch) for r in ref}
    t = paired_t([at_epoch(r["curve"], "map50_95", epoch) - base[r["seed"]] for r in recs if r["seed"] in base])
    if t["n"] == 0:
        return "–"
    if t["n"] == 1:
        return f"{t['mean']:+.3f} (n 1)"
    return f"{t['mean']:+.3f} [{t['lo']:+.3f}, {t['hi']:+.3f}] (n {t['n']})"


def budget(spec: dict[str, Any]) -> str:
    """One line naming the data and training settings every rung shares."""
    p = resolved(spec, spec["rungs"][0], 0)
    d, t = p.data, p.train
    data = (f"{d.source} data, {d.num_train} train / {d.num_val} val images at {d.imgsz} px, {d.num_classes} classes, "
            f"<= {d.max_objects} objects, clutter {d.clutter}") if d.source == "synthetic" else f"{d.source} data"
    val = getattr(t, "val_period", 1)
    when = "validated after the last epoch only" if val == 0 else f"validated every {val} epoch(s)"
    return (f"{data}; YOLOv8-{p.model.scale}, {t.epochs} epochs, batch {t.batch}, {t.imgsz} px, {t.optimizer} lr0 "
            f"{t.lr0}, {t.threads} thread(s), {when}")


def table(spec: dict[str, Any], records: dict[str, list[dict[str, Any]]], ladder_path: Path) -> str:
    """The generated markdown document of the ladder."""
    marks = validated_epochs(spec)
    epochs = marks[-1]
    lines = [
        f"# {spec.get('title', spec.get('name', 'ladder'))}",
        "",
        f"<!-- GENERATED by `python benchmarks/ladder.py {ladder_path.relative_to(ROOT)}`: edit the ladder file, "
        "not this table. -->",
        "",
        spec.get("intro", "").strip(),
        "",
        f"Budget (params.yaml with the ladder's settings): {budget(spec)}. Each cell: ultralytics validation "
        "mAP50-95 (0-1) of that epoch's EMA weights, mean ± sd over seeds; `best` is the final validation of "
        "`best.pt` (the run's summary metric).",
        "",
        f"`Δ vs {spec['rungs'][0]['name']}`: mean difference in mAP50-95 @{epochs} to the first rung over the seeds "
        "both have, with its 95 % paired t-interval (seed-level noise only; with two seeds the spread itself is a "
        "guess, so an n 2 interval can come out narrow by luck: read it as indicative).",
        "",
        "| rung | variant | settings | seeds | " + " | ".join(f"mAP50-95 @{e}" for e in marks)
        + f" | mAP50 @{epochs} | best mAP50-95 | per seed @{epochs} | Δ vs {spec['rungs'][0]['name']} |",
        "|---|---|---|---|" + "---|" * len(marks) + "---|---|---|---|",
    ]
    ref = records.get(spec["rungs"][0]["name"], [])
    for rung in spec["rungs"]:
        recs = records.get(rung["name"], [])
        settings = ", ".join(f"`{k}={v}`" for k, v in rung.get("set", {}).items()) or "–"
        seeds = ",".join(str(r["seed"]) for r in recs) or "–"
        cells = [mean_sd([at_epoch(r["curve"], "map50_95", e) for r in recs]) for e in marks]
        m50 = mean_sd([at_epoch(r["curve"], "map50", epochs) for r in recs])
        best = mean_sd([r["summary"].get("metrics", {}).get("map50_95", math.nan) for r in recs])
        per_seed = ", ".join(f"{at_epoch(r['curve'], 'map50_95', epochs):.3f}" for r in recs) or "–"
        delta = "–" if rung is spec["rungs"][0] else paired_delta(recs, ref, epochs)
        lines.append(f"| {rung['name']} | {rung['variant']} | {settings} | {seeds} | " + " | ".join(cells)
                     + f" | {m50} | {best} | {per_seed} | {delta} |")
    lines += ["", "Rungs:", ""]
    for rung in spec["rungs"]:
        lines.append(f"- **{rung['name']}**: {rung.get('description', '').strip()}")
    every = [r for recs in records.values() for r in recs]
    commits = sorted({f"{r['commit']} (code {r.get('code', '?')}" + (f"; {r['machine']}" if r.get("machine") else "") + ")"
                      for r in every if "adopted_from" not in r})
    adopted = sorted({r.get("code", "?") for r in every if "adopted_from" in r})
    lines += ["", f"Trained at: {', '.join(commits) or '–'}."]
    if adopted:
        n = sum("adopted_from" in r for r in every)
        lines += [f"Adopted (`benchmarks/ladder_adopt.py`, see docs/ladders.md): {n} run(s) of code "
                  f"{', '.join(adopted)}."]
    lines += [""]
    if spec.get("notes"):
        lines += [spec["notes"].strip(), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ladder", type=Path, help="ladder YAML file")
    ap.add_argument("--table", action="store_true", help="only rewrite the table from the stored results")
    ap.add_argument("--rungs", default="", help="comma-separated rung names (default: all)")
    ap.add_argument("--seeds", default="", help="comma-separated seeds (default: each rung's own, else the ladder's)")
    ap.add_argument("--jobs", type=int, default=0, help="concurrent runs (default: the ladder's)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: the ladder's out:)")
    args = ap.parse_args(argv)
    ladder_path = args.ladder.resolve()
    spec = load_ladder(ladder_path)
    out = (args.out or ROOT / spec["out"]).resolve()
    results = out / "results"
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None  # None: each rung's own
    chosen = set(args.rungs.split(",")) if args.rungs else {r["name"] for r in spec["rungs"]}
    unknown = chosen - {r["name"] for r in spec["rungs"]}
    if unknown:
        raise SystemExit(f"unknown rung(s) {sorted(unknown)} in {args.ladder}")

    failed = 0
    if not args.table:
        build_data(spec, out)
        order = sorted({s for r in spec["rungs"] for s in rung_seeds(spec, r)})
        todo = [(r, s) for s in (seeds or order) for r in spec["rungs"] if r["name"] in chosen
                and (seeds or s in rung_seeds(spec, r)) and not result_file(spec, results, r, s).is_file()]
        print(f"{len(todo)} run(s) to train, {args.jobs or spec['jobs']} at a time", flush=True)
        with ThreadPoolExecutor(max_workers=args.jobs or spec["jobs"]) as pool:
            failed = sum(not rec for rec in pool.map(lambda rs: train_one(spec, out, *rs, result_file(spec, results, *rs)),
                                                     todo))
    records, missing = collect(spec, results)
    text = table(spec, records, ladder_path)
    doc = ROOT / spec["doc"]
    if missing:
        partial = out / f"{spec['name']}.partial.md"
        atomic_write_text(partial, text)
        shown = ", ".join(missing[:4]) + (", ..." if len(missing) > 4 else "")
        expected = len(missing) + sum(map(len, records.values()))
        print(f"{doc.relative_to(ROOT)} kept as it is: {len(missing)} of {expected} (rung, seed) results missing "
              f"({shown}) from {results} and {records_file(spec).relative_to(ROOT)}; partial table in {partial}. "
              f"Train them with `python benchmarks/ladder.py {args.ladder}` (without --table) or adopt finished runs "
              "with benchmarks/ladder_adopt.py.", file=sys.stderr, flush=True)
        return 1 if args.table or failed else 0
    atomic_write_text(doc, text)
    atomic_write_json(records_file(spec), {"ladder": str(ladder_path.relative_to(ROOT)),
                                           "records": [r for recs in records.values() for r in recs]})
    print(f"wrote {doc.relative_to(ROOT)} and {records_file(spec).relative_to(ROOT)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
