"""DVC stage ``profile``: params, GFLOPs, latency, memory and training throughput of ``profile.variants``.

Run by ``dvc repro profile`` as ``python pipeline/profiling.py`` from the project root (not named
``profile.py``: Ray workers inherit the script folder on sys.path, which would shadow the stdlib module); prints the table and
writes ``outputs/profile/profile.json`` (see alignrank.profile.compare). Expected errors print one line and
exit 1 (failure) or 2 (bad params).
"""

from __future__ import annotations

import sys

import alignrank  # noqa: F401  (offline env before anything else)
from alignrank.profile.compare import run_profile
from alignrank.stage_main import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(lambda p: run_profile(p, json_out="outputs/profile/profile.json")))
