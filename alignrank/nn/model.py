"""``AlignRankModel``: a YOLOv8 ``DetectionModel`` whose head and criterion come from the variant.

Ultralytics cannot put a custom head in a model YAML, so the model is built from the stock
``yolov8{scale}.yaml`` and the variant's head builder then swaps the ``Detect`` layer; strides and
bias initialisation are recomputed for the new head. The criterion comes from the loss registry.
Settings travel on the model (``variant``, ``model_params``, ``loss_params``) and are pickled into
checkpoints, so ``YOLO('best.pt')`` and resume rebuild the same model.

An NMS-free variant (``*_e2e``, or any variant with ``model.end2end``) gets YOLOv10's one-to-one branch on
its head once the head is initialised (:func:`alignrank.nn.e2e.add_one2one`) and the dual-assignment
criterion of :mod:`alignrank.loss.e2e` around its registered loss.

Examples:
    >>> m = build_model("baseline", scale="n", nc=3)
    >>> type(m.model[-1]).__name__
    'Detect'
"""

from __future__ import annotations

import torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.torch_utils import initialize_weights

from alignrank.config.fields import build
from alignrank.config.schema import LossParams, ModelParams
from alignrank.loss.registry import LOSSES
from alignrank.nn.e2e import add_one2one
from alignrank.nn.registry import HEADS
from alignrank.variants import get_variant, is_end2end


def _load_plugins() -> None:
    """Import the modules that register the non-stock heads (``csd``, ``detect_slim``) and losses (``rcq_augment``, ``rcq_replace``)."""
    import alignrank.loss.criterion  # noqa: F401
    import alignrank.nn.csd_head  # noqa: F401
    import alignrank.nn.slim  # noqa: F401


class AlignRankModel(DetectionModel):
    """YOLOv8 detection model with a registered head and loss.

    Args:
        cfg: YOLOv8 model YAML name/path or dict (``yolov8s.yaml`` selects scale s).
        ch: Input channels.
        nc: Number of classes.
        verbose: Print the model summary.
        variant: Registered variant name (``baseline``, ``csd``, ``rcq``, ``full``, their ``*_e2e`` twins, ...).
        model_params: Head settings (defaults when None).
        loss_params: Loss settings (defaults when None).
    """

    def __init__(
        self,
        cfg: str | dict = "yolov8n.yaml",
        ch: int = 3,
        nc: int | None = None,
        verbose: bool = False,
        *,
        variant: str = "baseline",
        model_params: ModelParams | None = None,
        loss_params: LossParams | None = None,
    ) -> None:
        _load_plugins()
        spec = get_variant(variant)
        self.variant = variant
        self.model_params = model_params or build(ModelParams, {}, "model")
        self.loss_params = loss_params or build(LossParams, {}, "loss")
        super().__init__(cfg, ch=ch, nc=nc, verbose=False)
        try:
            head_builder = HEADS[spec.head]
        except KeyError:
            raise KeyError(f"variant '{variant}' needs head '{spec.head}', which is not registered") from None
        old = self.model[-1]
        new = head_builder(old, self.model_params)
        if new is not old:
            for attr in ("i", "f", "type", "np", "inplace"):
                if hasattr(old, attr):
                    setattr(new, attr, getattr(old, attr))
            self.model[-1] = new
            self._init_head_strides(ch)
            initialize_weights(self)
            if hasattr(new, "reset_parameters_after_init"):
                new.reset_parameters_after_init()
        if is_end2end(variant, self.model_params):  # the one-to-one branch starts as a copy of the initialised one
            add_one2one(self.model[-1])
        if verbose:
            self.info()

    def _init_head_strides(self, ch: int) -> None:
        """Recompute strides and bias init for a swapped head (as ``DetectionModel.__init__`` does)."""
        m = self.model[-1]
        s = 256
        self.model.eval()
        m.training = True
        out = self.forward(torch.zeros(1, ch, s, s))
        out = out.get("one2many", out) if isinstance(out, dict) else out
        feats = out["feats"] if isinstance(out, dict) else out
        m.stride = torch.tensor([s / x.shape[-2] for x in feats])
        self.stride = m.stride
        self.model.train()
        m.bias_init()

    def init_criterion(self):
        """Criterion of the variant's registered loss; for an NMS-free model, YOLOv10's dual assignment around it."""
        spec = get_variant(self.variant)
        try:
            builder = LOSSES[spec.loss]
        except KeyError:
            raise KeyError(f"variant '{self.variant}' needs loss '{spec.loss}', which is not registered") from None
        if getattr(self.model[-1], "one2one_cv2", None) is not None:
            from alignrank.loss.e2e import build_dual_loss

            return build_dual_loss(self, self.loss_params, spec.loss)
        return builder(self, self.loss_params)


def build_model(
    variant: str,
    scale: str = "s",
    nc: int = 80,
    *,
    model_params: ModelParams | None = None,
    loss_params: LossParams | None = None,
    verbose: bool = False,
) -> AlignRankModel:
    """Build the model of a registered variant at a YOLOv8 scale.

    Args:
        variant: ``baseline`` | ``csd`` | ``rcq`` | ``full`` (any registered name).
        scale: YOLOv8 scale letter (n, s, m, l, x).
        nc: Number of classes.
        model_params: Head settings (params.yaml ``model`` section); defaults when None.
        loss_params: Loss settings (``loss`` section); defaults when None.
        verbose: Print the model summary.

    Returns:
        An :class:`AlignRankModel` in train mode.

    Examples:
        >>> m = build_model("rcq", scale="n", nc=80)
        >>> m.variant
        'rcq'
        >>> type(build_model("rcq_e2e", scale="n", nc=3).init_criterion()).__name__
        'DualAssignmentLoss'
    """
    return AlignRankModel(
        f"yolov8{scale}.yaml", nc=nc, verbose=verbose, variant=variant, model_params=model_params, loss_params=loss_params
    )
