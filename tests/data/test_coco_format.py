"""Bad COCO input: every kind of bad record is skipped (or clipped) and reported by name with a count."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest

from alignrank.data.coco_format import read_json, subset_images, validate_coco, yolo_labels
from alignrank.errors import DataError
from tests.data.checks import bad_source

pytestmark = pytest.mark.reliability


def _tree_hash(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


EXPECTED = {
    "duplicate_image_id": 1, "corrupt_image": 2, "missing_image_file": 1, "image_size_mismatch": 1,
    "bad_image_record": 1, "box_clipped": 1, "box_outside": 1, "degenerate_box": 2, "unknown_category": 1,
    "duplicate_annotation_id": 1, "annotation_unknown_image": 1, "annotation_of_skipped_image": 1,
}


def test_every_bad_record_reported_skipped_and_source_untouched(tmp_path):
    src = tmp_path / "src"
    data = bad_source(src)
    (src / "instances.json").write_text(json.dumps(data))
    before = _tree_hash(src)
    clean, report = validate_coco(read_json(src / "instances.json"), image_dir=src)
    assert report.counts() == EXPECTED
    assert report.as_dict()["box_clipped"]["action"] == "clipped"
    assert "annotation id 5, category_id 99" in report.as_dict()["unknown_category"]["example"]
    assert [im["id"] for im in clean["images"]] == [1, 2, 3]
    assert sorted(a["id"] for a in clean["annotations"]) == [1, 2, 8, 10]
    labels = yolo_labels(clean)
    assert labels[1] == ["1 0.3333333 0.3750000 0.3333333 0.2500000", "0 0.9166667 0.8750000 0.1666667 0.2500000"]
    assert labels[2] == []  # only a crowd box: background for training, the crowd stays in the JSON
    assert next(a for a in clean["annotations"] if a["id"] == 2)["bbox"] == [50, 30, 20, 20]  # JSON keeps the original
    assert _tree_hash(src) == before


def test_one_warning_line_per_kind(caplog):
    from alignrank.data.report import SkipReport

    r = SkipReport()
    for i in range(3):
        r.add("unknown_category", f"annotation id {i}")
    r.add("box_outside", "annotation id 9")
    with caplog.at_level(logging.WARNING, logger="alignrank.data"):
        r.warn("train")
    assert [rec.getMessage() for rec in caplog.records] == [
        "train: skipped 3 record(s) of kind unknown_category (first: annotation id 0)",
        "train: skipped 1 record(s) of kind box_outside (first: annotation id 9)",
    ]


@pytest.mark.parametrize(
    "text, where",
    [
        ('{"images": [1,, 2]}', "line 1, column 15"),
        ('{\n "images": []\n "x": 1}', "line 3, column 2"),
        ("", "line 1, column 1"),
    ],
)
def test_malformed_json_names_file_and_position(tmp_path, text, where):
    f = tmp_path / "instances_val2017.json"
    f.write_text(text)
    with pytest.raises(DataError) as e:
        read_json(f)
    msg = str(e.value)
    assert str(f) in msg and where in msg and "malformed JSON" in msg and "\n" not in msg


def test_not_coco_structure(tmp_path):
    f = tmp_path / "x.json"
    f.write_text('{"images": []}')
    with pytest.raises(DataError, match="key 'annotations' missing"):
        read_json(f)


def test_subset_takes_first_n_image_ids():
    anns = [{"id": 1, "image_id": 7}, {"id": 2, "image_id": 9}]
    data = {"images": [{"id": i} for i in (9, 3, 7, 1)], "annotations": anns, "categories": []}
    sub = subset_images(data, 2)
    assert sorted(im["id"] for im in sub["images"]) == [1, 3] and sub["annotations"] == []
    assert subset_images(data, 3)["annotations"] == [{"id": 1, "image_id": 7}]
    assert subset_images(data, 0) is data
