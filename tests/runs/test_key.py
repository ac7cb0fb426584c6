"""Run keys: a variant's key changes exactly when something it reads changes."""

from __future__ import annotations

import shutil

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
    ({"loss.assigner": "atss"}, {"rcq", "full"}),
    ({"loss.box": 5.0}, {"baseline", "csd", "rcq", "full"}),
    ({"model.csd_points": 8}, {"csd", "full"}),
    ({"model.dyn_kernels": 2}, {"csd", "full"}),
    ({"model.scale": "s"}, {"baseline", "csd", "rcq", "full"}),
    ({"train.lr0": 0.01}, {"baseline", "csd", "rcq", "full"}),
    ({"train.device": "cuda"}, {"baseline", "csd", "rcq", "full"}),
    ({"train.threads": 2}, {"baseline", "csd", "rcq", "full"}),
    ({"train.out_dir": "elsewhere"}, set()),
    ({"train.save_period": 3}, set()),
    ({"eval.conf": 0.5, "report.ci": 0.9, "ray.max_concurrent": 4, "mlflow.experiment": "x"}, set()),
])
def test_key_changes_only_for_variants_that_read_the_change(change, affected):
    changed = {v for v in ("baseline", "csd", "rcq", "full") if key(v) != key(v, **change)}
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
    cache.code_version.cache_clear()
    try:
        v0 = cache.code_version()
        (pkg / "cli.py").write_text((pkg / "cli.py").read_text() + "\n# edit\n")  # not training code
        cache.code_version.cache_clear()
        assert cache.code_version() == v0
        f = pkg / "nn" / "model.py"
        f.write_text(f.read_text() + "\n# uncommitted edit\n")
        cache.code_version.cache_clear()
        assert cache.code_version() != v0
    finally:
        cache.code_version.cache_clear()


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
