"""JSON form of evaluation results (numpy to Python, NaN to ``null``) and its atomic write.

The atomic writers themselves live in :mod:`alignrank.atomic`; ``atomic_write_text`` / ``atomic_write_npz`` /
``atomic_savefig`` are re-exported here for the eval and report modules that import them from here.

Examples:
    >>> import tempfile, pathlib, json
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> _ = atomic_write_json(p, {"AP": 0.5})
    >>> json.loads(p.read_text())["AP"]
    0.5
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from alignrank import atomic as _io
from alignrank.atomic import atomic_savefig, atomic_write_npz, atomic_write_text  # noqa: F401  (re-exports)


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays to Python, non-finite floats to ``None``."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, NaN/inf written as ``null`` (:func:`alignrank.atomic.atomic_write_json`)."""
    return _io.atomic_write_json(path, to_jsonable(obj), indent=2, allow_nan=False)
