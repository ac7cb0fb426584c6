"""Multi-GPU runs (``train.device: 0,1``): our own DDP launcher and worker, instead of ultralytics'.

Ultralytics starts DDP workers from a script that rebuilds the trainer as ``Trainer(cfg=, overrides=,
_callbacks=)`` from a cloudpickle file (:func:`ultralytics.utils.dist.generate_ddp_file`; it may try to
install cloudpickle), and deletes the run folder first unless resuming. :class:`AlignRankTrainer` needs its
params (variant, head and loss settings), so :meth:`AlignRankTrainer.train` launches this module instead:

* :func:`write_worker` writes ``<run>/ddp/worker.json`` (the params as a plain dict, ultralytics' resolved
  arguments, the callbacks that pickle with the standard library, base64) and ``worker.py``, which calls
  :func:`worker_main`; the launcher runs ``python -m torch.distributed.run --nproc_per_node N worker.py``;
* each worker rebuilds the trainer with :func:`rebuild_trainer` (validated params, the same overrides): the
  same model and criterion as a single-process run; nothing is installed or downloaded;
* our ``on_fit_epoch_end`` callbacks (the per-epoch tracker, progress and status writer, a Ray Tune reporter)
  stay in the launcher: worker rank 0 appends each ``on_fit_epoch_end`` (epoch, metrics, losses, lr,
  fitness) to ``<run>/ddp/epochs.jsonl`` and the launcher replays every record to them while the workers
  train (:func:`relay_epochs`), so MLflow, ``status.json`` and the final metrics are as in a one-GPU run;
  other callbacks run in the workers when they pickle (a closure that does not is not run there).

Examples:
    >>> RelayedTrainer({"epoch": 0, "epochs": 2, "metrics": {"metrics/mAP50(B)": 0.5}, "tloss": {"train/box_loss": 1.0},
    ...                 "lr": {}, "epoch_time": 3.0, "fitness": 0.5, "val": True}).label_loss_items(None, "train")
    {'train/box_loss': 1.0}
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from alignrank.io import atomic_write_json, atomic_write_text

RELAY_NAME = "epochs.jsonl"
POLL_S = 2.0
DRY_ENV = "ALIGNRANK_DDP_DRY"  # tests: the worker rebuilds the trainer, writes what it built and exits


def _plain(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _portable_callbacks(callbacks: dict[str, list]) -> tuple[dict[str, list[str]], dict[str, list]]:
    """Split callbacks into those shipped to the workers (base64 pickles) and those kept here: ``on_fit_epoch_end``
    callbacks of ours (the tracker, status, progress, Ray Tune report) always stay and get rank 0's relayed
    epochs; any other callback is shipped if it pickles with the standard library."""
    shipped: dict[str, list[str]] = {}
    kept: dict[str, list] = {}
    for event, fns in callbacks.items():
        for fn in fns:
            module = getattr(fn, "__module__", None) or type(fn).__module__
            if module == "alignrank.engine.trainer":
                continue  # AlignRankTrainer adds these itself
            if event == "on_fit_epoch_end" and not module.startswith("ultralytics"):
                kept.setdefault(event, []).append(fn)
                continue
            try:
                shipped.setdefault(event, []).append(base64.b64encode(pickle.dumps(fn)).decode())
            except (pickle.PicklingError, TypeError, AttributeError):
                kept.setdefault(event, []).append(fn)
    return shipped, kept


def worker_spec(trainer) -> tuple[dict, dict[str, list]]:
    """``(spec, callbacks kept in the launcher)``: what a worker needs to rebuild ``trainer``."""
    from alignrank.config import params_dict

    args = {k: v for k, v in vars(trainer.args).items() if _plain(v)}
    shipped, kept = _portable_callbacks(trainer.callbacks)
    relay = Path(trainer.save_dir) / "ddp" / RELAY_NAME
    return {"params": params_dict(trainer.run_params), "overrides": args, "callbacks": shipped,
            "relay": str(relay), "sys_path": list(sys.path)}, kept


def write_worker(trainer, folder: Path) -> tuple[Path, dict[str, list]]:
    """Write ``worker.json`` and ``worker.py`` into ``folder``; returns the script and the callbacks kept here."""
    spec, kept = worker_spec(trainer)
    atomic_write_json(folder / "worker.json", spec)
    script = folder / "worker.py"
    atomic_write_text(script, (
        "# AlignRank DDP worker (written by alignrank.engine.ddp; safe to delete)\n"
        "import json, sys\n"
        "if __name__ == '__main__':\n"
        f"    spec = json.loads(open({str(folder / 'worker.json')!r}).read())\n"
        "    sys.path = spec['sys_path']\n"
        "    from alignrank.engine.ddp import worker_main\n"
        f"    from {type(trainer).__module__} import {type(trainer).__name__} as trainer_cls\n"
        "    worker_main(spec, trainer_cls)\n"
    ))
    return script, kept


def rebuild_trainer(spec: dict, trainer_cls: type):
    """The worker's :class:`~alignrank.engine.trainer.AlignRankTrainer`: validated params, the launcher's arguments
    (``save_dir`` as ultralytics' own DDP script passes it) and the shipped callbacks."""
    from ultralytics.utils import DEFAULT_CFG_DICT

    from alignrank.config.load import build_params

    params = build_params(spec["params"])
    callbacks: dict[str, list] = {}
    from ultralytics.utils import callbacks as ucb

    defaults = ucb.get_default_callbacks()
    for event in defaults:
        callbacks[event] = [pickle.loads(base64.b64decode(s)) for s in spec["callbacks"].get(event, [])]
    cfg = {**DEFAULT_CFG_DICT, "save_dir": ""}
    overrides = {k: v for k, v in spec["overrides"].items() if k != "save_dir"}
    trainer = trainer_cls(params, {**overrides, "save_dir": spec["overrides"].get("save_dir")}, callbacks, cfg=cfg)
    return trainer


class EpochRelay:
    """Rank 0's ``on_fit_epoch_end``: one JSON line per call for the launcher (:func:`relay_epochs`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __call__(self, trainer) -> None:
        rec = {"epoch": int(trainer.epoch), "epochs": int(trainer.epochs),
               "metrics": {k: float(v) for k, v in (trainer.metrics or {}).items()},
               "tloss": ({k: float(v) for k, v in trainer.label_loss_items(trainer.tloss, prefix="train").items()}
                         if trainer.tloss is not None else None),
               "lr": {k: float(v) for k, v in (getattr(trainer, "lr", None) or {}).items()},
               "epoch_time": float(getattr(trainer, "epoch_time", 0.0) or 0.0),
               "fitness": None if trainer.fitness is None else float(trainer.fitness),
               "val": bool(getattr(trainer.args, "val", True))}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")


class RelayedTrainer(SimpleNamespace):
    """What the launcher's callbacks see of a worker's epoch (the attributes they read)."""

    def __init__(self, rec: dict) -> None:
        super().__init__(epoch=rec["epoch"], epochs=rec["epochs"], metrics=rec["metrics"], tloss=rec["tloss"],
                         lr=rec["lr"], epoch_time=rec["epoch_time"], fitness=rec["fitness"],
                         args=SimpleNamespace(val=rec["val"]), model=None)

    def label_loss_items(self, loss_items=None, prefix: str = "train") -> dict:
        return dict(self.tloss or {})


def relay_epochs(path: Path, callbacks: list, offset: int) -> int:
    """Call ``callbacks`` with every complete record of ``path`` after byte ``offset``; returns the new offset."""
    if not path.is_file():
        return offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1  # a line being written is read next time
    for line in data[:end].splitlines():
        if line.strip():
            rt = RelayedTrainer(json.loads(line))
            for cb in callbacks:
                cb(rt)
    return offset + end


def worker_main(spec: dict, trainer_cls: type) -> None:
    """Body of ``worker.py`` in each DDP process: rebuild (``trainer_cls``: the launching trainer's class, named by
    the script, so this module never imports the trainer that imports it), relay epochs from rank 0, train."""
    from alignrank.env import setup_offline

    setup_offline()
    trainer = rebuild_trainer(spec, trainer_cls)
    if os.environ.get(DRY_ENV):  # tests: what was rebuilt, then stop
        _dry_report(trainer, Path(os.environ[DRY_ENV]))
        return
    if int(os.environ.get("RANK", "0")) == 0:
        trainer.add_callback("on_fit_epoch_end", EpochRelay(spec["relay"]))
    trainer.train()


def _dry_report(trainer, out: Path) -> None:
    import hashlib

    import torch

    from alignrank.config import params_dict

    torch.manual_seed(0)
    model = trainer.get_model(weights=None)
    crit = model.init_criterion()
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode() + v.detach().cpu().numpy().tobytes())
    atomic_write_json(out, {"state_sha256": h.hexdigest(), "criterion": type(crit).__name__,
                            "loss_params": params_dict(getattr(crit, "params", None)) if getattr(crit, "params", None)
                            is not None else None, "variant": model.variant, "args": {k: v for k, v in
                            vars(trainer.args).items() if _plain(v)},
                            "callbacks": {e: len(f) for e, f in trainer.callbacks.items() if f}})


def run_ddp(trainer) -> None:
    """Launch ``world_size`` workers for ``trainer`` and relay their epochs to its non-picklable callbacks."""
    from ultralytics.utils.dist import find_free_network_port

    folder = Path(trainer.save_dir) / "ddp"
    folder.mkdir(parents=True, exist_ok=True)
    relay = folder / RELAY_NAME
    relay.unlink(missing_ok=True)
    script, kept = write_worker(trainer, folder)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(trainer.world_size),
           "--master_port", str(find_free_network_port()), str(script)]
    proc = subprocess.Popen(cmd)
    offset = 0
    try:
        while proc.poll() is None:
            time.sleep(POLL_S)
            offset = relay_epochs(relay, kept.get("on_fit_epoch_end", []), offset)
        relay_epochs(relay, kept.get("on_fit_epoch_end", []), offset)
    except BaseException:
        proc.terminate()
        proc.wait(timeout=60)
        raise
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)


__all__ = ["worker_spec", "write_worker", "rebuild_trainer", "worker_main", "EpochRelay", "RelayedTrainer",
           "relay_epochs", "run_ddp", "DRY_ENV"]
