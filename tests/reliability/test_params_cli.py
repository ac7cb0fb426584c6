"""Drill 6: every constrained param rejects an out-of-range value naming the key and the allowed range;
every CLI command maps a usage error to exit 2 and a failure to exit 1, one line, no traceback."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from typer.testing import CliRunner

from alignrank.cli import app
from alignrank.config import ParamsError, load_params
from alignrank.config.fields import _choices, _range_text
from alignrank.config.schema import Params
from tests.conftest import REPO

pytestmark = pytest.mark.reliability
PARAMS = REPO / "params.yaml"


def constrained_fields(cls=Params, prefix=""):
    """``(dotted key, type hint, metadata)`` of every schema field that has a range or choices."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            yield from constrained_fields(hints[f.name], f"{key}.")
        elif any(f.metadata.get(k) is not None for k in ("ge", "gt", "le", "lt", "choices")):
            yield key, hints[f.name], f.metadata


def _base(tp):
    """(scalar type, is_sequence) of a hint such as Optional[int] or tuple[str, ...]."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        return _base(args[0])[0], True
    if origin is typing.Union:
        return _base(args[0])
    if origin is typing.Literal:
        return type(args[0]), False
    return tp, False


def bad_values(tp, meta):
    """Out-of-range values for one field, one per constraint."""
    scalar, seq = _base(tp)
    vals = []
    if _choices(meta) is not None:
        vals.append(-12345 if scalar in (int, float) else "__not_a_choice__")
    num = int if scalar is int else float
    for k, delta in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
        if meta.get(k) is not None:
            vals.append(num(meta[k] + delta) if num is int else float(meta[k]) + delta * 0.5)
    return [[v] if seq else v for v in vals]


CASES = [(key, v, meta) for key, tp, meta in constrained_fields() for v in bad_values(tp, meta)]


def test_the_schema_has_constrained_fields_in_every_section():
    sections = {k.split(".")[0] for k, _, _ in CASES}
    assert len(CASES) >= 30 and {"data", "model", "loss", "train", "sweep", "eval", "ray"} <= sections, sections


@pytest.mark.parametrize("key,value,meta", CASES, ids=[f"{k}={v!r}" for k, v, _ in CASES])
def test_every_constrained_field_rejects_out_of_range_naming_key_and_range(key, value, meta):
    with pytest.raises(ParamsError) as e:
        load_params(PARAMS, {key: value})
    msg = str(e.value)
    allowed = "one of" if _choices(meta) is not None and "one of" in msg else _range_text(meta)
    assert "\n" not in msg and msg.startswith(key) and allowed in msg, msg


COMMANDS = {  # command -> extra arguments that make it run (no work done: the params error comes first)
    "data": [], "train": [], "sweep": [], "tune": [], "evaluate": [], "profile": [], "report": [],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_usage_error_is_exit_2_one_line_no_traceback(command):
    r = CliRunner().invoke(app, [command, "--params", str(PARAMS), "--set", "train.epochs=0"])
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().splitlines() == ["error: train.epochs: must be >= 1, got 0"] and "Traceback" not in r.output
    r = CliRunner().invoke(app, [command, "--params", str(PARAMS), "--set", "nosuch.key=1"])
    assert r.exit_code == 2 and "unknown key" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_missing_params_file_and_half_given_evaluate_files_are_exit_2(tmp_path):
    r = CliRunner().invoke(app, ["report", "--params", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2 and "nope.yaml: file not found" in r.stderr
    r = CliRunner().invoke(app, ["evaluate", "--params", str(PARAMS), "--gt", str(tmp_path / "gt.json")])
    assert r.exit_code == 2 and "--gt and --pred" in r.stderr


def test_failures_are_exit_1_one_line_and_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = ["train", "--params", str(PARAMS), "--set", f"data.root={tmp_path / 'no-data'}",
            "--set", f"train.out_dir={tmp_path / 'runs'}", "--set", "model.scale=n"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 1, r.output
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert "dataset not found" in line and "alignrank data" in line and "Traceback" not in r.output
    r = CliRunner().invoke(app, ["--debug", *args])
    assert r.exit_code != 0 and r.exception is not None and "dataset not found" in str(r.exception)


def _one_error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output, r.output[-2000:]
    return lines[0]


@pytest.mark.parametrize("args,expected", [
    (["--set", "train.seed=4294967296"], "error: train.seed: must be >= 0 and <= 4294967295, got 4294967296"),
    (["--seed", "4294967296"], "error: train.seed: must be >= 0 and <= 4294967295, got 4294967296"),
    (["--set", "train.lr0=2.0"], "error: train.lr0: must be > 0 and <= 1, got 2.0"),
    (["--set", "data.timeout=.inf"], "error: data.timeout: must be a finite number, got inf"),
])
def test_bad_values_are_refused_before_any_run_folder_exists(tmp_path, args, expected):
    runs = tmp_path / "runs"
    r = CliRunner().invoke(app, ["train", "--params", str(PARAMS), "--set", f"train.out_dir={runs}", *args])
    assert r.exit_code == 2 and _one_error_line(r) == expected
    assert not runs.exists()


def test_yaml_bomb_and_huge_values_get_one_short_line(tmp_path):
    from tests.config.test_bad_input import billion_laughs

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(billion_laughs())
    r = CliRunner().invoke(app, ["report", "--params", str(bomb)])
    assert r.exit_code == 2 and "aliases (*name) are not allowed" in _one_error_line(r)
    r = CliRunner().invoke(app, ["sweep", "--set", "sweep.variants=" + "x" * 100_000])
    line = _one_error_line(r)
    assert r.exit_code == 2 and line.endswith(", got '" + "x" * 79 + "…") and len(line) < 400, line


def test_empty_params_yaml_prints_one_line_saying_defaults_are_used(tmp_path):
    """Through logging's last-resort handler, as in the CLI and the DVC stages (no logging configured)."""
    import subprocess
    import sys

    empty = tmp_path / "params.yaml"
    empty.write_text("")
    code = f"from alignrank.config import load_params; load_params({str(empty)!r})"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.splitlines() == [f"{empty}: the file is empty; every param takes its default"]


def test_evaluate_ids_beyond_int64_name_the_record(tmp_path):
    import json

    def gt(image_id):
        return {"images": [{"id": 1, "width": 20, "height": 20}, {"id": image_id, "width": 20, "height": 20}],
                "categories": [{"id": 1, "name": "a"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0}]}

    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([{"image_id": 2**63, "category_id": 1, "bbox": [2, 2, 8, 8], "score": 0.9}]))
    (tmp_path / "gt.json").write_text(json.dumps(gt(2**63)))
    r = CliRunner().invoke(app, ["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(pred)])
    assert r.exit_code == 1 and _one_error_line(r) == "error: gt.json images[1]: missing or invalid 'id' (expected a 64-bit integer)"
    (tmp_path / "gt.json").write_text(json.dumps(gt(2)))
    r = CliRunner().invoke(app, ["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(pred)])
    assert r.exit_code == 1 and _one_error_line(r) == "error: pred.json record 0: unknown image_id 9223372036854775808 (not in gt.json)"
