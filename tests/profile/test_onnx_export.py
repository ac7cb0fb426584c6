"""ONNX export of the fused CSD model: GridSample in the graph, ONNX Runtime matches PyTorch."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from alignrank.nn.model import build_model
from alignrank.profile.onnx_export import export_onnx, onnx_max_abs_diff


def _trained_like(model):
    """Non-zero side stream (as after training) so the exported graph's CSD ops matter."""
    g = torch.Generator().manual_seed(0)
    head = model.model[-1]
    with torch.no_grad():
        for e in head.expand:
            e.weight.copy_(torch.randn(e.weight.shape, generator=g) * 0.05)
        for p in head.csd.pred:
            p[-1].weight.copy_(torch.randn(p[-1].weight.shape, generator=g) * 0.1)
    return model


@pytest.mark.parametrize("imgsz", [(96, 128)])
def test_fused_csd_onnx_matches_pytorch(tmp_path, imgsz):
    m = _trained_like(build_model("csd", scale="n", nc=3)).eval().fuse(verbose=False)
    path = export_onnx(m, tmp_path / "csd.onnx", imgsz=imgsz)
    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    assert "GridSample" in ops and "Conv" in ops
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == [1, 4 + 3, 12 * 16 + 6 * 8 + 3 * 4]
    assert onnx_max_abs_diff(m, path, imgsz=imgsz) <= 1e-3
    assert not list(tmp_path.glob("*.tmp*"))  # atomic write left no temp file


def test_export_leaves_model_untouched(tmp_path):
    m = build_model("csd", scale="n", nc=3).eval()
    export_onnx(m, tmp_path / "m.onnx", imgsz=64)
    assert m.model[-1].export is False and any(isinstance(x, nn.BatchNorm2d) for x in m.modules())


def test_old_opset_rejected(tmp_path):
    with pytest.raises(ValueError, match="GridSample"):
        export_onnx(build_model("csd", scale="n", nc=3), tmp_path / "m.onnx", imgsz=64, opset=13)
