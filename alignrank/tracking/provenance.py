"""Provenance tags of a run: git commit and dirty flag, host, DVC stage.

Computed once by the driver (the sweep passes them to its workers, which may lack git). ``git_dirty``
means a TRACKED file differs from the commit (edited, staged, deleted); untracked files do not count
(``dvc.lock`` written by ``dvc repro``, outputs, caches), so a pristine clone after a pipeline run is
``git_dirty=false``.

Examples:
    >>> sorted(provenance_tags())
    ['dvc_stage', 'git_commit', 'git_dirty', 'host']
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def code_root() -> Path:
    """The checkout holding the running ``alignrank`` package (the code whose version is tagged)."""
    return Path(__file__).resolve().parents[2]  # <checkout>/alignrank/tracking/provenance.py


def git_info(root: Path | None = None) -> dict[str, str]:
    """``{"git_commit": sha|'unknown', "git_dirty": 'true'|'false'|'unknown'}`` of the code's checkout.

    Dirty = a tracked file differs from ``HEAD`` (staged or not); untracked files are ignored.
    """
    root = Path(root or code_root())
    commit = _git(["rev-parse", "HEAD"], root)
    status = _git(["status", "--porcelain", "--untracked-files=no"], root) if commit else None
    return {
        "git_commit": commit or "unknown",
        "git_dirty": "unknown" if status is None else str(bool(status)).lower(),
    }


def provenance_tags(root: Path | None = None) -> dict[str, str]:
    """Git commit/dirty, host name and DVC stage (env ``DVC_STAGE``, or ``cli``)."""
    return {**git_info(root), "host": socket.gethostname(), "dvc_stage": os.environ.get("DVC_STAGE") or "cli"}
