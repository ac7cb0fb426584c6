"""``alignrank report`` / DVC stage ``report``: tables, plots and DVC metrics from the evaluated runs.

Reads ``outputs/eval/summary.json`` and ``outputs/eval/runs/`` (written by the evaluate stage) and,
when present, ``outputs/profile/profile.json``; writes under ``report.out_dir`` (default ``results/``):

* ``tables/``: ``table1_main``, ``table2_ablation``, ``table_tide``, ``table_paired``, ``table_power``, ``table_paper`` as
  ``.md``, ``.csv``, ``.tex``, and all of them in ``tables/report.md``;
* ``headline.json`` (the DVC metric): AP per variant and its paired difference to the baseline;
* ``metrics.json`` (for machines): every number in the tables' units, with a ``units`` field
  (see :mod:`alignrank.report.summary`);
* ``figures/*.png``: AP per variant with seed spread, score-vs-IoU scatter, reliability diagrams,
  TIDE error bars, training curves;
* ``plots/`` (DVC plots data): ``ap_per_seed.csv``, ``training_curves.csv`` (epoch x every registered
  variant, mean val mAP50-95 over seeds, empty where not run), ``reliability/<variant>.csv`` and
  ``score_iou/<variant>.csv``;
* the sweep's MLflow parent run gets the tables, figures and JSON as artifacts and the headline numbers as
  metrics (:mod:`alignrank.report.mlflow_parent`; the result's ``mlflow`` says where, or why not).

Examples:
    >>> from alignrank.config import load_params
    >>> run_report(load_params(None))  # in a project not evaluated yet
    Traceback (most recent call last):
    ...
    alignrank.errors.DataError: .../outputs/eval/summary.json: missing or unreadable; run `alignrank evaluate` (dvc repro evaluate) first
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from alignrank.config.schema import Params
from alignrank.errors import DataError
from alignrank.io import atomic_write_json, atomic_write_text, project_root, read_json, resolve_path
from alignrank.report import plots
from alignrank.report.figures_eval import tide_bars
from alignrank.report.paired import paired_rows, paired_table, power_rows, power_table
from alignrank.report.summary import headline, metrics_json
from alignrank.report.tables import ablation_table, main_table, paper_table
from alignrank.report.tide_table import tide_table
from alignrank.variants import VARIANTS

PROFILE_JSON = Path("outputs") / "profile" / "profile.json"


def load_eval(eval_dir: Path, variants, seeds) -> tuple[dict, dict, dict]:
    """``(runs, index, mirrors)``: metrics ``{variant: {seed: metrics}}``, the run index, per-run mirror folders."""
    summary = read_json(eval_dir / "summary.json")
    if summary is None:
        raise DataError(f"{eval_dir / 'summary.json'}: missing or unreadable; run `alignrank evaluate` (dvc repro evaluate) first")
    runs: dict = {}
    mirrors: dict = {}
    for v in variants:
        for key, m in (summary.get(v) or {}).items():
            try:
                seed = int(str(key).removeprefix("seed"))
            except ValueError:
                continue
            if seed in seeds and isinstance(m, dict):
                runs.setdefault(v, {})[seed] = m
                mirrors.setdefault(v, {})[seed] = eval_dir / "runs" / v / f"seed{seed}"
    return runs, read_json(eval_dir / "runs" / "index.json") or {}, mirrors


def load_records(mirrors: Mapping) -> tuple[dict, list[str]]:
    """``({variant: {seed: ImageRecords}}, [runs without records])`` from the mirrors' ``per_image.npz``."""
    from alignrank.eval.per_image import RECORDS_FILE, ImageRecords

    records: dict = {}
    missing = []
    for v, seeds in mirrors.items():
        for s, d in sorted(seeds.items()):
            f = Path(d) / RECORDS_FILE
            if f.is_file():
                records.setdefault(v, {})[s] = ImageRecords.load_npz(f)
            else:
                missing.append(f"{v} seed {s}")
    return records, missing


