"""COCO instances JSON: strict reading, validation of bad records, subset, and COCO -> YOLO labels.

Bad records are never dropped silently: :func:`validate_coco` returns the cleaned dict and a
:class:`~alignrank.data.report.SkipReport` whose kinds are

============================  ==============================================================  ========
kind                          record                                                          action
============================  ==============================================================  ========
duplicate_category_id         a category id listed twice (or not an integer)                  skipped
duplicate_image_id            an image id listed twice (the first record is kept)             skipped
bad_image_record              file_name empty/unsafe (``..``, absolute) or width/height <= 0  skipped
duplicate_file_name           a second image record with the same file_name                   skipped
missing_image_file            the image file is absent                                        skipped
corrupt_image                 the image does not decode (bad header, truncated)               skipped
image_size_mismatch           the file's size differs from the JSON's width/height            skipped
                              (as stored, or as turned by its EXIF orientation)
exif_orientation_not_jpeg     a PNG/WebP... with an EXIF orientation, boxes on stored pixels  skipped
bad_annotation_record         an annotation that is not an object with an integer id          skipped
duplicate_annotation_id       an annotation id listed twice (the first is kept)               skipped
annotation_unknown_image      an annotation whose image_id is not an image of the JSON        skipped
annotation_of_skipped_image   an annotation of an image skipped above                         skipped
unknown_category              category_id not among the categories                            skipped
degenerate_box                bbox not 4 finite numbers, or width/height <= 0                 skipped
box_outside                   bbox entirely outside the image                                 skipped
box_clipped                   bbox partly outside (by > 1e-3 px): clipped in the YOLO label   clipped
============================  ==============================================================  ========

A JPEG with an EXIF orientation other than 1 is turned by OpenCV (ultralytics' loader, our evaluation) but
not by the JSON: when the JSON's width/height are the stored size, the boxes describe the stored pixels, and
``clean["_exif"]`` lists it with action ``reset`` (the data stage sets its tag to 1, so every loader sees the
stored frame); when they are the turned size, the boxes describe the turned image, which is what OpenCV
loads: action ``kept`` (tag left as it is).

Kept records are written unchanged to the output JSON (the ORIGINAL COCO records, for pycocotools);
crowd boxes (``iscrowd=1``) stay in the JSON for evaluation but get no YOLO label line. Category ids
sorted ascending map to contiguous YOLO indices 0..nc-1.

Examples:
    >>> data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
    ...         "categories": [{"id": 3, "name": "x"}, {"id": 1, "name": "y"}],
    ...         "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [-2, 0, 6, 5], "iscrowd": 0}]}
    >>> clean, report = validate_coco(data, image_dir=None)
    >>> report.counts()
    {'box_clipped': 1}
    >>> yolo_labels(clean)[1]
    ['1 0.2000000 0.2500000 0.4000000 0.5000000']
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from PIL import Image

from alignrank.data.exif import ORIENTATION_TAG, TRANSPOSED, orientation
from alignrank.data.report import SkipReport
from alignrank.errors import DataError

CLIP_TOL = 1e-3  # px: boxes poking out by less are clipped without a report (float round-off in COCO)
EXIF_HEAD = 1 << 18  # bytes read for the EXIF segment (APP1 is at most 64 KiB, near the start)


def read_json(path: str | Path) -> dict:
    """Read a COCO instances JSON; malformed => :class:`DataError` naming the file and the position.

    Examples:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "x.json"); _ = open(f, "w").write('{"images": [1,]}')
        >>> try: read_json(f)
        ... except DataError as e: print(str(e).split(": ", 1)[1])
        malformed JSON at line 1, column 15 (char 14): Expecting value; fix or re-download the file
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DataError(f"{path}: annotation file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}); fix or re-download the file") from None
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: malformed JSON at line {e.lineno}, column {e.colno} (char {e.pos}): {e.msg}; "
            "fix or re-download the file"
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with images/annotations/categories, got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: key '{key}' missing or not a list; not a COCO instances file")
    return data


def subset_images(data: dict, n: int) -> dict:
    """Keep the first ``n`` images sorted by image id (== file-name order for COCO) and their annotations.

    ``n == 0`` keeps everything. Other keys are kept as they are.
    """
    if n <= 0:
        return data
    ids = sorted({im.get("id") for im in data["images"] if isinstance(im, dict) and isinstance(im.get("id"), int)})
    keep = set(ids[:n])
    return {
        **data,
        "images": [im for im in data["images"] if isinstance(im, dict) and im.get("id") in keep],
        "annotations": [a for a in data["annotations"] if isinstance(a, dict) and a.get("image_id") in keep],
    }


