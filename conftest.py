"""pytest set-up shared by the test suite and the package's doctests (``--doctest-modules`` over ``alignrank/``).

The doctests run with the offline environment, one torch thread, and (like every test) from a private temp
folder that is also the project root, so an example that writes files never touches the repository.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")

from alignrank.env import setup_offline  # noqa: E402

setup_offline()  # before any doctest imports ultralytics, MLflow or Ray


@pytest.fixture(autouse=True)
def _doctests_run_in_a_temp_project(request, tmp_path_factory, monkeypatch):
    from _pytest.doctest import DoctestItem

    if isinstance(request.node, DoctestItem):
        import torch

        torch.set_num_threads(1)
        root = tmp_path_factory.mktemp("doctest")
        monkeypatch.setenv("ALIGNRANK_ROOT", str(root))
        monkeypatch.chdir(root)
    yield
