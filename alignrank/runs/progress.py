"""Live progress of a sweep: each run's state, attempt, epoch, latest metric, elapsed time and ETA.

The driver knows each run's state (queued, running, retrying, done, cached, failed); the workers write
their epoch and latest metrics to ``<run_dir>/status.json``, which the driver polls. On a terminal a
``rich`` table is redrawn in place (about once a second, so the clocks tick); otherwise (logs, CI, DVC)
one plain line is printed per change and nothing is redrawn.

Times: a run's elapsed time counts from its dispatch; its ETA is its time per epoch so far (this attempt)
times the epochs left. The sweep's ETA is the epochs left over all unfinished runs divided by the epochs
per second the sweep has achieved since its first dispatch (so concurrency is accounted for); ``ETA ?``
until a first epoch ends. A finished run shows its FINAL metric, the validation of ``best.pt``, with the
best epoch it comes from (``best epoch 3/5``), never with the last epoch's number.

Examples:
    >>> import io
    >>> now = [100.0]
    >>> p = Progress({"baseline-s0-abc": None}, stream=io.StringIO(), tty=False, epochs=3, clock=lambda: now[0])
    >>> p.set("baseline-s0-abc", "running", attempt=1)
    >>> now[0] = 130.0
    >>> p.set("baseline-s0-abc", "done", metric=0.25, best_epoch=2)
    >>> print(p.stream.getvalue().strip())
    [sweep 0/1 elapsed 0:00 ETA ?] baseline-s0-abc running (attempt 1) elapsed 0:00
    [sweep 1/1 elapsed 0:30] baseline-s0-abc done best epoch 2/3 map50_95=0.2500 (best.pt) elapsed 0:30
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

from alignrank.io import read_json

FINISHED = ("done", "cached", "failed")
ACTIVE = ("running", "retrying")
COLUMNS = ("run", "state", "try", "epoch", "map50_95", "elapsed", "ETA", "note")


def duration(s: Optional[float]) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour), ``?`` for unknown.

    >>> duration(75), duration(3725), duration(None)
    ('1:15', '1:02:05', '?')
    """
    if s is None:
        return "?"
    s = max(0, int(round(s)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _row(epochs: Optional[int]) -> dict[str, Any]:
    return {"state": "queued", "attempt": 0, "epoch": None, "epochs": epochs, "metric": None, "best_epoch": None,
            "note": "", "started": None, "ended": None, "first_epoch": None, "last_epoch_at": None, "seen": 0}


class Progress:
    """Progress view of the runs ``{name: run_dir}``.

    Args:
        runs: Run names and their folders (status.json is read from there; None = no status file).
        stream: Output stream (default stderr).
        tty: Redraw a table in place (default: ``stream.isatty()``).
        epochs: Epochs of each run (for the ETA of queued runs; status.json's own count wins).
        clock: Time source (seconds; tests pass a fake one).
    """

    def __init__(self, runs: dict[str, Optional[Path]], *, stream: Optional[TextIO] = None,
                 tty: Optional[bool] = None, epochs: Optional[int] = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.dirs = dict(runs)
        self.rows = {n: _row(epochs) for n in runs}
        self.clock = clock
        self._t0 = clock()
        self._first_dispatch: Optional[float] = None
        self._live = None
        if self.tty:
            self._start_live()

    # -- state --------------------------------------------------------------------------------------
    def set(self, name: str, state: str, *, attempt: Optional[int] = None, note: str = "",
            metric: Optional[float] = None, best_epoch: Optional[int] = None) -> None:
        """Set a run's state (and print a line / redraw). ``metric``/``best_epoch``: a finished run's final
        metric (validation of best.pt) and the epoch best.pt is from."""
        row, now = self.rows[name], self.clock()
        if state == "running" and row["state"] != "running":  # a new attempt: its own clock and epoch rate
            row.update(started=now, ended=None, first_epoch=None, last_epoch_at=None)
            self._first_dispatch = self._first_dispatch or now
        if state in FINISHED or state == "interrupted":
            row["ended"] = now
        row.update(state=state, note=note)
        if attempt is not None:
            row["attempt"] = attempt
        if metric is not None:
            row["metric"] = metric
        if best_epoch is not None:
            row["best_epoch"] = best_epoch
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
                if row["first_epoch"] is None:  # this attempt's first epoch seen (a resumed run starts at k+1)
                    row["first_epoch"] = epoch
                row["seen"] += 1 if row["epoch"] is None or epoch < row["epoch"] else epoch - row["epoch"]
                row.update(epoch=epoch, epochs=st.get("epochs") or row["epochs"], metric=metric,
                           last_epoch_at=self.clock())
                self._emit(name)

    def counts(self) -> dict[str, int]:
        """Number of runs per state."""
        out: dict[str, int] = {}
        for r in self.rows.values():
            out[r["state"]] = out.get(r["state"], 0) + 1
        return out

    # -- times --------------------------------------------------------------------------------------
    def elapsed(self, name: str) -> Optional[float]:
        """Seconds since the run's (latest) dispatch; up to its end once finished."""
        r = self.rows[name]
        if r["started"] is None:
            return None
        return (r["ended"] if r["ended"] is not None else self.clock()) - r["started"]

    def run_eta(self, name: str) -> Optional[float]:
        """Seconds left for a running run: its time per epoch in this attempt x epochs left (None: unknown)."""
        r = self.rows[name]
        if r["state"] not in ACTIVE or not r["epoch"] or not r["epochs"] or r["first_epoch"] is None:
            return None
        per_epoch = (r["last_epoch_at"] - r["started"]) / (r["epoch"] - r["first_epoch"] + 1)
        return max(0.0, per_epoch * (r["epochs"] - r["epoch"]) - (self.clock() - r["last_epoch_at"]))

    def sweep_eta(self) -> Optional[float]:
        """Seconds left for the sweep: epochs left / epochs per second achieved so far (None: unknown)."""
        left = 0
        for r in self.rows.values():
            if r["state"] in FINISHED:
                continue
            if not r["epochs"]:
                return None
            left += r["epochs"] - (r["epoch"] or 0)
        if left == 0:
            return 0.0
        seen = sum(r["seen"] for r in self.rows.values())
        if not seen or self._first_dispatch is None:
            return None
        return left / (seen / max(1e-9, self.clock() - self._first_dispatch))

    # -- output -------------------------------------------------------------------------------------
    def _cells(self, name: str) -> dict[str, str]:
        """The run's table cells (bare values; :meth:`_line` labels them)."""
        r = self.rows[name]
        epoch = ""
        if r["state"] in ("done", "cached") and r["best_epoch"] and r["epochs"]:
            epoch = f"best {r['best_epoch']}/{r['epochs']}"  # the final metric is best.pt's, from this epoch
        elif r["state"] not in ("done", "cached") and r["epoch"]:
            epoch = f"{r['epoch']}/{r['epochs']}"
        metric = "" if r["metric"] is None else f"{r['metric']:.4f}"
        return {"run": name, "state": r["state"],
                "try": str(r["attempt"]) if r["state"] in ACTIVE and r["attempt"] else "",
                "epoch": epoch, "map50_95": metric + (" (best.pt)" if metric and r["state"] in ("done", "cached") else ""),
                "elapsed": duration(self.elapsed(name)) if r["started"] is not None and r["state"] != "cached" else "",
                "ETA": duration(self.run_eta(name)) if r["state"] in ACTIVE and r["epoch"] else "",
                "note": r["note"]}

    def _line(self, name: str) -> str:
        """One plain line: ``<run> <state> (attempt n) [best ]epoch e/E map50_95=x elapsed t ETA t <note>``."""
        c = self._cells(name)
        label = {"try": "(attempt {})", "epoch": "best epoch {}" if c["epoch"].startswith("best ") else "epoch {}",
                 "map50_95": "map50_95={}", "elapsed": "elapsed {}", "ETA": "ETA {}"}
        c["epoch"] = c["epoch"].removeprefix("best ")
        return " ".join(label.get(k, "{}").format(x) for k, x in c.items() if x)

    def header(self) -> str:
        """``sweep <finished>/<runs> elapsed <time> ETA <eta>`` (no ETA once every run finished)."""
        done = sum(r["state"] in FINISHED for r in self.rows.values())
        eta = "" if done == len(self.rows) else f" ETA {duration(self.sweep_eta())}"
        return f"sweep {done}/{len(self.rows)} elapsed {duration(self.clock() - self._t0)}{eta}"

    def _start_live(self) -> None:
        """The terminal view: redrawn about once a second; while it runs, what this process prints to
        stdout/stderr (Ray's worker log lines, tracking notices) appears above the table."""
        from rich.console import Console
        from rich.live import Live

        own = self.stream in (sys.stderr, sys.__stderr__)  # redirect only the real streams, not a test's buffer
        self._live = Live(get_renderable=self.table, console=Console(file=self.stream, force_terminal=True),
                          refresh_per_second=1, redirect_stdout=own, redirect_stderr=own)
        self._live.start()

    def _emit(self, name: str) -> None:
        if not self.tty:
            print(f"[{self.header()}] {self._line(name)}", file=self.stream, flush=True)
        elif self._live is not None:
            self._live.refresh()

    def table(self):
        """The ``rich`` table of every run (the terminal view)."""
        from rich.table import Table

        t = Table(title=self.header(), title_justify="left", box=None, pad_edge=False)
        for c in COLUMNS:
            t.add_column(c, no_wrap=c != "note", min_width=max(len(n) for n in self.rows) if c == "run" else None)
        for n in self.rows:
            t.add_row(*self._cells(n).values())
        return t

    def close(self) -> None:
        """Stop the terminal view (its last frame stays on screen); idempotent."""
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None
