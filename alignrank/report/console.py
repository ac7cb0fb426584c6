"""The one-screen summaries that ``alignrank sweep`` and ``alignrank report`` print (``--json``: the JSON).

* :func:`sweep_text`: runs trained / cached / failed and the wall time; per variant the mean ± std over
  seeds of ultralytics' validation mAP50-95 of ``best.pt`` (the number training knows; the report's COCO
  AP comes from ``alignrank evaluate``), its paired difference to the baseline over common seeds with the
  ``report.ci`` t interval; each failed run's one-line error; where the runs and the MLflow parent run are.
* :func:`report_text`: per variant pycocotools AP mean ± std (n seeds), the paired difference to the
  baseline with its interval over seeds and over images and the Holm-adjusted p (from ``headline.json``),
  then where the tables, figures, DVC files and the MLflow parent run are.

Plain text (no colours, no control characters): the same on a terminal, in CI logs and under DVC.

Examples:
    >>> headline = {"ci": 0.95, "AP": {"baseline": {"mean": 40.0, "std": 0.5, "n": 3},
    ...                                 "full": {"mean": 41.5, "std": 0.4, "n": 3}},
    ...             "delta_AP": {"full": {"mean": 1.5, "ci_lo": 0.3, "ci_hi": 2.7, "p_holm": 0.02, "n": 3,
    ...                                   "image_ci_lo": 0.9, "image_ci_hi": 2.1}}}
    >>> print(variant_table(headline))
    variant   AP (%)        n  Δ AP vs baseline  95% CI (seeds)  95% CI (images)  Holm p
    baseline  40.00 ± 0.50  3  -                 -               -                -
    full      41.50 ± 0.40  3  +1.50             [+0.30, +2.70]  [+0.90, +2.10]   0.020
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from alignrank.config.schema import Params
from alignrank.io import read_json, resolve_path
from alignrank.report.stats import paired_t
from alignrank.report.tables import fmt_ms, mean_std

BASELINE = "baseline"


def _num(x: Any) -> Optional[float]:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _signed(x: Any, digits: int = 2) -> str:
    v = _num(x)
    return "n/a" if v is None else f"{v:+.{digits}f}"


def _interval(lo: Any, hi: Any, digits: int = 2) -> str:
    a, b = _num(lo), _num(hi)
    return "n/a" if a is None or b is None else f"[{a:+.{digits}f}, {b:+.{digits}f}]"


def _p(x: Any) -> str:
    v = _num(x)
    return "n/a" if v is None else ("<0.001" if v < 0.001 else f"{v:.3f}")


def columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as left-aligned columns two spaces apart (no trailing spaces)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def variant_table(headline: Mapping) -> str:
    """The AP table of ``headline.json``: per variant mean ± std, n, and the paired difference to the baseline."""
    pct = round(float(headline.get("ci", 0.95)) * 100)
    rows = [["variant", "AP (%)", "n", "Δ AP vs baseline", f"{pct}% CI (seeds)", f"{pct}% CI (images)", "Holm p"]]
    for v, a in (headline.get("AP") or {}).items():
        d = (headline.get("delta_AP") or {}).get(v)
        mean, std = _num(a.get("mean")), _num(a.get("std"))
        ap = fmt_ms(mean if mean is not None else math.nan, std if std is not None else math.nan, 2)
        if d is None:
            rows.append([v, ap, str(a.get("n", 0)), "-", "-", "-", "-"])
        else:
            rows.append([v, ap, str(a.get("n", 0)), _signed(d.get("mean")), _interval(d.get("ci_lo"), d.get("ci_hi")),
                         _interval(d.get("image_ci_lo"), d.get("image_ci_hi")), _p(d.get("p_holm"))])
    return columns(rows)


def _where(label: str, what: str) -> str:
    return f"{label + ':':<9}{what}"


def mlflow_line(info: Optional[Mapping]) -> str:
    """Where the sweep's MLflow parent run is (or why the report was not logged there)."""
    info = info or {}
    if info.get("parent_run_id") and not info.get("error"):
        return _where("MLflow", f"parent run {info['parent_run_id']} in experiment {info.get('experiment', '?')} "
                                f"({info.get('uri', '?')}); browse: make mlflow-ui")
    return _where("MLflow", str(info.get("error") or info.get("skipped") or "no parent run"))


