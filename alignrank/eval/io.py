"""Atomic writes of result files (temp file in the same folder + ``os.replace``).

Examples:
    >>> import tempfile, pathlib, json
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> _ = atomic_write_json(p, {"AP": 0.5})
    >>> json.loads(p.read_text())["AP"]
    0.5
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _atomic(path: str | Path, write: Callable[[Path], None], suffix: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


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
    """Write ``obj`` as indented JSON (NaN written as ``null``)."""
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False)
    return _atomic(path, lambda p: p.write_text(text + "\n"))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file."""
    return _atomic(path, lambda p: p.write_text(text))


def atomic_write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write a compressed ``.npz``."""

    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez_compressed(f, **arrays)

    return _atomic(path, write)


def atomic_savefig(path: str | Path, fig) -> Path:
    """Save a matplotlib figure as PNG."""
    return _atomic(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"), suffix=".png")
