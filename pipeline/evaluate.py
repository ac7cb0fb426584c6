"""DVC stage ``evaluate``: evaluate every (variant, seed) run of the sweep (see alignrank.eval.stage).

Run by ``dvc repro evaluate`` as ``python pipeline/evaluate.py`` from the project root; writes
``outputs/eval/summary.json`` (DVC metrics) and ``outputs/eval/runs/``, prints the summary JSON.
Expected errors print one line and exit 1 (bad data) or 2 (bad params).
"""

from __future__ import annotations

import json
import sys

import alignrank  # noqa: F401  (offline env before anything else)
from alignrank.config import ParamsError, load_params
from alignrank.errors import AlignRankError
from alignrank.eval.stage import run_evaluate


def main() -> int:
    """Load params.yaml, run the stage, print its summary."""
    try:
        summary = run_evaluate(load_params())
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
