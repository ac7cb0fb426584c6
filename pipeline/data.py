"""DVC stage ``data``: build the dataset under ``data.root`` from ``params.yaml`` (see alignrank.data.stage).

Run by ``dvc repro data`` as ``python pipeline/data.py`` from the project root; prints the summary JSON.
Expected errors print one line and exit 1 (bad data) or 2 (bad params).
"""

from __future__ import annotations

import json
import sys

import alignrank  # noqa: F401  (offline env before anything else)
from alignrank.config import ParamsError, load_params
from alignrank.data.stage import run_data
from alignrank.errors import AlignRankError


def main() -> int:
    """Load params.yaml, run the data stage, print its summary."""
    try:
        summary = run_data(load_params())
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except AlignRankError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
