"""Ultralytics' log on stderr: a command's stdout carries only its own output (JSON with ``--json``).

Ultralytics logs to stdout, also while merely building a model ("Overriding model.yaml nc=80 with nc=4"),
which the run key does in any process that asks for one. Everything that builds or trains through
ultralytics runs inside :func:`quiet_ultralytics`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator


@contextlib.contextmanager
def quiet_ultralytics(verbose: bool = False) -> Iterator[None]:
    """Send ultralytics' log to stderr (stdout stays clean for JSON) and, unless ``verbose``, only warnings.

    Examples:
        >>> from ultralytics.utils import LOGGER
        >>> with quiet_ultralytics():
        ...     LOGGER.info("not on stdout")
        >>> LOGGER.level == logging.WARNING
        False
    """
    from ultralytics.utils import LOGGER

    handlers = [h for h in LOGGER.handlers if isinstance(h, logging.StreamHandler) and h.stream is sys.stdout]
    level = LOGGER.level
    for h in handlers:
        h.setStream(sys.stderr)
    if not verbose:
        LOGGER.setLevel(logging.WARNING)  # also disables ultralytics' progress bars
    try:
        yield
    finally:
        LOGGER.setLevel(level)
        for h in handlers:
            h.setStream(sys.stdout)
