"""The report's JSON files: ``metrics.json`` (everything, for machines) and ``headline.json`` (DVC's metric).

* ``metrics.json``: ``units`` (``{unit: [keys]}``: COCO AP/AR, NMS-free AP and TIDE AP/dAP in percent),
  ``means`` (per variant, the mean over seeds of every number, in those units, plus ``n_seeds``),
  ``paired`` (per variant and metric: Δ to the baseline, the paired t interval over seeds, raw and
  Holm-adjusted p, the paired bootstrap interval over images), ``power`` and ``image_bootstrap``.
* ``headline.json``: a small fixed set of keys - AP per variant (mean, std, n) and AP's paired
  difference to the baseline (mean, t interval over seeds, Holm p, image interval) - so that
  ``dvc metrics show`` prints one readable row.

Examples:
    >>> runs = {"baseline": {0: {"AP": 0.40}, 1: {"AP": 0.42}}, "full": {0: {"AP": 0.45}, 1: {"AP": 0.46}}}
    >>> h = headline(runs, ["baseline", "full"], paired=[], ci=0.95)
    >>> h["AP"]["baseline"]
    {'mean': 41.0, 'std': 1.414, 'n': 2}
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from alignrank.report.tables import mean_std, seed_values
from alignrank.report.units import to_report_unit, units_field

HEADLINE_KEYS = ("units", "ci", "AP", "delta_AP")
DELTA_KEYS = ("mean", "ci_lo", "ci_hi", "p_holm", "n", "image_ci_lo", "image_ci_hi")


def _num(x, digits: int = 3):
    """A JSON number (rounded) or None for NaN/None."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), digits) if isinstance(x, float) else x


def variant_means(runs: Mapping) -> dict:
    """Per variant, the mean over seeds of every numeric key in report units (None when never finite)."""
    out = {}
    for v, seeds in runs.items():
        keys = sorted({k for m in seeds.values() for k, x in m.items() if x is None or isinstance(x, (int, float))})
        means = {}
        for k in keys:
            vals = [m[k] for m in seeds.values() if isinstance(m.get(k), (int, float)) and math.isfinite(m[k])]
            means[k] = to_report_unit(k, float(np.mean(vals))) if vals else None
        out[v] = {**means, "n_seeds": len(seeds)}
    return out


def metrics_json(runs: Mapping, paired: Sequence[Mapping], power: Sequence[Mapping], image: Mapping | None,
                 *, ci: float, min_seeds: int) -> dict:
    """The full ``metrics.json`` (see the module docstring)."""
    means = variant_means(runs)
    pair: dict = {}
    for r in paired:
        pair.setdefault(r["variant"], {})[r["metric"]] = {k: _num(x, 6) for k, x in r.items()
                                                          if k not in ("variant", "metric")}
    units = units_field({k for m in means.values() for k in m})
    return {
        "units": units,
        "scales": "percent = COCO-style fraction x 100 (AP/AR, NMS-free AP, TIDE AP50/dAP); the rest as evaluated",
        "ci": ci, "min_seeds": min_seeds,
        "intervals": {"paired": "paired t over seeds; p: paired t test; p_holm: Holm over every variant x metric row",
                      "image": "percentile bootstrap over validation images, one image draw for all runs"},
        "means": means,
        "paired": pair,
        "power": {r["variant"]: {k: _num(x, 4) for k, x in r.items() if k != "variant"} for r in power},
        "image_bootstrap": image or {},
    }


def headline(runs: Mapping, variants: Sequence[str], paired: Sequence[Mapping], *, ci: float) -> dict:
    """The small DVC metrics file: AP per variant and AP's paired difference to the baseline (in %)."""
    out: dict = {"units": "percent", "ci": ci, "AP": {}, "delta_AP": {}}
    for v in variants:
        mu, sd, n = mean_std(seed_values(runs, v, "AP").values())
        out["AP"][v] = {"mean": _num(mu), "std": _num(sd), "n": n}
    for r in paired:
        if r["metric"] == "AP":
            out["delta_AP"][r["variant"]] = {"mean": _num(r["delta"]), "ci_lo": _num(r["ci_lo"]), "ci_hi": _num(r["ci_hi"]),
                                             "p_holm": _num(r["p_holm"], 4), "n": r["n"],
                                             "image_ci_lo": _num(r["image_lo"]), "image_ci_hi": _num(r["image_hi"])}
    return out
