"""Adopt finished training runs as ladder results instead of training them again.

A run folder (``run.json``, ``params.yaml``, ``done.json``, ``results.csv``) becomes the result of a
(rung, seed) of a ladder only when it IS that run: the same head, loss (``LOSS_RENAMES`` maps a loss's
earlier registered name to today's) and NMS-free flag as the rung's variant, and the same resolved
``data`` / ``model`` / ``loss`` / ``train`` params (output folders and the variant's name aside). A param
the run's ``params.yaml`` does not have was added to the project after the run; it is accepted only at
today's default value (a new param's default keeps the old behaviour) and listed in the adopted record's
``params_added_since``. Params do not say everything: a code change can change a run too (a fixed
initialisation, a renamed loss). So a run is adopted only when its code version (the run key's hash of the
training sources) is this checkout's, or one named by ``--same-code`` -- a claim the caller makes with
evidence, e.g. a re-run at this checkout that reproduced a run of that code version bit for bit (runs are
CPU-deterministic). Runs of this checkout's code are preferred. The adopted record keeps the run's code
version, so the generated table shows which code trained it.

Usage:
    .venv/bin/python benchmarks/ladder_adopt.py benchmarks/ladder_csd.yaml RUNS_DIR [RUNS_DIR ...]
    .venv/bin/python benchmarks/ladder_adopt.py benchmarks/ladder_csd.yaml RUNS_DIR --same-code 5b18e0e96e1dfec2
    .venv/bin/python benchmarks/ladder.py benchmarks/ladder_csd.yaml --table    # then rewrite the table
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ladder import ROOT, load_ladder, read_curve, resolved, result_file, rung_seeds  # noqa: E402

from alignrank.io import atomic_write_json, read_json  # noqa: E402

LOSS_RENAMES = {"rcq": "rcq_replace"}  # loss `rcq` (eq. 8) was registered as `rcq_replace` when `rcq` became a variant
SKIP = {"data": {"root"}, "train": {"out_dir", "lock_wait", "variant"}}
SECTIONS = ("data", "model", "loss", "train")


def comparable(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The sections that determine a run, without output folders and the variant's name."""
    return {s: {k: v for k, v in (params.get(s) or {}).items() if k not in SKIP.get(s, set())} for s in SECTIONS}


def identity(variant: str) -> tuple[str, str, bool]:
    """(head, loss, NMS-free) of a registered variant."""
    from alignrank.variants import get_variant

    v = get_variant(variant)
    return v.head, v.loss, bool(v.end2end)


def match(run_dir: Path, want: dict[str, dict[str, Any]], ident: tuple[str, str, bool],
          defaults: dict[str, dict[str, Any]]) -> list[str] | None:
    """The params added since the run when ``run_dir`` is the wanted run, else None."""
    run = read_json(run_dir / "run.json") or {}
    pay = run.get("payload", {})
    if not (run_dir / "done.json").is_file() or not pay:
        return None
    e2e = bool(pay.get("model", {}).get("end2end", False)) or pay.get("variant", "").endswith("_e2e")
    if (pay.get("head"), LOSS_RENAMES.get(pay.get("loss_name"), pay.get("loss_name")), e2e) != ident:
        return None
    have = comparable(yaml.safe_load((run_dir / "params.yaml").read_text()) or {})
    added = []
    for s in SECTIONS:
        for k, v in want[s].items():
            if k not in have[s]:
                if v != defaults[s].get(k):
                    return None
                added.append(f"{s}.{k}")
            elif have[s][k] != v:
                return None
        if set(have[s]) - set(want[s]):  # a param that no longer exists: a different project state
            return None
    return added


def record(rung: dict[str, Any], seed: int, run_dir: Path, added: list[str]) -> dict[str, Any]:
    """A ladder result record built from a finished run folder."""
    done = read_json(run_dir / "done.json") or {}
    run = read_json(run_dir / "run.json") or {}
    return {"rung": rung["name"], "variant": rung["variant"], "set": rung.get("set", {}), "seed": seed,
            "seconds": done.get("wall_s"), "commit": "adopted", "code": run.get("payload", {}).get("code", "?"),
            **({"machine": done["machine"]} if "machine" in done else {}),
            "summary": done, "curve": read_curve(run_dir), "adopted_from": str(run_dir),
            "params_added_since": added}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ladder", type=Path)
    ap.add_argument("runs", type=Path, nargs="+", help="folders holding run folders (searched one level deep)")
    ap.add_argument("--out", type=Path, default=None, help="ladder output folder (default: the ladder's out:)")
    ap.add_argument("--same-code", action="append", default=[],
                    help="a code version whose runs compute what this checkout's do (repeatable; see above)")
    args = ap.parse_args(argv)
    from alignrank.config import load_params, params_dict
    from alignrank.runs.key import code_version

    spec = load_ladder(args.ladder.resolve())
    results = (args.out or ROOT / spec["out"]).resolve() / "results"
    defaults = comparable(params_dict(load_params(ROOT / "params.yaml", [])))
    here = code_version()
    rank = {here: 0, **{c: 1 for c in args.same_code if c != here}}
    found = {d.resolve() for root in args.runs for d in root.iterdir() if (d / "run.json").is_file()}
    code = {d: (read_json(d / "run.json") or {}).get("payload", {}).get("code") for d in found}
    candidates = sorted((d for d in found if code[d] in rank), key=lambda d: (rank[code[d]], str(d)))
    adopted = 0
    for rung in spec["rungs"]:
        ident = identity(rung["variant"])
        for seed in rung_seeds(spec, rung):
            dest = result_file(spec, results, rung, seed)
            if dest.is_file():
                continue
            want = comparable(params_dict(resolved(spec, rung, seed)))
            for d in candidates:
                added = match(d, want, ident, defaults)
                if added is not None:
                    atomic_write_json(dest, record(rung, seed, d, added))
                    print(f"adopted {rung['name']} seed {seed}: {d} (params added since: {', '.join(added) or 'none'})")
                    adopted += 1
                    break
    print(f"{adopted} run(s) adopted into {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
