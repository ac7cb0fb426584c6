"""NMS-free decoding: COCO AP of the plain top-k candidates by score per image, with no NMS.

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


def nms_free_ap(gt: CocoGT, cands: Detections, topk: int = 100) -> dict[str, float]:
    """AP / AP50 / AP75 of the top-``topk`` pre-NMS candidates per image (keys ``nms_free_*``).

    Args:
        gt: Ground truth.
        cands: Pre-NMS candidates (dataset ids; one row per box and class).
        topk: Candidates kept per image, by score.
    """
    m = coco_metrics(gt, cands.topk_per_image(topk))
    return dict(zip(NMS_FREE_KEYS, (m["AP"], m["AP50"], m["AP75"])))
