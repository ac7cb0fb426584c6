"""``AlignRankTrainer``: ultralytics' ``DetectionTrainer`` that builds (and resumes) our model.

Always train and resume through this trainer: ultralytics' own ``YOLO(...).train()`` rebuilds a stock
``DetectionModel`` from the checkpoint's YAML and silently drops the CSD head and the RCQ loss.
Our settings travel on :class:`alignrank.config.Params`, never as extra ``model.train(**kw)`` keys.

Examples:
    >>> from alignrank.config import load_params
    >>> p = load_params(None)
    >>> overrides = ultralytics_overrides(p, data="data/dataset.yaml", save_dir="outputs/x")
    >>> overrides["optimizer"], overrides["box"]
    ('AdamW', 7.5)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG

from alignrank.config.schema import Params
from alignrank.errors import UsageError
from alignrank.nn.model import AlignRankModel


def ultralytics_overrides(params: Params, *, data: str | Path, save_dir: str | Path, resume: str | Path | None = None) -> dict[str, Any]:
    """Map our params to ultralytics' training arguments (only keys ultralytics knows)."""
    t, lp = params.train, params.loss
    save_dir = Path(save_dir)
    return {
        "model": f"yolov8{params.model.scale}.yaml",
        "data": str(data),
        "epochs": t.epochs,
        "batch": t.batch,
        "nbs": t.batch,  # one optimizer step per batch (ultralytics' nbs=64 would accumulate 4 small batches)
        "imgsz": t.imgsz,
        "device": t.device,
        "workers": t.workers,
        "optimizer": t.optimizer,
        "lr0": t.lr0,
        "warmup_epochs": t.warmup_epochs,
        "mosaic": t.mosaic,
        "close_mosaic": 0,
        "amp": bool(t.amp) and not t.device.startswith("cpu"),
        "deterministic": t.deterministic,
        "seed": t.seed,
        "box": lp.box,
        "cls": lp.cls,
        "dfl": lp.dfl,
        "project": str(save_dir.parent.resolve()),
        "name": save_dir.name,
        "exist_ok": True,
        "pretrained": False,
        "plots": False,
        "save_period": t.save_period,
        "val": True,
        "verbose": False,
        "patience": 0,
        "cache": False,
        "resume": str(resume) if resume else False,
    }


def _check_compatible(weights: AlignRankModel, params: Params) -> None:
    """Refuse a checkpoint whose head or head settings differ from ``params`` (ultralytics' ``load``
    would silently copy only the shape-matching tensors and leave the rest freshly initialised)."""
    from alignrank.variants import get_variant

    head_now, head_ckpt = get_variant(params.train.variant).head, get_variant(weights.variant).head
    if head_ckpt != head_now:
        raise UsageError(
            f"checkpoint was trained as variant '{weights.variant}' (head '{head_ckpt}') but train.variant="
            f"'{params.train.variant}' uses head '{head_now}'; resume/fine-tune with a variant of the same head"
        )
    if head_now != "detect" and weights.model_params != params.model:
        diff = [k for k in vars(params.model) if getattr(weights.model_params, k, None) != getattr(params.model, k)]
        raise UsageError(
            f"checkpoint head settings differ from params (model.{', model.'.join(diff)}); "
            "resume/fine-tune with the settings it was trained with"
        )


class AlignRankTrainer(DetectionTrainer):
    """Detection trainer that builds :class:`AlignRankModel` from our params.

    Args:
        params: Resolved AlignRank params (variant, model, loss settings are read from here).
        overrides: Ultralytics training arguments (see :func:`ultralytics_overrides`).
        _callbacks: Ultralytics callbacks.
    """

    def __init__(self, params: Params, overrides: dict[str, Any] | None = None, _callbacks: dict | None = None) -> None:
        self.ar_params = params
        super().__init__(DEFAULT_CFG, overrides, _callbacks)

    def get_model(self, cfg: str | dict | None = None, weights=None, verbose: bool = True) -> AlignRankModel:
        """Build our model for the configured variant and load ``weights`` into it (resume/fine-tune)."""
        p = self.ar_params
        if isinstance(weights, AlignRankModel):
            _check_compatible(weights, p)
        model = AlignRankModel(
            cfg if isinstance(cfg, dict) else f"yolov8{p.model.scale}.yaml",
            nc=self.data["nc"],
            ch=self.data.get("channels", 3),
            verbose=False,
            variant=p.train.variant,
            model_params=p.model,
            loss_params=p.loss,
        )
        model = self.set_model_names_for_load(model) if hasattr(self, "set_model_names_for_load") else model
        if weights is not None:
            model.load(weights, verbose=False)
        return model

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        """Ultralytics' dataset, plus a warning and ``data_report.json`` naming the images it dropped as corrupt."""
        from alignrank.engine.data_report import report_skipped

        dataset = super().build_dataset(img_path, mode=mode, batch=batch)
        report_skipped(dataset, mode, self.save_dir)
        return dataset

    def save_model(self) -> bool:
        """Ultralytics' checkpoint save, made atomic: ``last.pt``/``best.pt`` are written under temp names and
        then ``os.replace``d, so a run killed mid-save (Ctrl-C, a cancelled Ray task) keeps its previous
        checkpoint and resumes from it instead of restarting."""
        final = (self.last, self.best)
        tmp = tuple(p.with_name(f".{p.name}.tmp") for p in final)
        for t in tmp:
            t.unlink(missing_ok=True)
        self.last, self.best = tmp
        try:
            saved = super().save_model()
        finally:
            self.last, self.best = final
        for t, p in zip(tmp, final):
            if t.exists():
                os.replace(t, p)
        return saved
