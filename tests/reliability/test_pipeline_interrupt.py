"""Drill 1: Ctrl-C (SIGINT to the process group) during ``dvc repro`` in a copy of the project, then a re-run.

The interrupted project must finish on the second ``dvc repro`` (finished runs reused, the interrupted one
resumed from its ``last.pt``), its result tables must match those of an uninterrupted ``dvc repro`` of a second
copy, a third ``dvc repro`` must be a no-op, and no process of the copies (Ray included) may be left behind.
The fast variant interrupts ``alignrank sweep`` alone.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.reliability

TINY = {  # the tiny budget of the drill (CPU, seconds per run)
    "data": {"num_train": 16, "num_val": 8, "imgsz": 64},
    "model": {"scale": "n"},
    "train": {"imgsz": 64, "epochs": 3, "batch": 8},
    "sweep": {"variants": ["baseline", "rcq"], "seeds": [0]},
    "ray": {"num_cpus": 2, "max_concurrent": 2},
    "profile": {"variants": ["baseline", "rcq"], "scale": "n", "imgsz": 64, "repeats": 1, "warmup": 0,
                "onnx": False, "train_steps": 1, "train_imgsz": 64, "train_batch": 2},
    "report": {"bootstrap": 100},
}


def _copy_project(dst: Path) -> Path:
    """The project's tracked + untracked-not-ignored files (working-tree versions), ``git init``, tiny params."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file() and not rel.startswith(("tests/", "docs/", "benchmarks/")):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    assert (dst / ".dvc" / "config").is_file() and (dst / "alignrank" / "io.py").is_file()
    p = yaml.safe_load((dst / "params.yaml").read_text())
    for section, values in TINY.items():
        p[section].update(values)
    (dst / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True, timeout=60)
    return dst


def _env(root: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ALIGNRANK_ROOT", "MLFLOW_TRACKING_URI", "ALIGNRANK_FAULT", "PYTHONPATH")}
    # PYTHONPATH: the copy's own package (the venv's editable install points at the repo, which others edit)
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(root), **extra)
    return env


def _procs_of(root: Path) -> list[str]:
    """Live processes started for ``root`` (their environment names the copy), Ray's included."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if str(root).encode() in (d / "environ").read_bytes():
                cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                out.append(f"{d.name} {cmdline[:120]}")
        except OSError:
            continue
    return out


def _no_procs_left(root: Path, timeout: float = 60) -> None:
    t = time.time()
    while _procs_of(root) and time.time() - t < timeout:
        time.sleep(1)
    assert not _procs_of(root), _procs_of(root)


def _kill_group(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)


def _run(cmd: list[str], root: Path, timeout: float = 900, **env: str) -> tuple[str, float]:
    t = time.time()
    p = subprocess.Popen(cmd, cwd=root, env=_env(root, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    finally:
        _kill_group(p)
    assert p.returncode == 0, out[-4000:]
    return out, time.time() - t


def _interrupt(cmd: list[str], root: Path, ready, timeout: float = 600, **env: str) -> tuple[int, str]:
    """Start ``cmd`` in its own process group, SIGINT the group once ``ready()``, wait (bounded) for it to exit."""
    p = subprocess.Popen(cmd, cwd=root, env=_env(root, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    log = root / "interrupted.log"
    try:
        t = time.time()
        while not ready():
            assert p.poll() is None, f"exited before the interrupt point: {p.communicate()[0][-4000:]}"
            assert time.time() - t < timeout, "interrupt point never reached"
            time.sleep(0.5)
        os.killpg(p.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole foreground group
        out, _ = p.communicate(timeout=180)
    finally:
        _kill_group(p)
    log.write_text(out)
    return p.returncode, out


def _ap_tables(root: Path) -> dict[str, dict[str, dict[str, str]]]:
    """``{table: {row label: {AP-type column: value}}}`` of ``results/tables/*.csv``."""
    out = {}
    for f in sorted((root / "results" / "tables").glob("*.csv")):
        rows = list(csv.DictReader(f.open()))
        assert rows, f
        label = next(iter(rows[0]))
        out[f.stem] = {r[label]: {k: v for k, v in r.items() if "AP" in k} for r in rows}
    return out


def _curve(root: Path, prefix: str) -> list[dict[str, str]]:
    """Per-epoch rows of the run's ``results.csv`` without the wall-time column."""
    (f,) = (root / "outputs" / "runs").glob(f"{prefix}-*/results.csv")
    return [{k: v for k, v in r.items() if k != "time"} for r in csv.DictReader(f.open())]


