"""A tiny name -> factory registry (timm-style), shared by heads, losses, assigners and IoU losses.

Examples:
    >>> HEADS = Registry("head")
    >>> @HEADS.register("identity")
    ... def build(x):
    ...     return x
    >>> HEADS.get("identity")(3), "identity" in HEADS
    (3, True)
"""

from __future__ import annotations

from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


class Registry(dict):
    """A dict of named factories with a ``register`` decorator and a one-line error for unknown names."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator registering ``fn`` under ``name`` (a duplicate name is an error)."""

        def deco(fn: F) -> F:
            if name in self:
                raise KeyError(f"{self.kind} '{name}' is already registered")
            self[name] = fn
            return fn

        return deco

    def get(self, name: str) -> Callable:  # type: ignore[override]
        """The factory registered as ``name``; unknown names list the registered ones."""
        try:
            return self[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} '{name}' (registered: {', '.join(self)})") from None
