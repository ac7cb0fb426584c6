"""A training run's description (variant, seed, changes vs baseline, non-default reads) and dataset input."""

from __future__ import annotations

from alignrank.config import with_overrides
from alignrank.io import read_json
from alignrank.runs.describe import DESCRIPTION_TAG, describe_run, non_default_reads
from alignrank.runs.key import run_key
from tests.engine.recording import RecordingTracker


def test_description_and_dataset_input_of_a_real_run_key(tiny_params, tiny_data):
    p = with_overrides(tiny_params, {"train.variant": "full", "train.seed": 3, "loss.lambda_rank": 2.0,
                                     "loss.tal_topk": 7})
    key = run_key(p)
    t = RecordingTracker()
    describe_run(t, p, key)
    text = t.tags[DESCRIPTION_TAG]
    assert text.startswith("**full**, seed 3: CSD-Head + RCQ-Loss")
    assert "head `csd` (baseline `detect`), loss `rcq_augment` (baseline `v8`)" in text
    assert "`loss.lambda_rank` = 2.0 (default 1.0)" in text
    nd = non_default_reads(key)
    assert nd["loss.lambda_rank"] == (2.0, 1.0) and "model.scale" not in nd  # tiny params: scale n = default
    assert ("loss.tal_topk" in nd) == ("tal_topk" in key.payload["loss"])  # only what the run reads
    fp = read_json(tiny_data / "manifest.json")["fingerprint"]
    (ds,) = t.inputs
    assert ds["digest"] == fp[:36] and ds["profile"]["fingerprint"] == fp and ds["source"] == str(tiny_data)
    assert ds["name"] == tiny_data.name and ds["context"] == "train" and ds["profile"]["counts"]

    base = with_overrides(tiny_params, {"train.variant": "baseline"})
    t2 = RecordingTracker()
    describe_run(t2, base, run_key(base))
    assert "Changes vs baseline: none (this is the baseline)." in t2.tags[DESCRIPTION_TAG]
