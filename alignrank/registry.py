"""A tiny name -> factory registry (timm-style), shared by variants, heads, losses, assigners and IoU losses.

A registry may be bound to a torch-free *catalogue* of names (``Registry(kind, names=catalogue)``): every
name registered in it is then also listed in the catalogue, so params validation (which reads only the
catalogue) accepts a plugin's entry as soon as the plugin module is imported.

Examples:
    >>> HEADS = Registry("head")
    >>> @HEADS.register("identity")
    ... def build(x):
    ...     return x
    >>> HEADS.get("identity")(3), "identity" in HEADS
    (3, True)
    >>> HEADS.get("identiy")
    Traceback (most recent call last):
    ...
    KeyError: "unknown head 'identiy' (did you mean 'identity'? registered: identity)"
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

F = TypeVar("F", bound=Callable)


def did_you_mean(name: object, known: Iterable[object], prefix: str = "") -> str:
    """``"did you mean 'x'?"`` for the closest of ``known`` to ``name`` (difflib), or ``""``.

    Args:
        name: The unknown name.
        known: The valid names.
        prefix: Put before the suggested name (``"train."`` suggests ``'train.epochs'``).

    >>> did_you_mean("ful", ["baseline", "full"])
    "did you mean 'full'?"
    >>> did_you_mean("zzz", ["baseline", "full"])
    ''
    """
    import difflib  # (here: keep `import alignrank.config` light)

    words = {str(k): k for k in known}
    close = difflib.get_close_matches(str(name)[:200], list(words), n=1, cutoff=0.6)
    return f"did you mean '{prefix}{words[close[0]]}'?" if close else ""


class Registry(dict):
    """A dict of named factories with a ``register`` decorator and a one-line error for unknown names.

    Args:
        kind: What an entry is, for messages (``"head"``, ``"loss.assigner"``).
        names: Optional catalogue (another registry, torch-free) in which every name registered here is
            also listed, with the first line of the factory's docstring as its description.
    """

    def __init__(self, kind: str, *, names: Registry | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.names = names

    def add(self, name: str, obj: Any) -> Any:
        """Register ``obj`` under ``name`` (a duplicate name is an error); returns ``obj``."""
        if name in self:
            raise KeyError(f"{self.kind} '{name}' is already registered")
        self[name] = obj
        if self.names is not None and name not in self.names:
            self.names.add(name, ((getattr(obj, "__doc__", None) or name).strip().splitlines() or [name])[0])
        return obj

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator registering ``fn`` under ``name`` (a duplicate name is an error)."""

        def deco(fn: F) -> F:
            return self.add(name, fn)

        return deco

    def get(self, name: str) -> Any:  # type: ignore[override]
        """The entry registered as ``name``; unknown names get the closest match and the registered ones."""
        try:
            return self[name]
        except KeyError:
            hint = did_you_mean(name, self)
            raise KeyError(f"unknown {self.kind} '{name}' ({hint + ' ' if hint else ''}registered: {', '.join(self)})") from None
