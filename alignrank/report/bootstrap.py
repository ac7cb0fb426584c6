"""Bootstrap over validation images: the test set's own noise in COCO AP, per run and paired between variants.

Each replicate draws the validation images with replacement (multinomial counts, seeded) and
recomputes AP, AP50 and AP75 of every run from its per-image match records
(:func:`alignrank.eval.per_image.weighted_ap`) - no re-matching. The SAME image draw is applied to
every run (all variants and seeds), so a variant's difference to the baseline is paired over images:
identical predictions give a difference of exactly 0 in every replicate. Intervals are percentiles of
the replicates (numbers in %).

Examples:
    >>> image_weights(4, 3, seed=0).sum(1).tolist()  # each replicate draws 4 images
    [4.0, 4.0, 4.0]
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from alignrank.eval.per_image import ImageRecords, weighted_ap

METRICS = ("AP", "AP50", "AP75")


def image_weights(n_images: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(B, I) how often each image is drawn in each replicate (a multinomial of ``n_images`` draws)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_resamples).astype(np.float64)


def _summary(point: float, reps: np.ndarray, ci: float) -> dict:
    reps = reps[np.isfinite(reps)]
    if not len(reps) or not math.isfinite(point):
        return {"value": point, "se": math.nan, "lo": math.nan, "hi": math.nan}
    a = (1 - ci) / 2
    lo, hi = np.quantile(reps, [a, 1 - a])
    return {"value": float(point), "se": float(reps.std(ddof=1)) if len(reps) > 1 else math.nan,
            "lo": float(lo), "hi": float(hi)}


def image_bootstrap(records: Mapping[str, Mapping[int, ImageRecords]], *, baseline: str = "baseline",
                    n_resamples: int = 1000, ci: float = 0.95, seed: int = 0) -> dict:
    """Per-image bootstrap of every run's AP and of each variant's paired difference to ``baseline``.

    Args:
        records: ``{variant: {seed: ImageRecords}}``, all on the same validation images.
        baseline: Variant the differences are taken to.
        n_resamples: Replicates.
        ci: Confidence level of the percentile intervals.
        seed: RNG seed of the image draws.

    Returns:
        ``{"n_images", "n_resamples", "ci", "runs": {v: {seed: {metric: s}}}, "variants": {v: {metric: s}},
        "paired": {v: {metric: s | {"n": seeds}}}}`` where ``s = {"value", "se", "lo", "hi"}`` in %:
        ``variants`` is the mean over seeds, ``paired`` the mean over common seeds of (variant - baseline).

    Raises:
        ValueError: The runs were evaluated on different images.
    """
    runs = [(v, s, r) for v, seeds in records.items() for s, r in sorted(seeds.items())]
    if not runs:
        return {"n_images": 0, "n_resamples": n_resamples, "ci": ci, "runs": {}, "variants": {}, "paired": {}}
    ids = runs[0][2].image_ids
    for v, s, r in runs:
        if not np.array_equal(r.image_ids, ids):
            raise ValueError(f"{v} seed {s}: evaluated on other images than {runs[0][0]} seed {runs[0][1]}")
    w = np.vstack([np.ones(len(ids)), image_weights(len(ids), n_resamples, seed)])  # (1 + B, I) row 0: the data
    ap = {(v, s): {m: 100.0 * x for m, x in weighted_ap(r, w).items()} for v, s, r in runs}  # (1 + B,) each
    out: dict = {"n_images": int(len(ids)), "n_resamples": int(n_resamples), "ci": ci, "runs": {}, "variants": {},
                 "paired": {}}
    for (v, s), a in ap.items():
        out["runs"].setdefault(v, {})[s] = {m: _summary(a[m][0], a[m][1:], ci) for m in METRICS}
    for v, seeds in records.items():
        mean = {m: np.mean([ap[v, s][m] for s in seeds], axis=0) for m in METRICS}  # (1 + B,) mean over seeds
        out["variants"][v] = {m: _summary(mean[m][0], mean[m][1:], ci) for m in METRICS}
    for v, seeds in records.items():
        common = sorted(set(seeds) & set(records.get(baseline, {})))
        if v == baseline or not common:
            continue
        out["paired"][v] = {}
        for m in METRICS:
            d = np.mean([ap[v, s][m] - ap[baseline, s][m] for s in common], axis=0)  # (1 + B,)
            out["paired"][v][m] = {**_summary(d[0], d[1:], ci), "n": len(common)}
    return out
