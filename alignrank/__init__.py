"""AlignRank: CSD-Head + RCQ-Loss on YOLOv8, with a reproducible, distributed experiment pipeline.

Importing the package is cheap: it imports neither torch nor ultralytics and writes nothing. Entry points
(the CLI, the DVC stage scripts, Ray workers) call :func:`alignrank.env.setup_offline` before ultralytics,
MLflow or Ray are used. The method lives in :mod:`alignrank.nn` and :mod:`alignrank.loss`.

Examples:
    >>> import alignrank
    >>> alignrank.__version__
    '0.1.0'
"""

__version__ = "0.1.0"
