"""Progress view: plain lines off a terminal, an in-place table on one; epochs read from status.json."""

from __future__ import annotations

import io

from alignrank.runs.progress import Progress
from alignrank.runs.rundir import RunDir


def test_plain_lines_follow_states_and_status_files(tmp_path):
    out = io.StringIO()
    p = Progress({"a-s0-k": tmp_path / "a", "b-s0-k": tmp_path / "b"}, stream=out, tty=False)
    p.set("a-s0-k", "cached", metric=0.5)
    p.set("b-s0-k", "running", attempt=1)
    RunDir(tmp_path / "b").write_status(state="running", epoch=2, epochs=5, metrics={"map50_95": 0.125})
    p.poll()
    p.poll()  # unchanged: no new line
    p.set("b-s0-k", "retrying", note="after: worker died (WorkerCrashedError)")
    lines = out.getvalue().splitlines()
    assert lines == [
        "[sweep 1/2] a-s0-k cached map50_95=0.5000",
        "[sweep 1/2] b-s0-k running (attempt 1)",
        "[sweep 1/2] b-s0-k running (attempt 1) epoch 2/5 map50_95=0.1250",
        "[sweep 1/2] b-s0-k retrying (attempt 1) epoch 2/5 map50_95=0.1250 after: worker died (WorkerCrashedError)",
    ]
    assert p.counts() == {"cached": 1, "retrying": 1}


def test_terminal_table_is_redrawn_in_place():
    out = io.StringIO()
    p = Progress({"a": None, "b": None}, stream=out, tty=True)
    p.set("a", "running", attempt=1)
    p.set("a", "done", metric=0.25)
    text = out.getvalue()
    assert text.count("\x1b[3F\x1b[J") == 1  # second draw moves up over the 3-line table
    assert text.rstrip().endswith("b queued") and "a done map50_95=0.2500" in text
