# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Tests for the causal ``edge`` network (temcoco_core.model.edge / .causal)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from temcoco_core.model import build_model
from temcoco_core.model.causal import (
    assign_state_keys,
    causal_band_mask,
    CausalTemporalAttention,
    ClipContext,
    COUNT_KEY,
    StepContext,
)
from temcoco_core.model.edge import (
    build_edge,
    EDGE_PRESETS,
    EdgeConfig,
    EdgeStateError,
    EdgeTCM,
    EdgeTemCoCo,
)


def _randomize_offsets(model: torch.nn.Module, std: float = 0.3) -> None:
    """Give the zero-initialised layers weights so that the whole network takes part.

    The layers are the offset heads and the RGB head on top of the input skip: with weights,
    alignment really deforms and the features reach the output.
    """
    gen = torch.Generator().manual_seed(1)
    if isinstance(model, EdgeTemCoCo):
        head = model.reconstruction.to_rgb
        with torch.no_grad():
            head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 0.1)
    for module in model.modules():
        if isinstance(module, EdgeTCM):
            with torch.no_grad():
                module.offset_head.weight.copy_(
                    torch.randn(module.offset_head.weight.shape, generator=gen) * std)
                module.offset_head.bias.copy_(
                    torch.randn(module.offset_head.bias.shape, generator=gen) * std)


@pytest.fixture(scope="module")
def model() -> EdgeTemCoCo:
    torch.manual_seed(0)
    net = build_edge().eval()
    _randomize_offsets(net)
    return net


def _clip(b: int, t: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    vis = torch.rand(b, t, 3, h, w, generator=gen)
    ir = torch.rand(b, t, 1, h, w, generator=gen).expand(b, t, 3, h, w).contiguous()
    return vis, ir


def _stream(net: EdgeTemCoCo, vis: torch.Tensor, ir: torch.Tensor,
            hint: bool = True) -> torch.Tensor:
    b, t, _, h, w = vis.shape
    state = net.init_state(b, h, w)
    outs = []
    for i in range(t):
        out, state = net.step(vis[:, i], ir[:, i], state, first=(i == 0) if hint else None)
        outs.append(out)
    return torch.stack(outs, dim=1)


# ------------------------------------------------------------------ construction and call
def test_presets_build_and_fuse() -> None:
    assert set(EDGE_PRESETS) == {"edge", "edge-framewise"}
    for name in ("edge", "edge-framewise"):
        net = build_model(name)
        assert isinstance(net, EdgeTemCoCo)
        assert not net.training
        vis, ir = _clip(1, 2, 32, 40)
        with torch.inference_mode():
            out = net(vis, ir)
        assert out.shape == (1, 2, 3, 32, 40)
        assert torch.isfinite(out).all()
    assert build_model("edge-framewise").config.framewise
    assert build_model("edge", history=3).config.history == 3


def test_unknown_or_invalid_options_raise() -> None:
    with pytest.raises(ValueError, match="unknown option"):
        build_edge(widths=(1, 2, 3))
    with pytest.raises(ValueError, match="deformable_groups"):
        build_edge(deformable_groups=5)
    with pytest.raises(ValueError, match="history"):
        EdgeConfig(history=0)


def test_framewise_and_edge_share_parameters() -> None:
    a = build_model("edge").state_dict()
    b = build_model("edge-framewise").state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}


# ------------------------------------------------------------------ clip == streaming steps
def test_forty_steps_equal_clip_forward(model: EdgeTemCoCo) -> None:
    vis, ir = _clip(1, 40, 48, 64)
    with torch.inference_mode():
        clip = model(vis, ir)
        stream = _stream(model, vis, ir)
    assert clip.abs().mean() > 1e-3  # a non-trivial output
    assert (clip - stream).abs().max().item() <= 1e-4


