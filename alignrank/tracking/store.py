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
from pathlib import Path
from typing import Any, Mapping

from alignrank.config.schema import Params
from alignrank.io import project_root
from alignrank.tracking.mlflow_tracker import MlflowTracker

STORE_DIR = Path("outputs") / "mlflow"


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


def open_tracker(
    params: Params,
    *,
    run_name: str | None = None,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
) -> MlflowTracker:
    """Open (or reopen, with ``run_id``) an MLflow run in ``mlflow.experiment``.

    Other stages use this to add to a training run, e.g. the evaluation logs predictions JSON:

    >>> # t = open_tracker(params, run_id=run["mlflow_run_id"]); t.log_artifact("preds.json"); t.end()
    """
    uri = tracking_uri or resolve_tracking_uri(params)
    return MlflowTracker.start(
        tracking_uri=uri,
        experiment=params.mlflow.experiment,
        run_name=run_name,
        run_id=run_id,
        parent_run_id=parent_run_id,
        tags=tags,
        artifact_root=artifact_root_for(uri),
    )
