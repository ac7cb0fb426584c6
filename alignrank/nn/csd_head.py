"""CSD-Head (Cross-Scale Sparse Deformable Head): ``CSDDetect`` and its ``@register_head("csd")`` builder.

A drop-in subclass of ultralytics' ``Detect`` that keeps its contract (training dict with
``boxes``/``scores``/``feats``, eval ``(y, preds)``, export mode, strides, DFL with ``reg_max``):

1. Eq. 1 (:class:`~alignrank.nn.deform.CrossScaleSampler`): each level is projected to a thin common
   width ``c`` and every location samples ``K`` learned points in levels ``l-1, l, l+1``.
2. Eq. 2 (:class:`~alignrank.nn.bcdm.BCDM`): gated top-down / bottom-up / self fusion of the samples,
   read recursively (top-down pass, then bottom-up pass; ``model.bcdm_mode``).
3. The fused side stream re-enters each level by a zero-initialised 1x1 expansion,
   ``x~_l = x_l + E_l(y~_l)``, so training starts from the stock head's function
   (``model.csd_side_stream=false`` leaves 1-3 out: an ablation step).
4. Eq. 3 (:mod:`~alignrank.nn.dynconv`): the YOLOv8 box and class branches run on ``x~_l`` and their
   prediction convs are quality-prior dynamic convs (``M`` base kernels blended by
   ``alpha(q_l) = softmax(MLP(GAP(x~_l)))``, applied as one batched matmul), the ``M`` kernels
   initialised equal (``model.dyn_init``).

The head is additive, as the paper's: the stock box and class branches are unchanged (the class
branch's dense 3x3 convs stay; ``model.csd_light_cls`` makes its middle conv depthwise 3x3 + 1x1, and
then the ``baseline_slim`` variant is the control with the same branch).

NMS-free form (``end2end=True``, or :func:`alignrank.nn.e2e.add_one2one` on a built head; ``model.end2end`` /
the ``*_e2e`` variants): YOLOv10's one-to-one branch is a deep copy of the box and class branches and of
their kernel routers (``one2one_names``); the sampler / BCDM side stream is computed once and shared, and in
training the one-to-one branch reads the refined levels detached (as ``Detect`` detaches its inputs), so
its loss trains only its own branches.

Cost (YOLOv8-S, nc=80, 640x640, fused; ``alignrank profile --variants baseline,csd``): +2.1 % params,
+1.1 % GFLOPs (custom ops counted). Choices under that budget: only the prediction convs are dynamic
(``M`` copies of a 3x3 branch conv would add ~0.3-1.2 M params at scale s); ``K = 4`` points per source
level and ``c = max(32, C_P3 / 4)`` (32 at scales n and s), because the sampling is the head's one
memory-bound op: its CPU time, forward and backward, grows with ``K * c`` while its FLOPs stay small
(0.03 GFLOPs for K = 4, c = 32 at s/640). See docs/fidelity.md (head).

Examples:
    >>> from alignrank.nn.model import build_model
    >>> m = build_model("csd", scale="n", nc=3)
    >>> type(m.model[-1]).__name__, m.model[-1].stride.tolist()
    ('CSDDetect', [8.0, 16.0, 32.0])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from ultralytics.nn.modules import Conv
from ultralytics.nn.modules.head import Detect
from ultralytics.utils.torch_utils import fuse_conv_and_bn

from alignrank.nn.bcdm import BCDM
from alignrank.nn.deform import CrossScaleSampler
from alignrank.nn.dynconv import DynConv2d, KernelRouter
from alignrank.nn.e2e import add_one2one
from alignrank.nn.registry import register_head
from alignrank.nn.slim import slim_class_branch


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold the BatchNorm of every ultralytics ``Conv`` inside ``module`` into its conv (as ``BaseModel.fuse``)."""
    for m in module.modules():
        if isinstance(m, Conv) and hasattr(m, "bn"):
            m.conv = fuse_conv_and_bn(m.conv, m.bn)
            delattr(m, "bn")
            m.forward = m.forward_fuse
    return module


