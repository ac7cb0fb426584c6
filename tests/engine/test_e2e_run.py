"""An NMS-free ``full`` (full_e2e) trained one epoch on the tiny synthetic data: the trainer, its checkpoints, resume and
fine-tune rebuild the NMS-free model (a full resume: tests/nn/test_checkpoint.py); its evaluation decodes the one-to-one branch without any NMS, and its AP is
pycocotools' on that output."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from alignrank.config import with_overrides
from alignrank.nn.csd_head import CSDDetect
from alignrank.nn.e2e import has_one2one
from tests.conftest import train_tiny


@pytest.fixture(scope="module")
def e2e_run(tiny_data, tmp_path_factory):
    """One epoch of ``full_e2e``; returns (params, data yaml, run dir, trainer)."""
    return train_tiny(tiny_data, tmp_path_factory.mktemp("e2e_run"), "full_e2e")


def test_one_epoch_trains_both_branches(e2e_run):
    p, _, run, trainer = e2e_run
    assert type(trainer.model.model[-1]) is CSDDetect and has_one2one(trainer.model)
    assert {"o2o_box_loss", "o2o_cls_loss", "o2o_list_loss", "o2o_rank_loss", "o2o_dfl_loss"} <= set(trainer.loss_names)
    import csv

    rows = list(csv.DictReader((run / "results.csv").open()))
    o2o = {k.strip(): float(v) for k, v in rows[-1].items() if "o2o_" in k}
    assert {f"{s}/o2o_{n}" for s in ("train", "val") for n in ("box_loss", "cls_loss", "dfl_loss")} <= set(o2o)
    assert all(math.isfinite(v) for v in o2o.values()) and o2o["train/o2o_cls_loss"] > 0
    assert "metrics/mAP50-95(B)" in trainer.metrics  # ultralytics' validation: the one-to-many branch with NMS
    assert (run / "weights" / "last.pt").is_file() and (run / "weights" / "best.pt").is_file()


def test_checkpoint_round_trip_keeps_the_one2one_branch(e2e_run, tmp_path):
    """best.pt / last.pt load as the NMS-free CSD model; resume and fine-tune rebuild it with exactly its weights;
    a run of another form is refused; model.end2end on the plain variant is the same form and is accepted."""
    from ultralytics.nn.tasks import load_checkpoint

    from alignrank.engine.trainer import AlignRankTrainer, ultralytics_overrides
    from alignrank.errors import UsageError

    p, data, run, _ = e2e_run
    last = run / "weights" / "last.pt"
    ckpt_model, _ = load_checkpoint(last)
    assert has_one2one(ckpt_model) and ckpt_model.variant == "full_e2e"
    want = {k: v.float() for k, v in ckpt_model.state_dict().items() if v.is_floating_point()}
    assert any(".one2one_router." in k for k in want)
    for q, extra in ((p, {"resume": True}), (with_overrides(p, {"train.variant": "full", "model.end2end": True}), {})):
        if extra:
            over = ultralytics_overrides(q, data=data, save_dir=tmp_path / "resumed", resume=last)
        else:
            over = {**ultralytics_overrides(q, data=data, save_dir=tmp_path / "tuned"), "model": str(last),
                    "pretrained": str(last)}
        tr = AlignRankTrainer(q, over)
        tr.setup_model()
        got = {k: v.float() for k, v in tr.model.state_dict().items() if v.is_floating_point()}
        assert has_one2one(tr.model) and got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want)
    plain = with_overrides(p, {"train.variant": "full"})
    tr = AlignRankTrainer(plain, {**ultralytics_overrides(plain, data=data, save_dir=tmp_path / "x"), "model": str(last),
                                  "pretrained": str(last)})
    with pytest.raises(UsageError, match="NMS-free"):
        tr.setup_model()


NMS_FUNCS = (("torchvision.ops", "nms"), ("torchvision.ops", "batched_nms"), ("torchvision.ops.boxes", "nms"),
             ("torchvision.ops.boxes", "batched_nms"), ("ultralytics.utils.nms", "non_max_suppression"),
             ("alignrank.eval.predict", "decode_batch"))


def test_nms_free_evaluation_calls_no_nms_and_its_ap_is_pycocotools(e2e_run, monkeypatch):
    import importlib

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from alignrank.eval.coco import CocoGT
    from alignrank.eval.files import load_instances
    from alignrank.eval.nms_free import one2one_ap
    from alignrank.eval.predict import load_model, predict_all, read_dataset_yaml, val_images

    p, data, run, _ = e2e_run
    ds = read_dataset_yaml(data.parent)
    gt = load_instances(ds["_val_json"])
    model, _ = load_model(run / "weights" / "best.pt")
    calls = []
    for mod, name in NMS_FUNCS:
        def spy(*a, _n=name, **k):
            calls.append(_n)
            raise AssertionError(f"{_n} called on the NMS-free path")
        monkeypatch.setattr(importlib.import_module(mod), name, spy)
    images = val_images(ds["_val_dir"], gt)
    r = predict_all(model, images, ds["_category_ids"], p.eval, size=p.train.imgsz, nms=False)
    assert calls == [] and r.preds is None and r.candidates is None
    dets = r.one2one
    assert len(dets) > 0 and len(dets) <= p.eval.max_det * len(images)
    per_image = {i: (dets.image_id == i).sum() for i in set(dets.image_id.tolist())}
    assert max(per_image.values()) <= p.eval.max_det
    monkeypatch.undo()

    def pycocotools_stats(gt_dict: dict):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt_dict))
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets.to_coco()), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
        return [max(v, 0.0) for v in ev.stats[:3]]

    # the real ground truth (one epoch from scratch: AP near 0), then one built from the model's own top detections
    # (jittered, some dropped, some unmatched), so that the AP compared is far from 0 and 1
    rng = np.random.default_rng(0)
    anns = []
    for i in sorted(set(dets.image_id.tolist())):
        sel = np.flatnonzero(dets.image_id == i)[:4]
        for j, k in enumerate(sel):
            if j == 3:  # a ground truth no detection matches well
                box = [1.0, 1.0, 5.0, 5.0]
            else:
                x, y, w, h = dets.bbox[k]
                box = [float(x + rng.normal(0, 0.1) * w), float(y + rng.normal(0, 0.1) * h), float(w), float(h)]
            anns.append({"id": len(anns) + 1, "image_id": int(i), "category_id": int(dets.category_id[k]), "bbox": box,
                         "area": box[2] * box[3], "iscrowd": 0})
    built = {"images": gt["images"], "categories": gt["categories"], "annotations": anns}
    for gt_dict in (gt, built):
        ours = one2one_ap(CocoGT(gt_dict), dets)
        want = pycocotools_stats(gt_dict)
        assert [ours[k] for k in ("o2o_AP", "o2o_AP50", "o2o_AP75")] == pytest.approx(want, abs=1e-9)
    assert 0.05 < ours["o2o_AP"] < 0.95


def test_evaluate_reports_nms_and_nms_free_ap_labelled_apart(e2e_run):
    """predict_split of an NMS-free run: the one-to-many branch with NMS (AP, candidates: nms_free_AP) and the
    one-to-one branch without (o2o_AP), from one forward pass; a plain model gets NaN o2o numbers."""
    from alignrank.eval.evaluator import evaluate_detections, format_table
    from alignrank.eval.files import load_instances
    from alignrank.eval.predict import predict_split, read_dataset_yaml

    p, data, run, _ = e2e_run
    gt = load_instances(read_dataset_yaml(data.parent)["_val_json"])
    pr = predict_split(run / "weights" / "best.pt", data.parent, gt, p.eval)
    assert pr.meta["end2end"] and pr.one2one is not None and len(pr.preds) > 0
    m = evaluate_detections(gt, pr.preds, pr.candidates, p.eval, one2one=pr.one2one).metrics
    assert all(math.isfinite(m[k]) for k in ("AP", "nms_free_AP", "o2o_AP", "o2o_AP50", "o2o_AP75"))
    plain = evaluate_detections(gt, pr.preds, pr.candidates, p.eval).metrics
    assert math.isnan(plain["o2o_AP"]) and plain["AP"] == m["AP"]
    table = format_table(m)
    assert "one-to-one branch, NMS-free" in table and "one-to-many branch with NMS" in table
