"""``stage_main``: the shared main of the DVC stage scripts (params, JSON summary, exit codes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from alignrank import stage_main as stage
from alignrank.config import ParamsError
from alignrank.errors import DataError
from tests.conftest import REPO


@pytest.fixture
def fake_params(monkeypatch):
    monkeypatch.setattr(stage, "load_params", lambda: "PARAMS")


def test_ok_prints_summary(fake_params, capsys):
    assert stage.stage_main(lambda p: {"got": p}) == 0
    assert json.loads(capsys.readouterr().out) == {"got": "PARAMS"}


def test_failed_runs_exit_1(fake_params, capsys):
    fn = lambda p: {"failed": [{"run": "rcq-s0", "attempts": 3, "error": "boom"}]}  # noqa: E731
    assert stage.stage_main(fn) == 1 and "run rcq-s0 failed after 3 attempt(s): boom" in capsys.readouterr().err


@pytest.mark.parametrize("exc,code", [(ParamsError("train.epochs: must be >= 1, got 0"), 2),
                                      (DataError("data/x.json: malformed JSON"), 1), (KeyboardInterrupt(), 130)])
def test_errors_map_to_one_line_and_exit_code(fake_params, capsys, exc, code):
    def boom(p):
        raise exc

    assert stage.stage_main(boom, hint="re-run it") == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_stage_script_runs_end_to_end_with_bad_params(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  epochs: 0\n")
    r = subprocess.run([sys.executable, str(REPO / "pipeline" / "train.py")], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120, env={**__import__("os").environ, "ALIGNRANK_ROOT": str(tmp_path)})
    assert r.returncode == 2 and "train.epochs: must be >= 1" in r.stderr and "Traceback" not in r.stderr


def test_render_prints_text_instead_of_json(fake_params, capsys):
    assert stage.stage_main(lambda p: {"runs": 2}, render=lambda p, s: f"{p}: {s['runs']} runs") == 0
    assert capsys.readouterr().out == "PARAMS: 2 runs\n"
