"""Bootstrap over validation images: point = pycocotools, identical variants pair to 0, known binomial spread."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alignrank.eval.boxes import Detections
from alignrank.eval.coco import CocoGT, coco_metrics
from alignrank.eval.per_image import image_records
from alignrank.report.bootstrap import image_bootstrap, image_weights

from .helpers import fake_dets, fake_gt


def test_image_weights_are_seeded_draws_of_n_images():
    w = image_weights(50, 200, seed=1)
    assert w.shape == (200, 50) and (w.sum(1) == 50).all() and np.array_equal(w, image_weights(50, 200, seed=1))
    assert w.mean() == pytest.approx(1.0) and 0.3 < (w == 0).mean() < 0.45  # about 1/e of the images left out


def test_point_is_pycocotools_and_identical_variants_pair_to_exactly_zero():
    gt = fake_gt(30)
    cgt = CocoGT(gt)
    dets = {s: fake_dets(gt, 0.1, seed=s) for s in (0, 1)}
    recs = {s: image_records(cgt, d) for s, d in dets.items()}
    other = {s: image_records(cgt, fake_dets(gt, 0.05, seed=10 + s)) for s in (0, 1)}
    r = image_bootstrap({"baseline": recs, "same": dict(recs), "better": other}, n_resamples=300, ci=0.9)
    assert r["n_images"] == 30 and r["n_resamples"] == 300
    for s in (0, 1):
        ref = coco_metrics(cgt, dets[s])
        for m in ("AP", "AP50", "AP75"):
            assert r["runs"]["baseline"][s][m]["value"] == pytest.approx(100 * ref[m], abs=1e-9)
    same = r["paired"]["same"]["AP"]
    assert (same["value"], same["lo"], same["hi"], same["se"], same["n"]) == (0.0, 0.0, 0.0, 0.0, 2)
    run = r["runs"]["baseline"][0]["AP"]
    assert run["lo"] < run["value"] < run["hi"] and run["se"] > 0
    better = r["paired"]["better"]["AP"]
    vals = [r["runs"]["better"][s]["AP"]["value"] - r["runs"]["baseline"][s]["AP"]["value"] for s in (0, 1)]
    assert better["value"] == pytest.approx(np.mean(vals)) and better["lo"] < better["value"] < better["hi"]
    assert r["variants"]["same"]["AP"] == r["variants"]["baseline"]["AP"]


def _hits_gt(n: int, hit: np.ndarray) -> tuple[CocoGT, Detections]:
    """One ground truth per image; a perfect detection on the images flagged in ``hit``."""
    gt = {"images": [{"id": i + 1, "width": 50, "height": 50} for i in range(n)], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400,
                           "iscrowd": 0} for i in range(n)]}
    idx = np.flatnonzero(hit)
    dets = Detections(idx + 1, np.ones(len(idx)), np.tile([5, 5, 20, 20], (len(idx), 1)),
                      np.linspace(0.9, 0.5, len(idx)))
    return CocoGT(gt), dets


def test_known_binomial_spread_and_one_over_sqrt_n():
    # precision is 1 everywhere, so AP ~ recall = fraction of images with a hit: a binomial proportion
    rng = np.random.default_rng(0)
    se = {}
    for n in (100, 400):
        hit = rng.random(n) < 0.5
        cgt, dets = _hits_gt(n, hit)
        r = image_bootstrap({"baseline": {0: image_records(cgt, dets)}}, n_resamples=1000, ci=0.95, seed=2)
        p = hit.mean()
        se[n] = r["runs"]["baseline"][0]["AP"]["se"]
        assert se[n] == pytest.approx(100 * math.sqrt(p * (1 - p) / n), rel=0.15)
    assert se[100] / se[400] == pytest.approx(2.0, rel=0.2)


def test_runs_on_different_images_are_refused():
    a, b = fake_gt(20, seed=0), fake_gt(21, seed=0)
    ra = image_records(CocoGT(a), fake_dets(a, 0.1, 0))
    rb = image_records(CocoGT(b), fake_dets(b, 0.1, 0))
    with pytest.raises(ValueError, match="other images"):
        image_bootstrap({"baseline": {0: ra}, "full": {0: rb}}, n_resamples=10)
    assert image_bootstrap({}, n_resamples=10)["paired"] == {}
