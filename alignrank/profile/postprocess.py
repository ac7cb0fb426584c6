"""Post-processing timed by the end-to-end latency: NMS for one-to-many models, the conf filter of top-k for NMS-free ones.

The profile's ``latency_e2e`` (eager) and ``latency_ort_e2e`` (ONNX Runtime) time the forward pass AND the
step that turns its output into final detections:

* a one-to-many model outputs (B, 4 + nc, A) decoded boxes and scores: ultralytics' ``non_max_suppression``
  at ``profile.conf`` / ``profile.iou`` / ``profile.max_det``, multi-label (as its validator and
  :mod:`alignrank.eval.predict`);
* an NMS-free model (its one-to-one branch selected before fusing, :func:`inference_form`) outputs
  (B, k, 6) top-k detections from inside its graph (``Detect.postprocess``: top-k by score, no NMS);
  what remains is the score threshold.

Freshly initialised models score every box near YOLO's prior (about 1e-4 at 640 px), so almost nothing passes
``conf`` and NMS sees few boxes: on such models the one-to-many end-to-end figure is a lower bound of a
trained model's (``nms_input_boxes`` records how many boxes entered NMS).

Examples:
    >>> post = postprocess_fn(end2end=True, conf=0.5, iou=0.7, max_det=10)
    >>> y = torch.tensor([[[0., 0., 4., 4., 0.75, 1.], [0., 0., 2., 2., 0.25, 0.]]])
    >>> [d.tolist() for d in post(y)]
    [[[0.0, 0.0, 4.0, 4.0, 0.75, 1.0]]]
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

PostProcess = Callable[[torch.Tensor], list[torch.Tensor]]  # model output -> per image (N, 6) xyxy, score, class


def inference_form(model: nn.Module) -> nn.Module:
    """Select, in place, the branch a model is deployed with: the one-to-one branch of an NMS-free model
    (before ``fuse``, which then drops the one-to-many branch); other models are left as they are."""
    from alignrank.nn.e2e import has_one2one, head_of

    if has_one2one(model):
        head_of(model).end2end = True
    return model


def is_nms_free(model: nn.Module) -> bool:
    """Whether the model's inference output is already top-k final detections (one-to-one branch selected)."""
    from alignrank.nn.e2e import head_of

    return bool(getattr(head_of(model), "end2end", False))


def postprocess_fn(*, end2end: bool, conf: float, iou: float, max_det: int) -> PostProcess:
    """Post-processing of a model's output: NMS (one-to-many) or the score threshold of its top-k (NMS-free)."""
    if end2end:
        def topk(y: torch.Tensor) -> list[torch.Tensor]:
            return [d[d[:, 4] >= conf] for d in y]  # (k, 6) -> (N, 6): already top-k by score, no NMS

        return topk

    from ultralytics.utils.nms import non_max_suppression

    def nms(y: torch.Tensor) -> list[torch.Tensor]:
        return non_max_suppression(y, conf, iou, multi_label=True, max_det=max_det)  # per image (N, 6)

    return nms


def nms_input_boxes(y: torch.Tensor, conf: float) -> int:
    """Boxes of a one-to-many output (B, 4 + nc, A) whose best class score passes ``conf`` (NMS's input)."""
    return int((y[:, 4:].amax(1) > conf).sum())
