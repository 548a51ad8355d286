# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Classical baselines, method resolution and the clip schedule of model methods."""

import cv2
import numpy as np
import pytest
import torch

from temcoco_core.baselines import (
    BASELINES,
    framewise_method,
    fuse_average,
    fuse_laplacian,
    fuse_max,
    method_label,
    MethodError,
    ModelMethod,
    resolve_method,
)
from temcoco_core.io.datasets import FusionSequence


def _seq(t=5, h=24, w=40, seed=0):
    rng = np.random.default_rng(seed)
    vis = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    ir = rng.integers(0, 256, (t, h, w), dtype=np.uint8)
    return FusionSequence("s", vis, ir)


def test_average_hand_case():
    vis = np.array([[[10, 20, 255]]], np.uint8)
    ir = np.array([[101]], np.uint8)
    assert fuse_average(vis, ir).tolist() == [[[56, 61, 178]]]  # (v + i) / 2, half up


def test_max_takes_brighter_luma_and_keeps_visible_chroma():
    grey_vis = np.full((4, 4, 3), 100, np.uint8)
    ir = np.full((4, 4), 180, np.uint8)
    ir[:, :2] = 30
    out = fuse_max(grey_vis, ir)
    assert np.all(out[:, 2:] == 180) and np.all(np.abs(out[:, :2].astype(int) - 100) <= 1)
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 200
    out = fuse_max(red, np.zeros((4, 4), np.uint8))
    assert np.abs(out.astype(int) - red).max() <= 1  # IR darker: visible unchanged
    muted = np.zeros((4, 4, 3), np.uint8)
    muted[...] = (120, 80, 60)
    ycc_in = cv2.cvtColor(muted, cv2.COLOR_RGB2YCrCb).astype(int)
    ycc_out = cv2.cvtColor(fuse_max(muted, np.full((4, 4), 120, np.uint8)),
                           cv2.COLOR_RGB2YCrCb).astype(int)
    assert ycc_out[..., 0].min() >= 119  # luma raised to the IR level ...
    assert np.abs(ycc_out[..., 1:] - ycc_in[..., 1:]).max() <= 2  # ... chroma kept


def test_laplacian_reconstructs_identical_inputs_and_picks_details():
    rng = np.random.default_rng(1)
    grey = cv2.GaussianBlur(rng.integers(0, 256, (37, 53)).astype(np.uint8), (5, 5), 0)
    vis = np.repeat(grey[..., None], 3, axis=2)
    out = fuse_laplacian(vis, grey)  # odd sizes; equal inputs -> perfect reconstruction
    assert np.abs(out.astype(int) - vis).max() <= 1
    flat = np.full((32, 32, 3), 120, np.uint8)
    edge = np.full((32, 32), 120, np.uint8)
    edge[:, 16:] = 200
    fused = fuse_laplacian(flat, edge)
    assert fused[:, 20:, 0].mean() - fused[:, :12, 0].mean() > 30  # IR edge carried over
    with pytest.raises(ValueError, match="infrared must be"):
        fuse_laplacian(flat, edge[:-1])


def test_input_reference_rows_pass_one_input_through():
    seq = _seq()
    assert np.array_equal(resolve_method("visible")(seq), seq.visible)
    ir = resolve_method("infrared")(seq)
    assert ir.shape == seq.visible.shape
    assert all(np.array_equal(ir[..., c], seq.infrared) for c in range(3))


def test_resolve_baselines_and_errors():
    seq = _seq()
    for name in BASELINES:
        out = resolve_method(name)(seq)
        assert out.shape == seq.visible.shape and out.dtype == np.uint8
    assert np.array_equal(resolve_method("framewise:average")(seq), resolve_method("average")(seq))
    with pytest.raises(MethodError, match="unknown method 'nope'"):
        resolve_method("nope")
    with pytest.raises(MethodError, match="empty"):
        resolve_method(" ")
    assert method_label("edge:/a/b/ck.pth") == "edge:ck.pth"
    assert method_label("runs/x/best.safetensors") == "best.safetensors"
    assert method_label("laplacian") == "laplacian"


class EchoVisible(torch.nn.Module):
    """Returns the visible clip; records the clip lengths it saw."""

    def __init__(self):
        super().__init__()
        self.lengths = []

    def forward(self, vis, ir):
        assert vis.shape == ir.shape and vis.dim() == 5 and vis.shape[2] == 3
        self.lengths.append(vis.shape[1])
        return vis + 0.0


