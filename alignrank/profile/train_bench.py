"""Training steps for the throughput and memory measurements: a synthetic batch and one optimizer step.

Examples:
    >>> step = make_train_step("baseline", scale="n", nc=3, batch=synthetic_batch(2, 64, 3))
    >>> step()  # forward, the variant's loss, backward, SGD step
"""

from __future__ import annotations

from typing import Callable

import torch

from alignrank.config.schema import LossParams


class LossUnavailable(KeyError):
    """The variant's loss is not registered in this checkout (its plugin is absent)."""


def synthetic_batch(batch: int, imgsz: int, nc: int, seed: int = 0, per_image: int = 4) -> dict:
    """A detection batch in ultralytics' collated format (``img``, ``batch_idx``, ``cls``, normalised xywh ``bboxes``).

    Examples:
        >>> b = synthetic_batch(2, 32, 5)
        >>> b["img"].shape, b["bboxes"].shape, b["batch_idx"].tolist()
        (torch.Size([2, 3, 32, 32]), torch.Size([8, 4]), [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    """
    g = torch.Generator().manual_seed(seed)
    n = batch * per_image
    xy = torch.rand(n, 2, generator=g) * 0.6 + 0.2
    wh = torch.rand(n, 2, generator=g) * 0.3 + 0.05
    return {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=g),
        "batch_idx": torch.arange(batch).repeat_interleave(per_image).float(),
        "cls": torch.randint(0, nc, (n, 1), generator=g).float(),
        "bboxes": torch.cat((xy, wh), 1),
    }


def make_train_step(
    variant: str, *, scale: str, nc: int, batch: dict, model_params=None, loss_params: LossParams | None = None
) -> Callable[[], None]:
    """Build ``variant`` in train mode with its loss and return a closure doing one SGD step on ``batch``.

    Raises:
        LossUnavailable: The variant's loss plugin is not registered.
    """
    from ultralytics.cfg import get_cfg
    from ultralytics.utils import DEFAULT_CFG

    from alignrank.nn.model import build_model

    model = build_model(variant, scale=scale, nc=nc, model_params=model_params, loss_params=loss_params).train()
    lp = model.loss_params
    model.args = get_cfg(DEFAULT_CFG, {"box": lp.box, "cls": lp.cls, "dfl": lp.dfl})
    try:
        model.criterion = model.init_criterion()
    except KeyError as e:
        raise LossUnavailable(e.args[0]) from None
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step() -> None:
        loss, _ = model.loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()

    step.model = model  # for inspection
    return step
