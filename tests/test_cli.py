"""CLI surface: commands listed, params errors are one line with exit code 2 and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from alignrank import __version__
from alignrank.cli import app
from tests.conftest import REPO

COMMANDS = ("data", "train", "sweep", "sync", "tune", "evaluate", "profile", "report", "variants")
HEAVY = ("torch", "ultralytics", "mlflow", "ray")

runner = CliRunner()


def test_help_lists_every_command():
    out = runner.invoke(app, ["--help"]).output
    for cmd in COMMANDS:
        assert cmd in out


def test_variants_lists_every_registered_variant():
    from alignrank.variants import VARIANTS

    lines = runner.invoke(app, ["variants"]).output.splitlines()
    assert [ln.split()[:3] for ln in lines] == [[n, v.head, v.loss] for n, v in VARIANTS.items()]
    rows = json.loads(runner.invoke(app, ["variants", "--json"]).output)
    assert [r["name"] for r in rows] == list(VARIANTS)


def test_help_of_every_command_loads_no_torch_ultralytics_mlflow_or_ray():
    """``alignrank --help`` and every ``alignrank <cmd> --help``, then the heavy modules in ``sys.modules``."""
    probe = ("import sys\n"
             "from alignrank.cli import app\n"
             f"for args in ([], *[[c] for c in {COMMANDS!r}]):\n"
             "    try:\n"
             "        app([*args, '--help'], prog_name='alignrank')\n"
             "    except SystemExit as e:\n"
             "        assert e.code == 0, (args, e.code)\n"
             f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.count("Usage: alignrank") == 1 + len(COMMANDS), r.stderr
    assert r.stdout.strip().splitlines()[-1] == "LOADED []", r.stdout[-300:]


def test_alignrank_console_script_help_imports_no_torch():
    """The installed ``alignrank`` script itself, its imports listed by ``PYTHONPROFILEIMPORTTIME``."""
    import os
    from pathlib import Path

    exe = Path(sys.executable).with_name("alignrank")
    assert exe.is_file(), f"{exe}: not installed (pip install -e .)"
    for args in (["--help"], ["train", "--help"]):
        r = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
        imported = {ln.rsplit("|", 1)[-1].strip().split(".")[0] for ln in r.stderr.splitlines() if ln.startswith("import time:")}
        assert r.returncode == 0 and r.stdout.startswith("Usage: alignrank") and "typer" in imported, r.stderr[-500:]
        assert not imported & set(HEAVY), (args, sorted(imported & set(HEAVY)))


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"alignrank {__version__}"


def test_bad_override_is_one_line_exit_2():
    r = runner.invoke(app, ["train", "--params", str(REPO / "params.yaml"), "--set", "loss.temperature=0"])
    assert r.exit_code == 2
    assert "loss.temperature: must be > 0" in r.output and "Traceback" not in r.output


def test_unknown_variant_via_option_exit_2():
    r = runner.invoke(app, ["train", "--params", str(REPO / "params.yaml"), "--variant", "nope"])
    assert r.exit_code == 2 and "train.variant" in r.output


def test_console_script_no_traceback_and_debug_shows_it(tmp_path):
    exe = [sys.executable, "-m", "alignrank.cli"]
    r = subprocess.run([*exe, "sweep", "--params", str(REPO / "params.yaml"), "--set", "train.epochs=-1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "train.epochs: must be >= 1" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*exe, "--debug", "sweep", "--params", str(REPO / "params.yaml"), "--set", "train.epochs=-1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" in r.stderr


def _click_commands():
    import typer.main

    return typer.main.get_command(app).commands


def test_every_command_with_set_takes_set_file_and_params():
    for name, cmd in _click_commands().items():
        opts = {o for p in cmd.params for o in p.opts}
        if "--set" in opts:
            assert {"--set-file", "--params"} <= opts, name


def test_no_cli_parameter_is_named_after_a_builtin():
    import builtins

    for name, cmd in _click_commands().items():
        assert not [p.name for p in cmd.params if hasattr(builtins, p.name)], name


def test_boolean_options_are_flags_and_params_backed_ones_have_a_no_form():
    import click

    for name, cmd in _click_commands().items():
        for p in cmd.params:
            if isinstance(p, click.Option) and isinstance(p.type, click.types.BoolParamType):
                assert p.is_flag, (name, p.name)
                if p.default is None:  # None = "take it from params.yaml": --x/--no-x sets either way
                    assert p.secondary_opts == [f"--no-{p.opts[0][2:]}"], (name, p.opts)
    out = runner.invoke(app, ["profile", "--help"]).output
    assert "--onnx / --no-onnx " in out and "bool" not in out


def _captured(monkeypatch, target: str, args: list[str]):
    """Params a command would run with: ``target`` ('module:function') is replaced by a recorder."""
    module, fn = target.split(":")
    seen = []
    monkeypatch.setattr(f"{module}.{fn}", lambda p, **kw: seen.append(p) or {})
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return seen[0]


def test_one_list_syntax_everywhere(monkeypatch):
    for args in (["--variants", "baseline,rcq"], ["--variants", "[baseline, rcq]"], ["--variants", "baseline, rcq"],
                 ["--set", "profile.variants=[baseline,rcq]"], ["--set", "profile.variants=baseline,rcq"]):
        p = _captured(monkeypatch, "alignrank.profile.compare:run_profile", ["profile", *args])
        assert p.profile.variants == ("baseline", "rcq"), args
    for args in (["--variants", "full", "--seeds", "3,4"], ["--set", "sweep.variants=[full]", "--set", "sweep.seeds=[3, 4]"],
                 ["--set", "sweep.variants=full", "--set", "sweep.seeds=3,4"]):
        p = _captured(monkeypatch, "alignrank.runs.sweep:run_sweep", ["sweep", *args])
        assert (p.sweep.variants, p.sweep.seeds) == (("full",), (3, 4)), args


def test_onnx_flag_overrides_params(monkeypatch):
    run = "alignrank.profile.compare:run_profile"
    assert _captured(monkeypatch, run, ["profile"]).profile.onnx is True
    assert _captured(monkeypatch, run, ["profile", "--no-onnx"]).profile.onnx is False
    assert _captured(monkeypatch, run, ["profile", "--set", "profile.onnx=false", "--onnx"]).profile.onnx is True


def test_set_file_then_set_then_options(monkeypatch, tmp_path):
    frag = tmp_path / "frag.yaml"
    frag.write_text("report.ci: 0.9\ntrain.seed: 5\ntrain.epochs: 2\n")
    p = _captured(monkeypatch, "alignrank.report.results:run_report", ["report", "--set-file", str(frag)])
    assert p.report.ci == 0.9
    p = _captured(monkeypatch, "alignrank.runs.run:run_single",
                  ["train", "--set-file", str(frag), "--set", "train.seed=6", "--seed", "7", "--set", "train.lr0=1e-3"])
    assert (p.train.seed, p.train.epochs, p.train.lr0) == (7, 2, 0.001)


def test_did_you_mean_for_unknown_variants_and_keys():
    r = runner.invoke(app, ["train", "--variant", "ful"])
    assert r.exit_code == 2 and "got 'ful' (did you mean 'full'?)" in r.stderr
    r = runner.invoke(app, ["profile", "--variants", "baseline,rcqq"])
    assert r.exit_code == 2 and "profile.variants: must be one of" in r.stderr and "did you mean 'rcq'?" in r.stderr
    r = runner.invoke(app, ["train", "--set", "train.epoch=3"])
    assert r.exit_code == 2 and "unknown key 'train.epoch' (did you mean 'train.epochs'?" in r.stderr
