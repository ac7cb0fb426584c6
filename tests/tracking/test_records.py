"""One record format: what a tracker writes to a file (relay, spool) replays to the same run as live logging;
partial and corrupt lines; marking a dead run KILLED through its spool or in the store."""

from __future__ import annotations

import mlflow
import pytest

from alignrank.errors import TrackingError
from alignrank.tracking.client import StoreClient
from alignrank.tracking.records import SPOOL_NAME, append, read, read_from, record
from alignrank.tracking.session import TrackerFactory, mark_killed
from alignrank.tracking.tracker import file_tracker


def _log_everything(t, f) -> None:
    t.log_params({"a": 1, "b": "x" * 7000})
    t.set_tags({"variant": "full"})
    t.log_metrics({"m": 1.5, "n": 2}, step=3)
    t.log_artifact(f, "weights")
    t.end("FAILED")


def _snapshot(c, run_id: str):
    run = c.get_run(run_id)
    hist = {k: [(m.step, m.value) for m in c.get_metric_history(run_id, k)] for k in run.data.metrics}
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    return run.info.status, run.data.params, tags, hist, [a.path for a in c.list_artifacts(run_id, "weights")]


def test_records_written_to_a_file_replay_to_the_same_run_as_live_logging(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    f = tmp_path / "best.pt"
    f.write_bytes(b"w")
    factory = TrackerFactory(uri=uri, experiment="e", artifact_root=str(tmp_path / "art"))
    live = factory.open(run_name="live")
    _log_everything(live, f)
    store = StoreClient(uri)
    recorded = store.open_run(experiment="e", run_name="recorded")
    relay = tmp_path / "relay.jsonl"
    _log_everything(file_tracker(relay, recorded), f)  # a seed child's relay / a spool: same records
    assert [r["kind"] for r in read(relay)] == ["params", "tags", "metrics", "artifact", "end"]
    assert store.replay(relay) == 5 and not relay.exists()
    c = mlflow.MlflowClient(uri)
    s_live, s_rec = _snapshot(c, live.run_id), _snapshot(c, recorded)
    assert s_live[:3] == s_rec[:3] and s_live[4] == s_rec[4] == ["weights/best.pt"]
    assert s_live[0] == "FAILED" and len(s_live[1]["b"]) == 6000  # values cut at MLflow's limit
    assert [st for st, _ in s_live[3]["m"]] == [st for st, _ in s_rec[3]["m"]] == [3]


def test_read_from_leaves_a_line_being_written_and_a_torn_last_line_is_ignored(tmp_path):
    p = tmp_path / "relay.jsonl"
    append(p, record("r", "report", epoch=1, metrics={}))
    with open(p, "a") as fh:
        fh.write('{"run_id": "r", "kind": "rep')  # a writer mid-line (or killed mid-append)
    recs, pos = read_from(p, 0)
    assert [r["kind"] for r in recs] == ["report"] and read_from(p, pos) == ([], pos)
    assert [r["kind"] for r in read(p)] == ["report"]  # torn last line: ignored
    with open(p, "a") as fh:
        fh.write('ort", "payload": {}}\n')
    assert [r["kind"] for r in read_from(p, pos)[0]] == ["report"]
    p.write_text('{"run_id": "r", "kind": "end", "payload": {}}\nnot json\n{"run_id": "r"}\n')
    with pytest.raises(TrackingError, match=r"relay.jsonl:2: corrupt record") as e:
        read(p)
    assert "\n" not in str(e.value)


def test_mark_killed_ends_in_the_store_without_a_stand_in_or_after_the_spooled_records(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    factory = TrackerFactory(uri=uri, experiment="e")
    run = factory.open(run_name="r")
    run.log_metrics({"m": 1.0}, step=1)
    mark_killed(factory, run.run_id, spool_dir=tmp_path / "run")  # no spool: ended in the store
    c = mlflow.MlflowClient(uri)
    assert c.get_run(run.run_id).info.status == "KILLED"
    mark_killed(factory, "0" * 32, spool_dir=tmp_path / "run")  # unknown run: nothing created
    assert len(c.search_runs([c.get_experiment_by_name("e").experiment_id])) == 1

    spool = tmp_path / "offline-run" / SPOOL_NAME
    append(spool, record("offline-x", "metrics", metrics={"m": 1.0}, step=1, timestamp=1))
    mark_killed(factory, "offline-x", spool_dir=spool.parent)
    assert [(r["kind"], r["payload"].get("status")) for r in read(spool)] == [("metrics", None), ("end", "KILLED")]
