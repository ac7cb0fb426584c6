"""Registry of method variants: a variant is a registered name, never an ``if`` in model code.

Each variant names a head builder and a loss builder, which themselves live in registries
(``alignrank.nn.registry.HEADS`` and ``alignrank.loss.registry.LOSSES``). This module is
import-light (no torch) so that params validation can list the variants cheaply.

Examples:
    >>> get_variant("full").head, get_variant("full").loss
    ('csd', 'rcq')
    >>> sorted(VARIANTS)
    ['baseline', 'csd', 'full', 'rcq']
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """A method variant.

    Attributes:
        name: Registered name (used in params, MLflow tags, tables).
        head: Key into the head registry (``detect`` = stock YOLOv8 head, ``csd`` = CSD-Head).
        loss: Key into the loss registry (``v8`` = stock v8DetectionLoss, ``rcq`` = RCQ-Loss).
        description: One line for tables and ``--help``.
    """

    name: str
    head: str
    loss: str
    description: str


VARIANTS: dict[str, Variant] = {}


def register_variant(name: str, *, head: str, loss: str, description: str) -> Variant:
    """Register a variant under ``name`` (error on duplicates)."""
    if name in VARIANTS:
        raise KeyError(f"variant '{name}' is already registered")
    VARIANTS[name] = Variant(name=name, head=head, loss=loss, description=description)
    return VARIANTS[name]


def get_variant(name: str) -> Variant:
    """Look up a registered variant; unknown names get a one-line error listing the known ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown variant '{name}' (registered: {', '.join(VARIANTS)})") from None


register_variant("baseline", head="detect", loss="v8", description="stock YOLOv8 (Detect head, v8DetectionLoss)")
register_variant("csd", head="csd", loss="v8", description="CSD-Head with the stock YOLOv8 loss")
register_variant("rcq", head="detect", loss="rcq", description="stock head with RCQ-Loss")
register_variant("full", head="csd", loss="rcq", description="CSD-Head + RCQ-Loss")
