"""evaluate_files and `alignrank evaluate --gt --pred`: numbers written, bad inputs named, [] -> AP 0."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.errors import DataError
from alignrank.eval.coco import STAT_NAMES
from alignrank.eval.files import evaluate_files

from .helpers import make_gt, perturb

GOOD = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "score": 0.9}


@pytest.fixture
def gt_file(tmp_path):
    p = tmp_path / "instances.json"
    p.write_text(json.dumps(make_gt([(1, 1, [10, 10, 30, 30]), (2, 3, [5, 5, 50, 20]), (2, 2, [60, 60, 20, 20])])))
    return p


def _pred(tmp_path, obj, name="predictions.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


@pytest.mark.parametrize(
    "records, message",
    [
        ([GOOD, {**GOOD, "image_id": 999}], "predictions.json record 1: unknown image_id 999 (not in instances.json)"),
        ([{**GOOD, "category_id": 0}], "record 0: unknown category_id 0"),
        ([GOOD, GOOD, {**GOOD, "bbox": [1, 2, float("nan"), 4]}], "record 2: non-finite or non-numeric bbox"),
        ([{**GOOD, "bbox": [1, 2, -3, 4]}], "record 0: negative box width/height"),
        ([{**GOOD, "bbox": [1, 2, 3]}], "record 0: invalid bbox"),
        ([{k: v for k, v in GOOD.items() if k != "score"}], "record 0: missing 'score'"),
        ([GOOD, "oops"], "record 1: expected an object"),
        ({"annotations": [GOOD]}, "expected a JSON list of COCO results"),
    ],
)
def test_bad_records_are_named(tmp_path, gt_file, records, message):
    with pytest.raises(DataError) as e:
        evaluate_files(gt_file, _pred(tmp_path, records), verbose=False)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_count_of_further_records(tmp_path, gt_file):
    with pytest.raises(DataError, match=r"record 0: unknown image_id 5 .*\(2 more bad record\(s\)\)"):
        evaluate_files(gt_file, _pred(tmp_path, [{**GOOD, "image_id": 5}] * 3), verbose=False)


@pytest.mark.parametrize("text, message", [("", "empty file"), ("   \n", "empty file"),
                                           ('[{"image_id": 1,', "malformed JSON at line 1")])
def test_empty_or_malformed_files(tmp_path, gt_file, text, message):
    with pytest.raises(DataError, match=message):
        evaluate_files(gt_file, _pred(tmp_path, text), verbose=False)
    with pytest.raises(DataError, match=message):
        evaluate_files(_pred(tmp_path, text, "instances.json"), _pred(tmp_path, [GOOD]), verbose=False)


def test_empty_list_gives_ap_0_and_writes_all_names(tmp_path, gt_file):
    out = tmp_path / "out" / "metrics.json"
    m = evaluate_files(gt_file, _pred(tmp_path, "[]"), json_out=out, verbose=False)
    assert m["AP"] == 0.0 and m["AR100"] == 0.0
    saved = json.loads(out.read_text())
    assert all(k in saved for k in STAT_NAMES + ("kendall_tau", "ece", "tide_dAP_cls", "nms_free_AP"))
    assert (tmp_path / "out" / "metrics.reliability.png").is_file()


def test_cli_evaluate_files(tmp_path, gt_file):
    gt = json.loads(gt_file.read_text())
    pred = _pred(tmp_path, perturb(gt, seed=0, drop=0.0, swap=0.0))
    out = tmp_path / "m.json"
    r = CliRunner().invoke(app, ["evaluate", "--gt", str(gt_file), "--pred", str(pred), "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "AP50" in r.output and "kendall_tau" in r.output
    m = json.loads(out.read_text())
    assert 0.0 < m["AP"] <= 1.0 and m["num_preds"] == len(json.loads(pred.read_text()))
    bad = _pred(tmp_path, [{**GOOD, "image_id": 999}], "bad.json")
    r = CliRunner().invoke(app, ["evaluate", "--gt", str(gt_file), "--pred", str(bad)])
    assert r.exit_code == 1 and "bad.json record 0: unknown image_id 999" in r.output


def test_candidates_file_feeds_rank_and_nms_free(tmp_path, gt_file):
    from alignrank.eval.boxes import Detections

    preds = _pred(tmp_path, [GOOD])
    box = np.array([[10, 10, 30, 30], [11, 10, 30, 30], [13, 10, 30, 30], [50, 50, 5, 5.0]])
    Detections([1] * 4, [1] * 4, box, [0.9, 0.8, 0.7, 0.95]).save_npz(tmp_path / "cands.npz")
    m = evaluate_files(gt_file, preds, candidates=tmp_path / "cands.npz", verbose=False)
    assert m["rank_gts"] == 1 and m["kendall_tau"] == pytest.approx(1.0) and m["num_candidates"] == 4
    assert m["nms_free_AP"] < m["AP"]  # the top-scored candidate is a false positive
    Detections([7], [1], box[:1], [0.5]).save_npz(tmp_path / "bad.npz")
    with pytest.raises(DataError, match="bad.npz row 0: invalid candidate"):
        evaluate_files(gt_file, preds, candidates=tmp_path / "bad.npz", verbose=False)
    r = CliRunner().invoke(app, ["evaluate", "--gt", str(gt_file), "--pred", str(preds), "--candidates",
                                 str(tmp_path / "cands.npz")])
    assert r.exit_code == 0 and "kendall_tau" in r.output


def test_one2one_file_is_scored_as_it_is(tmp_path, gt_file):
    """--one2one: an NMS-free model's detections give o2o_AP* (its own COCO AP, no NMS); without it they are NaN."""
    import math

    from alignrank.eval.coco import CocoGT, coco_metrics
    from alignrank.eval.files import load_instances, load_predictions

    preds = _pred(tmp_path, [GOOD])
    dup = {**GOOD, "bbox": [GOOD["bbox"][0] + 1, *GOOD["bbox"][1:]], "score": GOOD["score"] + 0.01}
    o2o = _pred(tmp_path, [GOOD, dup], "predictions_o2o.json")  # a duplicate that NMS would have removed stays
    m = evaluate_files(gt_file, preds, one2one=o2o, verbose=False)
    gt = load_instances(gt_file)
    want = coco_metrics(CocoGT(gt), load_predictions(o2o, gt))
    assert (m["o2o_AP"], m["o2o_AP50"], m["o2o_AP75"]) == (want["AP"], want["AP50"], want["AP75"])
    assert math.isnan(evaluate_files(gt_file, preds, verbose=False)["o2o_AP"])
    r = CliRunner().invoke(app, ["evaluate", "--gt", str(gt_file), "--pred", str(preds), "--one2one", str(o2o),
                                 "--json", str(tmp_path / "m.json")])
    assert r.exit_code == 0 and "o2o_AP" in r.output
    assert json.loads((tmp_path / "m.json").read_text())["o2o_AP"] == pytest.approx(want["AP"])


