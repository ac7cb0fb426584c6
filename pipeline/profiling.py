"""DVC stage ``profile``: params, GFLOPs, latency, memory and training throughput of ``profile.variants``.

Run by ``dvc repro profile`` as ``python pipeline/profiling.py`` from the project root (not named
``profile.py``: Ray workers inherit the script folder on sys.path, which would shadow the stdlib module); prints the table and
writes ``outputs/profile/profile.json`` (see alignrank.profile.stage). Expected errors print one line and
exit 1 (failure) or 2 (bad params).
"""

from __future__ import annotations

import sys
from pathlib import Path

import alignrank  # noqa: F401  (offline env before anything else)
from alignrank.config import ParamsError, load_params
from alignrank.errors import AlignRankError
from alignrank.profile.stage import run_profile

OUT = Path("outputs/profile/profile.json")


def main() -> int:
    """Load params.yaml, profile the variants, write the metrics file."""
    try:
        run_profile(load_params(), json_out=OUT)
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except AlignRankError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
