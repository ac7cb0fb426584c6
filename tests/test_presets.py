"""presets/: each preset is a valid params overlay; the paper preset's [D] numbers are ultralytics' defaults and
its DVC route passes every key."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
from ultralytics.utils import DEFAULT_CFG_DICT

from alignrank.config import flatten, load_params
from alignrank.config.load import read_yaml, safe_yaml
from tests.conftest import REPO

PRESETS = sorted((REPO / "presets").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_preset_is_a_valid_overlay(preset):
    p = load_params(REPO / "params.yaml", set_files=[REPO / "presets" / "paper.yaml", preset])
    assert p.model.scale == "s" and p.train.imgsz == 640


def test_paper_numbers_marked_default_are_ultralytics_defaults():
    """Every line marked [D] holds ultralytics' default.yaml value (for the keys ultralytics has)."""
    section, checked = None, 0
    for line in (REPO / "presets" / "paper.yaml").read_text().splitlines():
        if re.match(r"^\w+:", line):
            section = line.split(":")[0]
        m = re.match(r"^  (\w+): (.+?)\s+# \[D\]", line)
        if m and section in ("train", "loss", "eval") and m.group(1) in DEFAULT_CFG_DICT:
            value = safe_yaml(m.group(2))
            assert value == DEFAULT_CFG_DICT[m.group(1)], (section, m.group(1))
            checked += 1
    assert checked >= 30
    p = load_params(REPO / "params.yaml", set_files=[REPO / "presets" / "paper.yaml"])
    assert (p.train.epochs, p.train.optimizer, p.train.nbs, p.train.amp, p.sweep.seeds) == (500, "SGD", 64, True, (0, 1, 2))
    assert p.ray.gpus_per_run == 1 and p.train.device == "cuda" and p.data.source == "coco_dir"


def test_dvc_route_sets_every_key():
    r = subprocess.run([sys.executable, str(REPO / "presets" / "dvc_exp.py"), str(REPO / "presets" / "paper.yaml"),
                        "-S", "data.coco_dir=/data/coco"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    argv = shlex.split(r.stdout)
    assert argv[:3] == ["dvc", "exp", "run"]
    sets = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-S")
    keys = set(flatten(read_yaml(REPO / "presets" / "paper.yaml")))
    assert set(sets) == keys and sets["data.coco_dir"] == "/data/coco" and sets["sweep.seeds"] == "[0,1,2]"
    bad = subprocess.run([sys.executable, str(REPO / "presets" / "dvc_exp.py"), str(REPO / "presets" / "paper.yaml"),
                          "-S", "train.lr0=5"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.startswith("error: train.lr0: must be")
