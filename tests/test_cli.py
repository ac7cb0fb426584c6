"""CLI surface: commands listed, params errors are one line with exit code 2 and no traceback."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from alignrank import __version__
from alignrank.cli import app
from tests.conftest import REPO

COMMANDS = ("data", "train", "sweep", "sync", "tune", "evaluate", "profile", "report")
HEAVY = ("torch", "ultralytics", "mlflow", "ray")

runner = CliRunner()


def test_help_lists_every_command():
    out = runner.invoke(app, ["--help"]).output
    for cmd in COMMANDS:
        assert cmd in out


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
