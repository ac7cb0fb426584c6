"""Choices come from the registries; importing the config (and the CLI's help) stays cheap: no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from alignrank.config import ParamsError, load_params
from alignrank.config.choices import ASSIGNER_NAMES, IOU_LOSS_NAMES
from alignrank.errors import UsageError
from alignrank.variants import VARIANTS

HEAVY = ("torch", "ultralytics", "mlflow", "ray")


def loaded_after(code: str) -> list[str]:
    """The heavy modules in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return eval(r.stdout.strip().splitlines()[-1])


def test_import_config_and_load_params_import_no_torch():
    assert loaded_after("import alignrank.config; alignrank.config.load_params(None, ['loss.assigner=atss'])") == []


@pytest.mark.parametrize("key,names", [("loss.assigner", ASSIGNER_NAMES), ("loss.iou_loss", IOU_LOSS_NAMES),
                                       ("train.variant", VARIANTS), ("tune.variant", VARIANTS)])
def test_every_registered_name_is_accepted_and_others_refused(key, names):
    for name in names:
        assert load_params(None, [f"{key}={name}"]) is not None
    with pytest.raises(ParamsError, match=rf"{key}: must be one of \[.*\], got 'nope'"):
        load_params(None, [f"{key}=nope"])


def test_params_error_is_a_usage_error_and_a_value_error():
    with pytest.raises(UsageError) as e:
        load_params(None, ["train.epochs=0"])
    assert isinstance(e.value, ValueError) and e.value.exit_code == 2
