"""The RCQ ladder file is valid before hours of training: every rung resolves to valid params of a registered
variant, rungs are distinct runs, and the generated table reads stored results."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def ladder():
    spec = importlib.util.spec_from_file_location("ladder_runner", REPO / "benchmarks" / "ladder.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ladder_runner"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def spec(ladder):
    return ladder.load_ladder(REPO / "benchmarks" / "ladder_rcq.yaml")


def test_every_rung_is_valid_params_and_a_distinct_run(ladder, spec, monkeypatch):
    monkeypatch.setattr(ladder, "ROOT", REPO)  # params.yaml of the repository, not of the test's tmp folder
    hashes = set()
    for rung in spec["rungs"]:
        p = ladder.resolved(spec, rung, 0)  # raises ParamsError on an unknown key or value
        assert p.train.variant == rung["variant"]
        assert p.loss.assigner == "tal" and p.loss.rcq_assigner == "same"  # rungs differ in the loss only
        hashes.add(ladder.rung_hash(spec, rung, 0))
    assert len(hashes) == len(spec["rungs"])
    assert ladder.rung_hash(spec, spec["rungs"][0], 0) != ladder.rung_hash(spec, spec["rungs"][0], 1)
    assert len(spec["seeds"]) >= 2


def test_table_from_records(ladder, spec, monkeypatch):
    monkeypatch.setattr(ladder, "ROOT", REPO)
    last = ladder.validated_epochs(spec)[-1]

    def rec(seed: int, v: float) -> dict:
        return {"seed": seed, "commit": "abc", "code": "def", "summary": {"metrics": {"map50_95": v}},
                "curve": {"epoch": [last], "map50_95": [v], "map50": [2 * v]}}

    records = {"stock": [rec(0, 0.2), rec(1, 0.3)], "replace": [rec(0, 0.1)]}
    text = ladder.table(spec, records, REPO / "benchmarks" / "ladder_rcq.yaml")
    assert "GENERATED" in text and "| stock | baseline | – | 0,1 | 0.250 ± 0.071 |" in text
    assert "| -0.100 (n 1) |" in text  # replace minus stock at the one seed both have
    two = ladder.paired_delta([rec(0, 0.1), rec(1, 0.25)], records["stock"], last)
    assert two == "-0.075 [-0.393, +0.243] (n 2)"  # t(0.975, 1) = 12.71 times sd 0.035 / sqrt(2)
    assert "| replace | rcq_replace |" in text and "0.100" in text
    assert text.count("\n| ") == len(spec["rungs"]) + 1  # header + one row per rung


def test_summary_parsed_after_library_output(ladder):
    out = 'Overriding model.yaml nc=80 with nc=2\n{\n  "run": "r",\n  "metrics": {"map50_95": 0.1}\n}\n'
    assert ladder.parse_summary(out)["metrics"]["map50_95"] == 0.1
    with pytest.raises(ValueError, match="no JSON summary"):
        ladder.parse_summary("nothing here\n")


def test_doc_only_from_a_complete_ladder_and_regenerated_from_committed_records(ladder, tmp_path, monkeypatch, capsys):
    import shutil

    import yaml

    from alignrank.io import atomic_write_json

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setattr(ladder, "ROOT", tmp_path)
    path = tmp_path / "ladder.yaml"
    rungs = [{"name": "stock", "variant": "baseline"},
             {"name": "augment", "variant": "rcq", "set": {"loss.lambda_list": 0.5}}]
    path.write_text(yaml.safe_dump({"name": "t", "out": "out", "doc": "docs/t.md", "seeds": [0, 1], "rungs": rungs}))
    spec = ladder.load_ladder(path)
    last = ladder.validated_epochs(spec)[-1]
    for i, rung in enumerate(spec["rungs"]):
        for seed in (0, 1):
            v = 0.1 * (i + 1) + 0.01 * seed
            atomic_write_json(ladder.result_file(spec, tmp_path / "out" / "results", rung, seed), {
                "rung": rung["name"], "variant": rung["variant"], "seed": seed, "commit": "c0ffee", "code": "d1",
                "summary": {"metrics": {"map50_95": v}, "run_dir": "/elsewhere"},
                "curve": {"epoch": [last], "map50_95": [v], "map50": [2 * v]}})
    doc, records = tmp_path / "docs" / "t.md", tmp_path / "docs" / "t.json"
    assert ladder.main([str(path), "--table"]) == 0
    text = doc.read_text()
    assert "| augment | rcq | `loss.lambda_list=0.5` | 0,1 | 0.205 ± 0.007 |" in text and records.is_file()

    shutil.rmtree(tmp_path / "out")  # a fresh clone: only the committed doc and records
    assert ladder.main([str(path), "--table"]) == 0
    assert doc.read_text() == text

    rungs[1]["set"] = {"loss.lambda_list": 0.25}  # an edited rung is a different run: its records do not serve it
    path.write_text(yaml.safe_dump({"name": "t", "out": "out", "doc": "docs/t.md", "seeds": [0, 1], "rungs": rungs}))
    assert ladder.main([str(path), "--table"]) == 1
    err = capsys.readouterr().err
    assert doc.read_text() == text  # the published table is kept
    assert "docs/t.md kept as it is: 2 of 4 (rung, seed) results missing (augment seed 0, augment seed 1)" in err
    assert err.count("\n") == 1 and "ladder_adopt.py" in err
    partial = (tmp_path / "out" / "t.partial.md").read_text()
    assert "| augment | rcq | `loss.lambda_list=0.25` | – |" in partial


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "benchmarks").glob("ladder_*.yaml")))
def test_every_ladder_file_resolves_to_distinct_runs(ladder, name, monkeypatch):
    monkeypatch.setattr(ladder, "ROOT", REPO)
    spec = ladder.load_ladder(REPO / "benchmarks" / name)
    for rung in spec["rungs"]:
        assert ladder.resolved(spec, rung, 0).train.variant == rung["variant"]  # ParamsError on a bad key
    assert len({ladder.rung_hash(spec, r, 0) for r in spec["rungs"]}) == len(spec["rungs"])
    assert spec["doc"].startswith("docs/") and spec["doc"].endswith(".md")


def test_headline_rungs_are_the_ladders_own_runs(ladder, monkeypatch):
    monkeypatch.setattr(ladder, "ROOT", REPO)
    head = ladder.load_ladder(REPO / "benchmarks" / "ladder_headline.yaml")
    others = {}
    for name in ("ladder_csd.yaml", "ladder_rcq.yaml"):
        spec = ladder.load_ladder(REPO / "benchmarks" / name)
        others.update({r["name"]: ladder.rung_hash(spec, r, 0) for r in spec["rungs"]})
    for rung in head["rungs"]:
        assert ladder.rung_hash(head, rung, 0) == others[rung["name"]], rung["name"]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "benchmarks").glob("ladder_*.yaml")))
def test_a_committed_table_is_what_its_committed_records_give(ladder, name, monkeypatch, tmp_path):
    monkeypatch.setattr(ladder, "ROOT", REPO)
    path = REPO / "benchmarks" / name
    spec = ladder.load_ladder(path)
    if not ladder.records_file(spec).is_file():
        pytest.skip(f"{spec['doc']} has no committed records (it predates them)")
    records, missing = ladder.collect(spec, tmp_path / "no-results")
    assert not missing  # every rung and seed of today's ladder has a record under today's hash
    assert ladder.table(spec, records, path) == (REPO / spec["doc"]).read_text()
