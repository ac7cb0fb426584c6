"""DVC stage ``tune`` (optional): the Ray Tune search of ``params.yaml``'s ``tune`` section.

Defined in ``tune/dvc.yaml``, NOT in the root ``dvc.yaml``, so the default ``dvc repro`` never runs it.
Run it from the project root with ``dvc repro tune/dvc.yaml`` (``dvc repro tune`` by stage name only
searches ``./dvc.yaml``; ``dvc repro -P`` would run every pipeline, this one included). It calls the same
function as ``alignrank tune`` (:func:`alignrank.tune.search.run_tune`), resuming an interrupted search of
the same params automatically (the CLI needs ``--resume`` for that), and prints its summary JSON.
Outputs: ``results/tune/best.yaml`` (apply with ``alignrank sweep --set-file results/tune/best.yaml``),
``trials.md``/``trials.csv``, ``metric_vs_params.png`` and ``summary.json``. The Ray Tune state lives in
``tune.storage_dir`` (``outputs/tune``), which DVC does not track, so it survives a re-run.
Exit codes: 0 ok, 1 interrupted/failed search or another expected error, 2 bad params or search space.
"""

from __future__ import annotations

import sys

import alignrank  # noqa: F401  (offline env before anything else)
from alignrank.stage_main import stage_main
from alignrank.tune.search import run_tune, search_status

if __name__ == "__main__":
    sys.exit(stage_main(lambda p: run_tune(p, resume=search_status(p) == "interrupted"), hint='re-run `dvc repro tune/dvc.yaml` to resume'))
