"""The one place that reads ``params.yaml``: load, apply ``--set`` overrides, validate, freeze.

Examples:
    >>> p = load_params(None, overrides=["train.epochs=3", "loss.margin=0.2"])
    >>> p.train.epochs, p.loss.margin
    (3, 0.2)
    >>> with_overrides(p, {"loss.margin": 0.3}).loss.margin
    0.3
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from alignrank.config.fields import ParamsError, build, flatten, to_dict
from alignrank.config.schema import Params
from alignrank.io import PARAMS_FILE, project_root

MAX_YAML_BYTES = 1 << 20  # a params file or fragment is a few KB; refuse anything above 1 MiB
MAX_YAML_DEPTH = 32  # params nest 4 levels (tune.space.<key>.values); refuse deeper documents early


class _AliasError(yaml.MarkedYAMLError):
    """A YAML alias (``*name``) in a params file."""


class ParamsLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases: a few hundred bytes of nested aliases expand to gigabytes
    (a "billion laughs" document) once anything walks the values; params never need them."""

    def fetch_flow_collection_start(self, token_class):  # noqa: D102 (PyYAML hook: '[' or '{')
        if self.flow_level >= MAX_YAML_DEPTH:  # PyYAML's scanner is quadratic in the flow nesting depth
            raise RecursionError
        return super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent, index):  # noqa: D102 (PyYAML hook)
        if self.check_event(yaml.AliasEvent):
            raise _AliasError(None, None, "YAML aliases (*name) are not allowed in params", self.peek_event().start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise RecursionError
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def safe_yaml(text: str) -> Any:
    """Parse YAML ``text`` without aliases (raises ``yaml.YAMLError``, or ``RecursionError`` when too deep).

    >>> safe_yaml("a: [1, 2]")
    {'a': [1, 2]}
    """
    return yaml.load(text, Loader=ParamsLoader)  # noqa: S506 (a SafeLoader subclass)


def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML (``3``, ``0.1``, ``[0,1]``, ``null``; no aliases), else the text itself.

    >>> parse_value("[a, b]"), parse_value("a,b"), parse_value("*a")
    (['a', 'b'], 'a,b', '*a')
    """
    try:
        return safe_yaml(text)
    except (yaml.YAMLError, RecursionError):
        return text


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings (values are YAML: ``3``, ``0.1``, ``[0,1]``, ``null``)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ParamsError(f"override '{item}': expected dotted.key=value, e.g. train.epochs=3")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value.strip())
    return out


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    if len(parts) < 2:
        raise ParamsError(f"override '{key}': expected section.key (e.g. train.epochs)")
    section, rest = parts[0], parts[1:]
    node = raw.setdefault(section, {})
    if not isinstance(node, dict):
        raise ParamsError(f"override '{key}': '{section}' is not a section")
    if section == "tune" and rest[0] == "space" and len(rest) > 1:
        # tune.space keys are themselves dotted (loss.margin): tune.space.loss.margin.high=1
        if "space" not in node:
            from alignrank.config.schema import _default_space

            node["space"] = _default_space()
        space = node["space"]
        field = rest[-1] if rest[-1] in ("type", "low", "high", "values") else None
        name = ".".join(rest[1:-1] if field else rest[1:])
        if field:
            space.setdefault(name, {})[field] = value
        else:
            space[name] = value
        return
    for p in rest[:-1]:
        node = node.setdefault(p, {})
    node[rest[-1]] = value


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping; a malformed file gets one line naming the file and the position."""
    return _read_yaml(path)[0]


def _read_yaml(path: str | Path) -> tuple[dict, bool]:
    """``(mapping, empty)``: the file's mapping, and whether the file holds no value at all."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ParamsError(f"{path}: {size} bytes is too large for a params file (limit {MAX_YAML_BYTES})")
        data = safe_yaml(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: is a folder, expected a YAML file") from None
    except OSError as e:
        raise ParamsError(f"{path}: cannot read the file ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ParamsError(f"{path}: not UTF-8 text (byte {e.start}); fix the file") from None
    except RecursionError:
        raise ParamsError(f"{path}: values nested too deeply; fix the file") from None
    except _AliasError as e:
        mark = e.problem_mark
        raise ParamsError(f"{path}: YAML alias at line {mark.line + 1}, column {mark.column + 1}: "
                          "aliases (*name) are not allowed in params; write the value out") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParamsError(f"{path}: malformed YAML{where}; fix the file") from None
    if data is None:
        return {}, True
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return data, False


def build_params(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Params:
    """Validate a raw nested mapping (plus dotted overrides) into frozen :class:`Params`."""
    raw = copy.deepcopy(dict(raw))
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    return build(Params, raw, "")


def load_params(
    path: str | Path | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    set_files: Iterable[str | Path] = (),
) -> Params:
    """Load ``params.yaml`` (default: the project's), apply set-files then ``--set`` overrides.

    Args:
        path: YAML file; None = ``<project root>/params.yaml`` (schema defaults if absent).
        overrides: ``key=value`` strings or a mapping of dotted keys.
        set_files: YAML fragments of dotted keys (e.g. ``results/tune/best.yaml``), applied in order.

    Returns:
        Validated, frozen :class:`Params`.
    """
    if path is None:
        candidate = project_root() / PARAMS_FILE
        path = candidate if candidate.is_file() else None
    raw, empty = _read_yaml(path) if path is not None else ({}, False)
    if empty:
        import logging  # (here: keep `import alignrank.config` light)

        logging.getLogger("alignrank.config").warning(f"{path}: the file is empty; every param takes its default")
    merged: dict[str, Any] = {}
    for f in set_files:
        merged.update(flatten(read_yaml(f)))
    merged.update(parse_overrides(overrides) if not isinstance(overrides, Mapping) else overrides)
    return build_params(raw, merged)


def with_overrides(params: Params, overrides: Mapping[str, Any]) -> Params:
    """A new validated :class:`Params` equal to ``params`` with dotted ``overrides`` applied."""
    return build_params(to_dict(params), overrides)


def params_dict(params: Params) -> dict:
    """Nested plain dict of ``params`` (YAML/JSON-safe)."""
    return to_dict(params)


def params_hash(obj: Any, n: int = 12) -> str:
    """Stable short hash of a params object or any JSON-able value."""
    data = to_dict(obj)
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]
