"""Run keys: a run's folder is named by a hash of everything that determines its result.

``key = sha256(variant, head, loss, the model/loss params the run READS, train params, dataset
fingerprint, code version, torch/ultralytics versions)``. A finished run (``done.json``) with the same key
is never recomputed, so after a completed sweep a params change re-runs only the runs it affects:

* the ``model``/``loss`` fields a run reads are recorded by building its model and criterion and running
  one loss step (:mod:`alignrank.runs.reads`), never listed by hand: the stock head reads only
  ``model.scale`` and ``model.end2end`` (whether it gets the one-to-one branch); the stock loss reads its
  gains, ``assigner``, ``iou_loss`` and the chosen assigner's settings; a field read only under some setting
  (``loss.temperature`` when ``loss.lambda_list > 0``, ``loss.o2o_*`` for NMS-free models) counts only then;
* ``train.*`` all count (seed, device, threads, deterministic... change numerics) except ``out_dir``
  (where), ``save_period`` (extra checkpoints only) and ``lock_wait`` (how long to wait for a busy folder);
* the data is keyed by the content fingerprint in ``<data.root>/manifest.json`` (files checked against it);
* the code version hashes the source files that compute a run (``alignrank/nn``, ``alignrank/loss``,
  ``alignrank/engine/trainer.py``, ``alignrank/variants.py``), so uncommitted edits count, while edits
  to tracking, the CLI, eval or report code do not re-train anything.

Examples:
    >>> from alignrank.config import load_params
    >>> p = load_params(None, {"train.variant": "baseline"})
    >>> sorted(key_payload(p, fingerprint="f" * 64)["model"])
    ['end2end', 'scale']
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from alignrank.config import params_dict
from alignrank.config.schema import Params
from alignrank.errors import DataError
from alignrank.io import read_json, resolve_path
from alignrank.runs.reads import recorded_reads
from alignrank.variants import get_variant

TRAIN_IGNORED = ("out_dir", "save_period", "lock_wait")
CODE_PATHS = ("nn", "loss", "engine/trainer.py", "variants.py")  # relative to the alignrank package
PKG = Path(__file__).resolve().parents[1]  # the alignrank package


@functools.lru_cache(maxsize=8)
def source_hash(paths: tuple[str, ...]) -> str:
    """sha256 (16 hex) of the package's source files under ``paths`` (relative to the package, files or folders).

    Examples:
        >>> len(source_hash(("eval",))), source_hash(("eval",)) == source_hash(("loss",))
        (16, False)
    """
    h = hashlib.sha256()
    for rel in paths:
        p = PKG / rel
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(f.relative_to(PKG).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def code_version() -> str:
    """sha256 (16 hex) of the package source files that determine a training run's result."""
    return source_hash(CODE_PATHS)


def data_root(params: Params) -> Path:
    """Absolute dataset folder (``data.root`` under the project root)."""
    return resolve_path(params.data.root)


def data_fingerprint(params: Params) -> str:
    """Content fingerprint of the dataset from ``<data.root>/manifest.json``.

    Raises:
        DataError: The dataset or its manifest is missing.
    """
    root = data_root(params)
    if not (root / "dataset.yaml").is_file():
        raise DataError(f"{root / 'dataset.yaml'}: dataset not found; "
                        f"build it with `alignrank data` (or `dvc repro data`)")
    manifest = read_json(root / "manifest.json")
    fp = (manifest or {}).get("fingerprint")
    if not fp:
        raise DataError(f"{root / 'manifest.json'}: missing or without 'fingerprint'; "
                        f"rebuild the dataset with `alignrank data`")
    return str(fp)


def _versions() -> dict[str, str]:
    import torch
    import ultralytics

    return {"torch": torch.__version__, "ultralytics": ultralytics.__version__}


@dataclass(frozen=True)
class RunKey:
    """Identity of a run: ``name`` = ``<variant>-s<seed>-<hash>`` and the hashed ``payload``."""

    variant: str
    seed: int
    hash: str
    payload: dict

    @property
    def name(self) -> str:
        return f"{self.variant}-s{self.seed}-{self.hash}"


def key_payload(params: Params, *, fingerprint: str | None = None) -> dict:
    """Everything a run's result depends on (see the module docstring)."""
    d = params_dict(params)
    v = get_variant(params.train.variant)
    model_reads, loss_reads = recorded_reads(params)
    return {
        "variant": v.name,
        "head": v.head,
        "loss_name": v.loss,
        "model": {k: d["model"][k] for k in sorted(model_reads)},
        "loss": {k: d["loss"][k] for k in sorted(loss_reads)},
        "train": {k: x for k, x in d["train"].items() if k not in TRAIN_IGNORED},
        "data": fingerprint or data_fingerprint(params),
        "code": code_version(),
        "versions": _versions(),
    }


def run_key(params: Params, *, fingerprint: str | None = None) -> RunKey:
    """The :class:`RunKey` of ``params`` (its ``train.variant`` / ``train.seed``)."""
    payload = key_payload(params, fingerprint=fingerprint)
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return RunKey(variant=params.train.variant, seed=params.train.seed, hash=digest, payload=payload)


def run_dir(params: Params, key: RunKey) -> Path:
    """Absolute folder of the run: ``<train.out_dir>/<key.name>``."""
    return resolve_path(params.train.out_dir) / key.name