def run_branch(branch: nn.Sequential, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Run a box/class branch whose last layer is a :class:`DynConv2d` driven by ``alpha`` (B, M).

    A static last conv is run as such: ultralytics' ``load`` swaps in an ``nn.Conv2d`` when it transfers a class
    branch across class-branch widths.
    """
    *body, last = branch
    for m in body:
        x = m(x)
    return last(x, alpha) if isinstance(last, DynConv2d) else last(x)


class CSDDetect(Detect):
    """YOLOv8 ``Detect`` with cross-scale deformable sampling, BCDM fusion and dynamic prediction convs.

    Args:
        nc: Number of classes.
        reg_max: DFL bins.
        end2end: Add YOLOv10's one-to-one branch (copies of ``cv2``, ``cv3`` and ``router``; see the module docstring).
        ch: Input channels per level (finest first).
        points: ``K`` sampling points per source level (``model.csd_points``).
        offset_range: Max offset per axis in source pixels (``model.csd_offset_range``).
        reduction: BCDM ``phi`` reduction (``model.bcdm_reduction``).
        kernels: ``M`` base kernels per dynamic conv (``model.dyn_kernels``).
        hidden: Hidden width of the quality MLP (``model.dyn_hidden``).
        width: Side-stream width ``c`` (``model.csd_width``; None/0 = ``max(32, ch[0] // 4)``).
        light_cls: Make the class branch's middle 3x3 conv depthwise 3x3 + 1x1 (``model.csd_light_cls``; off by
            default: the paper's head adds to the stock branches; compare with ``baseline_slim`` when on).
        side_stream: Build the sampler, BCDM and re-entry (``model.csd_side_stream``); off = the stock branches
            with dynamic prediction convs only (an ablation step).
        bcdm_mode: Reading of eq. 2 (``model.bcdm_mode``): ``two_pass`` or ``one_pass`` (see :mod:`~alignrank.nn.bcdm`).
        dyn_init: Base-kernel initialisation (``model.dyn_init``): ``shared`` or ``independent``
            (see :mod:`~alignrank.nn.dynconv`).
        biased: Biases on the re-entry 1x1s, the router MLPs and the offset predictors, the ring pattern then
            the offset convs' bias (``model.csd_biased``): the head before the warm-up fix (see
            :meth:`reset_parameters_after_init`), kept as a diagnostic; off by default.
        side_detach: The side stream reads the levels detached (``model.csd_side_detach``): it still feeds the
            branches through the re-entry, but its gradient no longer reaches the neck and backbone, which then
            train on the branches' gradient alone (a diagnostic; off by default: the paper trains end to end).

    Examples:
        >>> head = CSDDetect(nc=4, ch=(16, 32, 64))
        >>> head.stride = torch.tensor([8.0, 16.0, 32.0])
        >>> out = head([torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4), torch.randn(1, 64, 2, 2)])
        >>> out["boxes"].shape, out["scores"].shape
        (torch.Size([1, 64, 84]), torch.Size([1, 4, 84]))
        >>> e2e = CSDDetect(nc=4, ch=(16, 32, 64), end2end=True)
        >>> e2e.stride = head.stride
        >>> sorted(e2e([torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4), torch.randn(1, 64, 2, 2)]))
        ['one2many', 'one2one']
    """

    one2one_names = ("cv2", "cv3", "router")  # what the one-to-one branch copies (alignrank.nn.e2e.add_one2one)

    def __init__(
        self,
        nc: int = 80,
        reg_max: int = 16,
        end2end: bool = False,
        ch: Sequence[int] = (),
        *,
        points: int = 4,
        offset_range: float = 4.0,
        reduction: int = 4,
        kernels: int = 4,
        hidden: int = 16,
        width: int | None = None,
        light_cls: bool = False,
        side_stream: bool = True,
        bcdm_mode: str = "two_pass",
        dyn_init: str = "shared",
        biased: bool = False,
        side_detach: bool = False,
    ) -> None:
        super().__init__(nc, reg_max, False, tuple(ch))  # the one-to-one copies are made last, below
        c = width or max(32, ch[0] // 4)
        self.csd = self.bcdm = self.expand = None
        self.side_detach = side_detach
        if side_stream:
            self.csd = CrossScaleSampler(ch, c, points=points, offset_range=offset_range, bias=biased)
            self.bcdm = BCDM(c, reduction=reduction, nl=self.nl, mode=bcdm_mode)
            self.expand = nn.ModuleList(nn.Conv2d(self.bcdm.cb, x, 1, bias=biased) for x in ch)  # see reset_parameters_after_init
        self.router = nn.ModuleList(KernelRouter(x, hidden, kernels, outputs=2, bias=biased) for x in ch)
        if light_cls:  # class branch middle layer: dense 3x3 -> dw 3x3 + 1x1 (as the baseline_slim control)
            slim_class_branch(self.cv3)
        for branch in (*self.cv2, *self.cv3):  # prediction convs -> dynamic convs
            last = branch[-1]
            branch[-1] = DynConv2d(last.in_channels, last.out_channels, 1, kernels=kernels, init=dyn_init)
        self.reset_parameters_after_init()
        if end2end:
            add_one2one(self)

    @property
    def one2many(self) -> dict[str, nn.Module | None]:
        """The one-to-many branches: box and class branches and their kernel routers."""
        return {"box_head": self.cv2, "cls_head": self.cv3, "router": self.router}

    @property
    def one2one(self) -> dict[str, nn.Module | None]:
        """The one-to-one branches (None before :func:`~alignrank.nn.e2e.add_one2one` / after ``fuse``)."""
        return {"box_head": getattr(self, "one2one_cv2", None), "cls_head": getattr(self, "one2one_cv3", None),
                "router": getattr(self, "one2one_router", None)}

    def reset_parameters_after_init(self) -> None:
        """Zero the re-entry expansions (start = stock head function) and reset the offset pattern.

        The re-entry has no bias: a per-channel constant added to ``x_l`` is absorbed by the branches' first
        Conv-BN anyway, and ultralytics trains biases at ``warmup_bias_lr`` (0.1) during warm-up, which made
        Adam's full-size steps on its ~zero gradient shift ``x~_l`` by about twice ``|x_l|`` within 3 steps
        (measured), so the stock branches no longer saw the features they start from.
        """
        if self.csd is None:
            return
        for e in self.expand:
            nn.init.zeros_(e.weight)
            if e.bias is not None:
                nn.init.zeros_(e.bias)
        self.csd.reset_offsets()

    def level_strides(self) -> list[float]:
        """Strides per level as floats; the nominal 8, 16, 32, ... before the model has computed them."""
        s = [float(v) for v in self.stride]
        return s if len(s) == self.nl and min(s) > 0 else [8.0 * 2**i for i in range(self.nl)]

    def refine(self, x: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Eq. 1 + eq. 2 + re-entry: per level (B, C_l, H_l, W_l) -> same shapes (``x`` itself without side stream)."""
        if self.csd is None:
            return list(x)
        src = [xi.detach() for xi in x] if self.side_detach else x  # detached: no gradient into the neck from here
        u = self.csd(src, self.level_strides())  # per level (B, c, H, W)
        v = self.bcdm(u)  # per level (B, cb, H, W)
        return [xi + e(vi) for xi, e, vi in zip(x, self.expand, v)]  # per level (B, C_l, H, W)

    def forward(self, x: list[torch.Tensor]):
        """``Detect.forward`` on the refined levels: the side stream runs once and feeds both branches.

        ``Detect.forward`` then runs the one-to-many branch on ``x~`` and, when present, the one-to-one branch
        on ``x~`` (detached in training); its outputs (training dict, eval ``(y, preds)``, export tensor) are
        unchanged, with ``feats`` = the refined levels (same shapes as ``x``).
        """
        return super().forward(self.refine(x))

    def forward_head(
        self, x: list[torch.Tensor], box_head: nn.Module | None = None, cls_head: nn.Module | None = None,
        router: nn.Module | None = None,
    ) -> dict[str, torch.Tensor]:
        """Predictions of refined levels ``x``: ``boxes`` (B, 4*reg_max, A), ``scores`` (B, nc, A), ``feats`` = x."""
        if box_head is None or cls_head is None:  # fused inference without this branch (Detect contract)
            return {}
        bs = x[0].shape[0]
        y, router = x, self.router if router is None else router
        boxes, scores = [], []
        for i in range(self.nl):
            a_cls, a_reg = router[i](y[i])  # (B, M) each
            boxes.append(run_branch(box_head[i], y[i], a_reg).view(bs, 4 * self.reg_max, -1))  # (B, 4*reg_max, HW)
            scores.append(run_branch(cls_head[i], y[i], a_cls).view(bs, self.nc, -1))  # (B, nc, HW)
        return {"boxes": torch.cat(boxes, -1), "scores": torch.cat(scores, -1), "feats": x}

    def fuse(self) -> None:
        """Fold every BatchNorm of the head into its conv (outputs unchanged), then ``Detect.fuse``.

        What does not fold: eq. 3's blended kernel ``W = sum_m alpha_m(q_l) W_m`` depends on the image through
        ``alpha(q_l(x))``, so it cannot become ONE static convolution for all inputs (the paper's "folded into
        one static convolution" holds per image only); the fused model computes it once per image and level
        (a ``(B, M) @ (M, |W|)`` product, 2 * M * |W| FLOPs) and applies it as one batched matmul, the same
        FLOPs as the static 1x1 conv. Likewise the offsets, point weights, gates and the routing depend on the
        input, and ``phi``'s 1x1 + depthwise pair would fold only into a larger dense 3x3 conv.
        """
        fold_batchnorm(self)
        super().fuse()


