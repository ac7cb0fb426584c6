"""Run keys: a variant's key changes exactly when something it reads changes."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from alignrank.config import load_params, with_overrides
from alignrank.errors import DataError
from alignrank.runs import key as cache
from alignrank.runs.key import run_key

FP = "f" * 64


def key(variant: str, **over) -> str:
    p = load_params(None, {"train.variant": variant, **over})
    return run_key(p, fingerprint=FP).hash


@pytest.mark.parametrize("change, affected", [
    ({"loss.lambda_rank": 2.0}, {"rcq", "full"}),
    ({"loss.assigner": "atss"}, {"baseline", "csd", "rcq", "full"}),
    ({"loss.iou_loss": "siou"}, {"baseline", "csd", "rcq", "full"}),
    ({"loss.tal_topk": 3}, {"baseline", "csd", "rcq", "full"}),
    ({"loss.atss_topk": 5}, set()),  # read only when loss.assigner = atss
    ({"loss.box": 5.0}, {"baseline", "csd", "rcq", "full"}),
    ({"model.csd_points": 8}, {"csd", "full"}),
    ({"model.dyn_kernels": 2}, {"csd", "full"}),
    ({"model.scale": "s"}, {"baseline", "csd", "rcq", "full"}),
    ({"train.lr0": 0.01}, {"baseline", "csd", "rcq", "full"}),
    ({"train.device": "cuda"}, {"baseline", "csd", "rcq", "full"}),
    ({"train.threads": 2}, {"baseline", "csd", "rcq", "full"}),
    ({"train.out_dir": "elsewhere"}, set()),
    ({"train.save_period": 3}, set()),
    ({"model.end2end": True}, {"baseline", "csd", "rcq", "full"}),  # every variant can become NMS-free
    ({"loss.o2o_topk": 2, "loss.o2o_loss": "v8", "loss.o2o_weight": 2.0}, set()),  # read by NMS-free models only
    ({"eval.conf": 0.5, "report.ci": 0.9, "ray.max_concurrent": 4, "mlflow.experiment": "x"}, set()),
])
def test_key_changes_only_for_variants_that_read_the_change(change, affected):
    changed = {v for v in ("baseline", "csd", "rcq", "full") if key(v) != key(v, **change)}
    assert changed == affected


E2E = ("baseline_e2e", "csd_e2e", "rcq_e2e", "full_e2e")


@pytest.mark.parametrize("change, affected", [
    ({"loss.o2o_topk": 2}, set(E2E)),
    ({"loss.o2o_weight": 2.0}, set(E2E)),
    ({"loss.o2m_weight": 0.5}, set(E2E)),
    ({"loss.o2o_loss": "v8"}, {"rcq_e2e", "full_e2e"}),  # the stock loss: both readings are the same loss
    ({"loss.tal_topk": 3}, set(E2E)),  # the one-to-many assignment
    ({"model.end2end": True}, set()),  # already NMS-free
])
def test_nms_free_settings_key_the_nms_free_runs(change, affected):
    changed = {v for v in E2E if key(v) != key(v, **change)}
    assert changed == affected


def test_key_covers_seed_variant_and_data():
    assert key("baseline") != key("baseline", **{"train.seed": 1})
    assert len({key(v) for v in ("baseline", "csd", "rcq", "full")}) == 4
    p = load_params(None, {"train.variant": "rcq", "train.seed": 3})
    k = run_key(p, fingerprint=FP)
    assert k.name == f"rcq-s3-{k.hash}" and k.payload["data"] == FP
    assert run_key(p, fingerprint="0" * 64).hash != k.hash


def test_code_version_counts_training_code_only(tmp_path, monkeypatch):
    pkg = tmp_path / "alignrank"
    shutil.copytree(cache.PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "PKG", pkg)
    cache.source_hash.cache_clear()
    try:
        v0 = cache.code_version()
        (pkg / "cli.py").write_text((pkg / "cli.py").read_text() + "\n# edit\n")  # not training code
        cache.source_hash.cache_clear()
        assert cache.code_version() == v0
        f = pkg / "nn" / "model.py"
        f.write_text(f.read_text() + "\n# uncommitted edit\n")
        cache.source_hash.cache_clear()
        assert cache.code_version() != v0
    finally:
        cache.source_hash.cache_clear()


def test_fingerprint_read_from_manifest_or_clear_error(tmp_path):
    p = load_params(None, {"data.root": str(tmp_path / "d")})
    with pytest.raises(DataError, match="dataset not found; build it with `alignrank data`"):
        cache.data_fingerprint(p)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "dataset.yaml").write_text("nc: 1\n")
    with pytest.raises(DataError, match="manifest.json"):
        cache.data_fingerprint(p)
    (tmp_path / "d" / "manifest.json").write_text('{"fingerprint": "abc"}')
    assert cache.data_fingerprint(p) == "abc"
    assert cache.data_root(with_overrides(p, {"data.root": "d"})) == tmp_path / "d"  # relative to the project root


# --- the key is derived from what the built model/criterion read, and that is proven field by field ---

HEAD_OF = {"detect": "baseline", "csd": "csd"}  # a variant using each registered head with the stock loss


def _cases() -> list[tuple[str, dict, str]]:
    """(variant, overrides, section to check): each registered head (model fields) and loss (loss fields)
    through a variant that uses it, NMS-free twins of both heads and of the RCQ loss, each assigner and IoU loss through the baseline (loss fields)."""
    from alignrank.loss.assigners import ASSIGNERS
    from alignrank.loss.iou import IOU_LOSSES
    from alignrank.loss.registry import LOSSES
    from alignrank.nn.registry import HEADS
    from alignrank.variants import VARIANTS

    heads = {v.head: n for n, v in reversed(list(VARIANTS.items()))}  # (the first variant using each)
    losses = {v.loss: n for n, v in reversed(list(VARIANTS.items()))}
    assert set(heads) >= set(HEADS) and set(losses) >= set(LOSSES), "a registered head/loss no variant uses"
    cases = [(n, {}, "model") for n in heads.values()] + [(n, {}, "loss") for n in losses.values()]
    # NMS-free twins: the CSD head (its one-to-one branch shares the side stream) and the stock head, and the RCQ
    # loss (the dual loss wraps the variant's loss; the others wrap it the same way)
    cases += [("csd_e2e", {}, "model"), ("baseline_e2e", {}, "model"), ("rcq_e2e", {}, "loss")]
    cases += [("baseline", {"loss.assigner": a}, "loss") for a in ASSIGNERS if a != "tal"]
    cases += [("baseline", {"loss.iou_loss": i}, "loss") for i in IOU_LOSSES if i != "ciou"]
    return cases


def _perturbed(section: str, field) -> object:
    """A valid different value for ``section.field`` (within its declared range/choices)."""
    import typing

    value = getattr(getattr(load_params(None), section), field.name)
    choices = typing.get_args(field.type) if typing.get_origin(field.type) is typing.Literal else None
    if field.metadata.get("choices") is not None:
        ch = field.metadata["choices"]
        choices = list(ch() if callable(ch) else ch)
    if choices:
        return next(c for c in choices if c != value)
    if isinstance(value, bool):
        return not value
    meta = field.metadata
    if isinstance(value, int):
        return value + 1 if meta.get("le") is None or value + 1 <= meta["le"] else value - 1
    return value * 1.5 if value else 0.25


def _fields(section: str):
    import dataclasses
    import typing

    from alignrank.config import schema

    cls = {"model": schema.ModelParams, "loss": schema.LossParams}[section]
    hints = typing.get_type_hints(cls)
    return [SimpleNamespace(name=f.name, type=hints[f.name], metadata=f.metadata) for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("variant, over, section", _cases(), ids=lambda x: x if isinstance(x, str) else
                         ",".join(f"{k}={v}" for k, v in x.items()) or "default")
def test_every_model_and_loss_field_is_keyed_exactly_when_it_changes_the_run(variant, over, section):
    """For every registered head and loss (through a variant that uses it) and assigner/IoU loss: changing
    a field the built model/criterion reads changes the key; changing one it does not read leaves the key AND
    the run's numbers (one loss step's terms and gradients, the fused model's inference output, same seed)
    bit-identical. (For an assigner/IoU loss, the fields whose read status is the same as with the default
    were proven by the default case; the others are checked here.)"""
    import torch

    from alignrank.runs.reads import exercise

    base = load_params(None, {"train.variant": variant, **over})
    ref = exercise(base)
    reads = dict(zip(("model", "loss"), cache.recorded_reads(base)))
    default = dict(zip(("model", "loss"), cache.recorded_reads(load_params(None, {"train.variant": variant}))))
    for f in _fields(section):
        if f"{section}.{f.name}" in over or (section, f.name) == ("model", "scale"):
            continue  # (the entry under test; scale: a bigger model, covered by the table test above)
        if over and (f.name in reads[section]) == (f.name in default[section]):
            continue
        changed = with_overrides(base, {f"{section}.{f.name}": _perturbed(section, f)})
        k0, k1 = run_key(base, fingerprint=FP).hash, run_key(changed, fingerprint=FP).hash
        if f.name in reads[section]:
            assert k1 != k0, f"{section}.{f.name} is read but does not change the key"
        else:
            assert k1 == k0, f"{section}.{f.name} is not read but changes the key"
            out = exercise(changed)
            assert torch.equal(out["loss"], ref["loss"]) and out["grad"] == ref["grad"], f"{section}.{f.name}"
            assert torch.equal(out["pred"], ref["pred"]), f"{section}.{f.name} changes inference but is not keyed"


def test_a_field_read_only_under_a_setting_is_keyed_only_then():
    assert "temperature" in cache.recorded_reads(load_params(None, {"train.variant": "rcq"}))[1]
    off = load_params(None, {"train.variant": "rcq", "loss.lambda_list": 0.0})
    assert "temperature" not in cache.recorded_reads(off)[1]
    assert key("rcq", **{"loss.lambda_list": 0.0}) == key("rcq", **{"loss.lambda_list": 0.0, "loss.temperature": 2.0})


def test_a_sweep_lists_nms_and_nms_free_variants_side_by_side(tiny_params):
    """sweep.variants takes the NMS-free twins beside the plain variants: each its own run (key and folder)."""
    from alignrank.runs.sweep import plan

    names = ("baseline", "baseline_e2e", "full", "full_e2e")
    p = with_overrides(tiny_params, {"sweep.variants": list(names), "sweep.seeds": [0]})
    specs = plan(p)
    assert [s.key.variant for s in specs] == list(names) and len({s.dir for s in specs}) == 4
    assert [s.params.train.variant for s in specs] == list(names)
