"""The data stage: ``run_data(params)`` builds the dataset under ``data.root`` (synthetic, COCO 2017 or a
COCO-format folder: :mod:`alignrank.data.coco_dir`).

Output layout (the contract every later stage reads)::

    <data.root>/dataset.yaml                      ultralytics data YAML (+ category_ids, train_json, val_json)
    <data.root>/images/{train,val}/*.jpg          image id == int(file stem)
    <data.root>/labels/{train,val}/*.txt          YOLO "cls cx cy w h" (normalized; empty file = background)
    <data.root>/annotations/instances_{train,val}.json   COCO instances (the original records, bad ones removed)
    <data.root>/manifest.json                     fingerprint, params hash, counts, skipped-record report,
                                                  EXIF-oriented images by name (see coco_format)
    <data.root>/files.json                        size + sha256 of every fingerprinted file (alignrank.data.check)
    <data.root>/.alignrank-dataset.json           the stage's marker: this folder is ours to replace

The dataset is built in a sibling folder ``.<root name>.building-<pid>-<random>`` and swapped in at the
end, so an interrupted run never leaves a half dataset under ``data.root``. ``manifest.json`` has no times
or absolute paths: the same params give a byte-identical folder (bar ``dataset.yaml``'s absolute ``path``).
If ``manifest.json`` already records the same params hash and the files are there, the stage returns
at once (``"cached": true``), only rewriting ``dataset.yaml`` if the folder moved.

The stage holds the dataset's lock (:mod:`alignrank.data.lock`) while it checks, builds and swaps: it never
rebuilds a dataset a run or a sweep is using (one ``busy:`` line, or it waits: ``train.lock_wait``).

The stage only ever replaces a folder it wrote: one carrying its marker file ``.alignrank-dataset.json``
(fields :data:`MARKER`), or a folder written by an earlier version of the stage (nothing in it but the
layout above, with our ``manifest.json``). A missing or empty ``data.root`` is fine; anything else is
refused with one line naming the folder, and nothing in it is touched.

The fingerprint is sha256 over the sorted relative paths and bytes of ``images/``, ``labels/`` and
``annotations/`` (training runs key their cache on it). ``files.json`` records each of those files' size and
sha256: a re-run whose params are unchanged checks the files against it (:mod:`alignrank.data.check`: one
``stat`` per file, a hash only for a file whose size or mtime moved) and rebuilds a dataset edited by hand,
so a cached answer always describes the files; training refuses such a dataset the same way.

Examples:
    >>> from alignrank.config import load_params
    >>> import tempfile
    >>> p = load_params(None, {"data.root": tempfile.mkdtemp() + "/d", "data.num_train": 4, "data.num_val": 2,
    ...                        "data.imgsz": 64})
    >>> s = run_data(p)
    >>> s["counts"]["train"]["images"], s["cached"], run_data(p)["cached"]
    (4, False, True)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path

import yaml

from alignrank.config import params_hash
from alignrank.config.schema import DataParams, Params
from alignrank.data.check import changed_files, remember_stats, write_file_table
from alignrank.data.coco_format import category_ids, category_names, public_json, validate_coco, yolo_labels
from alignrank.data.exif import reset_orientation
from alignrank.data.files import FINGERPRINT_PATTERNS
from alignrank.data.lock import dataset_lock
from alignrank.errors import DataError
from alignrank.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, resolve_path

LOGGER = logging.getLogger("alignrank.data")
DATA_VERSION = 2  # bump when the generator or the converter changes its output (2: EXIF orientation reset)
MARKER_NAME = ".alignrank-dataset.json"
MARKER = {"written_by": "alignrank data stage", "marker_version": 1}  # fields only the stage writes
LAYOUT = ("annotations", "dataset.yaml", "images", "labels", "manifest.json")  # a dataset's entries (pre-marker)
SPLITS = ("train", "val")


def resolve_root(dp: DataParams) -> Path:
    """``data.root`` as an absolute path (relative paths are relative to the project root)."""
    return resolve_path(dp.root).resolve()


def content_params(dp: DataParams) -> dict:
    """The ``data`` params that change the dataset's content (what the params hash covers); for ``coco_dir``
    also the sha256 of the instances JSONs read (an edited JSON rebuilds the dataset)."""
    out = {"version": DATA_VERSION, **dp.source_settings()}
    if dp.source == "coco_dir":
        from alignrank.data.coco_dir import input_digests

        out["inputs"] = input_digests(dp)
    return out


def _dataset_yaml(root: Path, manifest: dict) -> str:
    doc = {
        "path": str(root),
        "train": "images/train",
        "val": "images/val",
        "nc": len(manifest["names"]),
        "names": dict(enumerate(manifest["names"])),
        "category_ids": list(manifest["category_ids"]),
        "train_json": "annotations/instances_train.json",
        "val_json": "annotations/instances_val.json",
    }
    head = "# written by the data stage (alignrank.data.build); see manifest.json\n"
    return head + yaml.safe_dump(doc, sort_keys=False)


def _summary(root: Path, manifest: dict, *, cached: bool, seconds: float, changed: int = 0) -> dict:
    return {
        "source": manifest["source"],
        "root": str(root),
        "dataset_yaml": str(root / "dataset.yaml"),
        "manifest": str(root / "manifest.json"),
        "fingerprint": manifest["fingerprint"],
        "params_hash": manifest["params_hash"],
        "nc": len(manifest["names"]),
        "counts": manifest["counts"],
        "skipped": {s: {k: v["count"] for k, v in r.items()} for s, r in manifest["skipped"].items()},
        "exif_orientation": manifest.get("exif_orientation", {}),
        "cached": cached,
        "rebuilt_changed_files": changed,
        "seconds": round(seconds, 3),
    }


def _cached(root: Path, key: str) -> dict | None:
    """The manifest of a complete dataset built with params hash ``key``, else None."""
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("params_hash") != key:
        return None
    for split in SPLITS:
        n = manifest.get("counts", {}).get(split, {}).get("images")
        for sub, pat in (("images", "*"), ("labels", "*.txt")):
            d = root / sub / split
            if not d.is_dir() or sum(1 for _ in d.glob(pat)) != n:
                return None
        if not (root / "annotations" / f"instances_{split}.json").is_file():
            return None
    return manifest


def _reset_orientations(img_dir: Path, split: str, exif: dict[str, dict]) -> None:
    """Set the EXIF orientation of the images whose boxes describe their stored pixels to 1 (lossless: the tag
    only), so that OpenCV (training, evaluation) loads the frame of the boxes; one warning per split."""
    reset = sorted(n for n, e in exif.items() if e["action"] == "reset")
    for name in reset:
        path = img_dir / name
        atomic_write_bytes(path, reset_orientation(path.read_bytes()))  # a new file: never writes through a link
    if exif:
        LOGGER.warning(f"{split}: {len(exif)} image(s) carry an EXIF orientation ({len(reset)} reset to 1 because "
                       f"their boxes describe the stored pixels, {len(exif) - len(reset)} kept because their boxes "
                       f"describe the turned image; first: {sorted(exif)[0]}); listed in manifest.json")


def _build_split(build: Path, split: str, data: dict) -> tuple[dict, dict, dict]:
    """Validate, prune skipped images, write labels + JSON of one split; return (clean, counts, report)."""
    img_dir = build / "images" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    clean, report = validate_coco(data, image_dir=img_dir)
    report.warn(split)
    _reset_orientations(img_dir, split, clean["_exif"])
    kept = {im["file_name"] for im in clean["images"]}
    for f in img_dir.iterdir():
        if f.name not in kept:
            f.unlink()  # extracted/generated but skipped: not a background image for ultralytics
    lab_dir = build / "labels" / split
    lab_dir.mkdir(parents=True, exist_ok=True)
    names = {im["id"]: im["file_name"] for im in clean["images"]}
    lines = yolo_labels(clean)
    for iid, rows in lines.items():
        (lab_dir / f"{Path(names[iid]).stem}.txt").write_text("".join(r + "\n" for r in rows))
    atomic_write_json(build / "annotations" / f"instances_{split}.json", public_json(clean), indent=None)
    crowd = sum(1 for a in clean["annotations"] if a.get("iscrowd", 0))
    counts = {
        "images": len(clean["images"]),
        "annotations": len(clean["annotations"]),
        "boxes": sum(len(r) for r in lines.values()),
        "crowd": crowd,
        "empty_images": sum(1 for r in lines.values() if not r),
    }
    return clean, counts, report.as_dict()


def _raw_splits(dp: DataParams, root: Path, build: Path) -> dict[str, dict]:
    if dp.source == "synthetic":
        from alignrank.data.synthetic import generate_split

        kw = {k: getattr(dp, k) for k in ("seed", "imgsz", "num_classes", "max_objects", "clutter", "empty_fraction")}
        sizes = {"train": dp.num_train, "val": dp.num_val}
        return {s: generate_split(build / "images" / s, s, n=sizes[s], **kw) for s in SPLITS}
    if dp.source == "coco_dir":
        from alignrank.data.coco_dir import fetch_coco_dir

        return fetch_coco_dir(dp, build=build)
    from alignrank.data.coco2017 import fetch_coco2017

    return fetch_coco2017(dp, root=root, build=build)


def is_ours(root: Path) -> bool:
    """True when ``root`` carries the stage's marker, or is a dataset of an earlier version of the stage (nothing
    but :data:`LAYOUT`, with a ``manifest.json`` holding our fields)."""
    marker = read_json(root / MARKER_NAME)
    if marker is not None and all(marker.get(k) == v for k, v in MARKER.items()):
        return True
    manifest = read_json(root / "manifest.json") or {}
    names = {p.name for p in root.iterdir()}
    return names <= set(LAYOUT) and {"params_hash", "fingerprint", "layout"} <= set(manifest)


def check_replaceable(root: Path) -> None:
    """Refuse (:class:`DataError`, one line) a ``data.root`` the stage did not write: only a missing or empty
    folder, or one of ours (:func:`is_ours`), may be built into or replaced.

    Examples:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "notes.txt").write_text("mine")
        >>> try: check_replaceable(d)
        ... except DataError as e: print(str(e).split(" holds")[0] == f"data.root={d}")
        True
    """
    if not root.exists() and not root.is_symlink():
        return
    if not root.is_dir():
        raise DataError(f"data.root={root} is a file, not a folder; point data.root to a new or empty folder")
    if not any(root.iterdir()) or is_ours(root):
        return
    raise DataError(f"data.root={root} holds files the data stage did not write (no {MARKER_NAME}); it is never "
                    f"replaced: point data.root to a new or empty folder, or move those files out of it")


def _swap(build: Path, root: Path) -> None:
    old = root.with_name(f".{root.name}.old-{os.getpid()}")
    if root.exists():
        os.rename(root, old)
    os.rename(build, root)
    shutil.rmtree(old, ignore_errors=True)


def warm_label_caches(root: Path, manifest: dict) -> None:
    """Write ultralytics' ``labels/{split}.cache`` now, inside the stage's output, so that training later
    finds a valid cache and never writes into ``data/`` (which would make DVC see the output changed)."""
    from ultralytics.cfg import get_cfg
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.utils import LOGGER as ULOGGER

    data = {"names": dict(enumerate(manifest["names"])), "nc": len(manifest["names"]), "channels": 3}
    level = ULOGGER.level
    ULOGGER.setLevel(logging.WARNING)  # keep stdout clean (the CLI prints JSON)
    try:
        for split in SPLITS:
            if not (root / "labels" / f"{split}.cache").is_file():
                YOLODataset(img_path=str(root / "images" / split), imgsz=64, augment=False, hyp=get_cfg(),
                            data=data, task="detect")
    finally:
        ULOGGER.setLevel(level)


def run_data(params: Params) -> dict:
    """Build (or re-use) the dataset described by ``params.data``; see the module docstring.

    Args:
        params: Resolved params (``params.data``; ``train.lock_wait``: how long to wait for jobs using the dataset).

    Returns:
        Summary: source, root, dataset_yaml, manifest, fingerprint, params_hash, nc, counts per split,
        skipped counts per split and kind, EXIF-oriented images per split (count, and by name the
        orientation and the action: ``reset`` to 1 / ``kept``), cached, rebuilt_changed_files (files found
        differing from what the stage wrote, rebuilt), seconds.

    Raises:
        DataError: bad source data (malformed JSON, corrupt download, unsafe archive) or a ``data.root`` holding
            files the stage did not write.
        Busy: another job (a run, a sweep, another data stage) uses the dataset (see :mod:`alignrank.data.lock`).
    """
    t0 = time.time()
    dp = params.data
    root = resolve_root(dp)
    key = params_hash(content_params(dp))
    check_replaceable(root)
    with dataset_lock(root, write=False, wait=params.train.lock_wait):  # checking: alongside runs reading it
        summary, changed = _reuse(root, key, t0)
    if summary is not None:
        return summary
    with dataset_lock(root, write=True, wait=params.train.lock_wait):  # building: alone
        summary, changed = _reuse(root, key, t0)  # (built by another job while this one waited?)
        return summary if summary is not None else _build(dp, root, key, t0, changed)


def _reuse(root: Path, key: str, t0: float) -> tuple[dict | None, list[str] | None]:
    """The summary of the dataset at ``root`` when it was built with params hash ``key`` and its files are as
    written (else None), and the files found changed."""
    manifest = _cached(root, key)
    changed = changed_files(root) if manifest is not None else None
    if manifest is None or changed != []:
        return None, changed
    text, yml = _dataset_yaml(root, manifest), root / "dataset.yaml"
    if not yml.is_file() or yml.read_text() != text:  # the folder moved (or the YAML was lost)
        atomic_write_text(yml, text)
    warm_label_caches(root, manifest)
    return _summary(root, manifest, cached=True, seconds=time.time() - t0), changed


def _build(dp: DataParams, root: Path, key: str, t0: float, changed: list[str] | None) -> dict:
    """Build the dataset in a sibling folder and swap it in (the caller holds the dataset's write lock)."""
    check_replaceable(root)
    if changed:
        LOGGER.warning(f"data: {len(changed)} file(s) under {root} differ from what the data stage wrote (first: "
                       f"{changed[0]}); rebuilding the dataset (edits under it are not kept)")
    build = root.with_name(f".{root.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    try:
        raw = _raw_splits(dp, root, build)
        counts, skipped, cats, exif = {}, {}, {}, {}
        for split in SPLITS:
            clean, counts[split], skipped[split] = _build_split(build, split, raw[split])
            cats[split] = (category_ids(clean), category_names(clean))
            exif[split] = {"count": len(clean["_exif"]), "images": dict(sorted(clean["_exif"].items()))}
        if cats["train"] != cats["val"]:
            raise DataError(f"{dp.source}: train and val list different categories; the annotation files do not match")
        manifest = {
            "version": DATA_VERSION,
            "source": dp.source,
            "params_hash": key,
            "params": content_params(dp),
            "fingerprint": write_file_table(build),
            "category_ids": cats["train"][0],
            "names": cats["train"][1],
            "counts": counts,
            "skipped": skipped,
            "exif_orientation": exif,
            **({"inputs": {s: raw[s]["_source"] for s in SPLITS}} if "_source" in raw["train"] else {}),
            "layout": {
                "images": "images/{split}", "labels": "labels/{split}", "json": "annotations/instances_{split}.json"
            },
        }
        atomic_write_json(build / "manifest.json", manifest, indent=2)
        atomic_write_json(build / MARKER_NAME, MARKER)
        atomic_write_text(build / "dataset.yaml", _dataset_yaml(root, manifest))
        _swap(build, root)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    remember_stats(root)
    warm_label_caches(root, manifest)
    summary = _summary(root, manifest, cached=False, seconds=time.time() - t0, changed=len(changed or ()))
    n_train, n_val = counts["train"]["images"], counts["val"]["images"]
    LOGGER.info(f"data: {dp.source} dataset at {root} ({n_train} train / {n_val} val images)")
    return summary


__all__ = ["run_data", "resolve_root", "content_params", "check_replaceable", "DATA_VERSION", "FINGERPRINT_PATTERNS"]
