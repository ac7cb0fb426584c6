"""Evaluate any COCO results file against a COCO instances file, with strict input validation.

Bad input gets a one-line :class:`DataError` naming the file and the record, e.g.
``predictions.json record 17: unknown image_id 999 (not in instances.json)``. Repeated image,
category or annotation ids in the ground truth and scores outside [0, 1] are refused, not repaired. Records are
numbered from 0 (their index in the JSON list). An empty but valid list ``[]`` evaluates to AP 0.

Examples:
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> gt = {"images": [{"id": 1, "width": 20, "height": 20}], "categories": [{"id": 1, "name": "a"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0}]}
    >>> _ = (d / "gt.json").write_text(json.dumps(gt)); _ = (d / "p.json").write_text("[]")
    >>> evaluate_files(d / "gt.json", d / "p.json", verbose=False)["AP"]
    0.0
"""

from __future__ import annotations

import itertools
import json
import math
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from alignrank.config.schema import EvalParams
from alignrank.errors import DataError
from alignrank.eval.boxes import Detections
from alignrank.eval.evaluator import evaluate_detections, format_table
from alignrank.io import atomic_write_json


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; missing, empty or malformed files raise a one-line :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise DataError(f"{path.name}: empty file; expected JSON (write [] for no predictions)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path.name}: malformed JSON at line {e.lineno} column {e.colno} ({e.msg}); "
                        "fix or re-create the file") from None


SCORE_FIX = "scores must be confidences in [0, 1] (apply the sigmoid / softmax to logits, then re-export)"


