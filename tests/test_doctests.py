"""The package's docstring examples are doctests of the normal test run, and none is commented out or skipped."""

from __future__ import annotations

import re

from tests.conftest import REPO

PKG = REPO / "alignrank"
DISABLED = re.compile(r"^\s*(# *>>>|>>> *#|.*doctest: *\+SKIP)", re.M)  # `# >>> x`, `>>> # x`, `+SKIP`


def test_pytest_collects_the_doctests_of_the_package():
    text = (REPO / "pyproject.toml").read_text()  # (no tomllib: Python 3.10 is supported)
    testpaths = re.search(r"^testpaths = \[(.*)\]", text, re.M).group(1)
    addopts = re.search(r"^addopts = \"(.*)\"", text, re.M).group(1)
    assert '"alignrank"' in testpaths and "--doctest-modules" in addopts.split()


def test_no_docstring_example_is_commented_out_or_skipped():
    bad = [f"{p.relative_to(REPO)}:{p.read_text()[: m.start()].count(chr(10)) + 1}"
           for p in sorted(PKG.rglob("*.py")) for m in DISABLED.finditer(p.read_text())]
    assert bad == [], "make these examples run (small and fast), or turn them into prose: " + ", ".join(bad)


def test_the_package_has_examples():
    with_examples = [p for p in PKG.rglob("*.py") if ">>> " in p.read_text()]
    assert len(with_examples) >= 60, len(with_examples)
