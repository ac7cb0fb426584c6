"""Build ``dvc_offline/template.html``: DVC's plot page with Vega, Vega-Lite and Vega-Embed inlined.

``dvc plots show`` writes an HTML page whose ``<script>`` tags load Vega from cdn.jsdelivr.net, so without
internet only the PNG plots render. This template has no ``{scripts}`` placeholder (DVC then adds no CDN
tags) and carries the three libraries' minified UMD builds inline, so the page it produces is one
self-contained file that renders every plot offline. ``.dvc/config`` points ``plots.html_template`` at it.

Maintenance only (needs ``npm`` and the npm registry; nothing downloads at run time)::

    python dvc_offline/build_template.py            # npm pack the pinned versions, write the template
    python dvc_offline/build_template.py --from DIR # or use DIR/<name>-<version>.tgz already downloaded

Each inlined file is preceded by a comment naming the package, version, path in the package and its
sha256 (tests check the inlined bytes against it). Licences: ``dvc_offline/THIRD_PARTY.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Vega-Lite 5 is what DVC's plot templates are written for; Vega 5 / Vega-Embed 6 ship the UMD builds it loads.
PACKAGES = (("vega", "5.33.1", "build/vega.min.js"), ("vega-lite", "5.23.0", "build/vega-lite.min.js"),
            ("vega-embed", "6.29.0", "build/vega-embed.min.js"))
HEAD = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot (offline)</title>
    <!-- AlignRank offline DVC plot template, built by dvc_offline/build_template.py: it has no placeholder for
         DVC's CDN script tags; the libraries below are inlined (licences: dvc_offline/THIRD_PARTY.md) -->
"""
TAIL = """    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def _tarball(name: str, version: str, src: Path | None, tmp: Path) -> Path:
    if src is not None:
        return src / f"{name}-{version}.tgz"
    subprocess.run(["npm", "pack", f"{name}@{version}", "--pack-destination", str(tmp)], check=True,
                   capture_output=True)
    return tmp / f"{name}-{version}.tgz"


def script_block(name: str, version: str, path: str, code: bytes) -> str:
    """One inlined library: the provenance comment and the ``<script>`` element."""
    if b"</script" in code.lower():
        raise ValueError(f"{name}: '</script' inside the code cannot be inlined")
    digest = hashlib.sha256(code).hexdigest()
    return (f"    <!-- {name}@{version} {path} sha256={digest} (BSD-3-Clause) -->\n"
            f"    <script type=\"text/javascript\">\n{code.decode('utf-8')}\n    </script>\n")


def build(src: Path | None = None, out: Path = HERE / "template.html") -> Path:
    """Write the template from the pinned npm packages (from ``src`` or ``npm pack``)."""
    blocks = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version, path in PACKAGES:
            with tarfile.open(_tarball(name, version, src, Path(tmp))) as tf:
                code = tf.extractfile(f"package/{path}").read()
            blocks.append(script_block(name, version, path, code))
    out.write_text(HEAD + "".join(blocks) + TAIL, encoding="utf-8")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="src", type=Path, help="folder holding <name>-<version>.tgz (default: npm pack)")
    print(build(ap.parse_args().src))
