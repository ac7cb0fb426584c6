"""Ray set-up from params: a fresh local Ray, or a cluster by address; per-run task options.

``ray.address``: ``null`` starts a private local Ray (``num_cpus = ray.num_cpus`` or all cores; never
joins a cluster that happens to run on this machine); ``auto`` joins the cluster started with
``ray start`` on this machine; ``host:port`` joins that cluster's GCS; ``ray://host:port`` uses Ray Client.
The driver's ``ALIGNRANK_*``, ``YOLO_*``, ``MLFLOW_*`` and ``TQDM_*`` environment variables are passed to
every worker (job runtime env), so cluster workers see the same settings, except credentials: Ray writes
the runtime env to ``<ray temp>/session_*/logs/runtime_env_agent.log`` (world-readable), so
``MLFLOW_TRACKING_TOKEN`` / ``_PASSWORD`` / ``_USERNAME`` (or a URI with ``user:password@``) travel inside the
tracker factory instead (:mod:`alignrank.tracking.session`), and are hidden from the Ray processes this
driver starts.

Examples:
    >>> from alignrank.config import load_params
    >>> task_options(load_params(None, {"ray.cpus_per_run": 2, "ray.gpus_per_run": 0.5}))
    {'num_cpus': 2.0, 'num_gpus': 0.5, 'max_retries': 0, 'retry_exceptions': False}
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
from typing import Iterator

from alignrank.config.schema import Params
from alignrank.errors import UsageError

ENV_PREFIXES = ("ALIGNRANK_", "YOLO_", "MLFLOW_", "TQDM_")
CONNECT_TIMEOUT_S = 10.0


def worker_env() -> dict[str, str]:
    """Environment variables forwarded to Ray workers (never a credential: Ray logs this runtime env)."""
    from alignrank.tracking.store import is_secret

    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES) and not is_secret(k, v)}


@contextlib.contextmanager
def _credentials_hidden() -> Iterator[None]:
    """The driver's MLflow credentials out of ``os.environ`` while Ray starts its processes (a local Ray's
    raylet and workers inherit this environment): workers get them only from the tracker factory, as
    they do on a cluster."""
    from alignrank.tracking.store import credentials_from_env

    hidden = credentials_from_env()
    for k in hidden:
        os.environ.pop(k, None)
    try:
        yield
    finally:
        os.environ.update(hidden)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast (one line) when ``host:port`` / ``ray://host:port`` does not accept TCP connections."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"ray.address '{address}': expected null, 'auto', 'host:port' or 'ray://host:port'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise UsageError(
            f"ray.address '{address}': cannot connect ({e.strerror or e}); start the cluster (`ray start --head`) "
            f"or set ray.address=null for a local Ray"
        ) from None


def task_options(params: Params) -> dict:
    """Resources of one run task; retries are handled by the sweep (it resumes the run from last.pt)."""
    return {"num_cpus": float(params.ray.cpus_per_run), "num_gpus": float(params.ray.gpus_per_run),
            "max_retries": 0, "retry_exceptions": False}


def placement_spec(params: Params) -> dict | None:
    """A run holding several GPUs (``ray.gpus_per_run`` > 1, DDP): one placement group per run whose single bundle
    (its CPUs and GPUs) is packed on one node (``STRICT_PACK``), reserved whole before the run starts; None for
    one GPU or less.

    >>> from alignrank.config import load_params
    >>> placement_spec(load_params(None, {"ray.gpus_per_run": 2, "ray.cpus_per_run": 8, "train.device": "0,1"}))
    {'bundles': [{'CPU': 8.0, 'GPU': 2.0}], 'strategy': 'STRICT_PACK'}
    """
    r = params.ray
    if r.gpus_per_run <= 1:
        return None
    return {"bundles": [{"CPU": float(r.cpus_per_run), "GPU": float(r.gpus_per_run)}], "strategy": "STRICT_PACK"}


def placement_options(pg) -> dict:
    """Task options that run a task in bundle 0 of placement group ``pg`` (its child tasks too)."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return {"scheduling_strategy": PlacementGroupSchedulingStrategy(
        placement_group=pg, placement_group_bundle_index=0, placement_group_capture_child_tasks=True)}


_GROUPS: dict = {}  # task ref -> its placement group (removed when the task is done)


def submit(task, params: Params, *args):
    """``task.remote(*args)``, in a placement group of its own when the run holds several GPUs."""
    spec = placement_spec(params)
    if spec is None:
        return task.remote(*args)
    from ray.util.placement_group import placement_group

    pg = placement_group(**spec)
    ref = task.options(**placement_options(pg)).remote(*args)
    _GROUPS[ref] = pg
    return ref


def release(ref) -> None:
    """Remove the placement group of a finished task (if it had one)."""
    pg = _GROUPS.pop(ref, None)
    if pg is not None:
        from ray.util.placement_group import remove_placement_group

        with contextlib.suppress(Exception):
            remove_placement_group(pg)


@functools.lru_cache(maxsize=1)
def _process_token() -> str:
    import secrets

    return secrets.token_hex(32)


def ensure_local_token() -> None:
    """Before starting a private local Ray: keep token auth on, with a per-process token in the environment
    instead of the ``~/.ray/auth_token`` file Ray would otherwise write into the user's home."""
    if not os.environ.get("RAY_AUTH_MODE") and not os.environ.get("RAY_AUTH_TOKEN"):
        os.environ["RAY_AUTH_TOKEN"] = _process_token()  # one per process: Ray caches the token it loaded


@contextlib.contextmanager
def ray_session(params: Params) -> Iterator[bool]:
    """Initialise Ray from ``params.ray`` for the block; yields True when this call started it.

    An already-initialised Ray (e.g. a test or Ray Tune driver) is used as is and left running.
    """
    import ray

    if ray.is_initialized():
        yield False
        return
    kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
              runtime_env={"env_vars": worker_env()})
    address = params.ray.address
    if address is not None:
        check_reachable(address)
    else:
        ensure_local_token()
    with _credentials_hidden():
        if address is None:
            ray.init(address="local", num_cpus=params.ray.num_cpus or os.cpu_count(), **kw)
        else:
            ray.init(address=address, **kw)
    try:
        yield True
    finally:
        ray.shutdown()


def cluster_resources() -> dict:
    """Total resources of the connected cluster (CPU, GPU, ...)."""
    import ray

    return dict(ray.cluster_resources())
