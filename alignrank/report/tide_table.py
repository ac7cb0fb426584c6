"""TIDE table: per variant, the AP gained by fixing each error type (dAP) and how many errors of it.

One row per variant; each error-type cell is ``dAP mean ± std over seeds (count)`` with dAP in AP
points (TIDE's AP@0.5 x 100) and count the mean number of errors over seeds. The error types are
those of :mod:`alignrank.eval.tide` (tidecv's): Cls, Loc, Both, Dupe, Bkg, Miss, then the special
FP / FN (perfect precision / perfect recall, dAP only). The CSV columns hold the raw numbers.

Examples:
    >>> runs = {"baseline": {0: {"tide_AP50": 0.5, "tide_dAP_cls": 0.031, "tide_n_cls": 12},
    ...                      1: {"tide_AP50": 0.52, "tide_dAP_cls": 0.029, "tide_n_cls": 10}}}
    >>> t = tide_table(runs, ["baseline"])
    >>> t.rows[0][:4]
    ['baseline', '2', '51.00 ± 1.41', '3.00 ± 0.14 (11)']
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from alignrank.eval.tide import ERROR_TYPES
from alignrank.report.tables import Table, fmt_ms, mean_std

ERROR_LABELS = {"cls": "Cls", "loc": "Loc", "both": "Both", "dupe": "Dupe", "bkg": "Bkg", "miss": "Miss",
                "fp": "FP (special)", "fn": "FN (special)"}
SPECIAL = ("fp", "fn")


def _seed_values(seeds: Mapping, key: str, scale: float = 1.0) -> list[float]:
    out = []
    for m in seeds.values():
        v = (m or {}).get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v) * scale)
    return out


def _count(vals: list[float]) -> str:
    if not vals:
        return "n/a"
    mu = sum(vals) / len(vals)
    return f"{mu:.0f}" if float(mu).is_integer() else f"{mu:.1f}"


def tide_table(runs: Mapping[str, Mapping[int, Mapping]], variants: Sequence[str]) -> Table:
    """The TIDE table of ``variants`` (rows in that order; a variant without runs shows ``n/a``).

    Args:
        runs: ``{variant: {seed: metrics}}`` with the ``tide_*`` numbers of
            :func:`alignrank.eval.tide.tide_errors` (fractions, as the evaluate stage writes them).
        variants: Variants to show.

    Returns:
        A :class:`~alignrank.report.tables.Table` named ``tide``.
    """
    types = list(ERROR_TYPES) + list(SPECIAL)
    cols = ["Variant", "n", "AP50 (TIDE, %)"] + [f"{ERROR_LABELS[e]} dAP (count)" for e in ERROR_TYPES] + \
           [f"{ERROR_LABELS[e]} dAP" for e in SPECIAL]
    csv_cols = ["variant", "n", "tide_AP50_mean", "tide_AP50_std"]
    csv_cols += [f"dAP_{e}_{s}" for e in types for s in ("mean", "std")] + [f"n_{e}_mean" for e in ERROR_TYPES]
    rows, csv_rows = [], []
    for v in variants:
        seeds = runs.get(v) or {}
        mu, sd, _ = mean_std(_seed_values(seeds, "tide_AP50", 100.0))
        cells, nums = [v, str(len(seeds)), fmt_ms(mu, sd, 2)], [v, len(seeds), mu, sd]
        counts = []
        for e in types:
            mu, sd, _ = mean_std(_seed_values(seeds, f"tide_dAP_{e}", 100.0))
            nums.extend([mu, sd])
            if e in SPECIAL:
                cells.append(fmt_ms(mu, sd, 2))
                continue
            n = _seed_values(seeds, f"tide_n_{e}")
            counts.append(sum(n) / len(n) if n else math.nan)
            cells.append(f"{fmt_ms(mu, sd, 2)} ({_count(n)})" if n or math.isfinite(mu) else "n/a")
        rows.append(cells), csv_rows.append(nums + counts)
    notes = ["TIDE (Bolya et al., ECCV 2020; tidecv's rules) at IoU 0.5 (background below 0.1), top 100 predictions "
             "per image. dAP: AP50 points gained by fixing only that error type, mean ± sample std over seeds; in "
             "parentheses the mean number of errors. Predictions inside crowd regions are counted but never cost AP "
             "(tidecv's rule). FP / FN: AP gained with perfect precision / perfect recall."]
    return Table("tide", "TIDE error breakdown (dAP in AP50 points)", cols, rows, csv_cols, csv_rows, notes)
