"""``alignrank sync``: replay every spooled tracking record under ``train.out_dir`` to the tracking store.

Spools (``tracking_spool.jsonl``, see :mod:`alignrank.tracking.records`) are left by runs, and by the sweep's
parent run (``<train.out_dir>/tracking_spool.jsonl``), while the tracking server was unreachable. Each is
replayed in order to the configured store (env ``MLFLOW_TRACKING_URI`` > ``mlflow.tracking_uri`` >
embedded store) and removed only once all of its records arrived. Running it twice logs nothing twice.

Examples:
    >>> from alignrank.config import load_params
    >>> run_sync(load_params(None))  # nothing spooled: nothing to replay
    {'uri': 'sqlite:///.../outputs/mlflow/mlflow.db', 'synced': [], 'failed': []}
"""

from __future__ import annotations

from pathlib import Path

from alignrank.config.schema import Params
from alignrank.errors import TrackingError
from alignrank.tracking import client
from alignrank.tracking.records import SPOOL_NAME


def find_spools(root: Path) -> list[Path]:
    """Every spool under ``root`` (the sweep's own first, then runs in name order)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(root.rglob(SPOOL_NAME), key=lambda p: (len(p.relative_to(root).parts), str(p)))


def sync_spools(root: Path, uri: str) -> dict:
    """Replay the spools under ``root`` to ``uri``; ``{"uri", "synced": [...], "failed": [...]}``.

    A spool that fails is kept (with its error in ``failed``) and the others are still tried.
    """
    synced, failed = [], []
    spools = find_spools(root)
    if spools and not client.reachable(uri):
        raise TrackingError(f"MLflow at {client.redact_uri(uri)} is not reachable; {len(spools)} spool(s) under {root} kept: "
                            f"start the server (mlflow.tracking_uri / MLFLOW_TRACKING_URI) and re-run `alignrank sync`")
    store = client.StoreClient(uri) if spools else None
    for p in spools:
        try:
            synced.append({"spool": str(p), "records": store.replay(p)})
        except TrackingError as e:
            failed.append({"spool": str(p), "error": str(e).splitlines()[0]})
    return {"uri": client.redact_uri(uri), "synced": synced, "failed": failed}


def run_sync(params: Params) -> dict:
    """``alignrank sync``: :func:`sync_spools` over ``train.out_dir`` to the configured store."""
    from alignrank.io import resolve_path
    from alignrank.tracking.store import resolve_tracking_uri

    return sync_spools(resolve_path(params.train.out_dir), resolve_tracking_uri(params))
