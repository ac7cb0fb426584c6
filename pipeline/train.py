"""DVC stage ``train``: the sweep (every ``sweep.variants`` x ``sweep.seeds`` run) from ``params.yaml``.

Run by ``dvc repro train`` as ``python pipeline/train.py`` from the project root; it calls the same
function as ``alignrank sweep`` (:func:`alignrank.dist.sweep.run_sweep`) and prints its summary JSON.
Finished runs are reused from ``outputs/runs`` (a ``persist: true`` output, so DVC never deletes it), so
a changed param re-trains only the runs whose key it changes. Exit codes: 0 ok, 1 a run failed for good
(after its retries) or another expected error, 2 bad params, 130 interrupted (re-run to resume).
"""

from __future__ import annotations

import json
import sys

import alignrank  # noqa: F401  (offline env before anything else)
from alignrank.config import ParamsError, load_params
from alignrank.dist.sweep import run_sweep
from alignrank.errors import AlignRankError


def main() -> int:
    """Load params.yaml, run the sweep, print its summary."""
    try:
        summary = run_sweep(load_params())
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except AlignRankError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished runs are kept; re-run `dvc repro` to resume", file=sys.stderr)
        return 130
    print(json.dumps(summary, indent=2))
    for f in summary["failed"]:
        print(f"error: run {f['run']} failed after {f['attempts']} attempt(s): {f['error']}", file=sys.stderr)
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
