"""ONNX export of the fused CSD model: a dynamic batch axis, ONNX Runtime matches PyTorch at batch 1 and 4."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from alignrank.nn.model import build_model
from alignrank.profile.onnx_export import export_onnx, onnx_max_abs_diff, ort_session


def _trained_like(model):
    """Non-zero side stream and distinct base kernels (as after training) so the exported CSD ops matter."""
    g = torch.Generator().manual_seed(0)
    head = model.model[-1]
    with torch.no_grad():
        for e in head.expand:
            e.weight.copy_(torch.randn(e.weight.shape, generator=g) * 0.05)
        for p in head.csd.pred:
            p[-1].weight.copy_(torch.randn(p[-1].weight.shape, generator=g) * 0.1)
        for branch in (*head.cv2, *head.cv3):
            branch[-1].weight.add_(torch.randn(branch[-1].weight.shape, generator=g) * 0.05)
    return model


@pytest.fixture(scope="module")
def csd_onnx(tmp_path_factory):
    m = _trained_like(build_model("csd", scale="n", nc=3)).eval().fuse(verbose=False)
    path = export_onnx(m, tmp_path_factory.mktemp("onnx") / "csd.onnx", imgsz=(96, 128))
    return m, path


def test_graph_has_a_dynamic_batch_and_no_graph_valued_conv(csd_onnx):
    m, path = csd_onnx
    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    assert {"Gather", "MatMul", "Conv"} <= ops
    for t in (graph.input[0], graph.output[0]):
        dims = t.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch"
    weights = {i.name for i in graph.initializer}
    for n in graph.node:  # every Conv's weight is a constant (the per-image kernels run as MatMul)
        if n.op_type == "Conv":
            assert n.input[1] in weights, n.name
    assert not list(path.parent.glob("*.tmp*"))  # atomic write left no temp file


@pytest.mark.parametrize("batch", [1, 4])
def test_onnx_runtime_matches_pytorch(csd_onnx, batch):
    m, path = csd_onnx
    out = ort_session(path).run(None, {"images": torch.rand(batch, 3, 96, 128).numpy()})[0]
    assert out.shape == (batch, 4 + 3, 12 * 16 + 6 * 8 + 3 * 4)
    assert onnx_max_abs_diff(m, path, imgsz=(96, 128), batch=batch) <= 1e-4


def test_export_leaves_model_untouched(tmp_path):
    m = build_model("csd", scale="n", nc=3).eval()
    export_onnx(m, tmp_path / "m.onnx", imgsz=64)
    assert m.model[-1].export is False and any(isinstance(x, nn.BatchNorm2d) for x in m.modules())


def test_old_opset_rejected(tmp_path):
    with pytest.raises(ValueError, match="opset >= 16"):
        export_onnx(build_model("csd", scale="n", nc=3), tmp_path / "m.onnx", imgsz=64, opset=13)


def test_baseline_exports_with_dynamic_batch(tmp_path):
    m = build_model("baseline", scale="n", nc=3).eval()
    path = export_onnx(m, tmp_path / "b.onnx", imgsz=64)
    assert onnx_max_abs_diff(m, path, imgsz=64, batch=2) <= 1e-4
