"""Outputs of a search: ``best.yaml`` (a params fragment), the trial table (md + csv) and a plot.

Rows are plain dicts, one per trial (see :func:`alignrank.tune.search.trial_rows`): ``trial_id``,
``outcome`` (``completed`` | ``stopped_early`` | ``failed``), ``epochs`` (epochs reported),
``completed``, ``score`` (the metric at the trial's last epoch, the mean over seeds), and the sampled
values under their dotted keys. The best trial is the best score among the completed trials (an ASHA-stopped
trial's score is from an earlier epoch, so it is not comparable), or among all when none completed.
Every file is written atomically (:mod:`alignrank.io`: temp + fsync + ``os.replace``).

Examples:
    >>> rows = [{"trial_id": "a", "outcome": "completed", "epochs": 2, "completed": True,
    ...          "score": 0.4, "loss.margin": 0.2}]
    >>> best_row(rows, mode="max")["trial_id"]
    'a'
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from alignrank.io import atomic_write_bytes, atomic_write_text

BASE_COLUMNS = ("rank", "trial_id", "outcome", "epochs", "score")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def ranked(rows: Iterable[Mapping[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Rows sorted best first: completed trials by score, then stopped/failed ones, then unscored."""
    sign = -1.0 if mode == "max" else 1.0

    def key(r: Mapping[str, Any]):
        s = r.get("score")
        return (not r.get("completed"), not _finite(s), sign * s if _finite(s) else 0.0, str(r.get("trial_id")))

    out = [dict(r) for r in sorted(rows, key=key)]
    for i, r in enumerate(out, 1):
        r["rank"] = i
    return out


def best_row(rows: Iterable[Mapping[str, Any]], mode: str) -> dict[str, Any] | None:
    """The best scored trial (completed ones first), or None when no trial reported the metric."""
    top = ranked(rows, mode)
    return top[0] if top and _finite(top[0].get("score")) else None


def write_best(path: str | Path, best: Mapping[str, Any], keys: Sequence[str], *, metric: str, name: str,
               ties: int = 0) -> Path:
    """Write the best configuration as a params fragment of dotted keys (for ``--set-file``).

    Args:
        path: Output YAML (``<tune.out_dir>/best.yaml``).
        best: The best row (sampled values under their dotted keys).
        keys: The searched dotted keys (``tune.space``), in order.
        metric: Name of the optimised metric (for the header comment).
        name: Search (experiment) name (for the header comment).
        ties: Number of other completed trials with the same score (noted in the header).
    """
    fragment = {k: best[k] for k in keys}
    shown = Path(path)
    with contextlib.suppress(ValueError):
        shown = shown.resolve().relative_to(Path.cwd().resolve())
    header = (f"# Best configuration of tune search '{name}': {metric}={best['score']:.6g} "
              f"(trial {best['trial_id']}, {best['epochs']} epochs).\n"
              f"# Apply with: alignrank sweep --set-file {shown.as_posix()}\n")
    if ties:
        header += f"# Note: {ties} other trial(s) tie at this score; the tie was broken by trial id.\n"
    return atomic_write_text(path, header + yaml.safe_dump(fragment, sort_keys=False))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def write_tables(out_dir: str | Path, rows: Sequence[Mapping[str, Any]], keys: Sequence[str], *, metric: str,
                 mode: str, top: int | None = None) -> dict[str, Path]:
    """Write ``trials.csv`` (every trial) and ``trials.md`` (the ``top`` best) under ``out_dir``."""
    out_dir = Path(out_dir)
    table = ranked(rows, mode)
    cols = [*BASE_COLUMNS, *keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(table)
    csv_path = atomic_write_text(out_dir / "trials.csv", buf.getvalue())
    shown = table[:top] if top else table
    lines = [f"# Tune trials ({metric}, {mode}; score = metric at the trial's last epoch, mean over seeds)", "",
             "| " + " | ".join(c if c != "score" else metric for c in cols) + " |",
             "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in shown]
    md_path = atomic_write_text(out_dir / "trials.md", "\n".join(lines) + "\n")
    return {"csv": csv_path, "md": md_path}


def write_plot(path: str | Path, rows: Sequence[Mapping[str, Any]], keys: Sequence[str], *, metric: str,
               mode: str, log_keys: Iterable[str] = ()) -> Path:
    """Scatter of the score vs each searched parameter (one panel per key; best trial starred)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log_keys = set(log_keys)
    scored = [r for r in rows if _finite(r.get("score"))]
    best = best_row(rows, mode)
    n = max(len(keys), 1)
    cols = min(n, 3)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for done, marker, label in ((True, "o", "completed"), (False, "x", "stopped early / failed")):
            pts = [(r[key], r["score"]) for r in scored if bool(r.get("completed")) == done and key in r]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, label=label)
        if best is not None:
            ax.scatter([best[key]], [best["score"]], marker="*", s=200, c="gold", edgecolors="k", label="best")
        if key in log_keys:
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
