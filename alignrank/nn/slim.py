"""The slim class branch: the middle dense 3x3 conv of each class branch becomes depthwise 3x3 + 1x1.

This is ultralytics' own non-legacy class branch, applied to the YOLOv8 (legacy) head. ``csd`` uses it only
with ``model.csd_light_cls``; the ``baseline_slim`` variant (head ``detect_slim``) is the stock head with
the same change, so a comparison with a slim-branch ``csd`` is never confounded by the branch.

Examples:
    >>> from alignrank.nn.model import build_model
    >>> head = build_model("baseline_slim", scale="n", nc=3).model[-1]
    >>> type(head.cv3[0][1][0]).__name__, head.cv3[0][1][1].conv.kernel_size
    ('DWConv', (1, 1))
"""

from __future__ import annotations

from torch import nn
from ultralytics.nn.modules import Conv, DWConv

from alignrank.nn.registry import register_head


def slim_class_branch(cls_branches: nn.ModuleList) -> int:
    """Replace, in place, each branch's middle dense 3x3 ``Conv`` by ``DWConv 3x3 + Conv 1x1``; returns how many."""
    n = 0
    for branch in cls_branches:
        mid = branch[1]
        if isinstance(mid, Conv) and mid.conv.kernel_size == (3, 3) and mid.conv.groups == 1:
            c3 = mid.conv.out_channels
            branch[1] = nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1))
            n += 1
    return n


@register_head("detect_slim")
def build_detect_slim(detect: nn.Module, params=None) -> nn.Module:
    """Stock YOLOv8 ``Detect`` with the slim class branch (the control of ``csd`` with ``model.csd_light_cls``)."""
    slim_class_branch(detect.cv3)
    return detect
