"""Offline, quiet runtime set-up for ultralytics, MLflow and Ray (call before importing them).

Every entry point (the CLI, the DVC stage scripts, Ray workers, the tests) calls :func:`setup_offline`. It points ultralytics' settings at a
private config folder (never the user's home), provides the ``Arial.ttf`` it would otherwise
download, turns off its MLflow/Ray Tune/hub callbacks, and disables telemetry of MLflow and Ray.

Examples:
    >>> import os
    >>> setup_offline()
    >>> os.environ["YOLO_OFFLINE"]
    '1'
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

_DONE = False

_ENV = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DISABLE_IMPORT_WARNING": "1",
    "RAY_DEDUP_LOGS": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
    "GIT_PYTHON_REFRESH": "quiet",
}


def config_dir() -> Path:
    """Private ultralytics config folder: ``$ALIGNRANK_HOME/ultralytics`` (default: inside ``sys.prefix``)."""
    home = os.environ.get("ALIGNRANK_HOME")
    base = Path(home) if home else Path(sys.prefix) / "alignrank-home"
    return base / "ultralytics"


def _font(dst: Path) -> None:
    if dst.exists():
        return
    import matplotlib

    src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def setup_offline() -> None:
    """Set the offline environment and ultralytics settings (idempotent, cheap)."""
    global _DONE
    if _DONE:
        return
    for k, v in _ENV.items():
        if v:
            os.environ.setdefault(k, v)
    cfg = config_dir()
    cfg.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cfg))
    os.environ.setdefault("MPLCONFIGDIR", str(cfg.parent / "matplotlib"))
    cfg_used = Path(os.environ["YOLO_CONFIG_DIR"])
    cfg_used.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        _font(cfg_used / name)
    from ultralytics.utils import SETTINGS  # noqa: E402  (reads YOLO_CONFIG_DIR)

    wanted = {"mlflow": False, "raytune": False, "sync": False, "hub": False, "tensorboard": False,
              "wandb": False, "clearml": False, "comet": False, "dvc": False, "neptune": False}
    wanted = {k: v for k, v in wanted.items() if k in SETTINGS and SETTINGS[k] != v}
    if wanted:
        SETTINGS.update(wanted)
    _DONE = True


def cpu_model() -> str:
    """This machine's CPU model name (``/proc/cpuinfo``), else what :mod:`platform` says.

    Examples:
        >>> isinstance(cpu_model(), str)
        True
    """
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """What a CPU run's numbers depend on beyond its run key: the CPU, torch and torch's CPU kernel level.

    Runs are bit-reproducible on one CPU kind only: another CPU (or ``ATEN_CPU_CAPABILITY``) selects other
    kernels that round differently, and training amplifies that into a different model.

    Examples:
        >>> "torch" in machine()
        True
    """
    import torch

    return f"{cpu_model()}, torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()}"
