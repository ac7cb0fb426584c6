"""DVC stage ``report``: result tables, figures, DVC metrics and plot data under ``report.out_dir``
(see alignrank.report.stage).

Run by ``dvc repro report`` as ``python pipeline/report.py`` from the project root; prints the summary JSON.
Expected errors print one line and exit 1 (bad data) or 2 (bad params).
"""

from __future__ import annotations

import json
import sys

import alignrank  # noqa: F401  (offline env before anything else)
from alignrank.config import ParamsError, load_params
from alignrank.errors import AlignRankError
from alignrank.report.stage import run_report


def main() -> int:
    """Load params.yaml, run the stage, print its summary."""
    try:
        summary = run_report(load_params())
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except AlignRankError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