def _is_num(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return _is_num(v) and float(v).is_integer()


def _is_id(v: Any) -> bool:
    """An integer id that fits numpy's / pycocotools' int64."""
    return _is_int(v) and -(2**63) <= int(v) < 2**63


def _unique_ids(records: list, key: str, what: str, name: str) -> set[int]:
    """Ids of ``records`` (images or categories); a missing, invalid or repeated id raises a one-line :class:`DataError`."""
    first: dict[int, int] = {}
    for i, r in enumerate(records):
        if not isinstance(r, dict) or not _is_id(r.get("id")):
            raise DataError(f"{name} {key}[{i}]: missing or invalid 'id' (expected a 64-bit integer)")
        j = first.setdefault(int(r["id"]), i)
        if j != i:
            raise DataError(f"{name} {key}[{i}]: duplicate {what} id {int(r['id'])} (first at {key}[{j}]); "
                            f"{what} ids must be unique: fix or re-create the file")
    return set(first)


def load_instances(path: str | Path) -> dict:
    """Load and check a COCO instances JSON (``images``, ``annotations``, ``categories``).

    Image, category and annotation ids must be unique 64-bit integers (pycocotools indexes them by
    id: a repeated annotation id silently corrupts the matching, and the ground truth no longer
    scores AP 100 against itself); annotations must name a known image and category and have a
    valid ``[x, y, w, h]`` box.

    Raises:
        DataError: naming the file, the first bad record (0-based index) and the fix.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path.name}: expected a COCO instances object with images/annotations/categories, "
                        f"got {type(data).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path.name}: missing or invalid '{key}' list; is this a COCO instances file?")
    img_ids = _unique_ids(data["images"], "images", "image", path.name)
    cat_ids = _unique_ids(data["categories"], "categories", "category", path.name)
    ann_first: dict[int, int] = {}
    for i, a in enumerate(data["annotations"]):
        if not isinstance(a, dict):
            raise DataError(f"{path.name} annotations[{i}]: expected an object")
        if a.get("image_id") not in img_ids:
            raise DataError(f"{path.name} annotations[{i}]: unknown image_id {a.get('image_id')!r} (not in its images)")
        if a.get("category_id") not in cat_ids:
            raise DataError(f"{path.name} annotations[{i}]: unknown category_id {a.get('category_id')!r} "
                            "(not in its categories)")
        b = a.get("bbox")
        if not (isinstance(b, list) and len(b) == 4 and all(_is_num(v) for v in b) and b[2] >= 0 and b[3] >= 0):
            raise DataError(f"{path.name} annotations[{i}]: invalid bbox {b!r}; expected [x, y, w, h] with w, h >= 0")
        if not _is_id(a.get("id")):
            raise DataError(f"{path.name} annotations[{i}]: missing or invalid 'id' (expected a 64-bit integer)")
        j = ann_first.setdefault(int(a["id"]), i)
        if j != i:
            raise DataError(f"{path.name} annotations[{i}]: duplicate annotation id {int(a['id'])} (first at "
                            f"annotations[{j}]); annotation ids must be unique: renumber them or re-create the file")
        a.setdefault("iscrowd", 0)
        a.setdefault("area", float(b[2] * b[3]))
    return data


def _record_error(r: Any, img_ids: set, cat_ids: set, gt_name: str) -> str | None:
    if not isinstance(r, dict):
        return f"expected an object with image_id, category_id, bbox, score, got {type(r).__name__}"
    for key in ("image_id", "category_id", "bbox", "score"):
        if key not in r:
            return f"missing '{key}'"
    if not _is_int(r["image_id"]) or int(r["image_id"]) not in img_ids:
        return f"unknown image_id {r['image_id']!r} (not in {gt_name})"
    if not _is_int(r["category_id"]) or int(r["category_id"]) not in cat_ids:
        return f"unknown category_id {r['category_id']!r} (not in {gt_name})"
    b = r["bbox"]
    if not (isinstance(b, (list, tuple)) and len(b) == 4):
        return f"invalid bbox {b!r}; expected [x, y, w, h]"
    if not all(_is_num(v) for v in b):
        return f"non-finite or non-numeric bbox {b!r}"
    if b[2] < 0 or b[3] < 0:
        return f"negative box width/height in bbox {b!r}"
    if not _is_num(r["score"]):
        return f"invalid score {r['score']!r}; expected a finite number"
    if not 0.0 <= r["score"] <= 1.0:
        return f"score {r['score']!r} outside [0, 1]; {SCORE_FIX}"
    return None


def _valid_arrays(data: list, gt: dict) -> Detections | None:
    """The records as arrays when every one is valid (one vectorized pass), else None (then the per-record check
    names the first bad one). Only plain JSON types pass: ``int`` ids, ``int``/``float`` numbers, list boxes."""
    if not data:
        return Detections.empty()
    try:
        img, cat = [r["image_id"] for r in data], [r["category_id"] for r in data]
        box, score = [r["bbox"] for r in data], [r["score"] for r in data]
    except (TypeError, KeyError):  # a record that is not an object, or a missing key
        return None
    num = {int, float}
    if not (set(map(type, img)) <= {int} and set(map(type, cat)) <= {int} and set(map(type, score)) <= num
            and set(map(type, box)) <= {list} and set(map(len, box)) == {4}
            and set(map(type, itertools.chain.from_iterable(box))) <= num):
        return None
    try:
        d = Detections(np.asarray(img, np.int64), np.asarray(cat, np.int64), np.asarray(box, np.float64),
                       np.asarray(score, np.float64))
    except (OverflowError, ValueError):  # an id beyond 64 bits
        return None
    ok = np.isin(d.image_id, np.asarray([im["id"] for im in gt["images"]], np.int64))
    ok &= np.isin(d.category_id, np.asarray([c["id"] for c in gt["categories"]], np.int64))
    ok &= np.isfinite(d.bbox).all(1) & (d.bbox[:, 2:] >= 0).all(1) & np.isfinite(d.score) & (d.score >= 0) & (d.score <= 1)
    return d if ok.all() else None


def load_predictions(path: str | Path, gt: dict, gt_name: str = "instances.json") -> Detections:
    """Load and check a COCO results JSON against the ground truth's image and category ids.

    Raises:
        DataError: naming the first bad record (0-based index) and how many more are bad.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path.name}: expected a JSON list of COCO results [{{image_id, category_id, bbox, score}}, ...], "
                        f"got {type(data).__name__}")
    fast = _valid_arrays(data, gt)
    if fast is not None:
        return fast
    img_ids = {int(im["id"]) for im in gt["images"]}
    cat_ids = {int(c["id"]) for c in gt["categories"]}
    first, n_bad = None, 0
    for i, r in enumerate(data):
        msg = _record_error(r, img_ids, cat_ids, gt_name)
        if msg:
            n_bad += 1
            first = first or f"{path.name} record {i}: {msg}"
    if first:
        more = f" ({n_bad - 1} more bad record(s))" if n_bad > 1 else ""
        raise DataError(first + more)
    return Detections.from_coco(data)