def test_model_method_schedule_and_output():
    mm = ModelMethod(EchoVisible(), clip_len=30, overlap=5)
    assert mm.clips(20) == [(0, 20)]
    assert mm.clips(60) == [(0, 30), (25, 55), (30, 60)]
    assert mm.clips(55) == [(0, 30), (25, 55)]
    seq = _seq(t=7)
    model = EchoVisible()
    out = ModelMethod(model, clip_len=4, overlap=1)(seq)
    assert np.array_equal(out, seq.visible) and model.lengths == [4, 4]
    fw = framewise_method(ModelMethod(model, clip_len=4))
    model.lengths.clear()
    assert np.array_equal(fw(seq), seq.visible) and model.lengths == [1] * 7

    class Bad(torch.nn.Module):
        def forward(self, vis, ir):
            return vis[:, :1]

    with pytest.raises(MethodError, match="model returned"):
        ModelMethod(Bad(), clip_len=3)(seq)
    with pytest.raises(MethodError, match="overlap"):
        ModelMethod(model, clip_len=3, overlap=-1)
    assert ModelMethod(model, clip_len=3, overlap=5).overlap == 2
    with pytest.raises(MethodError, match="baselines are frame-wise"):
        framewise_method(resolve_method("average"))


def test_model_method_missing_checkpoint_is_a_clear_error(tmp_path):
    pytest.importorskip("temcoco_core.model")
    with pytest.raises(MethodError, match="edge"):
        resolve_method(f"edge:{tmp_path / 'missing.pth'}")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MethodError, match="junk.pth"):
        resolve_method(str(junk))


def _agc_seq(t: int = 12) -> FusionSequence:
    """A mono8 thermal camera whose AGC darkens the frame by ~25 % over frames 1-2."""
    yy, xx = np.mgrid[:24, :40]
    scene = 70.0 + 15.0 * np.sin(xx / 5.0) + 10.0 * np.cos(yy / 4.0)
    gains = [1.35, 1.17] + [1.0] * (t - 2)
    ir = np.stack([np.clip(g * scene, 0, 255) for g in gains]).astype(np.uint8)
    vis = np.full((t, 24, 40, 3), 90, np.uint8)
    return FusionSequence("agc", vis, ir, meta={"fps": 30.0})


class _Passthrough(torch.nn.Module):
    """A 'network' whose output is its infrared input: shows what the model was fed."""

    def forward(self, visible, infrared):
        return infrared


def test_model_methods_get_the_nodes_thermal_normalisation():
    """Eval feeds model methods the infrared the node's network gets (thermal_policy)."""
    from temcoco_core.baselines import EngineMethod, InfraredInput
    from temcoco_core.frames.thermal import ThermalNormalizer
    from temcoco_core.node_config import NodeConfig

    seq = _agc_seq()
    settings = NodeConfig()  # thermal_policy auto: camera scale for mono8, AGC undone
    norm = ThermalNormalizer(settings.thermal_config())
    expected = np.stack([norm(seq.infrared[t], t * 33_333_333).copy()
                         for t in range(seq.num_frames)])
    # overlapping clips ask for frames again: normalised once, in order
    inp = InfraredInput(seq, settings.thermal_config())
    got = np.concatenate([inp.frames(0, 5), inp.frames(3, 8)[2:], inp.frames(6, 12)[2:]])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    with pytest.raises(ValueError, match="requested after"):
        inp.frames(0, 1)
    raw = InfraredInput(seq, None).frames(0, seq.num_frames)
    np.testing.assert_allclose(raw, seq.infrared / np.float32(255.0), atol=1e-6)
    # the AGC transient: > 20 grey levels in the raw input, < 3 after normalisation
    assert raw[0].mean() - raw[2].mean() > 20 / 255
    assert abs(expected[0].mean() - expected[2].mean()) < 3 / 255

    clip = ModelMethod(_Passthrough(), clip_len=5, overlap=2, thermal=settings.thermal_config())
    for method in (clip, framewise_method(clip)):
        fused = method(seq)
        np.testing.assert_allclose(fused[..., 0] / 255.0, expected, atol=0.6 / 255)
    plain = ModelMethod(_Passthrough(), clip_len=5, overlap=2)(seq)
    np.testing.assert_array_equal(plain[..., 0], seq.infrared)

    # the node's engine (the model-free average engine here) gets the same input
    engine = EngineMethod(NodeConfig(fusion_engine="average"))
    fused = engine(seq)
    want = np.round((90 / 255.0 + expected) / 2 * 255.0)
    assert np.abs(fused[..., 0].astype(float) - want).max() <= 1
    # resolve_method hands the settings' policy to every model method it builds
    for name in ("framewise:edge", "edge-framewise"):
        assert resolve_method(name, settings=NodeConfig(thermal_policy="percentile")).thermal \
            == NodeConfig(thermal_policy="percentile").thermal_config()
    assert resolve_method("edge", settings=NodeConfig()).thermal == settings.thermal_config()
