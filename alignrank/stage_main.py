"""The shared ``main`` of the DVC stage scripts in ``pipeline/``: load params.yaml, run one stage
function, print its JSON summary, map expected errors to one line and an exit code.

Exit codes: 0 ok, 1 a failure (an expected :class:`~alignrank.errors.AlignRankError`, or a summary whose
``failed`` list is non-empty), 2 bad params, 130 interrupted (re-run the same command to resume).

Examples:
    >>> stage_main(lambda params: {"runs": 2, "failed": []})  # pipeline/<stage>.py: sys.exit(stage_main(run_x))
    {
      "runs": 2,
      "failed": []
    }
    0
    >>> from alignrank.errors import DataError
    >>> def stage(params):
    ...     raise DataError("data/train.json: not found; run `alignrank data`")
    >>> stage_main(stage)  # the one line `error: data/train.json: ...` goes to stderr
    1
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

from alignrank.config import ParamsError, load_params
from alignrank.config.schema import Params
from alignrank.errors import AlignRankError


def stage_main(fn: Callable[[Params], Any], *, hint: str = "re-run `dvc repro` to resume",
               render: Callable[[Params, Any], str] | None = None) -> int:
    """Run ``fn(load_params())`` as a DVC stage; returns the process exit code.

    ``render(params, summary)``: the text printed instead of the JSON summary (a one-screen summary).
    """
    from alignrank.env import setup_offline

    setup_offline()
    try:
        params = load_params()
        summary = fn(params)
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except AlignRankError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"interrupted: finished work is kept; {hint}", file=sys.stderr)
        return 130
    if summary is not None:
        print(render(params, summary) if render is not None else json.dumps(summary, indent=2, default=str))
    failed = summary.get("failed") if isinstance(summary, dict) else None
    for f in failed or ():
        print(f"error: run {f['run']} failed after {f['attempts']} attempt(s): {f['error']}", file=sys.stderr)
    return 1 if failed else 0
