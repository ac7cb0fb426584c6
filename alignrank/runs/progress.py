"""Live progress of a sweep: each run's state, attempt, epoch and latest metric.

The driver knows each run's state (queued, running, retrying, done, cached, failed); the workers write
their epoch and latest metrics to ``<run_dir>/status.json``, which the driver polls. On a terminal the
table is redrawn in place; otherwise (logs, CI, DVC) one plain line is printed per change.

Examples:
    >>> import io
    >>> p = Progress({"baseline-s0-abc": None}, stream=io.StringIO(), tty=False)
    >>> p.set("baseline-s0-abc", "running", attempt=1)
    >>> p.stream.getvalue().strip()
    '[sweep 0/1] baseline-s0-abc running (attempt 1)'
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional, TextIO

from alignrank.io import read_json

FINISHED = ("done", "cached", "failed")


class Progress:
    """Progress view of the runs ``{name: run_dir}``.

    Args:
        runs: Run names and their folders (status.json is read from there; None = no status file).
        stream: Output stream (default stderr).
        tty: Redraw a table in place (default: ``stream.isatty()``).
    """

    def __init__(self, runs: dict[str, Optional[Path]], *, stream: Optional[TextIO] = None,
                 tty: Optional[bool] = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.dirs = dict(runs)
        self.rows = {n: {"state": "queued", "attempt": 0, "epoch": None, "epochs": None, "metric": None, "note": ""}
                     for n in runs}
        self._drawn = 0
        self._t0 = time.time()

    def set(self, name: str, state: str, *, attempt: Optional[int] = None, note: str = "",
            metric: Optional[float] = None) -> None:
        """Set a run's state (and print/redraw)."""
        row = self.rows[name]
        row.update(state=state, note=note)
        if attempt is not None:
            row["attempt"] = attempt
        if metric is not None:
            row["metric"] = metric
        self._emit(name)

    def poll(self) -> None:
        """Refresh epoch/metric of running runs from their ``status.json``."""
        for name, row in self.rows.items():
            d = self.dirs.get(name)
            if row["state"] != "running" or d is None:
                continue
            st = read_json(Path(d) / "status.json") or {}
            epoch, metric = st.get("epoch"), (st.get("metrics") or {}).get("map50_95")
            if st.get("state") == "running" and epoch and epoch != row["epoch"]:
                row.update(epoch=epoch, epochs=st.get("epochs"), metric=metric)
                self._emit(name)

    def _line(self, name: str) -> str:
        r = self.rows[name]
        parts = [r["state"]]
        if r["state"] in ("running", "retrying") and r["attempt"]:
            parts.append(f"(attempt {r['attempt']})")
        if r["epoch"]:
            parts.append(f"epoch {r['epoch']}/{r['epochs']}")
        if r["metric"] is not None:
            parts.append(f"map50_95={r['metric']:.4f}")
        if r["note"]:
            parts.append(r["note"])
        return f"{name} " + " ".join(parts)

    def _emit(self, name: str) -> None:
        done = sum(r["state"] in FINISHED for r in self.rows.values())
        if not self.tty:
            print(f"[sweep {done}/{len(self.rows)}] {self._line(name)}", file=self.stream, flush=True)
            return
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")  # back to the table's first line, clear below
        lines = [f"sweep: {done}/{len(self.rows)} finished, {time.time() - self._t0:.0f}s"]
        lines += [f"  {self._line(n)}" for n in self.rows]
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn = len(lines)

    def counts(self) -> dict[str, int]:
        """Number of runs per state."""
        out: dict[str, int] = {}
        for r in self.rows.values():
            out[r["state"]] = out.get(r["state"], 0) + 1
        return out