def _held(root: Path, prefix: str) -> bool:
    """A run folder ``prefix-*`` has saved epoch 1 (``last.pt``) and is held there by the fault hook."""
    return any((d / "weights" / "last.pt").is_file() and (d / ".fault-hold-1").exists()
               for d in (root / "outputs" / "runs").glob(f"{prefix}-*"))


def _done(root: Path, prefix: str) -> bool:
    return any((d / "done.json").is_file() for d in (root / "outputs" / "runs").glob(f"{prefix}-*"))


@pytest.mark.long
def test_sigint_during_dvc_repro_then_rerun_matches_uninterrupted(tmp_path):
    dvc = [str(BIN / "dvc"), "repro"]
    a, b = _copy_project(tmp_path / "a"), _copy_project(tmp_path / "b")
    try:
        # a: Ctrl-C while the baseline run is mid-training (held after epoch 1 of 3, its first attempt only)
        t0 = time.time()
        def held_and_rcq_done() -> bool:
            return _held(a, "baseline-s0") and (_done(a, "rcq-s0") or time.time() - t0 > 400)

        code, out = _interrupt(dvc, a, held_and_rcq_done, ALIGNRANK_FAULT="hold:baseline-s0:1")
        assert code != 0 and not (a / "outputs" / "runs" / "sweep.json").exists(), out[-3000:]
        assert not (a / "results" / "tables").exists()
        _no_procs_left(a)
        out, _ = _run(dvc, a)
        summary = json.loads((a / "outputs" / "runs" / "sweep.json").read_text())
        assert summary["failed"] == [] and len(summary["runs"]) == 2, summary
        (base,) = [r for r in summary["runs"] if r["variant"] == "baseline"]
        meta = json.loads((Path(base["run_dir"]) / "run.json").read_text())
        assert meta["attempts"] == 2 and meta["start_state"] == "resume", meta  # resumed from its last.pt
        _no_procs_left(a)

        _run(dvc, b)  # b: the same pipeline, never interrupted
        _no_procs_left(b)
        ta, tb = _ap_tables(a), _ap_tables(b)
        assert ta.keys() == tb.keys() and all(ta[k].keys() == tb[k].keys() for k in ta)
        # resume is exact on CPU (AlignRankTrainer saves RNG + fp32 model/EMA/optimizer beside last.pt and
        # reseeds the image order per epoch), so the interrupted pipeline's tables equal the uninterrupted one's;
        # AP is ~0 at this budget, so the per-epoch training losses of every run are compared too
        assert ta == tb
        assert _curve(a, "rcq-s0") == _curve(b, "rcq-s0")
        ca, cb = _curve(a, "baseline-s0"), _curve(b, "baseline-s0")
        assert len(ca) == len(cb) == 3 and ca == cb

        out, seconds = _run(dvc, a)  # nothing changed: a no-op
        assert "didn't change" in out and "Running stage" not in out and seconds < 10, (seconds, out[-2000:])
    finally:
        for root in (a, b):
            for pid_line in _procs_of(root):
                os.kill(int(pid_line.split()[0]), signal.SIGKILL)


def test_sigint_during_alignrank_sweep_then_rerun_resumes(tmp_path):
    """Fast variant: Ctrl-C ``alignrank sweep`` (one tiny run held after epoch 1) -> exit 130; a re-run resumes."""
    root = _copy_project(tmp_path / "p")
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["train"].update(epochs=2)
    p["sweep"].update(variants=["baseline"])
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    try:
        _run([sys.executable, "pipeline/data.py"], root, timeout=300)
        cmd = [str(BIN / "alignrank"), "sweep"]
        code, out = _interrupt(cmd, root, lambda: _held(root, "baseline-s0"), timeout=400,
                               ALIGNRANK_FAULT="hold:baseline-s0:1")
        assert code == 130, out[-3000:]
        (rd,) = (root / "outputs" / "runs").glob("baseline-s0-*")
        assert not (rd / "done.json").exists() and (rd / "weights" / "last.pt").is_file()
        _no_procs_left(root)
        _run(cmd, root, timeout=400)
        meta = json.loads((rd / "run.json").read_text())
        assert (rd / "done.json").is_file() and meta["attempts"] == 2 and meta["start_state"] == "resume", meta
        _no_procs_left(root)
    finally:
        for pid_line in _procs_of(root):
            os.kill(int(pid_line.split()[0]), signal.SIGKILL)