@register_head("csd")
def build_csd(detect: Detect, params) -> CSDDetect:
    """Build a :class:`CSDDetect` with the stock head's nc/reg_max/channels and the ``model`` params.

    Args:
        detect: The stock ``Detect`` built from the YOLOv8 YAML.
        params: ``ModelParams`` (``csd_points``, ``csd_offset_range``, ``bcdm_reduction``, ``dyn_kernels``,
            ``dyn_hidden``, ``csd_width``, ``csd_light_cls``, ``csd_side_stream``, ``bcdm_mode``, ``dyn_init``,
            ``csd_biased``, ``csd_side_detach``).

    Returns:
        The new head (strides copied; ``AlignRankModel`` recomputes them and calls ``bias_init``).
    """
    if getattr(detect, "one2one_cv2", None) is not None:  # AlignRankModel adds the one-to-one branch afterwards
        raise ValueError("csd head: the stock head is end-to-end (one-to-one); build from a YOLOv8 YAML")
    ch = [branch[0].conv.in_channels for branch in detect.cv2]
    head = CSDDetect(
        nc=detect.nc,
        reg_max=detect.reg_max,
        ch=ch,
        points=params.csd_points,
        offset_range=params.csd_offset_range,
        reduction=params.bcdm_reduction,
        kernels=params.dyn_kernels,
        hidden=params.dyn_hidden,
        width=params.csd_width or None,
        light_cls=params.csd_light_cls,
        side_stream=params.csd_side_stream,
        bcdm_mode=params.bcdm_mode,
        dyn_init=params.dyn_init,
        biased=params.csd_biased,
        side_detach=params.csd_side_detach,
    )
    stock, mine = type(detect.cv3[0][0]).__name__, type(head.cv3[0][0]).__name__
    if stock != mine:  # Detect.legacy is a class flag set by parse_model; both heads must read the same one
        raise RuntimeError(f"csd head: class branch starts with {mine}, the stock head's with {stock} (Detect.legacy changed)")
    head.stride = detect.stride.clone()
    return head
