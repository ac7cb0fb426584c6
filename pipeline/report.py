"""DVC stage ``report``: result tables, figures, DVC metrics and plot data under ``report.out_dir``
(see alignrank.report.results).

Run by ``dvc repro report`` as ``python pipeline/report.py`` from the project root; prints the one-screen
summary of ``alignrank report`` (the numbers are in ``headline.json`` / ``metrics.json``).
Expected errors print one line and exit 1 (bad data) or 2 (bad params).
"""

from __future__ import annotations

import sys

import alignrank  # noqa: F401  (offline env before anything else)
from alignrank.report.console import report_summary
from alignrank.report.results import run_report
from alignrank.stage_main import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(run_report, render=lambda params, out: report_summary(out)))
