"""Registry of method variants: a variant is a registered name, never an ``if`` in model code.

Each variant names a head builder and a loss builder, which themselves live in registries
(``alignrank.nn.registry.HEADS`` and ``alignrank.loss.registry.LOSSES``). This module is
import-light (no torch) so that params validation can list the variants cheaply.

NMS-free forms: every variant ``v`` has a registered twin ``v_e2e`` (same head and loss, ``end2end=True``):
YOLOv10's dual assignment (a one-to-one branch beside the one-to-many one, decoded by top-k without NMS).
``model.end2end: true`` turns every variant NMS-free; the ``_e2e`` twins let one sweep list NMS and NMS-free
variants side by side (``sweep.variants: [baseline, baseline_e2e, full, full_e2e]``). A model is NMS-free when
its variant or ``model.end2end`` says so (:func:`is_end2end`).

Examples:
    >>> get_variant("full").head, get_variant("full").loss
    ('csd', 'rcq_augment')
    >>> {"baseline", "csd", "rcq", "full"} <= set(VARIANTS)
    True
    >>> v = get_variant("full_e2e")
    >>> v.head, v.loss, v.end2end, v.base
    ('csd', 'rcq_augment', True, 'full')
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
        loss: Key into the loss registry (``v8`` = stock v8DetectionLoss; ``rcq_augment`` / ``rcq_replace`` =
            RCQ-Loss in its two readings, see :mod:`alignrank.loss.criterion`).
        description: One line for tables and ``--help``.
        end2end: NMS-free form (one-to-one branch, dual assignment) whatever ``model.end2end`` says.
        base: The variant this one is the NMS-free twin of (its own name otherwise).
    """

    name: str
    head: str
    loss: str
    description: str
    end2end: bool = False
    base: str = ""

    def __post_init__(self) -> None:
        if not self.base:
            object.__setattr__(self, "base", self.name)


VARIANTS = Registry("variant")  # name -> Variant


E2E_SUFFIX = "_e2e"


def register_variant(name: str, *, head: str, loss: str, description: str, end2end_twin: bool = True) -> Variant:
    """Register a variant under ``name`` and (``end2end_twin``) its NMS-free twin ``<name>_e2e``."""
    v = VARIANTS.add(name, Variant(name=name, head=head, loss=loss, description=description))
    if end2end_twin:
        VARIANTS.add(name + E2E_SUFFIX, Variant(name=name + E2E_SUFFIX, head=head, loss=loss, end2end=True, base=name,
                                                description=f"{description}; NMS-free (one-to-one branch, top-k)"))
    return v


def get_variant(name: str) -> Variant:
    """Look up a registered variant; unknown names get the closest match and the registered ones."""
    return VARIANTS.get(name)


def is_end2end(variant: str, model_params) -> bool:
    """Whether ``variant`` trains NMS-free: its own ``end2end`` or ``model.end2end``.

    ``model.end2end`` is read only for a variant that is not NMS-free by itself (so an ``_e2e`` twin's run key
    does not depend on it).

    Examples:
        >>> from types import SimpleNamespace
        >>> is_end2end("baseline", SimpleNamespace(end2end=False)), is_end2end("baseline_e2e", None)
        (False, True)
    """
    return get_variant(variant).end2end or bool(model_params.end2end)


register_variant("baseline", head="detect", loss="v8", description="stock YOLOv8 (Detect head, v8DetectionLoss)")
register_variant("csd", head="csd", loss="v8", description="CSD-Head with the stock YOLOv8 loss")
# RCQ-Loss: the paper's section 3.2 says it "augments" YOLOv8's classification loss, its eq. 8 reads as the
# whole classification loss. ``rcq`` / ``full`` use the augment reading, the one the default experiment's
# multi-seed evidence supports (docs/fidelity.md, docs/ladders_rcq.md); ``*_replace`` is eq. 8 as written.
register_variant("rcq", head="detect", loss="rcq_augment",
                 description="stock head with RCQ-Loss, augment reading (YOLOv8's BCE + L_list + L_rank)")
register_variant("full", head="csd", loss="rcq_augment",
                 description="CSD-Head + RCQ-Loss, augment reading (YOLOv8's BCE + L_list + L_rank)")
register_variant("baseline_slim", head="detect_slim", loss="v8",
                 description="stock YOLOv8 with the slim class branch (control of csd with model.csd_light_cls)")
register_variant("rcq_replace", head="detect", loss="rcq_replace",
                 description="stock head with RCQ-Loss, replace reading (eq. 8: L_cal + L_list + L_rank is the class loss)")
register_variant("full_replace", head="csd", loss="rcq_replace",
                 description="CSD-Head + RCQ-Loss, replace reading (eq. 8 is the class loss)")
