"""Paired differences to the baseline (seed t interval, raw and Holm p, image bootstrap) and the power table.

Examples:
    >>> runs = {"baseline": {s: {"AP": 0.40 + 0.01 * s} for s in range(3)},
    ...         "full": {s: {"AP": 0.45 + 0.012 * s} for s in range(3)}}
    >>> t = paired_table(runs, ["baseline", "full"])
    >>> t.rows[0][:4]
    ['full', 'AP (%)', '+5.20', '[+4.70, +5.70]']
    >>> power_table(runs, ["baseline", "full"]).rows[0][3]  # per-seed difference sd 0.2 AP points, delta 1 point
    '3'
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from alignrank.report.power import images_needed, seeds_needed
from alignrank.report.stats import holm, paired_t
from alignrank.report.tables import ABLATION_METRICS, LABELS, LOWER_IS_BETTER, MAIN_METRICS, Table, digits, seed_values
from alignrank.report.units import is_percent

PAIRED_METRICS = tuple(MAIN_METRICS[:3]) + ABLATION_METRICS


def paired_rows(runs: Mapping, variants: Sequence[str], *, baseline: str = "baseline", ci: float = 0.95,
                min_seeds: int = 3, image: Mapping | None = None) -> list[dict]:
    """One dict per (variant, metric): the paired t statistics over seeds, Holm over all rows, the image CI.

    Keys: ``variant, metric, delta, sd, ci_lo, ci_hi, p, p_holm, n, significant`` and, for AP/AP50/AP75
    when ``image`` (:func:`alignrank.report.bootstrap.image_bootstrap`'s ``paired``) has them,
    ``image_delta, image_se, image_lo, image_hi``. ``significant``: ``n >= min_seeds`` and Holm-adjusted
    ``p < 1 - ci``.
    """
    rows = []
    base = {m: seed_values(runs, baseline, m) for m in PAIRED_METRICS}
    for v in variants:
        if v == baseline:
            continue
        for m in PAIRED_METRICS:
            mine = seed_values(runs, v, m)
            r = paired_t([mine[s] - base[m][s] for s in sorted(set(mine) & set(base[m]))], ci=ci)
            img = ((image or {}).get(v) or {}).get(m) or {}
            rows.append({"variant": v, "metric": m, "delta": r["mean"], "sd": r["sd"], "ci_lo": r["lo"], "ci_hi": r["hi"],
                         "p": r["p"], "n": r["n"], "image_delta": img.get("value", math.nan),
                         "image_se": img.get("se", math.nan), "image_lo": img.get("lo", math.nan),
                         "image_hi": img.get("hi", math.nan)})
    for row, adj in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = adj
        row["significant"] = bool(row["n"] >= min_seeds and math.isfinite(adj) and adj < 1 - ci)
    return rows


def _p(x: float) -> str:
    return "n/a" if not math.isfinite(x) else ("<0.001" if x < 0.001 else f"{x:.3f}")


def _ci(lo: float, hi: float, d: int) -> str:
    return f"[{lo:+.{d}f}, {hi:+.{d}f}]" if math.isfinite(lo) and math.isfinite(hi) else "n/a"


def paired_table(runs: Mapping, variants: Sequence[str], *, baseline: str = "baseline", ci: float = 0.95,
                 min_seeds: int = 3, image: Mapping | None = None, image_missing: str | None = None) -> Table:
    """Per variant and metric: paired difference to ``baseline`` over common seeds, t interval, raw and
    Holm-adjusted p, and (AP rows) the paired bootstrap interval over validation images.

    Args:
        runs: ``{variant: {seed: metrics}}`` (fractions, as the evaluate stage writes them).
        variants: Variants shown.
        baseline: Reference variant.
        ci: Confidence level (alpha = 1 - ci for the tests).
        min_seeds: Fewest seeds for "significant".
        image: :func:`alignrank.report.bootstrap.image_bootstrap`'s result, or None (no per-image records).
        image_missing: Why ``image`` is None (shown in the notes).
    """
    pct = round(ci * 100)
    rows_d = paired_rows(runs, variants, baseline=baseline, ci=ci, min_seeds=min_seeds,
                         image=(image or {}).get("paired"))
    k = sum(math.isfinite(r["p"]) for r in rows_d)
    n_img = (image or {}).get("n_images")
    img_col = f"{pct}% CI (paired bootstrap over {n_img} images)" if n_img else f"{pct}% CI (images)"
    cols = ["Variant", "Metric", "Δ vs baseline", f"{pct}% CI (paired t over seeds)", "p (t, raw)",
            f"p (Holm, {k} tests)", "n seeds", img_col, "significant"]
    csv_cols = ["variant", "metric", "delta_mean", "ci_lo", "ci_hi", "p_raw", "p_holm", "n", "image_ci_lo", "image_ci_hi",
                "image_se", "significant"]
    rows, csv_rows = [], []
    for r in rows_d:
        m, d = r["metric"], digits(r["metric"])
        sig = "yes" if r["significant"] else (f"n/a (n<{min_seeds})" if r["n"] < min_seeds else "no")
        img = _ci(r["image_lo"], r["image_hi"], d) if m in MAIN_METRICS else "—"
        rows.append([r["variant"], LABELS.get(m, m) + (" (%)" if is_percent(m) else ""),
                     "n/a" if not r["n"] else f"{r['delta']:+.{d}f}", _ci(r["ci_lo"], r["ci_hi"], d), _p(r["p"]),
                     _p(r["p_holm"]), str(r["n"]), img, sig])
        csv_rows.append([r["variant"], m, r["delta"], r["ci_lo"], r["ci_hi"], r["p"], r["p_holm"], r["n"],
                         r["image_lo"], r["image_hi"], r["image_se"], r["significant"]])
    alpha = round(1 - ci, 6)
    notes = [f"Δ = variant − {baseline}, paired by seed, mean over common seeds. Seed interval: paired t "
             f"(mean ± t_(n−1) · sd/√n); p: two-sided paired t test. Holm family: all {k} variant × metric rows of "
             f"this table with a p-value; 'significant' = Holm-adjusted p < {alpha} and n ≥ {min_seeds} seeds. "
             f"Lower is better for {', '.join(LABELS.get(m, m) for m in sorted(LOWER_IS_BETTER))}."]
    if n_img:
        notes.append(f"Image interval (AP rows): percentile bootstrap over the {n_img} validation images, "
                     f"{image['n_resamples']} replicates, the same image draw for every run (paired over images), "
                     "seeds fixed; it measures the test set's sampling noise, not the training noise, and is "
                     "not part of 'significant'.")
    else:
        notes.append(f"Image interval: n/a ({image_missing or 'no per-image bootstrap given'}).")
    return Table("paired", f"Paired differences to {baseline} ({pct}% intervals: t over seeds, bootstrap over images)",
                 cols, rows, csv_cols, csv_rows, notes)


def power_rows(runs: Mapping, variants: Sequence[str], *, baseline: str = "baseline", ci: float = 0.95,
               power: float = 0.8, delta: float = 1.0, image: Mapping | None = None) -> list[dict]:
    """Per variant: the AP difference's seed sd and image SE, and the seeds / images needed to detect ``delta``."""
    alpha = 1 - ci
    base = seed_values(runs, baseline, "AP")
    n_img = (image or {}).get("n_images") or 0
    out = []
    for v in variants:
        if v == baseline:
            continue
        mine = seed_values(runs, v, "AP")
        r = paired_t([mine[s] - base[s] for s in sorted(set(mine) & set(base))], ci=ci)
        se = ((((image or {}).get("paired") or {}).get(v) or {}).get("AP") or {}).get("se", math.nan)
        out.append({"variant": v, "delta": r["mean"], "sd_seeds": r["sd"], "n_seeds": r["n"],
                    "seeds_needed": seeds_needed(r["sd"], delta, alpha, power), "se_images": se, "n_images": n_img,
                    "images_needed": images_needed(se, n_img, delta, alpha, power)})
    return out


def power_table(runs: Mapping, variants: Sequence[str], *, baseline: str = "baseline", ci: float = 0.95,
                power: float = 0.8, delta: float = 1.0, image: Mapping | None = None) -> Table:
    """How many seeds and validation images would detect an AP difference of ``delta`` points."""
    rows_d = power_rows(runs, variants, baseline=baseline, ci=ci, power=power, delta=delta, image=image)
    alpha = round(1 - ci, 6)
    cols = ["Variant", "Δ AP (%)", "sd of Δ over seeds (n)", f"seeds needed (Δ = {delta:g})",
            "image SE of Δ (images)", f"val images needed (Δ = {delta:g})"]
    csv_cols = ["variant", "delta_mean", "sd_seeds", "n_seeds", "seeds_needed", "se_images", "n_images", "images_needed"]
    rows, csv_rows = [], []
    for r in rows_d:
        rows.append([r["variant"], "n/a" if not r["n_seeds"] else f"{r['delta']:+.2f}",
                     f"{r['sd_seeds']:.2f} ({r['n_seeds']})" if math.isfinite(r["sd_seeds"]) else f"n/a ({r['n_seeds']})",
                     str(r["seeds_needed"]) if r["seeds_needed"] else "n/a",
                     f"{r['se_images']:.2f} ({r['n_images']})" if math.isfinite(r["se_images"]) else "n/a",
                     str(r["images_needed"]) if r["images_needed"] else "n/a"])
        csv_rows.append([r[c] if r[c] is not None else "" for c in ("variant", "delta", "sd_seeds", "n_seeds",
                                                                      "seeds_needed", "se_images", "n_images",
                                                                      "images_needed")])
    notes = [f"To detect an AP difference of {delta:g} (AP points, %) with {round(power * 100)}% power at two-sided α = {alpha} "
             "(per comparison, before Holm). Seeds: exact power of the paired t test (noncentral t) with the observed "
             "sd of the per-seed Δ, test set fixed. Images: normal approximation n·((z_(1−α/2) + z_power)·SE/Δ)², "
             "the image-bootstrap SE of Δ scaled as 1/√images, seeds fixed. n/a: fewer than 2 seeds or no "
             "per-image records."]
    return Table("power", f"Seeds and images needed to detect Δ AP = {delta:g} (power {power:g}, α = {alpha})", cols,
                 rows, csv_cols, csv_rows, notes)
