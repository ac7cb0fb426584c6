"""The ``input`` record: a run's dataset as an MLflow dataset input (digest cut to MLflow's 36 characters)."""

from __future__ import annotations

import json

from alignrank.tracking.base import NullTracker, Tracker
from alignrank.tracking.client import dataset_input
from alignrank.tracking.records import read
from alignrank.tracking.tracker import file_tracker


def test_input_record_and_its_mlflow_dataset(tmp_path):
    fp = "ab" * 32  # a sha256 fingerprint: 64 hex
    t = file_tracker(tmp_path / "relay.jsonl", run_id="r1")
    assert isinstance(t, Tracker) and isinstance(NullTracker(), Tracker)
    t.log_input(name="synthetic-1234", digest=fp, source=str(tmp_path / "data"), profile={"fingerprint": fp})
    (rec,) = read(tmp_path / "relay.jsonl")
    assert rec["kind"] == "input" and rec["payload"]["digest"] == fp[:36]  # MLflow's digest limit
    ds = dataset_input(rec["payload"])
    assert ds.dataset.name == "synthetic-1234" and ds.dataset.digest == fp[:36]
    assert ds.dataset.source_type == "local"
    assert json.loads(ds.dataset.source) == {"uri": (tmp_path / "data").as_uri()}
    assert json.loads(ds.dataset.profile) == {"fingerprint": fp}
    assert [(x.key, x.value) for x in ds.tags] == [("mlflow.data.context", "train")]
