"""Progress view: plain lines off a terminal, a redrawn rich table on one; epochs read from status.json;
elapsed time and ETA per run and for the sweep; a finished run shows its best epoch with its final metric."""

from __future__ import annotations

import io

from alignrank.runs.progress import Progress, duration
from alignrank.runs.rundir import RunDir


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_plain_lines_follow_states_and_status_files(tmp_path):
    out, clock = io.StringIO(), Clock()
    p = Progress({"a-s0-k": tmp_path / "a", "b-s0-k": tmp_path / "b"}, stream=out, tty=False, epochs=5, clock=clock)
    p.set("a-s0-k", "cached", metric=0.5, best_epoch=4)
    p.set("b-s0-k", "running", attempt=1)
    clock.t += 10
    RunDir(tmp_path / "b").write_status(state="running", epoch=1, epochs=5, metrics={"map50_95": 0.0625})
    p.poll()
    clock.t += 10
    RunDir(tmp_path / "b").write_status(state="running", epoch=2, epochs=5, metrics={"map50_95": 0.125})
    p.poll()
    p.poll()  # unchanged: no new line
    clock.t += 4
    p.set("b-s0-k", "retrying", note="after: worker died (WorkerCrashedError)")
    lines = out.getvalue().splitlines()
    assert lines == [
        "[sweep 1/2 elapsed 0:00 ETA ?] a-s0-k cached best epoch 4/5 map50_95=0.5000 (best.pt)",
        "[sweep 1/2 elapsed 0:00 ETA ?] b-s0-k running (attempt 1) elapsed 0:00",
        "[sweep 1/2 elapsed 0:10 ETA 0:40] b-s0-k running (attempt 1) epoch 1/5 map50_95=0.0625 elapsed 0:10 ETA 0:40",
        # 2 epochs in 20 s: 10 s per epoch, 3 left; the sweep did 2 epochs in 20 s, 3 left of 5
        "[sweep 1/2 elapsed 0:20 ETA 0:30] b-s0-k running (attempt 1) epoch 2/5 map50_95=0.1250 elapsed 0:20 ETA 0:30",
        "[sweep 1/2 elapsed 0:24 ETA 0:36] b-s0-k retrying (attempt 1) epoch 2/5 map50_95=0.1250 elapsed 0:24 ETA 0:26 "
        "after: worker died (WorkerCrashedError)",
    ]
    assert p.counts() == {"cached": 1, "retrying": 1}


def test_done_line_labels_the_final_metric_with_the_best_epoch_not_the_last(tmp_path):
    out, clock = io.StringIO(), Clock()
    p = Progress({"a": tmp_path / "a"}, stream=out, tty=False, epochs=5, clock=clock)
    p.set("a", "running", attempt=1)
    clock.t += 50
    RunDir(tmp_path / "a").write_status(state="running", epoch=5, epochs=5, metrics={"map50_95": 0.20})
    p.poll()
    p.set("a", "done", metric=0.31, best_epoch=3)  # best.pt is epoch 3's: its validation is the final metric
    last = out.getvalue().splitlines()[-1]
    assert last == "[sweep 1/1 elapsed 0:50] a done best epoch 3/5 map50_95=0.3100 (best.pt) elapsed 0:50"
    assert "epoch 5/5" not in last


def test_eta_accounts_for_concurrency_and_resumed_attempts(tmp_path):
    clock = Clock()
    p = Progress({n: tmp_path / n for n in "abcd"}, stream=io.StringIO(), tty=False, epochs=4, clock=clock)
    p.set("a", "running", attempt=1)
    p.set("b", "running", attempt=1)
    clock.t += 10
    for n in "ab":
        RunDir(tmp_path / n).write_status(state="running", epoch=1, epochs=4)
    p.poll()
    # 2 epochs in 10 s over the sweep; 3 + 3 + 4 + 4 epochs left -> 14 / 0.2 = 70 s
    assert p.sweep_eta() == 70.0 and p.run_eta("a") == 30.0
    clock.t += 5
    p.set("b", "retrying")
    p.set("b", "running", attempt=2)  # resumed from epoch 1: its own clock, rate from its own epochs
    clock.t += 3
    RunDir(tmp_path / "b").write_status(state="running", epoch=2, epochs=4)
    p.poll()
    assert p.run_eta("b") == 6.0 and p.elapsed("b") == 3.0  # 3 s for epoch 2 -> 2 epochs x 3 s
    assert duration(3725) == "1:02:05" and duration(None) == "?"


def test_terminal_view_is_a_rich_table_closed_once():
    out = io.StringIO()
    p = Progress({"a": None, "b": None}, stream=out, tty=True, epochs=3)
    p.set("a", "running", attempt=1)
    p.set("a", "done", metric=0.25, best_epoch=2)
    p.close()
    p.close()
    text = out.getvalue()
    assert "\x1b[" in text  # drawn in place on a terminal
    last = text.rsplit("sweep 1/2", 1)[-1]
    assert "best 2/3" in last and "0.2500 (best.pt)" in last and "queued" in last
