"""AlignRank: CSD-Head + RCQ-Loss on YOLOv8, with a reproducible, distributed experiment pipeline.

Importing the package sets up the offline, quiet environment for ultralytics, MLflow and Ray.

Examples:
    >>> import alignrank
    >>> model = alignrank.build_model("baseline", scale="n", nc=80)
"""

from alignrank.env import setup_offline

setup_offline()

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in ("build_model", "AlignRankModel"):
        from alignrank.nn import model as _m

        return getattr(_m, name)
    raise AttributeError(f"module 'alignrank' has no attribute {name!r}")


__all__ = ["build_model", "AlignRankModel", "setup_offline", "__version__"]
