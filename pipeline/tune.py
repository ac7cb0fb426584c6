"""DVC stage ``tune`` (optional): the Ray Tune search of ``params.yaml``'s ``tune`` section.

Defined in ``tune/dvc.yaml``, NOT in the root ``dvc.yaml``, so the default ``dvc repro`` never runs it.
Run it from the project root with ``dvc repro tune/dvc.yaml`` (``dvc repro tune`` by stage name only
searches ``./dvc.yaml``; ``dvc repro -P`` would run every pipeline, this one included). It calls the same
function as ``alignrank tune`` (:func:`alignrank.dist.tune.run_tune`), resuming an interrupted search of
the same params automatically (the CLI needs ``--resume`` for that), and prints its summary JSON.
Outputs: ``results/tune/best.yaml`` (apply with ``alignrank sweep --set-file results/tune/best.yaml``),
``trials.md``/``trials.csv``, ``metric_vs_params.png`` and ``summary.json``. The Ray Tune state lives in
``tune.storage_dir`` (``outputs/tune``), which DVC does not track, so it survives a re-run.
Exit codes: 0 ok, 1 interrupted/failed search or another expected error, 2 bad params or search space.
"""

from __future__ import annotations

import json
import sys

import alignrank  # noqa: F401  (offline env before anything else)
from alignrank.config import ParamsError, load_params
from alignrank.dist.tune import run_tune, search_status
from alignrank.errors import AlignRankError


def main() -> int:
    """Load params.yaml, run (or resume) the search, print its summary."""
    try:
        params = load_params()
        summary = run_tune(params, resume=search_status(params) == "interrupted")
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except AlignRankError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished trials are kept; re-run `dvc repro tune/dvc.yaml` to resume", file=sys.stderr)
        return 130
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
