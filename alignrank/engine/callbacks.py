"""Per-epoch hook on ``AlignRankTrainer``: metrics to the tracker, the ``report`` callback, status file, progress line.

Registered on ultralytics' ``on_fit_epoch_end``, which fires after each epoch's validation and checkpoint
save, and once more after training for the final validation of ``best.pt`` (``trainer.epoch == epochs``),
which this hook keeps as the run's final metrics instead of logging it as an epoch.

Examples:
    >>> from alignrank.tracking import NullTracker
    >>> cb = EpochLogger(NullTracker(), epochs=3)
    >>> cb.final is None
    True
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Callable, Optional, TextIO

from alignrank.engine import faults
from alignrank.tracking.base import Tracker
from alignrank.tracking.names import aliases, finite, sanitize_metrics

ReportFn = Callable[[int, dict], None]
PROGRESS_KEYS = ("val/map50", "val/map50_95")  # shown after every train/* loss (names depend on the loss)


def epoch_metrics(trainer) -> dict[str, float]:
    """Sanitized metrics of the epoch that just ended: val metrics/losses (when it was validated: see
    ``train.val_period``), train losses by name, lr, epoch time."""
    validated = bool(getattr(getattr(trainer, "args", None), "val", True)) or trainer.epoch + 1 >= trainer.epochs
    m = sanitize_metrics(trainer.metrics) if validated else {}
    if trainer.tloss is not None:
        m.update(sanitize_metrics(trainer.label_loss_items(trainer.tloss, prefix="train")))
    m.update(sanitize_metrics(getattr(trainer, "lr", None)))
    if getattr(trainer, "epoch_time", None):
        m["time/epoch_s"] = float(trainer.epoch_time)
    return m


def criterion_hparams(trainer) -> dict[str, float]:
    """Numeric settings of the LIVE criterion as ``hp/loss.<name>`` (Ray Tune checks what the loss really used).

    Gains come from the criterion's ``hyp`` (box, cls, dfl), the rest from its ``params`` (``LossParams``).
    """
    import dataclasses

    model = getattr(trainer, "model", None)
    crit = getattr(getattr(model, "module", model), "criterion", None)  # DDP-wrapped or not
    out: dict[str, float] = {}
    p = getattr(crit, "params", None)
    if dataclasses.is_dataclass(p):
        for f in dataclasses.fields(p):
            v = getattr(p, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"hp/loss.{f.name}"] = float(v)
    for k in ("box", "cls", "dfl"):
        v = getattr(getattr(crit, "hyp", None), k, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"hp/loss.{k}"] = float(v)
    return out


class EpochLogger:
    """The ``on_fit_epoch_end`` callback.

    Args:
        tracker: Where per-epoch metrics go (step = 1-based epoch).
        epochs: Total epochs (for progress text).
        report: Optional ``report(epoch, metrics)`` (Ray Tune); ``metrics`` has the short aliases (``map50_95``).
        run_dir: Run folder for the fault hooks (None: none).
        status: Optional ``status(**fields)`` merging the live state into the run folder's ``status.json``.
        stream: Where to print one progress line per epoch (None: silent).
    """

    def __init__(self, tracker: Tracker, *, epochs: int, report: Optional[ReportFn] = None,
                 run_dir: Optional[Path] = None, status: Optional[Callable[..., None]] = None,
                 stream: Optional[TextIO] = None) -> None:
        self.tracker, self.epochs, self.report = tracker, epochs, report
        self.run_dir, self.status = (Path(run_dir) if run_dir else None), status
        self.stream = stream
        self.final: Optional[dict] = None  # final validation of best.pt (aliased names)
        self.last: Optional[dict] = None  # latest epoch's metrics (aliased names)
        self.best_epoch: Optional[int] = None
        self._best_fitness = None
        self._t0 = time.time()

    def __call__(self, trainer) -> None:
        if trainer.epoch >= trainer.epochs:  # ultralytics' final validation of best.pt
            self.final = aliases(sanitize_metrics(trainer.metrics))
            return
        epoch = trainer.epoch + 1
        m = epoch_metrics(trainer)
        self.tracker.log_metrics(m, step=epoch)
        self.last = aliases(m)
        fit = trainer.fitness
        if fit is not None and (self._best_fitness is None or fit >= self._best_fitness):
            self._best_fitness, self.best_epoch = fit, epoch
        if self.status is not None:
            self.status(state="running", epoch=epoch, epochs=self.epochs, metrics=finite(self.last),
                                 host=socket.gethostname(), updated=time.time())
        if self.stream is not None:
            keys = [k for k in m if k.startswith("train/")] + [k for k in PROGRESS_KEYS if k in m]
            shown = " ".join(f"{k.split('/')[-1]}={m[k]:.4g}" for k in keys)
            print(f"epoch {epoch}/{self.epochs} {shown} ({time.time() - self._t0:.0f}s)", file=self.stream, flush=True)
        if self.report is not None:
            self.report(epoch, {**self.last, **criterion_hparams(trainer)})  # hp/*: report only, not logged
        if self.run_dir is not None:
            faults.inject(self.run_dir, epoch=epoch)

