"""Typed, frozen, validated parameter dataclasses: the field helper and the generic builder.

Every section of ``params.yaml`` is a frozen dataclass whose fields are declared with :func:`param`,
which records the allowed range / choices and a one-line help text. :func:`build` turns a plain
mapping into such a dataclass, rejecting unknown keys, wrong types and out-of-range values with a
single line that names the dotted key and what is allowed.

Examples:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class S:
    ...     epochs: int = param(3, ge=1, help="training epochs")
    >>> build(S, {"epochs": 5}, "train").epochs
    5
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import re
import reprlib
import types
import typing
from typing import Any, Callable, Mapping

from alignrank.errors import UsageError
from alignrank.registry import did_you_mean

MAX_SEED = 2**32 - 1  # numpy's (hence ultralytics') largest seed

MAX_SHOWN = 80  # characters of a value echoed in an error message
_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlevel = MAX_SHOWN, MAX_SHOWN, 4
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+(_\d+)*\.?\d*|\.\d+)([eE][+-]?\d+)?$")  # 1e-3, 2., .5 (YAML 1.1 reads 1e-3 as text)


class ParamsError(UsageError, ValueError):
    """A parameter is unknown, of the wrong type or out of range (message is one line; CLI exit code 2)."""


def _cut(text: str, limit: int = MAX_SHOWN) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def shown(value: Any, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters plus an ellipsis.

    >>> shown("x" * 100)[-5:], len(shown("x" * 100)), shown([1] * 100)
    ('xxxx…', 81, '[1, 1, 1, 1, 1, 1, ...]')
    """
    text = repr(value[: limit + 1]) if isinstance(value, str) else _REPR.repr(value)  # bounded work
    return _cut(text, limit)


def param(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Callable[[], typing.Iterable[Any]] | typing.Iterable[Any] | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare a parameter field with its constraints and one-line help text."""
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _scalar(text: str) -> Any:
    """An item of a comma-separated list: an integer or a number when it reads as one, else the stripped text."""
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    return float(text) if _FLOAT_TEXT.match(text) else text


def _range_text(meta: Mapping[str, Any]) -> str:
    parts = []
    for key, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if meta.get(key) is not None:
            parts.append(f"{sym} {meta[key]}")
    return " and ".join(parts)


def _choices(meta: Mapping[str, Any]) -> list[Any] | None:
    ch = meta.get("choices")
    if ch is None:
        return None
    return list(ch() if callable(ch) else ch)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp`` (light coercion: int->float, list->tuple)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ParamsError as e:
                errors.append(str(e))
        allowed = " or ".join(_type_name(a) for a in args)
        raise ParamsError(f"{key}: expected {allowed}, got {shown(value)}")
    if origin is typing.Literal:
        if value not in args:
            raise ParamsError(f"{key}: must be one of {list(args)}, got {shown(value)}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):  # one list syntax everywhere: "a,b" (like --variants a,b) = [a, b]
            value = [_scalar(v) for v in value.split(",")]
        elif isinstance(value, (int, float)):  # a single item: seeds=3 = [3]
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{key}: expected a list, got {shown(value)}")
        item_tp = args[0] if args else Any
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (dict, collections.abc.Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise ParamsError(f"{key}: expected a mapping, got {shown(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{key}.{_cut(str(k))}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true/false, got {shown(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {shown(value)}")
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            value = float(value.strip().replace("_", ""))  # YAML 1.1 reads 1e-3 (no dot) as text
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: expected a number, got {shown(value)}")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond the float range
            raise ParamsError(f"{key}: must be a finite number, got {shown(value)}") from None
        if not math.isfinite(value):
            raise ParamsError(f"{key}: must be a finite number, got {value}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {shown(value)}")
        return value
    return value


def _check_range(value: Any, meta: Mapping[str, Any], key: str) -> None:
    choices = _choices(meta)
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if v is None:
            continue
        if choices is not None and v not in choices:
            hint = did_you_mean(v, choices) if isinstance(v, str) else ""
            raise ParamsError(f"{key}: must be one of {choices}, got {shown(v)}{f' ({hint})' if hint else ''}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            bad = (
                (meta.get("ge") is not None and v < meta["ge"])
                or (meta.get("gt") is not None and v <= meta["gt"])
                or (meta.get("le") is not None and v > meta["le"])
                or (meta.get("lt") is not None and v >= meta["lt"])
            )
            if bad:
                raise ParamsError(f"{key}: must be {_range_text(meta)}, got {shown(v)}")


def build(cls: type, data: Mapping[str, Any] | None, prefix: str) -> Any:
    """Build the frozen dataclass ``cls`` from ``data``, validating every key.

    Args:
        cls: A dataclass whose fields were declared with :func:`param`.
        data: Plain mapping (from YAML); missing keys take the field default.
        prefix: Dotted name of this section, used in error messages.

    Returns:
        An instance of ``cls``.

    Raises:
        ParamsError: One line naming the offending dotted key.
    """
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ParamsError(f"{prefix or 'params'}: expected a mapping of keys, got {shown(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted((k for k in data if k not in fields), key=str)
    if unknown:
        where = f"{prefix}." if prefix else ""
        hint = did_you_mean(unknown[0], fields, where)
        raise ParamsError(f"unknown key '{where}{_cut(str(unknown[0]))}' ({hint + ' ' if hint else ''}"
                          f"allowed in {prefix or 'params'}: {_cut(', '.join(fields), 240)})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            value = _coerce(data[name], hints[name], key)
        elif dataclasses.is_dataclass(hints[name]):
            value = build(hints[name], {}, key)
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            value = _coerce(f.default_factory(), hints[name], key)  # type: ignore[misc]
        else:
            raise ParamsError(f"{key}: required key is missing")
        _check_range(value, f.metadata, key)
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(prefix)
    return obj


def to_dict(obj: Any) -> Any:
    """Plain nested dict/list view of a params dataclass (for YAML/JSON/MLflow)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested mapping to dotted keys: ``{"a": {"b": 1}} -> {"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out
