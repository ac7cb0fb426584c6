"""One unit per kind of number in the report: COCO AP/AR and TIDE dAP in %, the rest as measured.

The evaluate stage writes every number as pycocotools/tidecv fractions; the report's tables and files
show AP-like numbers (COCO AP and AR of every size and threshold, NMS-free AP, TIDE AP50 and dAP) x100,
and say so in a ``units`` field.

Examples:
    >>> is_percent("AR10"), is_percent("nms_free_AP75"), is_percent("tide_dAP_cls"), is_percent("tide_n_cls")
    (True, True, True, False)
    >>> to_report_unit("ARs", 0.123), unit_of("ece"), unit_of("kendall_tau")
    (12.3, 'fraction', 'correlation')
"""

from __future__ import annotations

import re

_PERCENT = re.compile(r"(^|_)d?A[PR](\d+|[sml])?(_|$)")  # AP, AP50, APs, AR100, ARl, nms_free_AP75, tide_dAP_cls
_UNITS = {
    "fraction": ("ece", "mce", "dece", "top1_miss_rate"),
    "IoU": ("top1_iou_gap",),
    "correlation": ("kendall_tau", "spearman_rho"),
    "count": ("rank_gts", "rank_cands_per_gt", "n_seeds"),
}
_COUNT_PREFIXES = ("num_", "tide_n_")


def is_percent(key: str) -> bool:
    """True for COCO AP/AR, NMS-free AP and TIDE AP/dAP keys (shown in %)."""
    return bool(_PERCENT.search(key))


def unit_of(key: str) -> str:
    """``percent``, ``fraction``, ``IoU``, ``correlation``, ``count``, or ``as evaluated`` (unchanged, unknown)."""
    if is_percent(key):
        return "percent"
    for unit, keys in _UNITS.items():
        if key in keys:
            return unit
    return "count" if key.startswith(_COUNT_PREFIXES) else "as evaluated"


def to_report_unit(key: str, value):
    """``value`` x100 for a percent key (floats and ints; None/strings unchanged)."""
    if is_percent(key) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(100.0 * value, 10)
    return value


def units_field(keys) -> dict[str, list[str]]:
    """``{unit: [keys]}`` of ``keys`` (the ``units`` entry of the report's JSON files)."""
    out: dict[str, list[str]] = {}
    for k in sorted(set(keys)):
        out.setdefault(unit_of(k), []).append(k)
    return out
