"""``SkipReport``: counts and first example of every kind of bad record, logged one line per kind.

Examples:
    >>> r = SkipReport()
    >>> r.add("unknown_category", "annotation id 7, category_id 999")
    >>> r.add("unknown_category", "annotation id 9, category_id 998")
    >>> r.as_dict()
    {'unknown_category': {'count': 2, 'action': 'skipped', 'example': 'annotation id 7, category_id 999'}}
    >>> r.lines("train")
    ['train: skipped 2 record(s) of kind unknown_category (first: annotation id 7, category_id 999)']
"""

from __future__ import annotations

import logging

LOGGER = logging.getLogger("alignrank.data")


class SkipReport:
    """Bad records by kind: count, action (skipped / clipped) and the first example."""

    def __init__(self) -> None:
        self._kinds: dict[str, dict] = {}

    def add(self, kind: str, example: str, action: str = "skipped") -> None:
        """Count one record of ``kind``; the first ``example`` is kept."""
        entry = self._kinds.setdefault(kind, {"count": 0, "action": action, "example": example})
        entry["count"] += 1

    def counts(self) -> dict[str, int]:
        """``{kind: count}``."""
        return {k: v["count"] for k, v in self._kinds.items()}

    def as_dict(self) -> dict[str, dict]:
        """``{kind: {"count", "action", "example"}}`` (JSON-ready, for manifest.json)."""
        return {k: dict(v) for k, v in self._kinds.items()}

    def lines(self, where: str) -> list[str]:
        """One human line per kind."""
        return [
            f"{where}: {v['action']} {v['count']} record(s) of kind {k} (first: {v['example']})"
            for k, v in self._kinds.items()
        ]

    def warn(self, where: str) -> None:
        """Log one warning line per kind on the ``alignrank.data`` logger."""
        for line in self.lines(where):
            LOGGER.warning(line)

    def __bool__(self) -> bool:
        return bool(self._kinds)
