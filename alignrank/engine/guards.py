"""``FiniteLossGuard``: stop a run the moment its training loss turns NaN/inf, keeping the last good checkpoint.

Ultralytics 8.4 only looks for NaN at the END of an epoch (``BaseTrainer._handle_nan_recovery``); on the
first epoch of a (resumed) run it warns and trains on, and its checkpoint save replaces NaN by 0 with
``nan_to_num_``, so garbage weights could be saved as a valid-looking ``last.pt``. This guard runs after
every batch (``on_train_batch_end``, before any save of the epoch) and raises
:class:`~alignrank.errors.RunFailed` with one line naming the run, epoch, batch and the loss items; the
``last.pt`` on disk is the one of the last completed epoch (finite), and the run is reported as failed
(the sweep retries it at most ``sweep.max_retries`` times, then reports it).

Examples:
    >>> from types import SimpleNamespace
    >>> import torch
    >>> g = FiniteLossGuard(run_name="baseline-s0-abc")
    >>> g(SimpleNamespace(loss=torch.tensor(1.0), epoch=0, loss_items={}))   # finite: nothing happens
"""

from __future__ import annotations

from typing import Optional

from alignrank.errors import RunFailed


def _is_finite(x) -> bool:
    import torch

    if x is None:
        return True
    if isinstance(x, torch.Tensor):
        return bool(torch.isfinite(x.detach()).all())
    try:
        import math

        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return True


class FiniteLossGuard:
    """The ``on_train_batch_end`` callback that refuses a non-finite loss.

    Args:
        run_name: Shown in the error (the run folder name).
        last: Path of the run's ``last.pt`` (named in the error as the checkpoint kept).
    """

    def __init__(self, *, run_name: str = "run", last: Optional[object] = None) -> None:
        self.run_name, self.last = run_name, last
        self.batch = 0
        self._epoch = None

    def __call__(self, trainer) -> None:
        epoch = int(getattr(trainer, "epoch", 0)) + 1
        self.batch = self.batch + 1 if epoch == self._epoch else 1
        self._epoch = epoch
        loss = getattr(trainer, "loss", None)
        items = getattr(trainer, "loss_items", None) or {}
        bad = [k for k, v in (items.items() if isinstance(items, dict) else []) if not _is_finite(v)]
        if _is_finite(loss) and not bad:
            return
        kept = f"last good checkpoint kept: {self.last}" if self.last else "no checkpoint written"
        raise RunFailed(
            f"{self.run_name}: training loss became NaN/inf at epoch {epoch}, batch {self.batch}"
            f"{' (' + ', '.join(map(str, bad)) + ')' if bad else ''}; run stopped, {kept}; "
            f"lower train.lr0 or check the data, then re-run"
        )
