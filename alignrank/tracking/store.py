"""Where runs are tracked: the tracking URI and the embedded local store.

Resolution order: env ``MLFLOW_TRACKING_URI`` > ``mlflow.tracking_uri`` in params > the embedded store,
a SQLite file ``<project>/outputs/mlflow/mlflow.db`` with artifacts in ``<project>/outputs/mlflow/artifacts``
(the ``make mlflow-ui`` target serves the same paths). Parallel writers never open that SQLite file
together: in a sweep one writer actor owns it (:mod:`alignrank.tracking.writer`).

Examples:
    >>> import os
    >>> os.environ.pop("MLFLOW_TRACKING_URI", None) is None or True
    True
    >>> from alignrank.config import load_params
    >>> resolve_tracking_uri(load_params(None, {"mlflow.tracking_uri": "http://127.0.0.1:5000"}))
    'http://127.0.0.1:5000'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from alignrank.config.schema import Params
from alignrank.io import project_root

STORE_DIR = Path("outputs") / "mlflow"
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|CREDENTIAL|USERNAME|_KEY$")


def local_store() -> tuple[Path, Path]:
    """``(sqlite db file, artifacts folder)`` of the embedded store under the project root."""
    base = project_root() / STORE_DIR
    return base / "mlflow.db", base / "artifacts"


def sqlite_uri(db: Path) -> str:
    """``sqlite:///`` URI of an absolute db path."""
    return f"sqlite:///{Path(db).resolve()}"


def resolve_tracking_uri(params: Params) -> str:
    """Tracking URI: env ``MLFLOW_TRACKING_URI``, else ``mlflow.tracking_uri``, else the embedded SQLite."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.mlflow.tracking_uri
    if uri:
        return uri
    db, _ = local_store()
    db.parent.mkdir(parents=True, exist_ok=True)
    return sqlite_uri(db)


def is_embedded(uri: str) -> bool:
    """True for the embedded local SQLite store (the one that needs a single writer)."""
    return uri.startswith("sqlite:")


def artifact_root_for(uri: str) -> str | None:
    """Artifact root of experiments created in the embedded store (None: the server decides)."""
    if not is_embedded(uri):
        return None
    _, art = local_store()
    art.mkdir(parents=True, exist_ok=True)
    return str(art)


def is_secret(name: str, value: str) -> bool:
    """True for an environment variable that holds a credential: by its name (``*_PASSWORD``, ``*_TOKEN``,
    ``*_USERNAME`` ...) or a URI value with ``user:password@``.

    >>> (is_secret("MLFLOW_TRACKING_TOKEN", "x"), is_secret("MLFLOW_TRACKING_URI", "http://a:b@h"),
    ...  is_secret("MLFLOW_TRACKING_URI", "http://h:5000"))
    (True, True, False)
    """
    return bool(SECRET_NAME.search(name) or re.match(r"^[a-z][a-z0-9+.-]*://[^/@]*@", value, flags=re.I))


def credentials_from_env() -> dict[str, str]:
    """The ``MLFLOW_*`` credentials of this process (``MLFLOW_TRACKING_TOKEN`` / ``_USERNAME`` / ``_PASSWORD`` ...).

    They reach Ray workers inside the :class:`~alignrank.tracking.session.TrackerFactory` (a task argument),
    never through Ray's runtime environment, which Ray writes to its logs.
    """
    return {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_") and is_secret(k, v)}
