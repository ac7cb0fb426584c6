"""The report on the sweep's MLflow parent run: one sweep can be compared with another in the MLflow UI.

After the report stage, the parent run recorded in ``<train.out_dir>/sweep.json`` (the sweep that trained
the runs, or the last one that planned exactly these runs) receives:

* metrics (step 0; a re-run of the report logs them again, the UI shows the latest):
  ``report/AP/<variant>/mean|std|n`` (pycocotools AP in %, over seeds) and
  ``report/delta_AP/<variant>/mean|ci_lo|ci_hi|image_ci_lo|image_ci_hi|p_holm|n`` (paired difference to
  the baseline and its interval bounds), i.e. every number of ``headline.json``;
* artifacts: ``report/tables/`` (every table as .md/.csv/.tex and ``report.md``), ``report/figures/``
  (PNG), ``report/headline.json``, ``report/metrics.json``;
* tags ``report.out_dir`` and ``report.variants``, and the one-screen summary as the run's description.

The report is logged only when every evaluated run belongs to that sweep (same run folders); otherwise,
or when the tracking store fails, the report itself is kept and its result says why (``mlflow.skipped`` /
``mlflow.error``): tracking trouble never fails the report.

Examples:
    >>> h = {"AP": {"baseline": {"mean": 40.0, "std": None, "n": 1}},
    ...      "delta_AP": {"full": {"mean": 1.5, "ci_lo": None, "ci_hi": None, "n": 1}}}
    >>> headline_metrics(h)
    {'report/AP/baseline/mean': 40.0, 'report/AP/baseline/n': 1.0, 'report/delta_AP/full/mean': 1.5, 'report/delta_AP/full/n': 1.0}
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence

from alignrank.config.schema import Params
from alignrank.io import read_json, resolve_path

SWEEP_JSON = "sweep.json"
DESCRIPTION_TAG = "mlflow.note.content"


def headline_metrics(headline: Mapping) -> dict[str, float]:
    """``report/...`` metric names and values of ``headline.json`` (missing/NaN values left out)."""
    out = {}
    for group in ("AP", "delta_AP"):
        for v, stats in (headline.get(group) or {}).items():
            for k, x in stats.items():
                if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
                    out[f"report/{group}/{v}/{k}"] = float(x)
    return out


def sweep_parent(params: Params, run_names: Sequence[str]) -> tuple[Optional[str], Optional[str]]:
    """``(parent run id, None)`` of the sweep that holds ``run_names``, or ``(None, why not)``."""
    f = resolve_path(params.train.out_dir) / SWEEP_JSON
    sweep = read_json(f)
    if sweep is None:
        return None, f"no sweep recorded ({f} missing): report not logged to MLflow"
    if not sweep.get("parent_run_id"):
        return None, f"{f} names no MLflow parent run: report not logged to MLflow"
    mine = {r.get("run") for r in sweep.get("runs", [])} | {r.get("run") for r in sweep.get("failed", [])}
    other = sorted(set(run_names) - mine)
    if other:
        return None, (f"{len(other)} evaluated run(s) (first: {other[0]}) are not runs of the sweep in {f}: "
                      f"report not logged to MLflow")
    return str(sweep["parent_run_id"]), None


def _files(out: Path) -> list[tuple[Path, str]]:
    """``(file, artifact folder)`` of every report file the parent run gets."""
    files = [(p, "report/tables") for p in sorted((out / "tables").glob("*")) if p.is_file()]
    files += [(p, "report/figures") for p in sorted((out / "figures").glob("*.png"))]
    files += [(out / n, "report") for n in ("headline.json", "metrics.json") if (out / n).is_file()]
    return files


def log_report(params: Params, out: Path, headline: Mapping, run_names: Sequence[str], *,
               description: Optional[str] = None) -> dict:
    """Log the report under ``out`` to the sweep's parent run (see the module docstring).

    Returns:
        ``{"parent_run_id", "experiment", "uri", "metrics", "artifacts"}``, or ``{"skipped": why}``, or
        ``{"parent_run_id", "error": one line}`` when the tracking store failed.
    """
    parent, why = sweep_parent(params, run_names)
    if parent is None:
        return {"skipped": why}
    from alignrank.errors import TrackingError
    from alignrank.tracking.client import redact_uri
    from alignrank.tracking.session import attach_to_run
    from alignrank.tracking.store import resolve_tracking_uri

    uri = redact_uri(resolve_tracking_uri(params))
    metrics, files = headline_metrics(headline), _files(Path(out))
    try:
        t = attach_to_run(params, parent)
        t.log_metrics(metrics, step=0)
        tags = {"report.out_dir": str(out), "report.variants": ",".join(headline.get("AP") or {}),
                "report.updated": time.strftime("%Y-%m-%d %H:%M:%S")}
        if description:
            tags[DESCRIPTION_TAG] = description
        t.set_tags(tags)
        for f, folder in files:
            t.log_artifact(f, folder)
    except TrackingError as e:
        return {"parent_run_id": parent, "error": f"report not logged to MLflow run {parent}: {str(e).splitlines()[0]}"}
    return {"parent_run_id": parent, "experiment": params.mlflow.experiment, "uri": uri, "metrics": len(metrics),
            "artifacts": len(files)}
