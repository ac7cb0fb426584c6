"""NMS-free AP, two kinds that must not be mistaken for one another:

* ``nms_free_AP*`` (:func:`nms_free_ap`): the top-k pre-NMS candidates of the one-to-many branch by score per
  image, no NMS. A one-to-many branch is trained to score several boxes per object, so this measures how
  much its scores alone rank duplicates below other objects' boxes; it is not a detector's NMS-free AP.
* ``o2o_AP*`` (:func:`one2one_ap`): the final detections of an NMS-free model's one-to-one branch (YOLOv10's
  dual assignment; top-k by score, no NMS): the NMS-free detector's AP. NaN for a model without that branch.

If scores alone ranked boxes well (one high score per object, duplicates low), top-k decoding
would approach the NMS AP; duplicates that outscore other objects' boxes pull it down.

Examples:
    >>> gt = {"images": [{"id": 1, "width": 20, "height": 20}], "categories": [{"id": 1, "name": "a"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0}]}
    >>> c = Detections([1, 1], [1, 1], [[2, 2, 8, 8], [2, 2, 8, 7.5]], [0.9, 0.8])
    >>> round(nms_free_ap(CocoGT(gt), c, topk=1)["nms_free_AP"], 3)
    1.0
"""

from __future__ import annotations

from alignrank.eval.boxes import Detections
from alignrank.eval.coco import CocoGT, coco_metrics

NMS_FREE_KEYS = ("nms_free_AP", "nms_free_AP50", "nms_free_AP75")
ONE2ONE_KEYS = ("o2o_AP", "o2o_AP50", "o2o_AP75")


def nms_free_ap(gt: CocoGT, cands: Detections, topk: int = 100) -> dict[str, float]:
    """AP / AP50 / AP75 of the top-``topk`` pre-NMS candidates per image (keys ``nms_free_*``).

    Args:
        gt: Ground truth.
        cands: Pre-NMS candidates (dataset ids; one row per box and class).
        topk: Candidates kept per image, by score.
    """
    m = coco_metrics(gt, cands.topk_per_image(topk))
    return dict(zip(NMS_FREE_KEYS, (m["AP"], m["AP50"], m["AP75"])))


def one2one_ap(gt: CocoGT, dets: Detections) -> dict[str, float]:
    """AP / AP50 / AP75 (keys ``o2o_*``) of an NMS-free model's one-to-one detections, as they are (no NMS).

    Args:
        gt: Ground truth.
        dets: The one-to-one branch's final detections (dataset ids).
    """
    m = coco_metrics(gt, dets)
    return dict(zip(ONE2ONE_KEYS, (m["AP"], m["AP50"], m["AP75"])))
