"""Registry of method variants: a variant is a registered name, never an ``if`` in model code.

Each variant names a head builder and a loss builder, which themselves live in registries
(``alignrank.nn.registry.HEADS`` and ``alignrank.loss.registry.LOSSES``). This module is
import-light (no torch) so that params validation can list the variants cheaply.

Examples:
    >>> get_variant("full").head, get_variant("full").loss
    ('csd', 'rcq')
    >>> {"baseline", "csd", "rcq", "full"} <= set(VARIANTS)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from alignrank.registry import Registry


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


VARIANTS = Registry("variant")  # name -> Variant


def register_variant(name: str, *, head: str, loss: str, description: str) -> Variant:
    """Register a variant under ``name`` (error on duplicates)."""
    return VARIANTS.add(name, Variant(name=name, head=head, loss=loss, description=description))


def get_variant(name: str) -> Variant:
    """Look up a registered variant; unknown names get the closest match and the registered ones."""
    return VARIANTS.get(name)


register_variant("baseline", head="detect", loss="v8", description="stock YOLOv8 (Detect head, v8DetectionLoss)")
register_variant("csd", head="csd", loss="v8", description="CSD-Head with the stock YOLOv8 loss")
register_variant("rcq", head="detect", loss="rcq", description="stock head with RCQ-Loss")
register_variant("full", head="csd", loss="rcq", description="CSD-Head + RCQ-Loss")
register_variant("baseline_slim", head="detect_slim", loss="v8",
                 description="stock YOLOv8 with the slim class branch (control of csd with model.csd_light_cls)")
register_variant("rcq_augment", head="detect", loss="rcq_augment", description="stock head, YOLOv8 BCE + L_list + L_rank")
register_variant("full_augment", head="csd", loss="rcq_augment", description="CSD-Head, YOLOv8 BCE + L_list + L_rank")
