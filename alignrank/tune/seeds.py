"""Seeds of a multi-seed trial (``tune.seeds`` with several seeds): one child process per seed.

The trial (:class:`alignrank.tune.trial.TrialRuns`) starts one ``python -m alignrank.tune.seeds
SPEC`` per seed; each child trains its run through :func:`alignrank.runs.run.train` with a tracker that
appends its records (:mod:`alignrank.tracking.records`, the spool's format) to the seed's relay file,
followed by ``report`` (each epoch), ``final`` or ``error`` records of its own. The trial polls those
files (:meth:`SeedChild.poll`), sends the tracker records to the seed's MLflow run (nested under the
trial's run) and aggregates the epochs. A child needs no Ray or MLflow connection, and exits as soon
as the trial's process is gone (ASHA stop, crash).

Examples:
    >>> import tempfile
    >>> from alignrank.tracking.records import read
    >>> relay = Path(tempfile.mkdtemp()) / "relay.jsonl"
    >>> _relay(relay, "r1", "report", epoch=1, metrics={"map50_95": 0.1})
    >>> read(relay)
    [{'run_id': 'r1', 'kind': 'report', 'payload': {'epoch': 1, 'metrics': {'map50_95': 0.1}}}]
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from alignrank.config import params_dict
from alignrank.errors import RunFailed
from alignrank.io import atomic_write_json, read_json
from alignrank.tracking import records
from alignrank.tracking.names import numeric


class SeedChild:
    """One seed's training run in a child process (``python -m alignrank.tune.seeds SPEC``).

    The child trains through :func:`alignrank.runs.run.train` with a tracker that appends its records to
    the relay file, which the trial sends on to the seed's MLflow run (the child needs no Ray or MLflow
    connection). The child exits when the trial's process dies.
    """

    def __init__(self, runs, seed: int) -> None:
        self.runs, self.seed = runs, seed
        self.dir = runs.root / f"seed{seed}"
        self.relay = self.dir / "relay.jsonl"
        self.proc: Optional[subprocess.Popen] = None
        self.pos = 0
        self.final: dict = {}
        self.finished = False
        self.tracker = None

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.relay.unlink(missing_ok=True)
        self.tracker = self.runs.ctx.factory.open(
            run_name=f"tune-{self.runs.trial_id}-s{self.seed}", parent_run_id=self.runs.run_id,
            run_id=(read_json(self.dir / "run.json") or {}).get("mlflow_run_id"),
            tags={"tune_trial": self.runs.trial_id, "kind": "tune-seed", "seed": self.seed})
        atomic_write_json(self.dir / "run.json", {"mlflow_run_id": self.tracker.run_id})
        spec = self.dir / "spec.json"
        atomic_write_json(spec, {"params": params_dict(self.runs.params[self.seed]), "relay": str(self.relay),
                                 "run_id": self.tracker.run_id, "parent_pid": os.getpid()})
        log = open(self.dir / "child.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "alignrank.tune.seeds", str(spec)],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def poll(self) -> list[tuple[int, dict]]:
        """Send new relay records to the seed's tracker; return the epochs reported since the last poll."""
        out = []
        recs, self.pos = records.read_from(self.relay, self.pos)
        for rec in recs:
            kind, p = rec["kind"], rec["payload"]
            if kind == "report":
                out.append((int(p["epoch"]), p["metrics"]))
            elif kind == "final":
                self.final = p["metrics"]
            elif kind == "error":
                raise RunFailed(f"trial {self.runs.trial_id} seed {self.seed}: {p['message']}")
            else:
                self.tracker.send(rec)
        if self.proc is not None and self.proc.poll() is not None and not self.finished:
            if self.proc.returncode != 0:
                raise RunFailed(f"trial {self.runs.trial_id} seed {self.seed}: child exited with "
                                f"{self.proc.returncode}; see {self.dir / 'child.log'}")
            if out or self._pending():
                return out  # drain the rest next poll
            self.finished = True
            self.tracker.end("FINISHED")
        return out

    def _pending(self) -> bool:
        return self.relay.is_file() and self.relay.stat().st_size > self.pos

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if self.proc.poll() is None:
                self.proc.kill()
        if self.tracker is not None and not self.finished:
            with contextlib.suppress(Exception):
                self.tracker.end("KILLED")


def _relay(path: Path, run_id: str, kind: str, **payload: Any) -> None:
    """Child side: append one record of the child itself (``report``, ``final``, ``error``) to the relay."""
    records.append(path, records.record(run_id, kind, **payload))


def _watch_parent(parent_pid: int) -> None:
    """Exit this child as soon as the trial process that started it is gone (ASHA stop, crash)."""

    def loop() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(3)
            time.sleep(1.0)

    threading.Thread(target=loop, daemon=True).start()


def seed_main(spec_path: str) -> int:
    """Entry point of a seed child process."""
    from alignrank.env import setup_offline

    setup_offline()  # offline env
    from alignrank.config.load import build_params
    from alignrank.runs.run import train
    from alignrank.tracking.tracker import file_tracker

    spec = json.loads(Path(spec_path).read_text())
    _watch_parent(int(spec["parent_pid"]))
    relay, run_id = Path(spec["relay"]), spec["run_id"]

    def report(epoch: int, metrics: dict) -> None:
        _relay(relay, run_id, "report", epoch=int(epoch), metrics=numeric(metrics))

    try:
        final = train(build_params(spec["params"]), file_tracker(relay, run_id), report=report)
    except BaseException as e:  # noqa: BLE001 - relayed as one line, then non-zero exit
        _relay(relay, run_id, "error", message=(str(e).splitlines() or [type(e).__name__])[0][:300])
        raise
    _relay(relay, run_id, "final", metrics=numeric(final))
    return 0


if __name__ == "__main__":  # python -m alignrank.tune.seeds SPEC
    sys.exit(seed_main(sys.argv[1]))
