"""``AlignRankTrainer``: ultralytics' ``DetectionTrainer`` that builds (and resumes) our model.

Always train and resume through this trainer: ultralytics' own ``YOLO(...).train()`` rebuilds a stock
``DetectionModel`` from the checkpoint's YAML and silently drops the CSD head and the RCQ loss.
Every checkpoint it writes is recorded by sha256 in the run folder's ``checkpoints.json``, and a checkpoint
next to such a record is checked against it before ultralytics unpickles it (:mod:`alignrank.engine.checkpoints`).
Our settings travel on :class:`alignrank.config.Params`, never as extra ``model.train(**kw)`` keys.

Examples:
    >>> from alignrank.config import load_params
    >>> p = load_params(None)
    >>> overrides = ultralytics_overrides(p, data="data/dataset.yaml", save_dir="outputs/x")
    >>> overrides["optimizer"], overrides["box"]
    ('AdamW', 7.5)
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from pathlib import Path
from typing import Any

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG

from alignrank.config.schema import Params
from alignrank.engine import checkpoints
from alignrank.engine.checkpoints import verify
from alignrank.errors import UsageError, write_error
from alignrank.locks import pid_alive
from alignrank.nn.model import AlignRankModel

RECIPE_KEYS = (  # train.* keys passed to ultralytics under the same name (its training recipe)
    "optimizer", "lr0", "lrf", "cos_lr", "momentum", "weight_decay", "warmup_epochs", "warmup_momentum",
    "warmup_bias_lr", "close_mosaic", "patience", "hsv_h", "hsv_s", "hsv_v", "degrees", "translate", "scale",
    "shear", "perspective", "flipud", "fliplr", "bgr", "mosaic", "mixup", "cutmix", "copy_paste", "copy_paste_mode",
    "multi_scale", "rect", "fraction", "cache",
)


def ultralytics_overrides(params: Params, *, data: str | Path, save_dir: str | Path, resume: str | Path | None = None) -> dict[str, Any]:
    """Map our params to ultralytics' training arguments (only keys ultralytics knows)."""
    t, lp = params.train, params.loss
    save_dir = Path(save_dir)
    return {
        "model": f"yolov8{params.model.scale}.yaml",
        "data": str(data),
        "epochs": t.epochs,
        "batch": t.batch,
        "nbs": t.nbs or t.batch,  # 0: one optimizer step per batch (ultralytics' nbs=64 would accumulate batches)
        "imgsz": t.imgsz,
        "device": t.device,
        "workers": t.workers,
        **{k: getattr(t, k) for k in RECIPE_KEYS},
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
        "val": t.val_period == 1,  # other periods: toggled per epoch by AlignRankTrainer (the last epoch always)
        "verbose": False,
        "resume": str(resume) if resume else False,
    }


def _check_compatible(weights: AlignRankModel, params: Params) -> None:
    """Refuse a checkpoint whose head or head settings differ from ``params`` (ultralytics' ``load``
    would silently copy only the shape-matching tensors and leave the rest freshly initialised)."""
    from alignrank.nn.e2e import has_one2one
    from alignrank.variants import get_variant, is_end2end

    e2e_now, e2e_ckpt = is_end2end(params.train.variant, params.model), has_one2one(weights)
    if e2e_now != e2e_ckpt:
        kind = {True: "NMS-free (one-to-one branch)", False: "without a one-to-one branch"}
        raise UsageError(
            f"checkpoint was trained {kind[e2e_ckpt]} (variant '{weights.variant}') but train.variant="
            f"'{params.train.variant}' with model.end2end={params.model.end2end} is {kind[e2e_now]}; "
            "resume/fine-tune with the same form"
        )
    head_now, head_ckpt = get_variant(params.train.variant).head, get_variant(weights.variant).head
    if head_ckpt != head_now:
        raise UsageError(
            f"checkpoint was trained as variant '{weights.variant}' (head '{head_ckpt}') but train.variant="
            f"'{params.train.variant}' uses head '{head_now}'; resume/fine-tune with a variant of the same head"
        )
    if head_now != "detect" and _head_settings(weights.model_params) != _head_settings(params.model):
        diff = [k for k in vars(params.model) if k != "end2end"
                and getattr(weights.model_params, k, None) != getattr(params.model, k)]
        raise UsageError(
            f"checkpoint head settings differ from params (model.{', model.'.join(diff)}); "
            "resume/fine-tune with the settings it was trained with"
        )


