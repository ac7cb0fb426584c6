"""Bad params get one short line naming the key and what is allowed; values that look right are accepted."""

from __future__ import annotations

import logging
import time
import tracemalloc

import pytest

from alignrank.config import ParamsError, load_params
from alignrank.config.fields import MAX_SEED, build
from alignrank.config.schema import Params

pytestmark = pytest.mark.reliability


def refused(overrides=(), path=None) -> str:
    with pytest.raises(ParamsError) as e:
        load_params(path, overrides)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


@pytest.mark.parametrize("key", ["train.seed", "data.seed", "tune.search_seed", "sweep.seeds", "tune.seeds"])
def test_seeds_fit_numpy(key):
    """numpy (hence ultralytics' init_seeds and Optuna) takes seeds < 2**32."""
    assert refused([f"{key}={2**32}"]).startswith(f"{key}: must be >= 0 and <= {MAX_SEED}")
    p = load_params(None, [f"{key}={MAX_SEED}"])
    section, name = key.split(".")
    assert getattr(getattr(p, section), name) in (MAX_SEED, (MAX_SEED,))


def test_lr0_is_a_fraction_like_ultralytics_checks_it():
    assert refused(["train.lr0=2.0"]) == "train.lr0: must be > 0 and <= 1, got 2.0"
    assert load_params(None, ["train.lr0=1"]).train.lr0 == 1.0


@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan", "1e400", "9" * 400])
def test_floats_are_finite(text):
    msg = refused([f"data.timeout={text}"])
    assert msg.startswith("data.timeout:") and ("finite" in msg or "> 0" in msg), msg


def test_float_looking_text_is_a_float_in_set_and_in_params_yaml(tmp_path):
    """YAML 1.1 reads 1e-3 (no dot) as a string."""
    assert load_params(None, ["train.lr0=1e-3"]).train.lr0 == 0.001
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  lr0: 1e-3\n  warmup_epochs: 5E-1\nloss:\n  margin: +2e-2\n")
    p = load_params(f)
    assert (p.train.lr0, p.train.warmup_epochs, p.loss.margin) == (0.001, 0.5, 0.02)
    assert refused(["train.lr0=1e-3x"]) == "train.lr0: expected a number, got '1e-3x'"
    assert refused(["train.epochs=1e3"]).startswith("train.epochs: expected an integer")


def billion_laughs() -> str:
    """~350 bytes of nested aliases: 9**9 (387 million) strings once expanded."""
    lines = ["train:", "  seed:", "  - &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"  - &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_is_refused_fast_in_little_memory(tmp_path):
    f = tmp_path / "bomb.yaml"
    f.write_text(billion_laughs())
    assert len(f.read_bytes()) < 400
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        msg = refused(path=f)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 5 and peak < 20e6, (time.perf_counter() - t0, peak)
    assert msg == f"{f}: YAML alias at line 4, column 9: aliases (*name) are not allowed in params; write the value out"
    assert refused(["train.seed=*a"]) == "train.seed: expected an integer, got '*a'"


def test_values_echoed_in_errors_are_capped(tmp_path):
    msg = refused(["train.device=[" + ",".join(["1"] * 1000) + "]"])
    assert msg.startswith("train.device: expected a string, got [1, 1") and len(msg) < 120, msg
    msg = refused(["train.optimizer=" + "x" * 10_000])
    assert msg.endswith(", got 'xxxxxxxxxx" + "x" * 69 + "…") and len(msg) < 200, msg[-300:]
    msg = refused(["train." + "k" * 10_000 + "=1"])
    assert msg.startswith("unknown key 'train.kkkk") and "…' (allowed in train:" in msg and len(msg) < 400
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  seed: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deeply" in refused(path=f)
    f.write_text("train:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 300)))
    assert "nested too deeply" in refused(path=f)
    f.write_bytes(b"train:\n  device: '" + b"x" * (2 << 20) + b"'\n")
    assert "too large for a params file" in refused(path=f)


def test_empty_params_yaml_says_all_defaults_are_used(tmp_path, caplog):
    f = tmp_path / "params.yaml"
    f.write_text("# nothing yet\n")
    with caplog.at_level(logging.WARNING, logger="alignrank.config"):
        assert load_params(f) == build(Params, {}, "")
    assert [r.getMessage() for r in caplog.records] == [f"{f}: the file is empty; every param takes its default"]


@pytest.mark.parametrize("text", ["[baseline, rcq]", "baseline,rcq", " baseline , rcq "])
def test_one_list_syntax_everywhere(text, tmp_path):
    assert load_params(None, [f"sweep.variants={text}"]).sweep.variants == ("baseline", "rcq")
    f = tmp_path / "params.yaml"
    f.write_text(f"sweep:\n  variants: {text}\n  seeds: 0,1,2\n")
    assert load_params(f).sweep.seeds == (0, 1, 2)
    assert load_params(None, ["sweep.seeds=3", "sweep.variants=full"]).sweep.seeds == (3,)
    assert refused(["sweep.seeds=0,x"]) == "sweep.seeds[1]: expected an integer, got 'x'"


def test_did_you_mean_for_keys_and_choices():
    assert refused(["train.epoch=3"]).startswith("unknown key 'train.epoch' (did you mean 'train.epochs'? allowed in")
    assert refused(["trian.epochs=3"]).startswith("unknown key 'trian' (did you mean 'train'? allowed in params")
    assert refused(["train.variant=ful"]).endswith("got 'ful' (did you mean 'full'?)")
    assert refused(["sweep.variants=baseline,rcqq"]).endswith("got 'rcqq' (did you mean 'rcq'?)")
    assert "did you mean" not in refused(["train.variant=zzzzzz"])
