"""The one I/O module: atomic writes of result files, JSON read/write, file hashes, project paths.

Every file we write goes through :func:`atomic_write_bytes`: a uniquely named temp file in the same folder,
fsync, ``os.replace``. Readers never see a half-written file (the target is the previous file or the new
one); on any error the temp file is removed and the previous file is left whole; an ``OSError`` (read-only
folder, full disk, ...) is re-raised as the one-line :class:`~alignrank.errors.OutputWriteError`. Temp names
carry the pid and a random part, so two processes writing one file never share a temp file.

JSON is written in one format: UTF-8, key order kept, numpy values as Python numbers, NaN/inf as
``null``; indented (``indent=2``) or, for large data files, compact (``indent=None``).

Examples:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> _ = atomic_write_json(p, {"AP": 0.5, "AR": float("nan")})
    >>> read_json(p)
    {'AP': 0.5, 'AR': None}
    >>> sorted(x.name for x in p.parent.iterdir())
    ['m.json']
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

from alignrank.errors import OutputWriteError, disk_error

PARAMS_FILE = "params.yaml"
CHUNK = 1 << 20


def project_root() -> Path:
    """Project root: ``$ALIGNRANK_ROOT`` or the nearest parent of the CWD holding ``params.yaml``."""
    env = os.environ.get("ALIGNRANK_ROOT")
    if env:
        return Path(env).resolve()
    cwd = Path.cwd().resolve()
    for d in (cwd, *cwd.parents):
        if (d / PARAMS_FILE).is_file():
            return d
    return cwd


def resolve_path(p: str | Path) -> Path:
    """``p`` (``~`` expanded) if absolute, else relative to :func:`project_root`.

    Examples:
        >>> resolve_path("/tmp/x").as_posix()
        '/tmp/x'
    """
    p = Path(p).expanduser()
    return p if p.is_absolute() else project_root() / p


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, streamed.

    Examples:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a"; _ = p.write_bytes(b"")
        >>> sha256_file(p)[:12]
        'e3b0c44298fc'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | Path) -> dict | None:
    """The JSON object in ``path``, or None when missing, unreadable or not an object (state files)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays to Python, non-finite floats to ``None``, paths to str.

    Examples:
        >>> import numpy as np
        >>> to_jsonable({"a": np.float32(0.5), "b": [float("inf")], 3: np.arange(2)})
        {'a': 0.5, 'b': [None], '3': [0, 1]}
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if type(obj).__module__ == "numpy":
        return to_jsonable(obj.tolist() if hasattr(obj, "tolist") else obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creates the parent folder; file mode from the umask).

    Args:
        path: Target file.
        data: Its new contents.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OutputWriteError: The folder is not writable, the disk is full, ... (previous file kept, no temp left).

    Examples:
        >>> import tempfile, pathlib
        >>> atomic_write_bytes(pathlib.Path(tempfile.mkdtemp()) / "a.bin", b"x").read_bytes()
        b'x'
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    created = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode & ~umask, as open() would
        created = True
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # Ctrl-C included: never leave the temp file behind
        if created:
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, OutputWriteError):
            raise disk_error(path, e) from e
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomic UTF-8 text write (see :func:`atomic_write_bytes`).

    Examples:
        >>> import tempfile, pathlib
        >>> atomic_write_text(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hi").read_text()
        'hi'
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any, *, indent: int | None = 2) -> str:
    """The project's JSON format (see the module docstring); ``indent=None`` is the compact form.

    Examples:
        >>> dumps_json({"b": 1, "a": [1.5, float("nan")]}, indent=None)
        '{"b":1,"a":[1.5,null]}'
    """
    sep = (",", ": ") if indent is not None else (",", ":")
    return json.dumps(to_jsonable(obj), indent=indent, separators=sep, ensure_ascii=False, allow_nan=False,
                      default=str)


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Atomic JSON write in the project's format (:func:`dumps_json`), newline-terminated.

    Examples:
        >>> import tempfile, pathlib
        >>> atomic_write_json(pathlib.Path(tempfile.mkdtemp()) / "a.json", {"b": 1}, indent=None).read_text()
        '{"b":1}\\n'
    """
    return atomic_write_text(path, dumps_json(obj, indent=indent) + "\n")


def atomic_write_yaml(path: str | Path, obj: Any, *, header: str = "", sort_keys: bool = False) -> Path:
    """Atomic YAML write (``yaml.safe_dump``), after an optional ``header`` (e.g. comment lines).

    Examples:
        >>> import tempfile, pathlib
        >>> atomic_write_yaml(pathlib.Path(tempfile.mkdtemp()) / "a.yaml", {"b": 1}, header="# hi\\n").read_text()
        '# hi\\nb: 1\\n'
    """
    import yaml

    return atomic_write_text(path, header + yaml.safe_dump(obj, sort_keys=sort_keys))


def atomic_write_npz(path: str | Path, **arrays: Any) -> Path:
    """Atomic compressed ``.npz`` write (``np.savez_compressed``).

    Examples:
        >>> import tempfile, pathlib, numpy as np
        >>> p = atomic_write_npz(pathlib.Path(tempfile.mkdtemp()) / "a.npz", x=np.arange(3))
        >>> np.load(p)["x"].tolist()
        [0, 1, 2]
    """
    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_savefig(path: str | Path, fig: Any, **kwargs: Any) -> Path:
    """Atomic PNG of a matplotlib figure (defaults: dpi 110, tight bounding box; ``kwargs`` override)."""
    buf = io.BytesIO()
    fig.savefig(buf, **{"format": "png", "dpi": 110, "bbox_inches": "tight", **kwargs})
    return atomic_write_bytes(path, buf.getvalue())
