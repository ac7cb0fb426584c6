"""``data.source: coco_dir``: COCO-format folders on disk (official layout or per-split JSON + images), images
linked not copied, converted exactly as the COCO 2017 download; per-source dataset folders side by side."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from alignrank.config import load_params
from alignrank.config.fields import ParamsError
from alignrank.data import coco_dir as coco_dir_mod
from alignrank.data.build import run_data
from alignrank.errors import DataError
from tests.conftest import REPO, SHARED_COCO128, set_args
from tests.data.coco_folder import make_coco_dir

pytestmark = pytest.mark.usefixtures("coco128")


def _params(**over):
    return load_params(REPO / "params.yaml", {f"data.{k}": v for k, v in over.items()})


@pytest.fixture
def coco_folder(tmp_path):
    make_coco_dir(tmp_path / "coco", n_train=100)
    return tmp_path / "coco"


def test_official_layout_links_images_and_converts(coco_folder, tmp_path):
    root = tmp_path / "ds"
    s = run_data(_params(source="coco_dir", coco_dir=str(coco_folder), root=str(root)))
    assert s["source"] == "coco_dir" and s["counts"]["train"]["images"] == 100 and s["counts"]["val"]["images"] == 28
    manifest = json.loads((root / "manifest.json").read_text())
    for split, n in (("train", 100), ("val", 28)):
        src = manifest["inputs"][split]
        assert src["json"] == str(coco_folder / "annotations" / f"instances_{split}2017.json")
        assert src["images"] == str(coco_folder / f"{split}2017") and src["linked"] == {"hard": n, "symlink": 0}
        for img in (root / "images" / split).iterdir():  # a hard link to the real file behind the symlink
            real = SHARED_COCO128 / "train2017" / img.name
            assert not img.is_symlink() and img.stat().st_ino == real.stat().st_ino
    out = json.loads((root / "annotations" / "instances_val.json").read_text())
    src = json.loads((coco_folder / "annotations" / "instances_val2017.json").read_text())
    assert out["images"] == src["images"] and out["annotations"] == src["annotations"]
    assert run_data(_params(source="coco_dir", coco_dir=str(coco_folder), root=str(root)))["cached"]


def test_same_output_as_the_coco2017_download(coco128_www, serve, tmp_path):
    """coco128 split 96/32 as a folder and as the official zips on 127.0.0.1: byte-identical labels and JSONs."""
    make_coco_dir(tmp_path / "coco", n_train=96)
    a = tmp_path / "from_dir"
    run_data(_params(source="coco_dir", coco_dir=str(tmp_path / "coco"), root=str(a)))
    b = tmp_path / "from_zip"
    run_data(_params(source="coco2017", url=serve(coco128_www).url, root=str(b), retries=0))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.parts[len(a.parts)] in
                   ("images", "labels", "annotations") and p.suffix != ".cache")
    assert len(files) == 2 * 128 + 2
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    fp = {r: json.loads((r / "manifest.json").read_text())["fingerprint"] for r in (a, b)}
    assert fp[a] == fp[b]  # the fingerprint hashes the bytes read, not where they came from


def test_per_split_paths_and_symlink_fallback(coco_folder, tmp_path, monkeypatch):
    """Any COCO-format dataset: per-split JSON + image folder anywhere; no hard link possible -> symlinks."""
    other = tmp_path / "other"
    (other / "ann").mkdir(parents=True)
    for split in ("train", "val"):
        os.rename(coco_folder / "annotations" / f"instances_{split}2017.json", other / "ann" / f"{split}.json")
    real_link = os.link

    def no_link(src, dst, **kw):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(coco_dir_mod.os, "link", no_link)
    root = tmp_path / "ds"
    s = run_data(_params(source="coco_dir", root=str(root), train_json=str(other / "ann" / "train.json"),
                         val_json=str(other / "ann" / "val.json"), train_images=str(coco_folder / "train2017"),
                         val_images=str(coco_folder / "val2017")))
    monkeypatch.setattr(coco_dir_mod.os, "link", real_link)
    assert s["counts"]["val"]["images"] == 28
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["inputs"]["val"]["linked"] == {"hard": 0, "symlink": 28}
    img = next((root / "images" / "val").iterdir())
    assert img.is_symlink() and os.readlink(img) == str(coco_folder / "val2017" / img.name)


def test_edited_json_rebuilds_and_subset(coco_folder, tmp_path):
    root = tmp_path / "ds"
    p = _params(source="coco_dir", coco_dir=str(coco_folder), root=str(root))
    first = run_data(p)
    ann = coco_folder / "annotations" / "instances_val2017.json"
    data = json.loads(ann.read_text())
    data["annotations"] = data["annotations"][1:]  # one box less
    ann.write_text(json.dumps(data))
    again = run_data(_params(source="coco_dir", coco_dir=str(coco_folder), root=str(root)))
    assert not again["cached"] and again["params_hash"] != first["params_hash"]
    assert again["fingerprint"] != first["fingerprint"]
    assert again["counts"]["val"]["annotations"] == first["counts"]["val"]["annotations"] - 1
    sub = run_data(_params(source="coco_dir", coco_dir=str(coco_folder), root=str(tmp_path / "sub"), subset=10))
    assert sub["counts"]["train"]["images"] == 10 and sub["counts"]["val"]["images"] == 10


def test_sources_side_by_side_under_the_default_root(coco_folder, tmp_path):
    """The default root is per source: building coco_dir never rebuilds the synthetic dataset, and back."""
    syn = {"source": "synthetic", "num_train": 4, "num_val": 2, "imgsz": 64}
    a = run_data(_params(**syn))
    b = run_data(_params(source="coco_dir", coco_dir=str(coco_folder)))
    assert a["root"] != b["root"] and a["root"].startswith(str(tmp_path / "data" / "synthetic-"))
    assert b["root"].startswith(str(tmp_path / "data" / "coco_dir-"))
    assert run_data(_params(**syn))["cached"] and run_data(_params(source="coco_dir", coco_dir=str(coco_folder)))["cached"]
    other = run_data(_params(source="coco_dir", coco_dir=str(coco_folder), subset=4))
    assert other["root"] != b["root"]  # other settings of the source: its own folder


def test_missing_inputs_one_line(tmp_path):
    with pytest.raises(ParamsError, match="data.source=coco_dir needs data.coco_dir"):
        _params(source="coco_dir")
    with pytest.raises(DataError, match=r"train annotation file not found; check data.coco_dir") as e:
        run_data(_params(source="coco_dir", coco_dir=str(tmp_path / "nowhere"), root=str(tmp_path / "ds")))
    assert "\n" not in str(e.value)
    r = subprocess.run([str(Path(sys.executable).parent / "alignrank"), "data",
                        *set_args({"data.source": "coco_dir", "data.coco_dir": str(tmp_path / "nowhere")})],
                       capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "ALIGNRANK_ROOT": str(tmp_path)})
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0 and "annotation file not found" in r.stderr
