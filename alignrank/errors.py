"""Expected errors: one clear line naming the thing and the fix (the CLI prints no traceback).

Examples:
    >>> str(DataError("data/x.json: malformed JSON at line 3; re-download the file"))
    'data/x.json: malformed JSON at line 3; re-download the file'
"""

from __future__ import annotations


class AlignRankError(RuntimeError):
    """Base of expected, user-facing failures (exit code 1)."""

    exit_code = 1


class UsageError(AlignRankError):
    """Wrong params or CLI usage (exit code 2)."""

    exit_code = 2


class DataError(AlignRankError):
    """Bad or missing input data."""


class TrackingError(AlignRankError):
    """The experiment tracker (MLflow) is unreachable or refused a write."""


class RunFailed(AlignRankError):
    """A training run failed (after its retries)."""
