"""`dvc plots show` renders offline: the project's HTML template inlines Vega, so no page loads a CDN script."""

from __future__ import annotations

import configparser
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

TEMPLATE = REPO / "dvc_offline" / "template.html"
SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc\s*=", re.I)
REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def inlined(html: str) -> list[tuple[str, str, str]]:
    """``(package@version, recorded sha256, sha256 of the inlined code)`` of every inlined library."""
    pat = re.compile(r"<!-- (\S+) \S+ sha256=([0-9a-f]{64}) \(BSD-3-Clause\) -->\n"
                     r"    <script type=\"text/javascript\">\n(.*?)\n    </script>", re.S)
    return [(m[1], m[2], hashlib.sha256(m[3].encode()).hexdigest()) for m in pat.finditer(html)]


def test_template_inlines_pinned_vega_and_references_nothing_remote():
    html = TEMPLATE.read_text(encoding="utf-8")
    assert "{plot_divs}" in html and "{scripts}" not in html  # DVC adds its CDN tags only at {scripts}
    assert not SCRIPT_SRC.search(html) and not REMOTE.search(html)
    libs = inlined(html)
    assert [name for name, _, _ in libs] == ["vega@5.33.1", "vega-lite@5.23.0", "vega-embed@6.29.0"]
    assert all(recorded == actual for _, recorded, actual in libs), libs  # byte for byte the npm files
    assert (REPO / "dvc_offline" / "THIRD_PARTY.md").is_file()


def test_project_dvc_config_uses_the_template():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / ".dvc" / "config")
    assert (REPO / ".dvc" / cfg["plots"]["html_template"]).resolve() == TEMPLATE  # DVC: relative to .dvc/


def test_dvc_plots_show_writes_a_page_without_remote_scripts(tmp_path):
    dvc = Path(sys.executable).with_name("dvc")
    if not dvc.is_file() or not shutil.which("git"):
        pytest.skip("dvc or git not installed")
    plots = tmp_path / "results" / "plots"
    plots.mkdir(parents=True)
    (plots / "training_curves.csv").write_text("epoch,baseline,full\n1,0.10,0.12\n2,0.20,0.25\n")
    (plots / "ap_per_seed.csv").write_text("variant,seed,AP\nbaseline,0,40.1\nfull,0,45.2\n")
    (tmp_path / "dvc.yaml").write_text(
        "plots:\n"
        "  - results/plots/training_curves.csv:\n      x: epoch\n      y: [baseline, full]\n"
        "  - results/plots/ap_per_seed.csv:\n      x: variant\n      y: AP\n      template: scatter\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("")
    r = subprocess.run([dvc, "plots", "show", "--html-template", str(TEMPLATE), "-o", "out"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert page.count("vegaEmbed(") == 2 and '"baseline"' in page  # both plots, data inlined
    assert not SCRIPT_SRC.search(page) and not REMOTE.search(page)
    assert "cdn.jsdelivr.net" not in page and len(inlined(page)) == 3
