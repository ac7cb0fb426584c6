"""The package map holds: imports point one way (config -> nn/loss -> engine -> runs -> tune), no cycles.

Every import in ``alignrank/`` counts, including the ones deferred into a function body (a lazy import is
still a dependency). The map is the one in the README's "Development" section.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import alignrank

PKG = Path(alignrank.__file__).parent

# lower layers never import higher ones; a package may import its own layer's packages only where listed
LAYERS: dict[str, int] = {
    "__init__": 0, "errors": 0, "registry": 0, "env": 0,
    "io": 1, "variants": 1,
    "locks": 2,
    "config": 2,
    "tracking": 3, "data": 3, "loss": 3,
    "nn": 4,
    "engine": 5,
    "runs": 6,
    "eval": 7, "profile": 7,
    "report": 8, "tune": 8,
    "stage_main": 9, "cli": 9, "__main__": 9,
}


def _modules() -> dict[str, Path]:
    return {("alignrank." + ".".join(p.relative_to(PKG).with_suffix("").parts)).removesuffix(".__init__"): p
            for p in PKG.rglob("*.py")}


def _imports(path: Path, name: str) -> set[str]:
    """Every ``alignrank.*`` module imported anywhere in the file (top level or inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("alignrank"))
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # relative import
                base = name.split(".")[: -node.level] if not path.name == "__init__.py" else name.split(".")
                mod = ".".join(base + ([mod] if mod else []))
            if mod.startswith("alignrank"):
                out.add(mod)
                out.update(f"{mod}.{a.name}" for a in node.names)  # `from pkg import module`
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {i for i in _imports(p, m) if i in mods and i != m} for m, p in mods.items()}


def _package(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_package_has_a_layer():
    assert {_package(m) for m in _modules()} <= set(LAYERS)


def test_no_import_cycle_between_modules():
    assert _cycles({m: {i for i in deps if not _is_parent(i, m)} for m, deps in _graph().items()}) == []


def _is_parent(pkg: str, mod: str) -> bool:
    """``alignrank.loss`` imported by ``alignrank.loss.x`` is the package's own ``__init__`` (not a cycle)."""
    return mod.startswith(pkg + ".")


def test_no_import_cycle_between_packages():
    pg: dict[str, set[str]] = {}
    for m, deps in _graph().items():
        pg.setdefault(_package(m), set()).update(_package(d) for d in deps if _package(d) != _package(m))
    assert _cycles(pg) == []


def test_imports_point_down_the_layers():
    bad = sorted(f"{m} -> {d}" for m, deps in _graph().items() for d in deps
                 if _package(m) != _package(d) and LAYERS[_package(d)] >= LAYERS[_package(m)])
    assert bad == []


@pytest.mark.parametrize("name", sorted(_modules()))
def test_every_module_imports(name):
    importlib.import_module(name)


def test_cycle_detector_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert pkgutil  # (the module list above comes from the files, so a new file is checked too)
