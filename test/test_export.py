# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Compilability of the official network without TensorRT.

Torch.export (strict, so any graph break fails) and ONNX export whose onnxruntime output matches
PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from temcoco_core.model import build_model

# Every ATen op the exported graph may contain: each has a Torch-TensorRT dynamo converter
# (conv2d/3d, grid_sampler 2-D, matmul + softmax on 4-D tensors, layer_norm ...). A torchvision
# op (deform_conv2d has no converter) or anything new fails the test until reviewed.
TENSORRT_CONVERTIBLE = {
    "aten._assert_tensor_metadata.default", "aten.add.Tensor", "aten.alias.default",
    "aten.arange.default", "aten.cat.default", "aten.conv2d.default", "aten.conv3d.default",
    "aten.conv_transpose2d.input", "aten.div.Tensor", "aten.dropout.default",
    "aten.expand.default", "aten.flatten.using_ints", "aten.gelu.default",
    "aten.grid_sampler.default", "aten.index.Tensor", "aten.layer_norm.default",
    "aten.leaky_relu.default", "aten.lift_fresh_copy.default", "aten.linear.default",
    "aten.matmul.default", "aten.mul.Tensor", "aten.pad.default", "aten.permute.default",
    "aten.reshape.default", "aten.select.int", "aten.softmax.int", "aten.stack.default",
    "aten.sub.Tensor", "aten.to.dtype", "aten.transpose.int", "aten.unbind.int",
    "aten.unsqueeze.default", "aten.upsample_nearest2d.vec", "aten.view.default",
    "aten.clone.default", "aten.contiguous.default", "aten.slice.Tensor",
    "<built-in function getitem>",
}


@pytest.fixture(scope="module")
def model_and_inputs():
    torch.manual_seed(0)
    model = build_model("official")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    visible, infrared = torch.rand(1, 4, 3, 64, 64), torch.rand(1, 4, 3, 64, 64)
    return model, visible, infrared


def test_torch_export_strict_has_no_graph_break(model_and_inputs):
    model, visible, infrared = model_and_inputs
    program = torch.export.export(model, (visible, infrared), strict=True)
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not {op for op in ops if "torchvision" in op}
    assert ops <= TENSORRT_CONVERTIBLE, f"ops to review for TensorRT: {ops - TENSORRT_CONVERTIBLE}"
    with torch.no_grad():
        torch.testing.assert_close(program.module()(visible, infrared), model(visible, infrared))


def test_onnx_export_matches_pytorch(tmp_path, model_and_inputs):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (extra 'onnx')")
    pytest.importorskip("onnxscript", reason="onnxscript not installed (extra 'onnx')")
    model, visible, infrared = model_and_inputs
    path = tmp_path / "official.onnx"
    program = torch.onnx.export(model, (visible, infrared), dynamo=True,
                                input_names=["visible", "infrared"], output_names=["fused"])
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (fused,) = session.run(None, {"visible": visible.numpy(), "infrared": infrared.numpy()})
    with torch.no_grad():
        reference = model(visible, infrared).numpy()
    assert fused.shape == reference.shape == (1, 4, 3, 64, 64)
    assert np.abs(fused - reference).max() <= 1e-4
