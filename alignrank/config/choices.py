"""Catalogues of the names params may choose from, known without importing torch.

``loss.assigner`` and ``loss.iou_loss`` are validated against these catalogues. The registries of the
implementations (:data:`alignrank.loss.assigners.ASSIGNERS`, :data:`alignrank.loss.iou.IOU_LOSSES`) are
bound to them: a name registered there is listed here too, so a plugin's entry is accepted once its
module is imported. The built-in names are declared here so that validating params never imports torch;
a test checks that every declared name has an implementation and every implementation a name.

Examples:
    >>> list(ASSIGNER_NAMES)
    ['tal', 'simota', 'atss']
    >>> ASSIGNER_NAMES["simota"]
    'SimOTA (YOLOX): dynamic top-k by cost'
"""

from __future__ import annotations

from alignrank.registry import Registry

ASSIGNER_NAMES = Registry("loss.assigner")  # name -> one-line description
ASSIGNER_NAMES.add("tal", "task-aligned assigner (YOLOv8's)")
ASSIGNER_NAMES.add("simota", "SimOTA (YOLOX): dynamic top-k by cost")
ASSIGNER_NAMES.add("atss", "ATSS: adaptive IoU threshold over the closest anchors")

IOU_LOSS_NAMES = Registry("loss.iou_loss")  # name -> one-line description
IOU_LOSS_NAMES.add("ciou", "complete IoU (YOLOv8's)")
IOU_LOSS_NAMES.add("diou", "distance IoU")
IOU_LOSS_NAMES.add("siou", "SCYLLA IoU (angle, distance and shape costs)")