def _gt_as_predictions(gt: dict) -> list[dict]:
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
            for a in gt["annotations"] if not a.get("iscrowd")]


def test_ground_truth_as_predictions_gives_ap_100_on_coco128(tmp_path, coco128_gt):
    m = evaluate_files(_pred(tmp_path, coco128_gt, "instances.json"), _pred(tmp_path, _gt_as_predictions(coco128_gt)),
                       verbose=False)
    assert m["AP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0)


@pytest.mark.parametrize("key, message", [
    ("annotations", "instances.json annotations[5]: duplicate annotation id {id} (first at annotations[0])"),
    ("images", "instances.json images[5]: duplicate image id {id} (first at images[0])"),
    ("categories", "instances.json categories[5]: duplicate category id {id} (first at categories[0])"),
])
def test_duplicate_ids_in_the_ground_truth_are_refused(tmp_path, coco128_gt, key, message):
    # a duplicated annotation id used to pass and give AP 37.48 for the ground truth itself
    gt = json.loads(json.dumps(coco128_gt))
    gt[key][5]["id"] = gt[key][0]["id"]
    with pytest.raises(DataError) as e:
        evaluate_files(_pred(tmp_path, gt, "instances.json"), _pred(tmp_path, _gt_as_predictions(coco128_gt)),
                       verbose=False)
    msg = str(e.value)
    assert message.format(id=gt[key][0]["id"]) in msg and "unique" in msg and "\n" not in msg
    r = CliRunner().invoke(app, ["evaluate", "--gt", str(tmp_path / "instances.json"), "--pred",
                                 str(tmp_path / "predictions.json")])
    assert r.exit_code == 1 and f"duplicate {key[:-1].replace('categorie', 'category')} id" in r.output


@pytest.mark.parametrize("score", [1.7, -0.1, 4.0])
def test_scores_outside_0_1_are_refused(tmp_path, gt_file, score):
    # a score of 4.0 used to give ECE 4.0; scores are probabilities
    records = [GOOD, {**GOOD, "score": 0.0}, {**GOOD, "score": 1.0}, {**GOOD, "score": score}, {**GOOD, "score": score}]
    with pytest.raises(DataError) as e:
        evaluate_files(gt_file, _pred(tmp_path, records), verbose=False)
    msg = str(e.value)
    assert msg.startswith(f"predictions.json record 3: score {score} outside [0, 1]") and "(1 more bad record(s))" in msg
    assert "sigmoid" in msg and "\n" not in msg


def test_candidate_scores_outside_0_1_are_refused(tmp_path, gt_file):
    from alignrank.eval.boxes import Detections

    preds = _pred(tmp_path, [GOOD])
    Detections([1, 1], [1, 1], [[10, 10, 30, 30]] * 2, [0.5, 3.0]).save_npz(tmp_path / "c.npz")
    with pytest.raises(DataError, match=r"c.npz row 1: .*score 3.0 outside \[0, 1\]"):
        evaluate_files(gt_file, preds, candidates=tmp_path / "c.npz", verbose=False)