def safe_file_name(name: Any) -> bool:
    """True for a plain file name (no folder, no ``..``, not absolute, no backslash)."""
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        return False
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts and p.name == name


def check_image(path: Path) -> tuple[str | None, tuple[int, int] | None]:
    """``(problem, (width, height))``: problem is None, ``missing_image_file`` or ``corrupt_image``.

    Cheap for sound files (header + JPEG end marker); a JPEG without its end marker is fully decoded.
    """
    if not path.is_file():
        return "missing_image_file", None
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            size, fmt = im.size, im.format
            if fmt == "JPEG":
                with open(path, "rb") as f:
                    f.seek(-2, 2)
                    if f.read() != b"\xff\xd9":
                        im.load()  # raises on a truncated file
    except Exception:  # noqa: BLE001  (PIL raises many types for a bad file)
        return "corrupt_image", None
    return None, size


def image_orientation(path: Path) -> tuple[int, bool]:
    """``(EXIF orientation, is a JPEG)`` of an image file (1 = as stored; OpenCV obeys the tag in PNG/WebP too).

    For a JPEG the tag is read from the bytes, as :func:`~alignrank.data.exif.reset_orientation` changes it.
    """
    with open(path, "rb") as f:
        head = f.read(EXIF_HEAD)
    if head[:2] == b"\xff\xd8":
        return orientation(head), True
    with Image.open(path) as im:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    return (value if isinstance(value, int) else 1), False


def _box(bbox: Any) -> list[float] | None:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return None
    try:
        b = [float(v) for v in bbox]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in b) or b[2] <= 0 or b[3] <= 0:
        return None
    return b


