"""What a run's builders READ from the ``model`` and ``loss`` params: recorded, never declared by hand.

A run key must change exactly when something the run depends on changes. Rather than a hand-kept table
of which head/loss reads which key (which drifts from the code), :func:`recorded_reads` builds the run's
model and criterion the way the trainer does (:func:`~alignrank.engine.trainer.ultralytics_overrides`,
:class:`~alignrank.nn.model.AlignRankModel`, ``init_criterion``) at a tiny size, with the two sections
wrapped in :class:`ReadRecorder`, then runs one training step's loss (forward + backward on a fixed batch
with ground truth, so the assigner and every loss term run) and an inference forward of the fused model.
Every field touched on the way is recorded, including reads that depend on other values (with
``loss.lambda_list = 0`` the list term, hence ``loss.temperature``, is not read: changing it cannot
change the run).

Examples:
    >>> from alignrank.config import load_params
    >>> m, l = recorded_reads(load_params(None, {"train.variant": "baseline"}))
    >>> "csd_points" in m, {"assigner", "iou_loss", "box"} <= l, "lambda_rank" in l
    (False, True, False)
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import tempfile
from pathlib import Path
from typing import Any

from alignrank.config.schema import LossParams, ModelParams, Params, TrainParams

IMGSZ = 64  # side of the fixed batch: every level has anchors inside the boxes below
NC = 2


class ReadRecorder:
    """A read-only view of a frozen params section that records the names of the fields read.

    Args:
        section: A frozen params dataclass (``ModelParams``, ``LossParams``).
        reads: The set the names are added to.

    Examples:
        >>> seen = set()
        >>> r = ReadRecorder(ModelParams(), seen)
        >>> r.scale, sorted(seen)
        ('n', ['scale'])
    """

    __slots__ = ("_section", "_fields", "_reads")

    def __init__(self, section: Any, reads: set[str]) -> None:
        object.__setattr__(self, "_section", section)
        object.__setattr__(self, "_fields", {f.name for f in dataclasses.fields(section)})
        object.__setattr__(self, "_reads", reads)

    def __getattr__(self, name: str) -> Any:  # only called for names that are not slots
        value = getattr(self._section, name)  # (``__dataclass_fields__`` too: asdict/fields read everything)
        if name in self._fields:
            self._reads.add(name)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field '{name}'")

    def __deepcopy__(self, memo: dict) -> ReadRecorder:  # a copied model (fuse, EMA) still records
        return self

    def __reduce__(self):  # a pickled model carries the plain section
        return (copy.copy, (self._section,))


def _batch() -> dict:
    """A fixed 2-image batch with 3 ground-truth boxes (normalised xywh) of two classes."""
    import torch

    g = torch.Generator().manual_seed(0)
    return {
        "img": torch.rand(2, 3, IMGSZ, IMGSZ, generator=g),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0], [1.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.6, 0.5], [0.3, 0.35, 0.4, 0.45], [0.6, 0.55, 0.55, 0.7]]),
    }


def _plain(section: Any) -> Any:
    return section._section if isinstance(section, ReadRecorder) else section


@functools.lru_cache(maxsize=8)
def _template(variant: str, model: ModelParams) -> tuple[Any, frozenset, set]:
    """The freshly initialised model (seed 0) of ``variant`` with ``model`` settings, built once.

    Returns:
        ``(model, fields read while building, set that later reads of the model's own recorder reach)``.
    """
    import torch

    from alignrank.engine.quiet import quiet_ultralytics
    from alignrank.nn.model import AlignRankModel

    reads: set[str] = set()
    rec = ReadRecorder(model, reads)
    torch.manual_seed(0)
    with quiet_ultralytics():  # building logs "Overriding model.yaml nc=..." on stdout
        built = AlignRankModel(f"yolov8{rec.scale}.yaml", nc=NC, verbose=False, variant=variant, model_params=rec)
    return built, frozenset(reads), reads


def exercise(params: Params) -> dict[str, Any]:
    """Build the run's model and criterion as the trainer does and run one loss step and one inference.

    The model is built once per (variant, ``model`` section) and copied (its initialisation is seeded), so
    exercising several ``loss`` settings costs one build.

    Returns:
        ``{"loss": (n_terms,) loss items, "grad": sum of |grad|, "pred": inference output}`` (for tests
        that prove an unread field changes nothing); the reads go to the sections' recorders.
    """
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.utils import DEFAULT_CFG

    from alignrank.engine.trainer import ultralytics_overrides

    with tempfile.TemporaryDirectory() as d:
        ov = ultralytics_overrides(params, data=Path(d) / "dataset.yaml", save_dir=Path(d) / "run")
    template, build_reads, later_reads = _template(params.train.variant, _plain(params.model))
    model = copy.deepcopy(template)
    model.model_params, model.loss_params, model.criterion = params.model, params.loss, None
    model.args = get_cfg(DEFAULT_CFG, {k: ov[k] for k in ("box", "cls", "dfl")})  # as the trainer sets them
    model.train()
    batch = _batch()
    loss, _ = model.loss(batch)  # (n_terms,) gain-scaled terms x batch size
    loss.sum().backward()
    grad = sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None)
    fused = copy.deepcopy(model).eval().fuse(verbose=False)  # the validator's path
    with torch.no_grad():
        pred = fused(batch["img"])
    pred = pred[0] if isinstance(pred, (list, tuple)) else pred
    if isinstance(params.model, ReadRecorder):  # what building read, and what the model's layers read since
        params.model._reads.update(build_reads | later_reads)
    return {"loss": loss.detach().clone(), "grad": grad, "pred": pred}


@functools.lru_cache(maxsize=64)
def _reads(variant: str, model: ModelParams, loss: LossParams) -> tuple[frozenset, frozenset]:
    model_reads: set[str] = set()
    loss_reads: set[str] = set()
    params = Params(model=ReadRecorder(model, model_reads), loss=ReadRecorder(loss, loss_reads),
                    train=TrainParams(variant=variant))  # (the train section is keyed whole, not recorded)
    exercise(params)
    return frozenset(model_reads), frozenset(loss_reads)


def recorded_reads(params: Params) -> tuple[frozenset[str], frozenset[str]]:
    """``(model fields read, loss fields read)`` by the run of ``params`` (cached per distinct sections).

    Args:
        params: Resolved params; ``train.variant`` picks the head and loss.
    """
    return _reads(params.train.variant, params.model, params.loss)
