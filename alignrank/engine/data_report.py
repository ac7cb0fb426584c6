"""Images / YOLO labels that ultralytics' own label check drops as corrupt, reported by name and count.

Ultralytics (``verify_image_label``) silently skips a zero-byte or unreadable image and a label ``.txt``
with NaN, out-of-range (> 1.01 or negative) or non-integer values; its messages are logged at INFO (hidden
by :func:`alignrank.engine.quiet.quiet_ultralytics`) and kept in the ``labels/<split>.cache`` file. We read
them back after the dataset is built, log one warning line per split and write ``data_report.json`` in the
run folder. Training goes on with the remaining images; the dataset files are never modified.

Examples:
    >>> parse_msgs(["\\x1b[34mtrain: \\x1b[0m/d/images/train/a.jpg: ignoring corrupt image/label: bad"], "train")
    {'a.jpg': 'bad'}
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from alignrank.io import atomic_write_json

LOGGER = logging.getLogger("alignrank.data")
MARK = ": ignoring corrupt image/label: "
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_msgs(msgs: list[str], mode: str) -> dict[str, str]:
    """``{image file name: reason}`` of the corrupt-sample messages among ultralytics' scan ``msgs``."""
    out = {}
    for m in msgs:
        m = _ANSI.sub("", m)
        if MARK not in m:
            continue
        left, reason = m.split(MARK, 1)
        left = left[len(f"{mode}: "):] if left.startswith(f"{mode}: ") else left
        out[Path(left).name] = reason.strip().splitlines()[0][:200]
    return out


def report_skipped(dataset, mode: str, save_dir: str | Path) -> dict:
    """Warn about and record (``<save_dir>/data_report.json``, merged per split) the samples ``dataset`` dropped.

    Args:
        dataset: A built ultralytics ``YOLODataset`` (its label cache holds the scan messages).
        mode: ``train`` or ``val``.
        save_dir: The run folder.

    Returns:
        ``{"count", "total", "files": {name: reason}}`` of this split (count 0 when nothing was dropped).
    """
    from ultralytics.data.utils import load_dataset_cache_file

    label_files = dataset.get_label_files() if hasattr(dataset, "get_label_files") else []
    cache = Path(label_files[0]).parent.with_suffix(".cache") if label_files else None
    try:
        scan = load_dataset_cache_file(cache) if cache is not None else {}
    except Exception:  # noqa: BLE001 - no cache (read-only labels folder): nothing to report
        scan = {}
    files = parse_msgs(list(scan.get("msgs", [])), mode)
    total = int(scan["results"][-1]) if "results" in scan else len(getattr(dataset, "im_files", []))
    entry = {"count": len(files), "total": total, "files": files}
    if files:
        first = next(iter(files.items()))
        LOGGER.warning(f"{mode} data: skipped {len(files)} of {total} image(s) as corrupt (ultralytics' label check): "
                       f"{', '.join(files)} (first: {first[0]}: {first[1]}); fix or remove them to train on them")
        path = Path(save_dir) / "data_report.json"
        from alignrank.io import read_json

        atomic_write_json(path, {**(read_json(path) or {}), mode: entry})
    return entry