def test_steps_equal_clip_unpadded_size_batch_two(model: EdgeTemCoCo) -> None:
    vis, ir = _clip(2, 9, 37, 50, seed=3)  # not a multiple of the size multiple (32)
    with torch.inference_mode():
        clip = model(vis, ir)
        stream = _stream(model, vis, ir, hint=False)  # graph path: first from state["count"]
        hinted = _stream(model, vis, ir, hint=True)
    assert clip.shape == (2, 9, 3, 37, 50)
    assert (clip - stream).abs().max().item() <= 1e-4
    assert (stream - hinted).abs().max().item() <= 1e-6
    # the two streams of the batch are independent
    with torch.inference_mode():
        single = model(vis[1:], ir[1:])
    assert (single - clip[1:]).abs().max().item() <= 1e-4


def test_single_frame(model: EdgeTemCoCo) -> None:
    vis, ir = _clip(2, 1, 48, 64, seed=4)
    with torch.inference_mode():
        clip = model(vis, ir)
        stream = _stream(model, vis, ir)
    assert clip.shape == (2, 1, 3, 48, 64)
    assert (clip - stream).abs().max().item() <= 1e-4


def test_causality_and_sensitivity(model: EdgeTemCoCo) -> None:
    vis, ir = _clip(1, 8, 32, 32, seed=5)
    changed = vis.clone()
    changed[:, 5] = torch.rand_like(changed[:, 5])
    with torch.inference_mode():
        a = model(vis, ir)
        b = model(changed, ir)
    assert torch.equal(a[:, :5], b[:, :5])  # the past does not see the future
    assert (a[:, 5:] - b[:, 5:]).abs().amax(dim=(0, 2, 3, 4)).min() > 1e-5  # later frames do


def test_framewise_ignores_other_frames() -> None:
    net = build_model("edge-framewise")
    _randomize_offsets(net)
    vis, ir = _clip(1, 4, 32, 32, seed=6)
    with torch.inference_mode():
        clip = net(vis, ir)
        alone = net(vis[:, 2:3], ir[:, 2:3])
        stream = _stream(net, vis, ir)
    assert (clip[:, 2:3] - alone).abs().max().item() <= 1e-5
    assert (clip - stream).abs().max().item() <= 1e-5


# ------------------------------------------------------------------ state
def test_state_shapes_are_fixed_and_count_saturates(model: EdgeTemCoCo) -> None:
    vis, ir = _clip(1, 10, 32, 48, seed=7)
    state = model.init_state(1, 32, 48)
    shapes = {k: v.shape for k, v in state.items()}
    before = {k: v.clone() for k, v in state.items()}
    with torch.inference_mode():
        for i in range(10):
            _, state = model.step(vis[:, i], ir[:, i], state)
            assert {k: v.shape for k, v in state.items()} == shapes
    assert int(state[COUNT_KEY]) == model.config.history
    # the caller's state is not modified in place
    fresh = model.init_state(1, 32, 48)
    assert all(torch.equal(fresh[k], before[k]) for k in fresh)
    # temporal attention keeps exactly history-1 past keys/values
    key = "vsim.temporal"
    assert state[key].shape[3] == model.config.history - 1


@pytest.mark.parametrize("overrides", [{"history": 1}, {"temporal_kernel": 1},
                                       {"history": 2, "temporal_kernel": 2, "encoder_blocks": 0}])
def test_short_memory_configs_stream_exactly(overrides) -> None:
    net = build_edge(**overrides).eval()
    _randomize_offsets(net)
    state = net.init_state(1, 32, 32)
    assert all(v.numel() > 0 for v in state.values())
    vis, ir = _clip(1, 5, 32, 32, seed=10)
    with torch.inference_mode():
        assert (net(vis, ir) - _stream(net, vis, ir, hint=False)).abs().max().item() <= 1e-4


def test_state_mismatch_raises(model: EdgeTemCoCo) -> None:
    state = model.init_state(1, 32, 32)
    frame = torch.rand(1, 3, 64, 64)
    with pytest.raises(EdgeStateError, match="init_state"):
        model.step(frame, frame, state)
    with pytest.raises(EdgeStateError, match="missing"):
        model.step(frame[..., :32, :32], frame[..., :32, :32], {COUNT_KEY: state[COUNT_KEY]})


