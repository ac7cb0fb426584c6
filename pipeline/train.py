"""DVC stage ``train``: the sweep (every ``sweep.variants`` x ``sweep.seeds`` run) from ``params.yaml``.

Run by ``dvc repro train`` as ``python pipeline/train.py`` from the project root; it calls the same
function as ``alignrank sweep`` (:func:`alignrank.runs.sweep.run_sweep`) and prints the same one-screen
summary (the JSON is in ``<train.out_dir>/sweep.json``).
Finished runs are reused from ``outputs/runs`` (a ``persist: true`` output, so DVC never deletes it), so
a changed param re-trains only the runs whose key it changes. Exit codes: 0 ok, 1 a run failed for good
(after its retries) or another expected error, 2 bad params, 130 interrupted (re-run to resume).
"""

from __future__ import annotations

import sys

import alignrank  # noqa: F401  (offline env before anything else)
from alignrank.report.console import sweep_summary
from alignrank.runs.sweep import run_sweep
from alignrank.stage_main import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(run_sweep, render=sweep_summary))