def _head_settings(model_params) -> dict:
    """The ``model`` settings that shape a head's tensors; ``end2end`` is compared as the model's form (a
    ``*_e2e`` checkpoint may have been trained with ``model.end2end: false``)."""
    return {k: v for k, v in vars(model_params).items() if k != "end2end"}


def _temp_name(path: Path) -> Path:
    """A temp name beside ``path``, unique to this process and call (``.<name>.<pid>.<random>.tmp``)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _drop_stale_temps(folder: Path) -> None:
    """Remove checkpoint temp files left by killed processes of this host (their pid is gone)."""
    for t in folder.glob(".*.pt.*.tmp") if folder.is_dir() else []:
        pid = t.name.rsplit(".", 3)[-3]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            t.unlink(missing_ok=True)


def _rng_file(trainer: DetectionTrainer) -> Path:
    return Path(trainer.wdir) / "last_exact.pt"


def _exact_state(trainer: DetectionTrainer) -> bytes:
    """What an exact resume needs beside ``last.pt``, tagged with the epoch, serialized: the RNG states that drive
    the next epoch's augmentation (python/numpy/torch; the image order is reseeded per epoch by
    :func:`_reseed_epoch_order`) and the fp32 live model, EMA and optimizer. Ultralytics' own checkpoint resumes
    the live weights from the EMA, with an fp16 optimizer state and fresh RNGs, so without this a resumed run
    is not the uninterrupted one. Only tensors and plain Python values: it loads with ``weights_only=True``."""
    import random

    import numpy as np
    import torch
    from ultralytics.utils.torch_utils import unwrap_model

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"epoch": int(trainer.epoch), "python": random.getstate(),
             "numpy": [str(kind), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                       float(gauss)],
             "torch": torch.get_rng_state(),
             "model": unwrap_model(trainer.model).state_dict(), "ema": trainer.ema.ema.state_dict() if trainer.ema else None,
             "updates": trainer.ema.updates if trainer.ema else None, "optimizer": trainer.optimizer.state_dict()}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _reseed_epoch_order(trainer: DetectionTrainer) -> None:
    """At each epoch start, seed the train loader's shuffling generator from (seed, epoch) and restart its
    iterator: the epoch's image order then depends on nothing else, so a resumed run draws the same order
    as the uninterrupted one (ultralytics' persistent iterator makes it depend on the whole history)."""
    loader = getattr(trainer, "train_loader", None)
    gen = getattr(loader, "generator", None)
    if gen is None or not hasattr(loader, "reset"):
        return
    gen.manual_seed(int(trainer.args.seed) * 100_003 + int(trainer.epoch))
    loader.reset()


def _restore_rng_state(trainer: DetectionTrainer) -> None:
    """On resume, restore the exact state saved with the checkpoint's epoch (skipped if the epochs differ)."""
    import random

    import numpy as np
    import torch
    from ultralytics.utils.torch_utils import unwrap_model

    f = _rng_file(trainer)
    if not trainer.start_epoch or not f.is_file():
        return
    verify(f)  # a file of this run's record, never another
    state = torch.load(f, map_location="cpu", weights_only=True)  # tensors and plain values only
    if state.get("epoch") != trainer.start_epoch - 1:
        return
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    unwrap_model(trainer.model).load_state_dict(state["model"])
    if trainer.ema and state["ema"] is not None:
        trainer.ema.ema.load_state_dict(state["ema"])
        trainer.ema.updates = state["updates"]
    trainer.optimizer.load_state_dict(state["optimizer"])


def _validate_every(period: int):
    """``on_train_epoch_start`` callback: validate after every ``period``-th epoch (ultralytics: ``args.val``)."""

    def toggle(trainer: DetectionTrainer) -> None:
        trainer.args.val = (trainer.epoch + 1) % period == 0

    return toggle


class AlignRankTrainer(DetectionTrainer):
    """Detection trainer that builds :class:`AlignRankModel` from our params.

    Args:
        params: Resolved AlignRank params (variant, model, loss settings are read from here).
        overrides: Ultralytics training arguments (see :func:`ultralytics_overrides`).
        _callbacks: Ultralytics callbacks.
        cfg: Ultralytics' base configuration (a DDP worker passes its default dict with ``save_dir``).

    With ``train.device`` listing several GPUs (``0,1``), :meth:`train` launches DDP workers through
    :mod:`alignrank.engine.ddp`, which rebuild this trainer from the params (ultralytics' own DDP script cannot).
    """

    def __init__(self, params: Params, overrides: dict[str, Any] | None = None, _callbacks: dict | None = None,
                 *, cfg: Any = DEFAULT_CFG) -> None:
        self.run_params = params
        for key in ("resume", "model", "pretrained"):  # .pt files ultralytics unpickles while it sets up
            path = (overrides or {}).get(key)
            if isinstance(path, (str, Path)) and str(path).endswith(".pt") and Path(path).is_file():
                verify(Path(path), required=False)  # one beside a run's record must be a file that run wrote
        super().__init__(cfg, overrides, _callbacks)
        self.add_callback("on_train_start", _restore_rng_state)
        self.add_callback("on_train_epoch_start", _reseed_epoch_order)
        if params.train.val_period > 1:
            self.add_callback("on_train_epoch_start", _validate_every(params.train.val_period))

    def train(self) -> None:
        """Train in this process, or (several GPUs) through our DDP launcher (:func:`alignrank.engine.ddp.run_ddp`)."""
        if not self.ddp:
            return super().train()
        from ultralytics.utils import LOGGER
        from ultralytics.utils.torch_utils import unset_deterministic

        from alignrank.engine.ddp import run_ddp

        if self.args.rect:
            LOGGER.warning("'rect=True' is incompatible with multi-GPU training, setting 'rect=False'")
            self.args.rect = False
        try:
            run_ddp(self)
        finally:
            unset_deterministic()

    def get_model(self, cfg: str | dict | None = None, weights=None, verbose: bool = True) -> AlignRankModel:
        """Build our model for the configured variant and load ``weights`` into it (resume/fine-tune)."""
        p = self.run_params
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
        """Ultralytics' checkpoint save, made atomic and recorded: ``last.pt``/``best.pt`` (and the exact-resume
        ``last_exact.pt``) are written under unique temp names, their sha256 recorded in the run's
        ``checkpoints.json`` (:mod:`alignrank.engine.checkpoints`), then ``os.replace``d: a run killed mid-save
        (Ctrl-C, a cancelled Ray task) keeps its previous checkpoint and resumes from it, and any checkpoint on
        disk is one whose hash is recorded."""
        from alignrank.io import atomic_write_bytes, sha256_file

        final = (self.last, self.best)
        _drop_stale_temps(Path(self.wdir))
        tmp = tuple(_temp_name(p) for p in final)  # unique: two jobs in one folder never share a temp file
        self.last, self.best = tmp
        try:
            saved = super().save_model()
        except BaseException as e:  # full disk, Ctrl-C: drop the partial temp files, keep the previous checkpoints
            for t in tmp:
                t.unlink(missing_ok=True)
            err = write_error(final[0], e) if isinstance(e, OSError) else e
            if err is not e:
                raise err from e  # one line naming the checkpoint
            raise
        finally:
            self.last, self.best = final
        try:
            exact = _exact_state(self) if tmp[0].exists() else None
            entries = {p.name: {"sha256": sha256_file(t), "epoch": int(self.epoch)} for t, p in zip(tmp, final)
                       if t.exists()}
            if exact is not None:
                entries[_rng_file(self).name] = {"sha256": hashlib.sha256(exact).hexdigest(), "epoch": int(self.epoch)}
            checkpoints.record(Path(self.save_dir), entries)  # before the files take their names
            if exact is not None:  # before last.pt is replaced: a kill in between leaves an older, mismatched file
                atomic_write_bytes(_rng_file(self), exact)
            for t, p in zip(tmp, final):
                if t.exists():
                    os.replace(t, p)
        except BaseException as e:
            for t in tmp:
                t.unlink(missing_ok=True)
            err = write_error(final[0], e) if isinstance(e, OSError) else e
            if err is not e:
                raise err from e
            raise
        return saved

    def final_eval(self) -> None:
        """Ultralytics' final validation of ``best.pt``, which first strips the optimizer from ``last.pt`` and
        ``best.pt`` in place: the stripped files are recorded too (a kill between the strip and the record
        leaves a ``last.pt`` that is refused, not loaded)."""
        from alignrank.io import sha256_file

        super().final_eval()
        checkpoints.record(Path(self.save_dir), {f.name: {"sha256": sha256_file(f), "epoch": -1}
                                                 for f in (self.last, self.best) if f.exists()})