def load_candidates(path: str | Path, gt: dict, gt_name: str = "instances.json") -> Detections:
    """Pre-NMS candidates from a ``candidates.npz`` (see :mod:`alignrank.eval.predict`) or a COCO results JSON."""
    path = Path(path)
    if path.suffix != ".npz":
        return load_predictions(path, gt, gt_name)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path")
    try:
        d = Detections.load_npz(path)
    except Exception as e:  # noqa: BLE001  (corrupt zip, missing arrays)
        raise DataError(f"{path.name}: unreadable candidates file ({type(e).__name__}: {e}); re-run the prediction") from None
    bad = ~np.isin(d.image_id, [im["id"] for im in gt["images"]])
    bad |= ~np.isin(d.category_id, [c["id"] for c in gt["categories"]])
    bad |= ~np.isfinite(d.bbox).all(1) | (d.bbox[:, 2:] < 0).any(1) | ~np.isfinite(d.score)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path.name} row {i}: invalid candidate (image_id {d.image_id[i]}, category_id {d.category_id[i]}, "
                        f"bbox {d.bbox[i].tolist()}, score {d.score[i]}) for {gt_name}")
    out = (d.score < 0) | (d.score > 1)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise DataError(f"{path.name} row {i}: candidate score {float(d.score[i])!r} outside [0, 1] "
                        f"({int(out.sum())} such row(s)); {SCORE_FIX}")
    return d


def evaluate_files(
    gt: str | Path,
    pred: str | Path,
    json_out: str | Path | None = None,
    params: EvalParams | None = None,
    *,
    candidates: str | Path | None = None,
    one2one: str | Path | None = None,
    verbose: bool = True,
) -> dict:
    """Evaluate a COCO results file; print a table; optionally write the numbers as JSON.

    Args:
        gt: COCO instances JSON (original image and category ids; crowd regions honoured).
        pred: COCO results JSON (post-NMS predictions).
        json_out: Where to write ``{<12 COCO names>, <extras>, "reliability": {...}}`` (and a
            ``<stem>.reliability.png`` beside it).
        params: ``eval`` params.
        candidates: Pre-NMS candidates (``.npz`` or COCO results JSON) for rank consistency and
            NMS-free AP; without it, ``pred`` is used for those too.
        one2one: An NMS-free model's one-to-one detections (COCO results JSON, e.g. the evaluate stage's
            ``predictions_o2o.json``): ``o2o_AP*``, scored as they are (no NMS); NaN without it.
        verbose: Print the table.

    Returns:
        The flat metrics dict.
    """
    gt, pred = Path(gt), Path(pred)
    dataset = load_instances(gt)
    preds = load_predictions(pred, dataset, gt.name)
    cands = load_candidates(candidates, dataset, gt.name) if candidates else None
    o2o = load_predictions(one2one, dataset, gt.name) if one2one else None
    res = evaluate_detections(dataset, preds, cands, params, one2one=o2o)
    if verbose:
        print(f"{pred.name} vs {gt.name}: {len(preds)} predictions on {res.metrics['num_images']} images")
        print(format_table(res.metrics))
    if json_out is not None:
        from alignrank.eval.calibration import save_reliability

        json_out = Path(json_out)
        atomic_write_json(json_out, {**res.metrics, "reliability": res.reliability})
        save_reliability(res.reliability, json_out.with_name(json_out.stem + ".reliability.png"), title=pred.name)
    return res.metrics
