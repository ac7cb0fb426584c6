"""Fault-injection hooks for the reliability drills (tests only; inert unless ``ALIGNRANK_FAULT`` is set).

``ALIGNRANK_FAULT`` holds comma-separated specs matched against the run folder name prefix:

* ``kill:<run-prefix>:<epoch>`` - after epoch ``<epoch>`` is saved, SIGKILL the worker process, on the
  run's first attempt only (a marker file in the run folder remembers it): a dying worker;
* ``raise:<run-prefix>`` - raise at the start of every attempt: a run that fails for good;
* ``hold:<run-prefix>:<epoch>`` - after epoch ``<epoch>`` is saved, sleep (up to 10 min) on the first
  attempt only: a long run to interrupt (Ctrl-C drills).
* ``nan:<run-prefix>:<epoch>`` - at the start of (1-based) epoch ``<epoch>``, on every attempt, fill the
  first weight of the model with NaN: a diverging run (the loss turns NaN on the next batch).

Examples:
    >>> parse("kill:baseline-s0:1,raise:csd")
    [('kill', 'baseline-s0', 1), ('raise', 'csd', None)]
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "ALIGNRANK_FAULT"


def parse(text: str) -> list[tuple[str, str, int | None]]:
    """``[(action, run_prefix, epoch|None), ...]`` from a spec string."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        parts = item.split(":")
        out.append((parts[0], parts[1] if len(parts) > 1 else "", int(parts[2]) if len(parts) > 2 else None))
    return out


def inject(run_dir: Path, *, epoch: int | None = None) -> None:
    """Apply the matching ``ALIGNRANK_FAULT`` specs at this point (start: ``epoch=None``; after an epoch)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    for action, prefix, at in parse(spec):
        if not Path(run_dir).name.startswith(prefix):
            continue
        if action == "raise" and epoch is None:
            raise RuntimeError(f"injected failure ({ENV}={spec})")
        if action in ("kill", "hold") and epoch is not None and epoch == at:
            marker = Path(run_dir) / f".fault-{action}-{epoch}"
            if marker.exists():
                continue
            marker.touch()
            if action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(600)


def nan_hook(run_dir: Path):
    """``on_train_epoch_start`` callback applying the ``nan:<run-prefix>:<epoch>`` specs to the live model."""

    def hook(trainer) -> None:
        spec = os.environ.get(ENV)
        if not spec:
            return
        for action, prefix, at in parse(spec):
            if action == "nan" and Path(run_dir).name.startswith(prefix) and trainer.epoch + 1 == at:
                import torch

                with torch.no_grad():
                    next(trainer.model.parameters()).fill_(float("nan"))

    return hook
