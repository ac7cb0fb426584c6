"""pycocotools wrapper: the 12 standard COCO box numbers, robust to an empty prediction list.

pycocotools' ``loadRes`` crashes on ``[]``; here an empty list is evaluated against an empty result
set (AP 0 when the split has ground truth). Numbers pycocotools reports as -1 (no ground truth in
that area range) are returned as NaN (``null`` in JSON). Crowd regions are handled by pycocotools.

Examples:
    >>> gt = {"images": [{"id": 1, "width": 20, "height": 20}], "categories": [{"id": 7, "name": "a"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0}]}
    >>> from alignrank.eval.boxes import Detections
    >>> dets = Detections.from_coco([{"image_id": 1, "category_id": 7, "bbox": [2, 2, 8, 8], "score": 0.9}])
    >>> round(coco_metrics(CocoGT(gt), dets)["AP"], 3)
    1.0
    >>> coco_metrics(CocoGT(gt), Detections.empty())["AP"]
    0.0
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from typing import Mapping

import numpy as np

from alignrank.eval.boxes import Detections

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class CocoGT:
    """A pycocotools ``COCO`` ground truth built once from an instances dict (no file re-read).

    Args:
        dataset: COCO instances dict (``images``, ``annotations``, ``categories``).
    """

    def __init__(self, dataset: Mapping) -> None:
        from pycocotools.coco import COCO

        self.dataset = dataset
        with _quiet():
            self.coco = COCO()
            self.coco.dataset = copy.deepcopy(dict(dataset))
            self.coco.dataset.setdefault("annotations", [])
            self.coco.createIndex()

    def results(self, dets: Detections):
        """A pycocotools results ``COCO`` for ``dets`` (``loadRes``, or an empty one for no detections)."""
        from pycocotools.coco import COCO

        with _quiet():
            if len(dets):
                return self.coco.loadRes(dets.to_coco())
            res = COCO()
            res.dataset = {"images": list(self.coco.dataset["images"]), "annotations": [],
                           "categories": copy.deepcopy(self.coco.dataset.get("categories", []))}
            res.createIndex()
            return res


def coco_eval(gt: CocoGT, dets: Detections, max_dets: tuple[int, int, int] = (1, 10, 100)):
    """Run pycocotools' ``COCOeval`` (bbox) and return the evaluated object (``.stats`` filled)."""
    from pycocotools.cocoeval import COCOeval

    with _quiet():
        ev = COCOeval(gt.coco, gt.results(dets), "bbox")
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def coco_metrics(gt: CocoGT, dets: Detections) -> dict[str, float]:
    """The 12 standard COCO numbers (fractions in [0, 1]; NaN where pycocotools reports -1).

    Args:
        gt: Ground truth.
        dets: Detections with the dataset's own image and category ids.

    Returns:
        ``{"AP": ..., "AP50": ..., ..., "ARl": ...}`` in :data:`STAT_NAMES` order.
    """
    if not len(gt.coco.dataset["annotations"]):
        return {k: math.nan for k in STAT_NAMES}
    stats = np.asarray(coco_eval(gt, dets).stats, dtype=np.float64)
    return {k: (float(v) if v > -1 else math.nan) for k, v in zip(STAT_NAMES, stats)}
