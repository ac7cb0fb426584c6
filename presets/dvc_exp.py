"""Print (or run) the ``dvc exp run`` command that applies a params preset: one ``-S key=value`` per key.

A DVC experiment changes ``params.yaml`` in its own workspace, so the pipeline (``dvc.yaml``) runs with the
preset's values and DVC records them with the experiment::

    python presets/dvc_exp.py presets/paper.yaml -S data.coco_dir=/data/coco          # print the command
    python presets/dvc_exp.py presets/paper.yaml -S data.coco_dir=/data/coco --run    # run it

Values are validated first (``alignrank.config``: the same check as ``alignrank --set-file``), so a bad preset
fails here in one line rather than in the middle of ``dvc exp run``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path


def exp_command(preset: Path, extra: list[str], name: str | None = None) -> list[str]:
    """``["dvc", "exp", "run", "-S", "k=v", ...]`` for ``preset`` then the ``extra`` ``key=value`` items."""
    from alignrank.config import flatten, load_params
    from alignrank.config.load import parse_overrides, read_yaml

    values = {**flatten(read_yaml(preset)), **parse_overrides(extra)}
    load_params(None, values)  # validate: one line naming the key if anything is wrong
    cmd = ["dvc", "exp", "run", *(["--name", name] if name else [])]
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value).replace(" ", "")
        cmd += ["-S", f"{key}={text}"]
    return cmd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset", type=Path)
    ap.add_argument("-S", "--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="one more param after the preset (repeatable), e.g. data.coco_dir=/data/coco")
    ap.add_argument("--name", help="experiment name (dvc exp run --name)")
    ap.add_argument("--run", action="store_true", help="run the command instead of printing it")
    args = ap.parse_args()
    try:
        cmd = exp_command(args.preset, args.extra, args.name)
    except ValueError as e:  # ParamsError: one line
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.run:
        print(shlex.join(cmd))
        return 0
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
