"""The eval param added for the evaluation stage is validated."""

from __future__ import annotations

import pytest

from alignrank.config import ParamsError, load_params


def test_max_candidates_default_and_range():
    assert load_params(None).eval.max_candidates == 1000
    assert load_params(None, ["eval.max_candidates=5"]).eval.max_candidates == 5
    with pytest.raises(ParamsError, match="eval.max_candidates"):
        load_params(None, ["eval.max_candidates=0"])
