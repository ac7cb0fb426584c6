"""COCO 2017 source: download the official zips, verify them, extract the (subset of) images.

From ``data.url`` (default the official ``http://images.cocodataset.org``; tests use 127.0.0.1):

* ``{url}/annotations/annotations_trainval2017.zip``: must hold ``annotations/instances_{train,val}2017.json``;
* ``{url}/zips/{train,val}2017.zip``: ``{split}2017/<file_name>`` for EVERY image of that split's JSON,
  and, from the official URL, exactly 118287 / 5000 JPEGs.

Downloads are cached in ``data.downloads`` (default ``downloads/`` under the project root): kept OUTSIDE
``data/`` because DVC deletes a stage's outputs before re-running it, so a re-run re-uses the verified
zips (see :mod:`alignrank.data.download` for resume, retries and the ``.ok`` markers).
The annotation JSONs are extracted into ``downloads/annotations_trainval2017/``; images are
extracted straight from the zip into the dataset being built (only the ``data.subset`` images).

``data.subset = N`` keeps the first N images of each split sorted by image id (for COCO the same
order as the file names, which are the zero-padded ids). With a subset, an image zip that is not already
downloaded is not downloaded at all: its central directory and the subset's members are read through HTTP
Range requests (:mod:`alignrank.data.remote_zip`; each member checked against its CRC), e.g. 2000 train2017
images are about 330 MB instead of 18 GB; a server without Range support gets the whole zip downloaded.

Examples:
    >>> downloads_dir(DataParams(downloads="/work/proj/downloads")).as_posix()
    '/work/proj/downloads'
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from alignrank.config.schema import DataParams
from alignrank.data.archive import safe_extract, verify_zip
from alignrank.data.coco_format import read_json, safe_file_name, subset_images
from alignrank.data.download import download, is_verified
from alignrank.data.remote_zip import NoRanges, open_remote
from alignrank.io import resolve_path

LOGGER = logging.getLogger("alignrank.data")
OFFICIAL_URL = "http://images.cocodataset.org"
OFFICIAL_COUNTS = {"train": 118287, "val": 5000}
SPLITS = ("train", "val")
ANN_ZIP = "annotations/annotations_trainval2017.zip"


def downloads_dir(dp: DataParams) -> Path:
    """Download cache: ``data.downloads`` (relative to the project root)."""
    return resolve_path(dp.downloads)


def ann_member(split: str) -> str:
    """Member of the annotations zip holding ``split``'s instances JSON."""
    return f"annotations/instances_{split}2017.json"


def _is_official(url: str) -> bool:
    return url.rstrip("/").replace("https://", "http://") == OFFICIAL_URL


def fetch_coco2017(dp: DataParams, *, root: Path, build: Path) -> dict[str, dict]:
    """Download + verify the zips, extract the subset images into ``build/images/{split}``.

    Args:
        dp: The ``data`` params (url, subset, retries, timeout).
        root: Final dataset folder.
        build: Folder the dataset is being built in.

    Returns:
        ``{split: COCO dict}`` (subset-filtered, not yet validated).
    """
    base = dp.url.rstrip("/")
    cache = downloads_dir(dp)
    dl = {"retries": dp.retries, "timeout": dp.timeout}
    members = [ann_member(s) for s in SPLITS]
    ann_zip = download(
        f"{base}/{ANN_ZIP}", cache / Path(ANN_ZIP).name, verify=lambda p: verify_zip(p, required=members),
        verify_key="instances-json", **dl,
    )
    ann_dir = cache / "annotations_trainval2017"
    safe_extract(ann_zip, ann_dir, members)
    out = {}
    for split in SPLITS:
        data = read_json(ann_dir / ann_member(split))
        names = sorted({f"{split}2017/{im['file_name']}" for im in data["images"]
                        if isinstance(im, dict) and safe_file_name(im.get("file_name"))})
        count = (".jpg", OFFICIAL_COUNTS[split]) if _is_official(base) else None
        key = hashlib.sha256(("\n".join(names) + f"|{count}").encode()).hexdigest()[:16]
        url, dest = f"{base}/zips/{split}2017.zip", cache / f"{split}2017.zip"
        data = subset_images(data, dp.subset)
        want = sorted({f"{split}2017/{im['file_name']}" for im in data["images"]
                       if safe_file_name(im.get("file_name"))})
        if dp.subset and not is_verified(dest, key) and _extract_remote(url, want, build / "images" / split, dp):
            out[split] = data
            continue
        zpath = download(
            url, dest, verify=lambda p, n=names, c=count: verify_zip(p, required=n, expected_count=c), verify_key=key,
            **dl,
        )
        safe_extract(zpath, build / "images" / split, want, strip=1)
        out[split] = data
    return out


def _extract_remote(url: str, want: list[str], dest: Path, dp: DataParams) -> bool:
    """Extract the ``want`` members of the remote zip through HTTP Range requests (:mod:`alignrank.data.remote_zip`);
    False when the server does not serve ranges (the caller downloads the whole zip)."""
    try:
        with open_remote(url, timeout=dp.timeout, retries=dp.retries) as f:
            safe_extract(f, dest, want, strip=1)
    except NoRanges as e:
        LOGGER.warning(f"{e}; downloading the whole zip for the data.subset images")
        return False
    LOGGER.info(f"{url}: {len(want)} member(s) read through HTTP Range requests (data.subset), zip not downloaded")
    return True
