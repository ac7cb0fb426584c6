"""Ray set-up from params: a fresh local Ray, or a cluster by address; per-run task options.

``ray.address``: ``null`` starts a private local Ray (``num_cpus = ray.num_cpus`` or all cores; never
joins a cluster that happens to run on this machine); ``auto`` joins the cluster started with
``ray start`` on this machine; ``host:port`` joins that cluster's GCS; ``ray://host:port`` uses Ray Client.
The driver's ``ALIGNRANK_*``, ``YOLO_*``, ``MLFLOW_*`` and ``TQDM_*`` environment variables are passed to
every worker (job runtime env), so cluster workers see the same settings.

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
    """Environment variables forwarded to Ray workers."""
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}


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
    if address is None:
        ensure_local_token()
        ray.init(address="local", num_cpus=params.ray.num_cpus or os.cpu_count(), **kw)
    else:
        check_reachable(address)
        ray.init(address=address, **kw)
    try:
        yield True
    finally:
        ray.shutdown()


def cluster_resources() -> dict:
    """Total resources of the connected cluster (CPU, GPU, ...)."""
    import ray

    return dict(ray.cluster_resources())
