"""DVC stage ``evaluate``: evaluate every (variant, seed) run of the sweep (see alignrank.eval.runs).

Run by ``dvc repro evaluate`` as ``python pipeline/evaluate.py`` from the project root; writes
``outputs/eval/summary.json`` (DVC metrics) and ``outputs/eval/runs/``, prints the summary JSON.
Expected errors print one line and exit 1 (bad data) or 2 (bad params).
"""

from __future__ import annotations

import sys

import alignrank  # noqa: F401  (offline env before anything else)
from alignrank.eval.runs import run_evaluate
from alignrank.stage_main import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(run_evaluate))
