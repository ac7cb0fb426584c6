"""Rank consistency: known answers, equality with scipy per group, chunking, class-aware assignment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from alignrank.eval.boxes import Detections, GroundTruth
from alignrank.eval.rank import assign_candidates, rank_consistency, rank_stats_grouped

from .helpers import make_gt


def test_tau_one_when_scores_ordered_like_iou_and_minus_one_reversed():
    group = np.repeat([0, 1], [4, 3])
    iou = np.array([0.9, 0.8, 0.7, 0.6, 0.95, 0.75, 0.55])
    s = rank_stats_grouped(group, iou * 0.5, iou)  # same order as IoU
    assert s["kendall_tau"] == pytest.approx(1.0) and s["spearman_rho"] == pytest.approx(1.0)
    assert s["top1_miss_rate"] == 0.0 and s["top1_iou_gap"] == 0.0 and s["rank_gts"] == 2
    r = rank_stats_grouped(group, -iou, iou)
    assert r["kendall_tau"] == pytest.approx(-1.0) and r["spearman_rho"] == pytest.approx(-1.0)
    assert r["top1_miss_rate"] == 1.0
    assert r["top1_iou_gap"] == pytest.approx(((0.9 - 0.6) + (0.95 - 0.55)) / 2)


def test_single_candidate_groups_are_left_out():
    s = rank_stats_grouped(np.array([0, 1, 1]), np.array([0.9, 0.2, 0.8]), np.array([0.6, 0.9, 0.7]))
    assert s["rank_gts"] == 1 and s["kendall_tau"] == pytest.approx(-1.0) and s["top1_iou_gap"] == pytest.approx(0.2)


@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
@pytest.mark.parametrize("budget", [4_000_000, 3000])
def test_equals_scipy_per_group_with_ties(budget):
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 120, 80)
    group = np.repeat(rng.permutation(80), sizes)  # group ids not sorted
    score = rng.random(len(group)).round(1)  # many ties
    iou = (0.5 + 0.5 * rng.random(len(group))).round(2)
    s = rank_stats_grouped(group, score, iou, pair_budget=budget)
    taus, rhos, miss, gap = [], [], [], []
    for g in np.unique(group):
        m = group == g
        if m.sum() < 2:
            continue
        taus.append(kendalltau(score[m], iou[m]).statistic)
        rhos.append(spearmanr(score[m], iou[m]).statistic)
        top = np.argmax(score[m])
        miss.append(iou[m][top] < iou[m].max()), gap.append(iou[m].max() - iou[m][top])
    assert s["rank_gts"] == len(taus)
    assert s["kendall_tau"] == pytest.approx(np.nanmean(taus), abs=1e-12)
    assert s["spearman_rho"] == pytest.approx(np.nanmean(rhos), abs=1e-12)
    assert s["top1_miss_rate"] == pytest.approx(np.mean(miss)) and s["top1_iou_gap"] == pytest.approx(np.mean(gap))


def test_candidates_go_to_their_best_same_class_gt():
    gt = GroundTruth.from_coco(make_gt([(1, 1, [0, 0, 10, 10]), (1, 2, [0, 0, 10, 10]), (1, 1, [4, 0, 10, 10])]))
    c = Detections([1, 1, 1, 2], [1, 2, 1, 1], [[0, 0, 10, 10], [0, 0, 10, 10], [4, 0, 10, 10], [0, 0, 10, 10]],
                   [0.9, 0.8, 0.7, 0.6])
    ci, gi, iou = assign_candidates(gt, c, 0.5)
    assert dict(zip(ci.tolist(), gi.tolist())) == {0: 0, 1: 1, 2: 2}  # image 2 has no ground truth
    assert np.allclose(iou, 1.0)


def test_rank_consistency_end_to_end():
    gt = GroundTruth.from_coco(make_gt([(1, 1, [0, 0, 20, 20])]))
    boxes = [[0, 0, 20, 20], [1, 0, 20, 20], [2, 0, 20, 20], [3, 0, 20, 20]]  # IoU decreasing
    good, _, _ = rank_consistency(gt, Detections([1] * 4, [1] * 4, boxes, [0.9, 0.8, 0.7, 0.6]))
    bad, score, iou = rank_consistency(gt, Detections([1] * 4, [1] * 4, boxes, [0.6, 0.7, 0.8, 0.9]))
    assert good["kendall_tau"] == pytest.approx(1.0) and bad["kendall_tau"] == pytest.approx(-1.0)
    assert bad["top1_miss_rate"] == 1.0 and len(score) == len(iou) == 4