def validate_coco(
    data: dict, *, image_dir: str | Path | None, report: SkipReport | None = None
) -> tuple[dict, SkipReport]:
    """Drop (and report) bad records of a COCO instances dict.

    Args:
        data: Parsed COCO instances dict (see :func:`read_json`).
        image_dir: Folder of the image files (checked for presence, decodability and size);
            None skips the file checks.
        report: Report to add to (a new one when None).

    Returns:
        ``(clean, report)``: ``clean`` has the kept, unchanged records, a private ``"_clipped"``
        mapping annotation id -> clipped ``[x, y, w, h]`` (used by :func:`yolo_labels`) and a private
        ``"_exif"`` mapping file name -> ``{"orientation", "action"}`` of the EXIF-oriented images (see the
        module docstring); both are removed by :func:`public_json`.
    """
    report = report or SkipReport()
    cats, cat_ids = [], set()
    for c in data["categories"]:
        cid = c.get("id") if isinstance(c, dict) else None
        if not isinstance(cid, int) or cid in cat_ids:
            report.add("duplicate_category_id", f"category {cid!r}")
            continue
        cat_ids.add(cid)
        cats.append(c)
    images, sizes, skipped_images, seen, files, exif = [], {}, set(), set(), {}, {}
    for im in data["images"]:
        iid = im.get("id") if isinstance(im, dict) else None
        if not isinstance(iid, int):
            report.add("bad_image_record", f"image record {str(im)[:60]}")
            continue
        if iid in seen:
            report.add("duplicate_image_id", f"image id {iid}")
            continue
        seen.add(iid)
        name, w, h = im.get("file_name"), im.get("width"), im.get("height")
        if not safe_file_name(name) or not isinstance(w, int) or not isinstance(h, int) or w <= 0 or h <= 0:
            report.add("bad_image_record", f"image id {iid} (file_name={name!r}, width={w!r}, height={h!r})")
            skipped_images.add(iid)
            continue
        if name in files:
            report.add("duplicate_file_name", f"image id {iid} reuses {name} of image id {files[name]}")
            skipped_images.add(iid)
            continue
        if image_dir is not None:
            problem, real = check_image(Path(image_dir) / name)
            turn, jpeg = image_orientation(Path(image_dir) / name) if problem is None else (1, True)
            shown = real[::-1] if turn in TRANSPOSED and real else real  # the size OpenCV loads
            if problem is None and (w, h) not in (real, shown):
                problem = "image_size_mismatch"
            elif problem is None and turn != 1 and (w, h) == real and not jpeg:
                problem = "exif_orientation_not_jpeg"
            if problem:
                extra = ""
                if problem == "image_size_mismatch":
                    extra = f" is {real[0]}x{real[1]}" + (f" (EXIF orientation {turn})" if turn != 1 else "")
                    extra += f", JSON says {w}x{h}"
                report.add(problem, f"{name} (image id {iid}){extra}")
                skipped_images.add(iid)
                continue
            if turn != 1:  # OpenCV would turn it: reset the tag when the boxes are on the stored pixels
                exif[name] = {"orientation": turn, "action": "reset" if (w, h) == real else "kept"}
        sizes[iid] = (w, h)
        files[name] = iid
        images.append(im)
    anns, ann_ids, clipped = [], set(), {}
    for a in data["annotations"]:
        aid = a.get("id") if isinstance(a, dict) else None
        if not isinstance(aid, int):
            report.add("bad_annotation_record", f"annotation record {str(a)[:60]}")
            continue
        if aid in ann_ids:
            report.add("duplicate_annotation_id", f"annotation id {aid}")
            continue
        ann_ids.add(aid)
        iid = a.get("image_id")
        if iid not in sizes:
            kind = "annotation_of_skipped_image" if iid in skipped_images else "annotation_unknown_image"
            report.add(kind, f"annotation id {aid} -> image_id {iid!r}")
            continue
        if a.get("category_id") not in cat_ids:
            report.add("unknown_category", f"annotation id {aid}, category_id {a.get('category_id')!r}")
            continue
        b = _box(a.get("bbox"))
        if b is None:
            report.add("degenerate_box", f"annotation id {aid}, bbox {a.get('bbox')!r}")
            continue
        w, h = sizes[iid]
        x0, y0, x1, y1 = max(b[0], 0.0), max(b[1], 0.0), min(b[0] + b[2], w), min(b[1] + b[3], h)
        if x1 <= x0 or y1 <= y0:
            report.add("box_outside", f"annotation id {aid}, bbox {b} in a {w}x{h} image")
            continue
        if max(-b[0], -b[1], b[0] + b[2] - w, b[1] + b[3] - h) > CLIP_TOL:
            report.add("box_clipped", f"annotation id {aid}, bbox {b} in a {w}x{h} image", action="clipped")
        if [x0, y0, x1 - x0, y1 - y0] != b:
            clipped[aid] = [x0, y0, x1 - x0, y1 - y0]
        anns.append(a)
    clean = {k: v for k, v in data.items() if k not in ("images", "annotations", "categories")}
    clean.update(categories=cats, images=images, annotations=anns, _clipped=clipped, _exif=exif)
    return clean, report


def category_ids(data: dict) -> list[int]:
    """COCO category ids in YOLO index order (sorted ascending)."""
    return sorted(c["id"] for c in data["categories"])


def category_names(data: dict) -> list[str]:
    """Category names in YOLO index order."""
    by_id = {c["id"]: str(c.get("name", c["id"])) for c in data["categories"]}
    return [by_id[i] for i in category_ids(data)]


def yolo_labels(clean: dict) -> dict[int, list[str]]:
    """YOLO label lines ``"cls cx cy w h"`` (normalized, 7 decimals) per image id; crowd boxes excluded.

    Every kept image gets an entry (possibly empty: a background image).
    """
    index = {cid: i for i, cid in enumerate(category_ids(clean))}
    sizes = {im["id"]: (im["width"], im["height"]) for im in clean["images"]}
    clipped = clean.get("_clipped", {})
    lines: dict[int, list[str]] = {iid: [] for iid in sizes}
    for a in clean["annotations"]:
        if a.get("iscrowd", 0):
            continue
        x, y, bw, bh = clipped.get(a["id"], a["bbox"])
        w, h = sizes[a["image_id"]]
        cx, cy = (x + bw / 2) / w, (y + bh / 2) / h
        lines[a["image_id"]].append(f"{index[a['category_id']]} {cx:.7f} {cy:.7f} {bw / w:.7f} {bh / h:.7f}")
    return lines


def public_json(clean: dict) -> dict:
    """The cleaned dict without private keys (what is written for pycocotools)."""
    return {k: v for k, v in clean.items() if not k.startswith("_")}


def image_files(clean: dict) -> Iterable[str]:
    """File names of the kept images."""
    return (im["file_name"] for im in clean["images"])