def test_bad_inputs_raise(model: EdgeTemCoCo) -> None:
    good = torch.rand(1, 2, 3, 32, 32)
    with pytest.raises(ValueError, match="differ"):
        model(good, torch.rand(1, 2, 3, 32, 48))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model(good[:, :, :1], good[:, :, :1])
    with pytest.raises(ValueError, match="float"):
        model((good * 255).to(torch.uint8), (good * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model.step(good, good, model.init_state(1, 32, 32))


# ATen ops the exported step may contain; each has a Torch-TensorRT converter and an ONNX
# mapping. Anything new fails the test until reviewed. abs, log, mean.dim and rsub.Scalar come
# with the motion gate (elementwise unary, reduce and elementwise converters; ONNX Abs, Log,
# ReduceMean, Sub).
STEP_OPS = {
    "<built-in function getitem>", "aten._assert_tensor_metadata.default", "aten.add.Tensor",
    "aten.abs.default", "aten.log.default", "aten.mean.dim", "aten.rsub.Scalar",
    "aten.alias.default", "aten.arange.default", "aten.arange.start_step",
    "aten.bitwise_not.default", "aten.cat.default", "aten.clamp.default", "aten.conv2d.default",
    "aten.div.Tensor", "aten.eq.Scalar", "aten.expand.default", "aten.gelu.default",
    "aten.grid_sampler.default", "aten.index.Tensor", "aten.layer_norm.default",
    "aten.le.Tensor", "aten.leaky_relu.default", "aten.linear.default",
    "aten.masked_fill.Scalar", "aten.matmul.default", "aten.mul.Tensor", "aten.pad.default",
    "aten.permute.default", "aten.repeat.default", "aten.reshape.default", "aten.select.int",
    "aten.sigmoid.default", "aten.slice.Tensor", "aten.softmax.int",
    "aten.split_with_sizes.default", "aten.squeeze.dim", "aten.stack.default",
    "aten.sub.Tensor", "aten.tanh.default", "aten.to.dtype", "aten.transpose.int",
    "aten.unbind.int", "aten.unsqueeze.default", "aten.upsample_bilinear2d.vec",
    "aten.upsample_nearest2d.vec", "aten.view.default", "aten.where.self", "aten.zeros.default",
}


class _FlatStep(torch.nn.Module):
    """``step`` with the state as positional tensors (as an ONNX/TensorRT graph sees it)."""

    def __init__(self, net: EdgeTemCoCo, names: list[str]) -> None:
        super().__init__()
        self.net = net
        self.names = names

    def forward(self, vis, ir, *state):  # type: ignore[no-untyped-def]
        out, new_state = self.net.step(vis, ir, dict(zip(self.names, state)))
        return (out, *[new_state[k] for k in self.names])


def test_step_exports_strictly_with_state_as_inputs_and_outputs(model: EdgeTemCoCo) -> None:
    state = model.init_state(1, 32, 32)
    names = sorted(state)
    frame = torch.rand(1, 3, 32, 32)
    flat = _FlatStep(model, names).eval()
    program = torch.export.export(flat, (frame, frame, *[state[k] for k in names]), strict=True)
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert ops <= STEP_OPS, f"ops to review for TensorRT/ONNX: {ops - STEP_OPS}"
    out, *new_state = program.module()(frame, frame, *[state[k] for k in names])
    ref, ref_state = model.step(frame, frame, state)
    assert (out - ref).abs().max().item() <= 1e-5
    assert all(torch.equal(a, ref_state[k]) for a, k in zip(new_state, names))


def test_step_onnx_matches_pytorch_over_steps(tmp_path, model: EdgeTemCoCo) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    pytest.importorskip("onnxscript", reason="onnxscript not installed")
    state = model.init_state(1, 32, 32)
    names = sorted(state)
    frames, ir = _clip(1, 4, 32, 32, seed=9)
    program = torch.onnx.export(
        _FlatStep(model, names).eval(), (frames[:, 0], ir[:, 0], *[state[k] for k in names]),
        dynamo=True, input_names=["visible", "infrared", *[f"in.{k}" for k in names]],
        output_names=["fused", *[f"out.{k}" for k in names]], verbose=False)
    path = tmp_path / "edge_step.onnx"
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_state = {k: v.numpy() for k, v in state.items()}
    with torch.inference_mode():
        for t in range(4):
            ref, state = model.step(frames[:, t], ir[:, t], state)
            outs = session.run(None, {"visible": frames[:, t].numpy(),
                                      "infrared": ir[:, t].numpy(),
                                      **{f"in.{k}": onnx_state[k] for k in names}})
            onnx_state = dict(zip(names, outs[1:]))
            assert abs(outs[0] - ref.numpy()).max() <= 1e-4


# ------------------------------------------------------------------ building blocks
def test_band_mask_bounds_history() -> None:
    mask = causal_band_mask(6, 3)
    assert mask[5].tolist() == [False, False, False, True, True, True]
    assert mask[0].tolist() == [True] + [False] * 5
    assert not mask.triu(1).any()


def test_temporal_attention_sees_only_its_history() -> None:
    attn = CausalTemporalAttention(8, heads=2, dim_head=4, history=3, scale=1).eval()
    assign_state_keys(attn)
    attn.state_key = "attn"
    x = torch.randn(1, 7, 8, 2, 2)  # (B, T, C, h, w)
    far = x.clone()
    far[:, 1] += 5.0  # frame 1 is outside the history of frames >= 4
    with torch.no_grad():
        a = attn(x.flatten(0, 1), ClipContext(1, 7)).view(1, 7, 8, 2, 2)
        b = attn(far.flatten(0, 1), ClipContext(1, 7)).view(1, 7, 8, 2, 2)
        assert torch.equal(a[:, 4:], b[:, 4:])
        assert not torch.equal(a[:, 3], b[:, 3])
        state = {"attn": torch.zeros(attn.state_shape(1, 2, 2))}
        for t in range(7):
            count = torch.tensor([min(t, 3)])
            ctx = StepContext(state=state, first=t == 0, count=count)
            out = attn(x[:, t], ctx)
            state = ctx.new_state
            assert (out - a[:, t]).abs().max() <= 1e-5


def test_offset_heads_start_at_zero_and_residuals_are_rescaled() -> None:
    tcm = EdgeTCM(8, 8, 4, deformable_groups=2, max_offset=10.0, kernel=3, scale=1,
                  upsample=True).eval()
    assign_state_keys(tcm)
    assert not tcm.offset_head.weight.any() and not tcm.offset_head.bias.any()
    x = torch.randn(2, 8, 4, 4)
    feats = torch.randn(2, 8, 8, 8)
    coarse = (torch.full((2, 36, 4, 4), 0.75), torch.full((2, 36, 4, 4), -1.5))
    with torch.no_grad():
        _, (o1, o2) = tcm(x, feats, feats, ClipContext(1, 2), coarse_offsets=coarse)
    assert o1.shape == (2, 36, 8, 8)
    assert torch.allclose(o1, torch.full_like(o1, 1.5))  # ×2 upsampled and ×2 in value
    assert torch.allclose(o2, torch.full_like(o2, -3.0))


def test_offsets_are_bounded() -> None:
    tcm = EdgeTCM(8, 8, 4, deformable_groups=2, max_offset=2.0, kernel=3, scale=1,
                  upsample=False).eval()
    assign_state_keys(tcm)
    with torch.no_grad():
        tcm.offset_head.bias.fill_(100.0)
        feats = torch.randn(1, 8, 6, 6)
        _, (o1, _) = tcm(feats, feats, feats, ClipContext(1, 1))
    assert o1.abs().max() <= 2.0 + 1e-6


# ------------------------------------------------------------------ training outputs
def test_distillation_heads_only_when_asked() -> None:
    plain = build_edge()
    assert not any("head" in k and "offset" not in k for k in plain.state_dict())
    with pytest.raises(RuntimeError, match="distill"):
        plain.forward_train(*_clip(1, 1, 32, 32))

    net = build_model("edge", distill=True).train()
    _randomize_offsets(net, std=0.05)
    vis, ir = _clip(2, 3, 40, 56, seed=8)
    fused, feats = net.forward_train(vis, ir)
    hp, wp = net.padded_size(40, 56)
    assert fused.shape == (2, 3, 3, 40, 56)
    for m in ("visible", "infrared"):
        assert feats["semantic"][m].shape == (6, 1024, hp // 16, wp // 16)
        assert feats["visual"][m].shape == (2, 256, 3, hp // 4, wp // 4)
    loss = fused.square().mean() + sum(
        f.square().mean() for group in feats.values() for f in group.values())
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
    assert net.tcm_half.offset_head.weight.grad.abs().sum() > 0


def test_gflops_per_frame_at_640x480_is_a_fraction_of_official() -> None:
    net = build_edge().to("meta").eval()  # counts FLOPs without computing
    state = net.init_state(1, 480, 640)
    frame = torch.empty(1, 3, 480, 640, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        net.step(frame, frame, state)
    gflops = counter.get_total_flops() / 1e9
    assert 5.0 < gflops <= 90.0  # official: 909 GFLOPs/frame; target <= 1/10


def test_untrained_network_starts_as_average_fusion() -> None:
    """The network starts from average fusion.

    The input skip is initialised to the average of visible RGB and infrared grey and the RGB head
    to zero, so training starts from average fusion (see EdgeTemCoCo.__init__).
    """
    net = build_edge().eval()
    vis, ir = _clip(1, 3, 40, 24, seed=11)
    with torch.inference_mode():
        out = net(vis, ir)
    torch.testing.assert_close(out, (vis + ir) / 2, atol=1e-6, rtol=0)


def test_visible_input_skip_starts_as_the_visible_video() -> None:
    """``input_skip="visible"``: the untrained network passes the visible frames through."""
    net = build_edge(input_skip="visible").eval()
    vis, ir = _clip(1, 3, 40, 24, seed=12)
    with torch.inference_mode():
        out = net(vis, ir)
        out_other_ir = net(vis, ir.flip(-1))
    torch.testing.assert_close(out, vis, atol=1e-6, rtol=0)
    torch.testing.assert_close(out_other_ir, vis, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="input_skip must be one of"):
        EdgeConfig(input_skip="infrared")


def test_motion_gate_clip_and_step_agree_and_gate_fades_moved_pixels():
    from temcoco_core.model.causal import MotionGate
    from temcoco_core.model.presets import build_model
    torch.manual_seed(0)
    net = build_model("edge", motion_gate=(0.1, 0.25))
    vis, ir = torch.rand(1, 4, 3, 64, 64), torch.rand(1, 4, 3, 64, 64)
    with torch.inference_mode():
        clip = net(vis, ir)
        state, frames = net.init_state(1, 64, 64), []
        for t in range(4):
            out, state = net.step(vis[:, t], ir[:, t], state)
            frames.append(out)
    assert torch.allclose(clip, torch.stack(frames, 1), atol=1e-5)
    gate = MotionGate(0.1, 0.25)
    a = torch.ones(1, 4, 2, 2)
    assert float(gate(a, a, 1).min()) == 1.0               # no change: full context
    assert float(gate(a, -a, 1).max()) == 0.0              # changed: none
    with pytest.raises(ValueError, match="low < high"):
        MotionGate(0.3, 0.2)


def test_motion_gate_parameter_form():
    from temcoco_core.model.edge import motion_gate_parameter

    assert motion_gate_parameter([0.0, 0.0]) is None and motion_gate_parameter([]) is None
    assert motion_gate_parameter([0.1, 0.25]) == (0.1, 0.25)
    with pytest.raises(ValueError, match="motion_gate needs"):
        motion_gate_parameter([0.1, 0.2, 0.3])
