"""DVC stage ``data``: build the dataset under ``data.root`` from ``params.yaml`` (see alignrank.data.build).

Run by ``dvc repro data`` as ``python pipeline/data.py`` from the project root; prints the summary JSON.
Expected errors print one line and exit 1 (bad data) or 2 (bad params).
"""

from __future__ import annotations

import sys

import alignrank  # noqa: F401  (offline env before anything else)
from alignrank.data.build import run_data
from alignrank.stage_main import stage_main

if __name__ == "__main__":
    sys.exit(stage_main(run_data))
