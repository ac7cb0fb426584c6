"""Seeds of a multi-seed trial (``tune.seeds`` with several seeds): one child process per seed.

The trial (:class:`alignrank.tune.trial.TrialRuns`) starts one ``python -m alignrank.tune.seeds
SPEC`` per seed; each child trains its run through :func:`alignrank.runs.run.train` with a
:class:`RelayTracker` that appends every tracker call and epoch report to a JSON-lines file. The trial
polls those files (:meth:`SeedChild.poll`), forwards the tracker calls to the seed's MLflow run (nested
under the trial's run) and aggregates the epochs. A child needs no Ray or MLflow connection, and exits
as soon as the trial's process is gone (ASHA stop, crash).

Examples:
    >>> import tempfile, json
    >>> t = RelayTracker(tempfile.mktemp())
    >>> t.log_metrics({"train/box_loss": 1.5}, step=1)
    >>> json.loads(t.path.read_text())
    {'m': 'log_metrics', 'a': [{'train/box_loss': 1.5}, 1]}
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
from alignrank.tracking.names import numeric


class SeedChild:
    """One seed's training run in a child process (``python -m alignrank.tune.seeds SPEC``).

    The child trains through :func:`alignrank.runs.run.train` with a tracker that relays calls to
    a JSON-lines file, which the trial forwards to the seed's MLflow run (the child needs no Ray or
    MLflow connection). The child exits when the trial's process dies.
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
        spec = self.dir / "spec.json"
        atomic_write_json(spec, {"params": params_dict(self.runs.params[self.seed]), "relay": str(self.relay),
                                 "parent_pid": os.getpid()})
        self.tracker = self.runs.ctx.factory.open(
            run_name=f"tune-{self.runs.trial_id}-s{self.seed}", parent_run_id=self.runs.run_id,
            run_id=(read_json(self.dir / "run.json") or {}).get("mlflow_run_id"),
            tags={"tune_trial": self.runs.trial_id, "kind": "tune-seed", "seed": self.seed})
        atomic_write_json(self.dir / "run.json", {"mlflow_run_id": self.tracker.run_id})
        log = open(self.dir / "child.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "alignrank.tune.seeds", str(spec)],
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

    def poll(self) -> list[tuple[int, dict]]:
        """Forward new relay lines to the seed's tracker; return the epochs reported since the last poll."""
        out = []
        if self.relay.is_file():
            with open(self.relay, "rb") as f:
                f.seek(self.pos)
                data = f.read()
            end = data.rfind(b"\n") + 1
            self.pos += end
            for line in data[:end].decode().splitlines():
                msg = json.loads(line)
                m, a = msg["m"], msg["a"]
                if m == "report":
                    out.append((int(a[0]), a[1]))
                elif m == "final":
                    self.final = a[0]
                elif m == "error":
                    raise RunFailed(f"trial {self.runs.trial_id} seed {self.seed}: {a[0]}")
                elif m == "log_artifact":
                    self.tracker.log_artifact(*a)
                else:
                    getattr(self.tracker, m)(*a)
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


class RelayTracker:
    """Child side: a :class:`~alignrank.tracking.base.Tracker` that appends its calls to a JSON-lines file."""

    run_id = None

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _put(self, m: str, *a: Any) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps({"m": m, "a": a}, default=str) + "\n").encode())
        finally:
            os.close(fd)

    def log_params(self, params):
        self._put("log_params", dict(params))

    def set_tags(self, tags):
        self._put("set_tags", dict(tags))

    def log_metrics(self, metrics, step=None):
        self._put("log_metrics", {k: float(v) for k, v in metrics.items()}, step)

    def log_artifact(self, path, artifact_path=None):
        self._put("log_artifact", str(Path(path).resolve()), artifact_path)

    def end(self, status="FINISHED"):
        pass  # the trial ends the seed's run once the child exited


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

    spec = json.loads(Path(spec_path).read_text())
    _watch_parent(int(spec["parent_pid"]))
    relay = RelayTracker(spec["relay"])
    try:
        final = train(build_params(spec["params"]), relay, report=lambda e, m: relay._put("report", e, numeric(m)))
    except BaseException as e:  # noqa: BLE001 - relayed as one line, then non-zero exit
        relay._put("error", (str(e).splitlines() or [type(e).__name__])[0][:300])
        raise
    relay._put("final", numeric(final))
    return 0


if __name__ == "__main__":  # python -m alignrank.tune.seeds SPEC
    sys.exit(seed_main(sys.argv[1]))
