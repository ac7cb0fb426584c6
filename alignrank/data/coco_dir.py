"""COCO-format folders on disk (``data.source: coco_dir``): the official COCO 2017 layout or any dataset.

Where each split is read from (:func:`split_sources`):

* ``data.coco_dir`` alone: the official layout, ``<coco_dir>/annotations/instances_{train,val}2017.json`` and
  the images in ``<coco_dir>/{train,val}2017/``;
* ``data.train_json`` / ``train_images`` / ``val_json`` / ``val_images``: any COCO-format dataset (one
  instances JSON and one image folder per split, ``file_name`` relative to the folder); each one given
  replaces that part of the official layout. Relative paths are relative to ``data.coco_dir`` when it is
  set, else to the project root.

The JSONs are read, subset (``data.subset``), validated and converted exactly as the COCO 2017 download
(:mod:`alignrank.data.coco_format`, by the data stage). Images are never copied: each is hard-linked into
the dataset being built (same inode, no space), or symlinked (absolute target) where a hard link is not
possible (another file system, no permission); ``manifest.json`` lists per split the JSON, its sha256, the
image folder and how many images were hard-linked / symlinked. The sha256 of each JSON is part of the
data stage's params hash (:func:`input_digests`), so an edited JSON rebuilds the dataset; the dataset
fingerprint hashes the linked images' bytes, so an image edited in place is seen as well (an image
*replaced* by a new file behind a hard link is not: the link keeps the old bytes, which the fingerprint
still describes).

Examples:
    >>> from alignrank.config.schema import DataParams
    >>> s = split_sources(DataParams(source="coco_dir", coco_dir="/coco"))
    >>> s["val"].json.as_posix(), s["val"].images.as_posix()
    ('/coco/annotations/instances_val2017.json', '/coco/val2017')
"""

from __future__ import annotations

import errno
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from alignrank.config.schema import DataParams
from alignrank.data.coco_format import read_json, safe_file_name, subset_images
from alignrank.errors import DataError
from alignrank.io import resolve_path, sha256_file

LOGGER = logging.getLogger("alignrank.data")
SPLITS = ("train", "val")
OFFICIAL = {"train": ("annotations/instances_train2017.json", "train2017"),
            "val": ("annotations/instances_val2017.json", "val2017")}
NO_HARD_LINK = (errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP)


@dataclass(frozen=True)
class SplitSource:
    """Where one split is read from: its instances JSON and its image folder (absolute)."""

    json: Path
    images: Path


def _path(text: str, base: Path | None) -> Path:
    p = Path(text).expanduser()
    if p.is_absolute():
        return p
    return base / p if base is not None else resolve_path(p)


def split_sources(dp: DataParams) -> dict[str, SplitSource]:
    """The JSON and image folder of each split (see the module docstring); no file is read."""
    base = resolve_path(dp.coco_dir) if dp.coco_dir else None
    out = {}
    for split in SPLITS:
        json_text = getattr(dp, f"{split}_json") or (OFFICIAL[split][0] if base is not None else "")
        img_text = getattr(dp, f"{split}_images") or (OFFICIAL[split][1] if base is not None else "")
        if not json_text or not img_text:
            raise DataError(f"data.source=coco_dir: no {split} split; set data.coco_dir (official layout) or "
                            f"data.{split}_json and data.{split}_images")
        out[split] = SplitSource(json=_path(json_text, base), images=_path(img_text, base))
    return out


@functools.lru_cache(maxsize=8)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def input_digests(dp: DataParams) -> dict[str, str]:
    """``{split: sha256 of its instances JSON}`` (hashed once per file state in a process).

    Raises:
        DataError: A JSON or an image folder is missing (one line naming the param and the path).
    """
    out = {}
    for split, src in split_sources(dp).items():
        key = "coco_dir" if dp.coco_dir and not getattr(dp, f"{split}_json") else f"{split}_json"
        if not src.json.is_file():
            raise DataError(f"{src.json}: {split} annotation file not found; check data.{key} (data.source=coco_dir)")
        if not src.images.is_dir():
            key = "coco_dir" if dp.coco_dir and not getattr(dp, f"{split}_images") else f"{split}_images"
            raise DataError(f"{src.images}: {split} image folder not found; check data.{key} (data.source=coco_dir)")
        st = src.json.stat()
        out[split] = _digest(str(src.json), st.st_size, st.st_mtime_ns)
    return out


def link_image(src: Path, dst: Path, *, hard: bool = True) -> str:
    """Link ``src`` as ``dst``: a hard link to the file (behind any symlink) when ``hard`` and possible, else an
    absolute symlink to ``src``.

    Returns:
        ``"hard"`` or ``"symlink"``.

    Examples:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.jpg").write_bytes(b"x")
        >>> link_image(d / "a.jpg", d / "b.jpg"), link_image(d / "a.jpg", d / "c.jpg", hard=False)
        ('hard', 'symlink')
    """
    if hard:
        try:
            os.link(os.path.realpath(src), dst)  # (link(2) would link a symlink itself, not its target)
            return "hard"
        except OSError as e:
            if e.errno not in NO_HARD_LINK:
                raise
    os.symlink(src.absolute(), dst)
    return "symlink"


def _link_split(data: dict, src: SplitSource, dest: Path) -> dict[str, int]:
    """Link the images named in ``data`` from ``src.images`` into ``dest``; absent files are left to the
    validation (reported there as ``missing_image_file``). Returns the counts by link kind."""
    dest.mkdir(parents=True, exist_ok=True)
    counts = {"hard": 0, "symlink": 0}
    hard = True
    names = sorted({im["file_name"] for im in data["images"] if isinstance(im, dict) and safe_file_name(im.get("file_name"))})
    for name in names:
        path = src.images / name
        if not path.is_file():
            continue
        kind = link_image(path, dest / name, hard=hard)
        counts[kind] += 1
        hard = kind == "hard" or counts["hard"] > 0  # once a first hard link fails, the rest would too
    return counts


def fetch_coco_dir(dp: DataParams, *, build: Path) -> dict[str, dict]:
    """Read each split's JSON (subset by ``data.subset``) and link its images into ``build/images/{split}``.

    Args:
        dp: The ``data`` params (``coco_dir`` or the per-split paths, ``subset``).
        build: Folder the dataset is being built in.

    Returns:
        ``{split: COCO dict}`` (not yet validated), each with a private ``"_source"`` record (JSON, its
        sha256, image folder, link counts) that the data stage writes to ``manifest.json``.

    Raises:
        DataError: A missing JSON or image folder, or a malformed JSON (one line naming the file).
    """
    digests = input_digests(dp)
    out = {}
    for split, src in split_sources(dp).items():
        data = subset_images(read_json(src.json), dp.subset)
        counts = _link_split(data, src, build / "images" / split)
        if counts["symlink"]:
            LOGGER.info(f"{split}: {counts['symlink']} image(s) symlinked from {src.images} (no hard link possible)")
        data["_source"] = {"json": str(src.json), "json_sha256": digests[split], "images": str(src.images),
                           "linked": counts}
        out[split] = data
    return out


__all__ = ["SplitSource", "split_sources", "input_digests", "link_image", "fetch_coco_dir"]
