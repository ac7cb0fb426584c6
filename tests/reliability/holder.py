"""A lock held by another process (what a second job meets), released when the ``with`` block ends."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from tests.conftest import REPO

_SCRIPT = """
import sys
from pathlib import Path
from alignrank.locks import hold
folder, lock_file, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
with hold(folder, lock_file, wait=0, mode=mode):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes stdin
"""


@contextlib.contextmanager
def held(folder: Path, lock_file: Path, mode: str = "exclusive") -> Iterator[subprocess.Popen]:
    """Hold ``lock_file`` (``mode``) in a child process; yields the process (its ``pid`` is the holder's)."""
    p = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(folder), str(lock_file), mode], cwd=REPO,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        yield p
    finally:
        p.stdin.close()
        p.wait(timeout=30)
