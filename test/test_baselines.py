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
