"""NMS-free heads: YOLOv10's one-to-one branch for any registered head, its inference mode and top-k decoding.

Ultralytics' ``Detect`` already knows the dual head (``Detect(end2end=True)``: ``one2one_cv2``/``one2one_cv3``,
deep copies of the one-to-many branches; in training the one-to-one branch runs on detached inputs, so its
loss trains only itself; ``head.end2end = True`` selects it for inference, decoded by top-k without NMS;
``fuse()`` drops the branch not selected). A YOLOv8 YAML builds the head without it, so
:func:`add_one2one` adds the copies to a built head: the modules named by the head's ``one2one_names``
(``cv2``, ``cv3`` for the stock head; the CSD head adds its kernel ``router``), copied after initialisation,
so the one-to-one branch starts equal to the one-to-many one, as in ``Detect(end2end=True)``.

:func:`decode_one2one` turns the one-to-one branch's raw outputs into final detections (top-k by score,
ultralytics' own ``postprocess``), without ever calling NMS.

Examples:
    >>> from alignrank.nn.model import build_model
    >>> m = build_model("baseline_e2e", scale="n", nc=3)
    >>> has_one2one(m), sorted(n for n, _ in m.model[-1].named_children() if n.startswith("one2one_"))
    (True, ['one2one_cv2', 'one2one_cv3'])
    >>> _ = m.eval()
    >>> y, raw = m(torch.zeros(1, 3, 64, 64))
    >>> sorted(raw), tuple(decode_one2one(m.model[-1], raw["one2one"], max_det=10).shape)
    (['one2many', 'one2one'], (1, 10, 6))
"""

from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import torch
from torch import nn

ONE2ONE_PREFIX = "one2one_"
DEFAULT_ONE2ONE_NAMES = ("cv2", "cv3")  # the stock Detect's one-to-many branches


def head_of(model: nn.Module) -> nn.Module:
    """The detection head (``model.model[-1]``) of a detection model, or ``model`` itself when it is a head."""
    inner = getattr(model, "model", None)
    return inner[-1] if isinstance(inner, nn.Sequential) else model


def has_one2one(model: nn.Module) -> bool:
    """Whether the model (or head) has a one-to-one branch, i.e. is NMS-free capable."""
    return getattr(head_of(model), ONE2ONE_PREFIX + "cv2", None) is not None


def add_one2one(head: nn.Module) -> nn.Module:
    """Add, in place, YOLOv10's one-to-one branch: a deep copy of each module in ``head.one2one_names``.

    Args:
        head: A built and initialised ``Detect`` (or subclass) without a one-to-one branch.

    Returns:
        ``head``, with ``one2one_<name>`` beside every ``<name>``.
    """
    if has_one2one(head):
        raise ValueError(f"{type(head).__name__} already has a one-to-one branch")
    for name in getattr(head, "one2one_names", DEFAULT_ONE2ONE_NAMES):
        setattr(head, ONE2ONE_PREFIX + name, copy.deepcopy(getattr(head, name)))
    return head


@contextlib.contextmanager
def one2one_mode(head: nn.Module, max_det: int | None = None) -> Iterator[nn.Module]:
    """Select the one-to-one branch for inference (``head.end2end = True``) and ``max_det`` for the block.

    The head's previous selection and ``max_det`` are restored afterwards.
    """
    if not has_one2one(head):
        raise ValueError(f"{type(head).__name__} has no one-to-one branch (not an NMS-free model)")
    had_end2end, had_max_det = "_end2end" in vars(head), "max_det" in vars(head)
    old_end2end, old_max_det = vars(head).get("_end2end"), vars(head).get("max_det")
    head.end2end = True
    if max_det is not None:
        head.max_det = max_det
    try:
        yield head
    finally:
        for name, had, old in (("_end2end", had_end2end, old_end2end), ("max_det", had_max_det, old_max_det)):
            if had:
                setattr(head, name, old)
            elif name in vars(head):
                delattr(head, name)


def decode_one2one(head: nn.Module, raw: dict[str, torch.Tensor], max_det: int) -> torch.Tensor:
    """Final detections of the one-to-one branch: top-``max_det`` (anchor, class) pairs by score, no NMS.

    Args:
        head: The NMS-free head that produced ``raw``.
        raw: The one-to-one branch's raw outputs (``boxes`` (B, 4*reg_max, A), ``scores`` (B, nc, A), ``feats``).
        max_det: Detections kept per image.

    Returns:
        (B, min(max_det, A), 6): ``x1, y1, x2, y2`` (input pixels), score, class index, sorted by score.
    """
    with one2one_mode(head, max_det):
        y = head._inference(raw)  # (B, 4 + nc, A): xyxy boxes (end2end decoding), sigmoid scores
        return head.postprocess(y.permute(0, 2, 1))  # (B, A, 4 + nc) -> (B, k, 6)