def report_text(out: Mapping, headline: Mapping) -> str:
    """The summary of ``alignrank report`` (``out``: :func:`~alignrank.report.results.run_report`'s result)."""
    d = Path(out.get("out_dir") or ".")
    n_seeds = sorted({a.get("n", 0) for a in (headline.get("AP") or {}).values()})
    lines = [f"report: {len(out.get('variants', []))} variants, {out.get('runs', 0)} evaluated runs "
             f"({'/'.join(map(str, n_seeds))} seeds per variant); COCO AP (pycocotools), paired differences to the "
             f"baseline over common seeds", "", variant_table(headline), ""]
    if BASELINE not in (headline.get("AP") or {}):
        lines += ["(no baseline run evaluated: no paired differences)", ""]
    lines += [
        _where("tables", f"{d / 'tables' / 'report.md'} (each table also .md/.csv/.tex in {d / 'tables'})"),
        _where("figures", f"{d / 'figures'} ({len(out.get('figures', []))} PNG)"),
        _where("DVC", f"{d / 'headline.json'} (dvc metrics show), {d / 'metrics.json'}, plots data {d / 'plots'}"),
        mlflow_line(out.get("mlflow")),
    ]
    return "\n".join(lines)


def sweep_rows(runs: Sequence[Mapping], *, ci: float = 0.95, metric: str = "map50_95") -> list[list[str]]:
    """Per variant: mean ± std (%) of ``metric`` over the finished runs, n, paired Δ to the baseline and its t interval."""
    vals: dict[str, dict[int, float]] = {}
    for r in runs:
        x = _num((r.get("metrics") or {}).get(metric))
        if x is not None:
            vals.setdefault(str(r["variant"]), {})[int(r["seed"])] = 100.0 * x
    pct = round(ci * 100)
    rows = [["variant", f"val {metric} (%)", "n", "Δ vs baseline", f"{pct}% CI (paired over seeds)"]]
    base = vals.get(BASELINE, {})
    for v, by_seed in vals.items():
        mu, sd, n = mean_std(by_seed.values())
        if v == BASELINE or not base:
            rows.append([v, fmt_ms(mu, sd, 2), str(n), "-", "-"])
            continue
        t = paired_t([by_seed[s] - base[s] for s in sorted(set(by_seed) & set(base))], ci=ci)
        rows.append([v, fmt_ms(mu, sd, 2), str(n), _signed(t["mean"]) + f" (n={t['n']})", _interval(t["lo"], t["hi"])])
    return rows


def _duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def sweep_text(out: Mapping, *, runs_dir: Path | str, ci: float = 0.95, mlflow: Optional[Mapping] = None) -> str:
    """The summary of ``alignrank sweep`` (``out``: :func:`~alignrank.runs.sweep.run_sweep`'s result)."""
    n = len(out.get("runs", [])) + len(out.get("failed", []))
    lines = [f"sweep: {n} runs: {len(out.get('trained', []))} trained, {len(out.get('cached', []))} cached, "
             f"{len(out.get('failed', []))} failed, in {_duration(float(out.get('wall_s') or 0))}"]
    done = [r for r in out.get("runs", []) if r.get("status") == "done"]
    if done:
        lines += ["", columns(sweep_rows(done, ci=ci)),
                  "(ultralytics' validation of each run's best.pt; the COCO AP and its intervals: "
                  "alignrank evaluate, then alignrank report)"]
    for f in out.get("failed", []):
        lines.append(f"failed:  {f['run']} after {f.get('attempts', '?')} attempt(s): {f['error']}")
    lines += ["", _where("runs", f"{runs_dir} (summary: {Path(runs_dir) / 'sweep.json'})"),
              mlflow_line({**(mlflow or {}), "parent_run_id": out.get("parent_run_id"),
                           "skipped": None if out.get("parent_run_id") else "no parent run (nothing was trained)"})]
    return "\n".join(lines)


def tracking_where(params: Params) -> dict:
    """``{"experiment", "uri"}`` of the configured MLflow store (credentials redacted; nothing created)."""
    import os

    from alignrank.tracking.client import redact_uri
    from alignrank.tracking.store import local_store, sqlite_uri

    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.mlflow.tracking_uri or sqlite_uri(local_store()[0])
    return {"experiment": params.mlflow.experiment, "uri": redact_uri(uri)}


def sweep_summary(params: Params, out: Mapping) -> str:
    """:func:`sweep_text` with the paths, interval level and MLflow store of ``params``."""
    return sweep_text(out, runs_dir=resolve_path(params.train.out_dir), ci=params.report.ci,
                      mlflow=tracking_where(params))


def report_summary(out: Mapping) -> str:
    """:func:`report_text` with the ``headline.json`` the report just wrote."""
    return report_text(out, read_json(Path(out.get("out_dir") or ".") / "headline.json") or {})