def _image_bootstrap(params: Params, mirrors: Mapping) -> tuple[dict | None, str | None]:
    """The per-image bootstrap of every shown run, or None and why not."""
    from alignrank.report.bootstrap import image_bootstrap

    if params.report.bootstrap <= 0:
        return None, "report.bootstrap is 0"
    records, missing = load_records(mirrors)
    if missing:
        return None, f"no per-image records for {', '.join(missing)}; re-run `alignrank evaluate`"
    try:
        return image_bootstrap(records, n_resamples=params.report.bootstrap, ci=params.report.ci), None
    except ValueError as e:
        return None, str(e)


def _csv(path: Path, header: list[str], rows) -> None:
    lines = [",".join(header)] + [",".join("" if x is None else str(x) for x in r) for r in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _plot_data_and_figures(runs: Mapping, mirrors: Mapping, out: Path) -> list[str]:
    figs, pdir = out / "figures", out / "plots"
    made = []
    ap = {v: {s: 100 * m["AP"] for s, m in seeds.items() if isinstance(m.get("AP"), (int, float))}  # AP in %
          for v, seeds in runs.items()}
    _csv(pdir / "ap_per_seed.csv", ["variant", "seed", "AP"],
         [(v, s, f"{a:.4f}") for v, d in ap.items() for s, a in sorted(d.items())])
    plots.ap_per_variant(ap, figs / "ap_per_variant.png"), made.append("figures/ap_per_variant.png")
    pairs, rel, curves = {}, {}, {}
    for v, seeds in mirrors.items():
        sc, io = [], []
        for s, d in sorted(seeds.items()):
            f = d / "score_iou.csv"
            lines = f.read_text().splitlines()[1:] if f.is_file() else []
            if lines:
                a = np.asarray([ln.split(",") for ln in lines], dtype=np.float64)  # (M, 2) score, iou
                sc.append(a[:, 0]), io.append(a[:, 1])
            m = read_json(d / "metrics.json") or {}
            if m.get("reliability"):
                rel.setdefault(v, {})[s] = m["reliability"]
            if (d / "results.csv").is_file():
                curves.setdefault(v, {})[s] = plots.read_results_csv(d / "results.csv")
        pairs[v] = (np.concatenate(sc) if sc else np.zeros(0), np.concatenate(io) if io else np.zeros(0))
        _csv(pdir / "score_iou" / f"{v}.csv", ["iou", "score"], [(f"{q:.4f}", f"{p:.4f}") for p, q in zip(*pairs[v])])
    plots.score_iou_scatter(pairs, figs / "score_iou.png"), made.append("figures/score_iou.png")
    for v, seeds in rel.items():  # pooled over seeds: bin-wise mean
        rows = []
        for s, r in sorted(seeds.items()):
            bins = zip(r["bin_conf"], r["bin_acc"], r["bin_count"])
            rows += [(s, i, f"{c:.4f}", f"{a:.4f}", n) for i, (c, a, n) in enumerate(bins)]
        _csv(pdir / "reliability" / f"{v}.csv", ["seed", "bin", "confidence", "accuracy", "count"], rows)
    plots.reliability_grid(rel, figs / "reliability.png"), made.append("figures/reliability.png")
    tide_bars(runs, figs / "tide.png"), made.append("figures/tide.png")
    key = "metrics/mAP50-95(B)"
    epochs = sorted({int(e) for seeds in curves.values() for c in seeds.values() for e in c.get("epoch", [])})
    cols = list(dict.fromkeys([*VARIANTS, *runs]))  # every registered variant: dvc.yaml plots name them all
    rows = []
    for e in epochs:
        row = [e]
        for v in cols:
            vals = [c[key][c["epoch"] == e][0] for c in curves.get(v, {}).values() if key in c and (c["epoch"] == e).any()]
            row.append(f"{np.mean(vals):.5f}" if vals else None)
        rows.append(row)
    _csv(pdir / "training_curves.csv", ["epoch", *cols], rows)
    for sub in ("reliability", "score_iou"):  # DVC outs/plots: present even when empty
        (pdir / sub).mkdir(parents=True, exist_ok=True)
    plots.training_curves(curves, figs / "training_curves.png"), made.append("figures/training_curves.png")
    return made


def run_report(params: Params) -> dict:
    """Write the tables, figures, DVC metrics and plot data under ``report.out_dir``.

    Raises:
        DataError: The evaluate stage's ``summary.json`` is missing, or no run of ``sweep.variants`` x
            ``sweep.seeds`` was evaluated.
    """
    root = project_root()
    out = resolve_path(params.report.out_dir)
    variants, seeds = list(params.sweep.variants), set(params.sweep.seeds)
    runs, index, mirrors = load_eval(root / "outputs" / "eval", variants, seeds)
    if not runs:
        raise DataError(f"outputs/eval/summary.json: no evaluated run of variants {variants} x seeds {sorted(seeds)}; "
                        "run `alignrank evaluate` after the sweep")
    shown = [v for v in variants if v in runs]
    profile = read_json(root / PROFILE_JSON)
    trained = next((r.get("meta") for r in index.get("runs", []) if r.get("meta")), {}) or {}
    rp = params.report
    image, why = _image_bootstrap(params, {v: mirrors.get(v, {}) for v in shown})
    paired = paired_rows(runs, shown, ci=rp.ci, min_seeds=rp.min_seeds, image=(image or {}).get("paired"))
    power = power_rows(runs, shown, ci=rp.ci, power=rp.power, delta=rp.power_delta, image=image)
    tables = [
        ("table1_main", main_table(runs, shown, profile)),
        ("table2_ablation", ablation_table(runs, shown)),
        ("table_tide", tide_table(runs, shown)),
        ("table_paired", paired_table(runs, shown, ci=rp.ci, min_seeds=rp.min_seeds, image=image, image_missing=why)),
        ("table_power", power_table(runs, shown, ci=rp.ci, power=rp.power, delta=rp.power_delta, image=image)),
        ("table_paper", paper_table(runs, profile, index.get("data"), trained)),
    ]
    if "baseline" not in runs:
        for t in (tables[3][1], tables[4][1]):
            t.notes.append("No baseline run evaluated: no paired differences.")
    for name, t in tables:
        atomic_write_text(out / "tables" / f"{name}.md", t.markdown())
        atomic_write_text(out / "tables" / f"{name}.csv", t.csv())
        atomic_write_text(out / "tables" / f"{name}.tex", t.latex())
    atomic_write_text(out / "tables" / "report.md", "# AlignRank results\n\n" + "\n".join(t.markdown() for _, t in tables))
    atomic_write_json(out / "metrics.json", metrics_json(runs, paired, power, image, ci=rp.ci, min_seeds=rp.min_seeds))
    head = headline(runs, shown, paired, ci=rp.ci)
    atomic_write_json(out / "headline.json", head)
    figures = _plot_data_and_figures({v: runs[v] for v in shown}, {v: mirrors.get(v, {}) for v in shown}, out)
    return {"out_dir": str(out), "variants": shown, "runs": sum(len(s) for s in runs.values()),
            "tables": [f"tables/{n}.md" for n, _ in tables], "figures": figures, "profile": profile is not None,
            "mlflow": _log_to_parent(params, out, head, index, runs)}


def _log_to_parent(params: Params, out: Path, head: Mapping, index: Mapping, runs: Mapping) -> dict:
    """The report on the sweep's MLflow parent run (:mod:`alignrank.report.mlflow_parent`); never raises for tracking."""
    from alignrank.report.console import variant_table
    from alignrank.report.mlflow_parent import log_report

    names = [Path(r["run_dir"]).name for r in index.get("runs", [])
             if r.get("run_dir") and r.get("seed") in runs.get(r.get("variant"), {})]
    s = params.sweep
    description = (f"**Sweep** of {', '.join(s.variants)} x seeds {list(s.seeds)}. **Report** (pycocotools AP in %, "
                   f"paired differences to the baseline over common seeds):\n\n```\n{variant_table(head)}\n```\n\n"
                   f"Tables, figures and JSON: artifacts under `report/`; on disk: `{out}`.")
    return log_report(params, out, head, names, description=description)
