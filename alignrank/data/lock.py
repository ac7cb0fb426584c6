"""The dataset's lock: the data stage writes ``data.root`` alone; training and sweeps read it together.

The lock lives beside the dataset (``<parent>/.<root name>.alignrank/lock.db``, see :mod:`alignrank.locks`),
since the stage replaces the dataset folder itself. ``alignrank data`` takes it for writing while it checks,
builds and swaps the folder; a run (``train``) and a sweep (for its whole duration) take it for reading, so
the dataset cannot be rebuilt under a run that is keyed by its fingerprint. A second job meets one
``busy: <data.root> is locked by pid P on host H since T`` line, or waits (``train.lock_wait``).

Examples:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "data"
    >>> with dataset_lock(root, write=False, wait=0), dataset_lock(root, write=False, wait=0):
    ...     pass
"""

from __future__ import annotations

from pathlib import Path
from typing import ContextManager

from alignrank.data.check import side_dir
from alignrank.locks import hold

LOCK_NAME = "lock.db"


def dataset_lock(root: Path, *, write: bool, wait: float) -> ContextManager[None]:
    """Hold the lock of the dataset at ``root``: alone (``write``) or with other readers.

    Raises:
        Busy: Held the other way by another job (after ``wait`` seconds; 0 = at once, < 0 = no limit).
    """
    return hold(root, side_dir(Path(root)) / LOCK_NAME, wait=wait, mode="write" if write else "read")


__all__ = ["dataset_lock", "LOCK_NAME"]
