"""ONNX export of a fused detection model (our own ``torch.onnx.export`` path) and ONNX Runtime sessions.

The TorchScript-based exporter (``dynamo=False``) is used, with a dynamic batch axis (``batch``) on the
input and the output: the CSD head's sampler exports as ``Gather`` + ``MatMul`` and its dynamic convs as
batched ``MatMul`` (per-image kernels are graph values, so no ``Conv`` carries them). The head is put in
export mode, so the graph returns the decoded ``(B, 4 + nc, anchors)`` tensor; an NMS-free model (one-to-one
branch) is exported in its deployed form, the one-to-one branch selected before fusing, and its graph returns
the final ``(B, k, 6)`` detections (``x1, y1, x2, y2, score, class``: top-k by score, no NMS).

Examples:
    >>> import tempfile
    >>> class Tiny(torch.nn.Module):  # any model whose ``model[-1]`` is the head, like the detection models
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1))
    ...     def forward(self, x):
    ...         return self.model(x)
    >>> m = Tiny()  # for a variant: build_model("csd", scale="n", nc=3)
    >>> path = export_onnx(m, tempfile.mkdtemp() + "/tiny.onnx", imgsz=16)
    >>> onnx_max_abs_diff(m, path, imgsz=16) < 1e-5
    True
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import numpy as np
import torch

OPSET = 17


def _size(imgsz: int | tuple[int, int]) -> tuple[int, int]:
    return (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)


def export_model(model: torch.nn.Module) -> torch.nn.Module:
    """A fused, eval-mode float copy of ``model`` whose head returns only the decoded predictions (an NMS-free
    model's: its one-to-one branch's top-k detections)."""
    from alignrank.profile.postprocess import inference_form

    m = inference_form(copy.deepcopy(model).float().eval())
    if hasattr(m, "is_fused") and not m.is_fused():
        m.fuse(verbose=False)
    head = m.model[-1]
    head.export, head.format, head.dynamic = True, "onnx", False
    return m


def export_onnx(
    model: torch.nn.Module, path: str | Path, imgsz: int | tuple[int, int] = 640, opset: int = OPSET,
    dynamic_batch: bool = True,
) -> Path:
    """Export ``model`` (fused copy, traced at batch 1) to ``path`` atomically; returns the path.

    Args:
        model: Ultralytics-style detection model (``model.model[-1]`` is the head).
        path: Output ``.onnx`` file.
        imgsz: Input side or (h, w) (fixed in the graph).
        opset: ONNX opset (>= 16).
        dynamic_batch: Give the input and the output a dynamic batch axis named ``batch``.
    """
    if opset < 16:
        raise ValueError(f"export_onnx: opset {opset} is older than 16 (GridSample); use opset >= 16")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    m = export_model(model)
    x = torch.zeros(1, 3, *_size(imgsz))
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: shapes and strides are constants of this graph
        torch.onnx.export(
            m, (x,), str(tmp), opset_version=opset, dynamo=False, input_names=["images"], output_names=["output0"],
            do_constant_folding=True,
            dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}} if dynamic_batch else None,
        )
    os.replace(tmp, path)
    return path


def ort_session(path: str | Path, threads: int = 1):
    """ONNX Runtime CPU session with ``threads`` intra-op threads (1 inter-op thread)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def onnx_max_abs_diff(
    model: torch.nn.Module, path: str | Path, imgsz: int | tuple[int, int] = 640, seed: int = 0, batch: int = 1
) -> float:
    """Max abs difference between ONNX Runtime's and PyTorch's outputs on a random batch of ``batch`` images.

    The decoded ``(B, 4 + nc, anchors)`` output of a model with NMS is compared position by position. The
    ``(B, k, 6)`` top-k detections of an NMS-free model are compared as sets of rows per image
    (:func:`detections_distance`): two near-tied scores may come out of ``TopK`` in either order.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, *_size(imgsz), generator=g)
    with torch.no_grad():
        ref = export_model(model)(x)
    out = ort_session(path).run(None, {"images": x.numpy()})[0]
    if out.shape != tuple(ref.shape):
        raise ValueError(f"{path}: ONNX Runtime output shape {out.shape} != PyTorch's {tuple(ref.shape)}")
    if getattr(model.model[-1], "one2one_cv2", None) is not None:  # NMS-free: top-k rows, order not defined
        return max(detections_distance(a, b) for a, b in zip(out, ref.numpy()))
    return float(np.abs(out - ref.numpy()).max())


def detections_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Order-free distance of two top-k detection lists ``(k, 6)``, rows ``x1, y1, x2, y2, score, class``: the
    largest gap from a row of one list to its nearest row of the other (max abs difference over the row's
    values), both ways. A row scoring at or below either list's k-th score may be in one list only (a near-tie
    at the cut), so only the rows above both cuts must find a partner.

    Examples:
        >>> a = np.array([[0, 0, 4, 4, 0.9, 1], [1, 1, 5, 5, 0.8, 2], [2, 2, 6, 6, 0.1, 0]], dtype=np.float32)
        >>> detections_distance(a, a[[1, 0, 2]])  # the same detections in another order
        0.0
        >>> round(detections_distance(a, a + [0, 0, 0, 0.5, 0, 0]), 3)
        0.5
        >>> b = a.copy(); b[2] = [9, 9, 9, 9, 0.1, 3]  # another detection tied at the cut
        >>> detections_distance(a, b)
        0.0
    """
    cut = max(a[-1, 4], b[-1, 4])  # lists sorted by score: the higher of the two k-th scores
    d = np.abs(a[:, None, :] - b[None, :, :]).max(-1)  # (k, k): row-to-row max abs difference
    gaps = [d.min(1)[a[:, 4] > cut], d.min(0)[b[:, 4] > cut]]  # each kept row's gap to its nearest partner
    return float(max((g.max() for g in gaps if g.size), default=0.0))
