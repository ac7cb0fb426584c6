"""YOLOv10's consistent dual assignment around any registered loss: the criterion of NMS-free models.

An NMS-free head (:mod:`alignrank.nn.e2e`) returns ``{"one2many": preds, "one2one": preds}`` in training.
:class:`DualAssignmentLoss` computes

    L = o2m_weight * L_o2m(one2many preds) + o2o_weight * L_o2o(one2one preds)

* ``L_o2m`` is the variant's registered loss with its own assigner (TAL top-``loss.tal_topk``, or the assigner
  the params choose), exactly as without the one-to-one branch;
* ``L_o2o`` uses TAL with top-``loss.o2o_topk`` (YOLOv10: 1) and the same matching metric
  ``s^0.5 * IoU^6`` as YOLOv8's TAL (YOLOv10's *consistent* matching: the same alpha and beta, so the one-to-one
  target is the anchor the one-to-many metric ranks first; each branch's metric uses its own predictions); its loss is ``loss.o2o_loss``: ``same`` = the variant's loss
  (for ``rcq_replace``: L_cal + L_list + L_rank on the one-to-one positives), ``v8`` = YOLOv8's stock loss (RCQ then
  acts on the one-to-many branch only). For the stock loss both readings are the same and ``loss.o2o_loss`` is
  not read. With one positive per ground truth, L_list (a softmax over a group of one) and L_rank (no pair)
  vanish: on the one-to-one branch ``same`` is L_cal alone (docs/fidelity.md).
* ``loss.o2m_weight`` / ``loss.o2o_weight``: YOLOv10 sums the two (1, 1), as ultralytics' ``E2EDetectLoss``;
  with the stock loss and these defaults the total equals ``E2EDetectLoss``'s (tested).

The loss vector is the two branches' terms one after the other (their sum is what the trainer
back-propagates); loss items are the one-to-many ones by name and the one-to-one ones prefixed ``o2o_``.

Examples:
    >>> from alignrank.nn.model import build_model
    >>> crit = build_model("baseline_e2e", scale="n", nc=3).init_criterion()
    >>> crit.loss_names
    ('box_loss', 'cls_loss', 'dfl_loss', 'o2o_box_loss', 'o2o_cls_loss', 'o2o_dfl_loss')
    >>> crit.one2one.assigner.topk, crit.one2many.assigner.topk
    (1, 10)
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from alignrank.loss.registry import LOSSES

O2O_PREFIX = "o2o_"
O2O_LOSSES: dict[str, Callable[[str], str]] = {  # loss.o2o_loss -> (variant's loss name -> one-to-one loss name)
    "same": lambda loss: loss,
    "v8": lambda loss: "v8",
}


class BranchParams:
    """``LossParams`` with some fields fixed for one branch; every other read goes to ``params`` (and is recorded
    there when ``params`` is a :class:`~alignrank.runs.reads.ReadRecorder`).

    Examples:
        >>> from alignrank.config.schema import LossParams
        >>> b = BranchParams(LossParams(), tal_topk=1, assigner="tal")
        >>> b.tal_topk, b.assigner, b.box
        (1, 'tal', 7.5)
    """

    def __init__(self, params: Any, **fixed: Any) -> None:
        self.__dict__["_params"], self.__dict__["_fixed"] = params, dict(fixed)

    def __getattr__(self, name: str) -> Any:  # only for names not in __dict__
        if name.startswith("__") or name in ("_params", "_fixed"):
            raise AttributeError(name)
        fixed = self.__dict__["_fixed"]
        return fixed[name] if name in fixed else getattr(self.__dict__["_params"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field '{name}'")


def one2one_params(params: Any) -> BranchParams:
    """The one-to-one branch's loss params: TAL (the RCQ losses too) with top-``loss.o2o_topk``."""
    return BranchParams(params, assigner="tal", rcq_assigner="same", tal_topk=params.o2o_topk)


def one2one_loss_name(loss: str, params: Any) -> str:
    """The registered loss of the one-to-one branch (``loss.o2o_loss`` is read only when it can matter)."""
    return "v8" if loss == "v8" else O2O_LOSSES[params.o2o_loss](loss)


class DualAssignmentLoss:
    """``o2m_weight * one2many(preds["one2many"]) + o2o_weight * one2one(preds["one2one"])``.

    Args:
        one2many: Criterion of the one-to-many branch (the variant's registered loss).
        one2one: Criterion of the one-to-one branch.
        o2m_weight: Weight of the one-to-many terms (``loss.o2m_weight``).
        o2o_weight: Weight of the one-to-one terms (``loss.o2o_weight``).
    """

    def __init__(self, one2many: Any, one2one: Any, o2m_weight: float = 1.0, o2o_weight: float = 1.0) -> None:
        self.one2many, self.one2one = one2many, one2one
        self.o2m_weight, self.o2o_weight = float(o2m_weight), float(o2o_weight)
        self.updates = 0  # ultralytics' resume sets it and calls update()

    @property
    def params(self) -> Any:
        """The one-to-many criterion's ``LossParams`` (None for ultralytics' stock loss)."""
        return getattr(self.one2many, "params", None)

    @property
    def loss_names(self) -> tuple[str, ...]:
        """One-to-many loss names, then the one-to-one ones prefixed ``o2o_``."""
        return (*self.one2many.loss_names, *(O2O_PREFIX + n for n in self.one2one.loss_names))

    def __call__(self, preds: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(loss terms x batch size, loss items)``: one-to-many terms then one-to-one terms, each weighted."""
        preds = preds[1] if isinstance(preds, tuple) else preds  # eval mode: (decoded, raw dict)
        lm, im = self.one2many(preds["one2many"], batch)  # (n_o2m,), {name: item}
        lo, io = self.one2one(preds["one2one"], batch)  # (n_o2o,), {name: item}
        loss = torch.cat((lm * self.o2m_weight, lo * self.o2o_weight))  # (n_o2m + n_o2o,)
        items = {**{k: v * self.o2m_weight for k, v in im.items()},
                 **{O2O_PREFIX + k: v * self.o2o_weight for k, v in io.items()}}
        return loss, items

    def update(self) -> None:
        """Per-epoch hook of ultralytics' trainer: YOLOv10's weights are constant, so only count."""
        self.updates += 1


def build_dual_loss(model: torch.nn.Module, params: Any, loss: str) -> DualAssignmentLoss:
    """YOLOv10's dual-assignment criterion of ``model`` around the registered loss ``loss``.

    Args:
        model: De-paralleled NMS-free detection model.
        params: ``LossParams`` (None: defaults).
        loss: The variant's registered loss name.
    """
    if params is None:
        from alignrank.config.fields import build
        from alignrank.config.schema import LossParams

        params = build(LossParams, {}, "loss")
    one2many = LOSSES[loss](model, params)
    one2one = LOSSES[one2one_loss_name(loss, params)](model, one2one_params(params))
    return DualAssignmentLoss(one2many, one2one, params.o2m_weight, params.o2o_weight)
