"""What a training run's MLflow run says about itself: its description and the dataset it reads.

* The description (MLflow's ``mlflow.note.content`` tag, shown at the top of the run's page): variant and
  seed, the variant's one line, what it changes against the baseline (head and loss names), the model/loss
  params it READS (recorded in its run key, :mod:`alignrank.runs.reads`) whose values differ from the
  defaults of :mod:`alignrank.config.schema`, and the dataset and run key.
* The dataset input (``mlflow.log_input``): an ``mlflow.data`` dataset named after the data root's folder,
  whose digest is the dataset fingerprint (cut to MLflow's 36 characters; the whole fingerprint is in
  its profile and in the run's ``dataset_fingerprint`` tag), whose source is the data root, with the
  manifest's source, class count and split counts as profile.

Examples:
    >>> from alignrank.runs.key import RunKey
    >>> from alignrank.config import load_params
    >>> p = load_params(None, {"train.variant": "rcq", "loss.lambda_rank": 2.0})
    >>> key = RunKey("rcq", 0, "abc", {"head": "detect", "loss_name": "rcq_augment", "model": {"scale": "n"},
    ...                                "loss": {"lambda_rank": 2.0, "box": 7.5}, "data": "f" * 64})
    >>> non_default_reads(key)
    {'loss.lambda_rank': (2.0, 1.0)}
    >>> print(run_description(p, key).splitlines()[2])
    Changes vs baseline: loss `rcq_augment` (baseline `v8`); head `detect` as the baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alignrank.config import params_dict
from alignrank.config.schema import Params
from alignrank.io import read_json
from alignrank.runs.key import RunKey, data_root
from alignrank.tracking.base import Tracker
from alignrank.variants import get_variant

DESCRIPTION_TAG = "mlflow.note.content"  # MLflow's run description
BASELINE = "baseline"


def non_default_reads(key: RunKey) -> dict[str, tuple[Any, Any]]:
    """``{"section.field": (value, default)}`` of the model/loss fields the run reads that differ from the
    schema defaults."""
    defaults = params_dict(Params())
    out = {}
    for section in ("model", "loss"):
        for k, v in sorted((key.payload.get(section) or {}).items()):
            d = defaults[section].get(k)
            if v != d:
                out[f"{section}.{k}"] = (v, d)
    return out


def run_description(params: Params, key: RunKey) -> str:
    """Markdown description of the run (see the module docstring)."""
    v, base = get_variant(key.variant), get_variant(BASELINE)
    changes = []
    same = []
    for what, mine, theirs in (("head", v.head, base.head), ("loss", v.loss, base.loss)):
        (changes if mine != theirs else same).append(
            f"{what} `{mine}` (baseline `{theirs}`)" if mine != theirs else f"{what} `{mine}`")
    if key.variant == BASELINE:
        vs = "Changes vs baseline: none (this is the baseline)."
    elif changes:
        vs = f"Changes vs baseline: {', '.join(changes)}" + (f"; {', '.join(same)} as the baseline." if same else ".")
    else:
        vs = f"Changes vs baseline: same head and loss ({', '.join(same)}); it differs in params only."
    nd = non_default_reads(key)
    if nd:
        reads = "Model/loss params it reads that differ from the defaults: " + ", ".join(
            f"`{k}` = {val!r} (default {d!r})" for k, (val, d) in nd.items()) + "."
    else:
        reads = "Every model/loss param it reads is at its default."
    read_names = "; ".join(f"{s}: {', '.join(sorted(key.payload.get(s) or {})) or '-'}" for s in ("model", "loss"))
    t = params.train
    return "\n\n".join([
        f"**{key.variant}**, seed {key.seed}: {v.description}",
        vs,
        reads,
        f"Params read (the run key's model/loss part): {read_names}.",
        f"Training: {t.epochs} epochs, batch {t.batch}, {t.imgsz} px, {t.optimizer} lr0 {t.lr0}, device {t.device}. "
        f"Dataset `{data_root(params)}` (fingerprint `{str(key.payload.get('data', ''))[:12]}`); run key `{key.hash}`.",
    ])


def dataset_info(params: Params, key: RunKey) -> dict:
    """``log_input`` arguments of the run's dataset: ``name``, ``digest``, ``source``, ``profile``."""
    root = data_root(params)
    manifest = read_json(root / "manifest.json") or {}
    fp = str(key.payload.get("data") or manifest.get("fingerprint") or "")
    profile = {"fingerprint": fp, "source": manifest.get("source", params.data.source),
               "num_classes": len(manifest.get("names") or []) or None, "counts": manifest.get("counts")}
    return {"name": Path(root).name, "digest": fp[:36], "source": str(root),
            "profile": {k: x for k, x in profile.items() if x is not None}}


def describe_run(tracker: Tracker, params: Params, key: RunKey) -> None:
    """Set the run's description and log its dataset as an input (``context`` ``train``)."""
    tracker.set_tags({DESCRIPTION_TAG: run_description(params, key)})
    tracker.log_input(**dataset_info(params, key), context="train")
