# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Tests for the fusion engines (temcoco_core.engine.streaming)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from temcoco_core.engine.streaming import (
    ClipBuffer,
    count_flops,
    EngineConfig,
    FrameError,
    has_step,
    make_streaming_engine,
    streaming_cost,
    StreamingFuser,
)
from temcoco_core.frames.preprocess import to_model_tensor
from temcoco_core.model.edge import build_edge, EdgeTCM


class ClipMean(nn.Module):
    """Non-causal toy clip network: every frame gets the clip's temporal mean added."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))
        self.calls = 0

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        x = self.scale * (visible + infrared)
        return x + x.mean(dim=1, keepdim=True)


@pytest.fixture(scope="module")
def edge() -> nn.Module:
    torch.manual_seed(0)
    net = build_edge().eval()
    gen = torch.Generator().manual_seed(1)
    for module in net.modules():  # non-zero offsets so alignment is exercised
        if isinstance(module, EdgeTCM):
            with torch.no_grad():
                module.offset_head.weight.copy_(
                    torch.randn(module.offset_head.weight.shape, generator=gen) * 0.3)
    with torch.no_grad():  # the RGB head is zero-initialised: give the features a way out
        head = net.reconstruction.to_rgb
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 0.1)
    return net


def _frames(t: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    vis = torch.rand(t, 3, h, w, generator=gen)
    ir = torch.rand(t, 1, h, w, generator=gen).expand(t, 3, h, w).contiguous()
    return vis, ir


# ------------------------------------------------------------------ StreamingFuser
def test_streaming_equals_clip_over_forty_frames(edge: nn.Module) -> None:
    vis, ir = _frames(40, 48, 64)
    engine = StreamingFuser(edge)
    outs = [engine.push(vis[t], ir[t]) for t in range(40)]
    assert all(o.shape == (3, 48, 64) for o in outs)
    with torch.inference_mode():
        clip = edge(vis[None], ir[None])[0]
    assert (torch.stack(outs) - clip).abs().max().item() <= 1e-4
    assert engine.frames_since_reset == 40 and engine.pending == 0 and engine.drain() == []
    assert engine.latency_frames == 0


def test_cost_per_frame_does_not_grow(edge: nn.Module) -> None:
    vis, ir = _frames(12, 32, 32, seed=1)
    engine = StreamingFuser(edge)
    engine.push(vis[0], ir[0])
    shapes = {k: v.shape for k, v in engine.state.items()}
    flops_early = count_flops(edge.step, vis[:1], ir[:1], engine.state)
    for t in range(1, 12):
        engine.push(vis[t], ir[t])
    assert {k: v.shape for k, v in engine.state.items()} == shapes
    assert count_flops(edge.step, vis[:1], ir[:1], engine.state) == flops_early


def test_reset_starts_a_new_stream(edge: nn.Module) -> None:
    vis, ir = _frames(6, 32, 32, seed=2)
    engine = StreamingFuser(edge)
    for t in range(3):
        engine.push(vis[t], ir[t])
    engine.reset()
    assert engine.frames_since_reset == 0 and engine.resets == 1
    after = [engine.push(vis[t], ir[t]) for t in range(3, 6)]
    fresh = StreamingFuser(edge)
    ref = [fresh.push(vis[t], ir[t]) for t in range(3, 6)]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(after, ref))


def test_numpy_frames_use_the_shared_preprocessing(edge: nn.Module) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (32, 40), dtype=np.uint8)
    out_np = StreamingFuser(edge).push(rgb, grey)
    vis, ir = to_model_tensor(rgb, grey)
    out_t = StreamingFuser(edge).push(vis, ir)
    assert out_np.shape == (3, 32, 40)
    assert torch.equal(out_np, out_t)


@pytest.mark.parametrize(("visible", "infrared", "match"), [
    (torch.full((3, 16, 16), float("nan")), torch.rand(3, 16, 16), "NaN"),
    (torch.rand(3, 16, 16), torch.full((3, 16, 16), float("inf")), "NaN or Inf"),
    (torch.rand(1, 16, 16), torch.rand(1, 16, 16), r"\(3, H, W\)"),
    (torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), r"\(3, H, W\)"),
    (torch.randint(0, 255, (3, 16, 16), dtype=torch.uint8),
     torch.randint(0, 255, (3, 16, 16), dtype=torch.uint8), "float"),
    (torch.rand(3, 16, 16) * 3, torch.rand(3, 16, 16), r"\[0, 1\]"),
    (torch.rand(3, 16, 16), torch.rand(3, 16, 24), "differ in size"),
    (np.zeros((16, 16, 3), np.uint8), torch.rand(3, 16, 16), "both"),
    (np.zeros((16, 16, 3), np.uint8), np.zeros((16, 24, 3), np.uint8), "grey"),
    (np.full((16, 16, 3), np.nan, np.float32), np.zeros((16, 16), np.float32), "NaN"),
])
def test_bad_frames_raise_and_leave_the_stream_intact(edge: nn.Module, visible, infrared,
                                                      match) -> None:
    vis, ir = _frames(3, 16, 16, seed=3)
    engine = StreamingFuser(edge)
    reference = StreamingFuser(edge)
    engine.push(vis[0], ir[0])
    reference.push(vis[0], ir[0])
    with pytest.raises(FrameError, match=match):
        engine.push(visible, infrared)
    assert isinstance(FrameError("x"), ValueError)
    assert engine.frames_since_reset == 1
    for t in (1, 2):
        assert torch.equal(engine.push(vis[t], ir[t]), reference.push(vis[t], ir[t]))


def test_size_change_resets_and_is_counted(edge: nn.Module) -> None:
    small, small_ir = _frames(2, 16, 16, seed=4)
    big, big_ir = _frames(2, 24, 40, seed=5)
    engine = StreamingFuser(edge)
    engine.push(small[0], small_ir[0])
    engine.push(small[1], small_ir[1])
    out = engine.push(big[0], big_ir[0])
    assert out.shape == (3, 24, 40)
    assert engine.size_resets == 1 and engine.frames_since_reset == 1
    assert engine.frame_size == (24, 40)
    assert torch.allclose(out, StreamingFuser(edge).push(big[0], big_ir[0]), atol=1e-6)


def test_streaming_needs_a_step_api() -> None:
    assert not has_step(ClipMean())
    with pytest.raises(ValueError, match="step"):
        StreamingFuser(ClipMean())


def test_custom_step_function_is_used(edge: nn.Module) -> None:
    calls = []

    def step_fn(vis, ir, state):  # type: ignore[no-untyped-def]
        calls.append(vis.shape)
        return edge.step(vis, ir, state)

    vis, ir = _frames(2, 16, 16, seed=6)
    engine = StreamingFuser(edge, step_fn=step_fn)
    engine.push(vis[0], ir[0])
    engine.push(vis[1], ir[1])
    assert calls == [(1, 3, 16, 16)] * 2


# ------------------------------------------------------------------ ClipBuffer
def test_clip_mode_emits_one_output_per_push_in_order() -> None:
    model = ClipMean()
    vis, ir = _frames(10, 8, 8, seed=7)
    engine = ClipBuffer(model, length=4, mode="clip")
    assert engine.latency_frames == 3
    outs = [engine.push(vis[t], ir[t]) for t in range(10)]
    assert outs[:3] == [None, None, None]
    assert all(o is not None for o in outs[3:])
    assert engine.pending == 3 and model.calls == 2
    rest = engine.drain()
    assert len(rest) == 3 and engine.pending == 0 and model.calls == 3
    got = torch.stack([o for o in outs if o is not None] + rest)
    with torch.no_grad():
        expected = torch.cat([model(vis[None, s:s + 4], ir[None, s:s + 4])[0]
                              for s in (0, 4, 8)])
    assert torch.allclose(got, expected)


def test_clip_mode_overlap_carries_context() -> None:
    model = ClipMean()
    vis, ir = _frames(8, 8, 8, seed=8)
    engine = ClipBuffer(model, length=4, mode="clip", overlap=2)
    outs = [engine.push(vis[t], ir[t]) for t in range(8)] + engine.drain()
    got = torch.stack([o for o in outs if o is not None])
    with torch.no_grad():
        second = model(vis[None, 2:8], ir[None, 2:8])[0][2:]
    assert got.shape[0] == 8
    assert torch.allclose(got[4:], second)


def test_window_mode_recomputes_the_last_frames() -> None:
    model = ClipMean()
    vis, ir = _frames(6, 8, 8, seed=9)
    engine = ClipBuffer(model, length=3, mode="window")
    outs = [engine.push(vis[t], ir[t]) for t in range(6)]
    with torch.no_grad():
        for t in range(6):
            s = max(0, t - 2)
            expected = model(vis[None, s:t + 1], ir[None, s:t + 1])[0, -1]
            assert torch.allclose(outs[t], expected)
    assert engine.pending == 0 and engine.drain() == []


def test_clip_buffer_reset_and_size_change_drop_owed_frames() -> None:
    engine = ClipBuffer(ClipMean(), length=4, mode="clip")
    vis, ir = _frames(3, 8, 8, seed=10)
    for t in range(3):
        engine.push(vis[t], ir[t])
    other, other_ir = _frames(1, 8, 12, seed=11)
    assert engine.push(other[0], other_ir[0]) is None
    assert engine.size_resets == 1 and engine.dropped_frames == 3 and engine.pending == 1
    engine.reset()
    assert engine.dropped_frames == 4 and engine.pending == 0


def test_clip_buffer_bad_frame_keeps_buffer() -> None:
    engine = ClipBuffer(ClipMean(), length=2, mode="clip")
    vis, ir = _frames(2, 8, 8, seed=12)
    engine.push(vis[0], ir[0])
    with pytest.raises(FrameError):
        engine.push(torch.full_like(vis[1], float("nan")), ir[1])
    assert engine.pending == 1
    assert engine.push(vis[1], ir[1]) is not None


def test_clip_buffer_runs_the_official_style_model_on_edge_too(edge: nn.Module) -> None:
    vis, ir = _frames(4, 16, 16, seed=13)
    engine = ClipBuffer(edge, length=4, mode="window")
    out = [engine.push(vis[t], ir[t]) for t in range(4)][-1]
    with torch.inference_mode():
        ref = edge(vis[None], ir[None])[0, -1]
    assert torch.allclose(out, ref, atol=1e-5)


# ------------------------------------------------------------------ factory and cost
def test_make_engine_picks_by_model_and_config(edge: nn.Module) -> None:
    assert isinstance(make_streaming_engine(edge), StreamingFuser)
    clip = make_streaming_engine(ClipMean())
    assert isinstance(clip, ClipBuffer) and clip.mode == "clip" and clip.length == 8
    window = make_streaming_engine(ClipMean(), EngineConfig(mode="window", length=5))
    assert isinstance(window, ClipBuffer) and window.mode == "window" and window.length == 5
    assert isinstance(make_streaming_engine(edge, mode="clip", length=3), ClipBuffer)
    with pytest.raises(ValueError, match="step"):
        make_streaming_engine(ClipMean(), mode="stream")
    with pytest.raises(ValueError, match="unknown engine option"):
        make_streaming_engine(edge, lenght=3)
    with pytest.raises(ValueError, match="mode"):
        EngineConfig(mode="fast")
    with pytest.raises(ValueError, match="overlap"):
        EngineConfig(length=4, overlap=4)


def test_streaming_cost_ratio_meets_target(edge: nn.Module) -> None:
    cost = streaming_cost(edge, height=64, width=64, length=8)
    assert cost.step_flops > 0 and cost.window_flops > 7 * cost.step_flops
    assert cost.ratio <= 1.25 / 8
    assert cost.meets_target and cost.target == pytest.approx(1.25 / 8)
    with pytest.raises(ValueError, match="step"):
        streaming_cost(ClipMean(), 8, 8)
