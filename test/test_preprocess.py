# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Frames ↔ model tensors (temcoco_core.frames.preprocess) and thermal registration."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from temcoco_core.frames.preprocess import (
    ArrayPool,
    compute_geometry,
    FrameError,
    FrameSizeMismatchError,
    PreprocessConfig,
    to_model_tensor,
    to_output_frame,
)
from temcoco_core.frames.registration import (
    parse_homography,
    RegistrationConfig,
    ThermalRegistration,
)

RNG = np.random.default_rng(0)


def _pair(h: int = 24, w: int = 40) -> tuple[np.ndarray, np.ndarray]:
    return (RNG.integers(0, 256, (h, w, 3), dtype=np.uint8),
            RNG.integers(0, 256, (h, w), dtype=np.uint8))


def test_uint8_pair_to_tensors_and_back_is_exact() -> None:
    vis, ir = _pair()
    v, i = to_model_tensor(vis, ir)
    assert v.shape == i.shape == (3, 24, 40)
    assert v.dtype == i.dtype == torch.float32 and v.is_contiguous() and i.is_contiguous()
    assert 0.0 <= float(v.min()) and float(v.max()) <= 1.0
    torch.testing.assert_close(i[0], i[2])
    torch.testing.assert_close(i[1], torch.from_numpy(ir / np.float32(255.0)))
    np.testing.assert_array_equal(to_output_frame(v), vis)
    np.testing.assert_array_equal(to_output_frame(v, encoding="bgr8"), vis[:, :, ::-1])
    np.testing.assert_array_equal(to_output_frame(v, encoding="mono8"),
                                  cv2.cvtColor(vis, cv2.COLOR_RGB2GRAY))


def test_uint16_and_float_inputs() -> None:
    vis16 = np.full((8, 8, 3), 65535, np.uint16)
    vis16[0, 0] = 0
    ir = np.full((8, 8, 1), 0.25, np.float64)
    v, i = to_model_tensor(vis16, ir)
    assert float(v[:, 1, 1].min()) == 1.0 and float(v[:, 0, 0].max()) == 0.0
    assert torch.allclose(i, torch.full_like(i, 0.25))
    v, _ = to_model_tensor(np.full((8, 8, 3), 1.7, np.float32), ir)  # clipped
    assert float(v.max()) == 1.0


def test_read_only_inputs_are_fine() -> None:
    vis, ir = _pair()
    vis.setflags(write=False)
    ir.setflags(write=False)
    v, _ = to_model_tensor(vis, ir)
    v.mul_(0.5)  # the tensor owns its memory


def test_resize_to_model_size_and_back() -> None:
    vis, ir = _pair(48, 64)
    cfg = PreprocessConfig(model_size=(32, 24))
    v, i = to_model_tensor(vis, ir, cfg)
    assert v.shape == i.shape == (3, 24, 32)
    out = to_output_frame(v, (64, 48))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8


def test_pad_mode_geometry_and_crop() -> None:
    vis, ir = _pair(30, 50)
    cfg = PreprocessConfig(resize_mode="pad", pad_multiple=16)
    geom = compute_geometry((50, 30), cfg)
    assert geom.content_size == (50, 30) and geom.tensor_size == (64, 32) and geom.padded
    v, _ = to_model_tensor(vis, ir, cfg)
    assert v.shape == (3, 32, 64)
    torch.testing.assert_close(v[:, 31, :50], v[:, 29, :50])  # edge replication
    np.testing.assert_array_equal(to_output_frame(v, None, "rgb8", geom), vis)
    # letterbox into a model size with a different aspect ratio
    cfg = PreprocessConfig(model_size=(64, 64), resize_mode="pad")
    geom = compute_geometry((50, 30), cfg)
    assert geom.content_size == (64, 38) and geom.tensor_size == (64, 64)
    v, _ = to_model_tensor(vis, ir, cfg)
    assert v.shape == (3, 64, 64)
    assert to_output_frame(v, (50, 30), "rgb8", geom).shape == (30, 50, 3)


def test_different_sizes_fuse_by_default_and_name_both_sizes_when_disabled() -> None:
    """Issue 11 case 4: 640x512-like thermal with 1280x720-like RGB fuses by default."""
    vis, _ = _pair(24, 40)
    ir = RNG.integers(0, 256, (12, 20), dtype=np.uint8)
    v, i = to_model_tensor(vis, ir)
    assert i.shape == v.shape == (3, 24, 40)
    with pytest.raises(FrameSizeMismatchError, match=r"20x12.*40x24") as err:
        to_model_tensor(vis, ir, PreprocessConfig(resize_infrared_to_visible=False))
    assert err.value.kind == "size_mismatch"


@pytest.mark.parametrize("vis,ir,match", [
    (np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4), np.uint8), "RGB"),
    (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), "RGB"),
    (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8), "grey"),
    (np.zeros((4, 4, 3), np.int32), np.zeros((4, 4), np.uint8), "int32"),
    (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint16), "thermal gain"),
    (np.full((4, 4, 3), np.nan, np.float32), np.zeros((4, 4), np.uint8), "NaN"),
    (np.zeros((4, 4, 3), np.uint8), np.full((4, 4), np.inf, np.float32), "NaN or Inf"),
    (np.zeros((0, 4, 3), np.uint8), np.zeros((0, 4), np.uint8), "empty"),
])
def test_bad_frames_raise_frame_error(vis: np.ndarray, ir: np.ndarray, match: str) -> None:
    with pytest.raises(FrameError, match=match):
        to_model_tensor(vis, ir)


def test_output_frame_clamps_and_validates() -> None:
    t = torch.tensor([-1.0, 0.5, 2.0]).view(3, 1, 1).expand(3, 2, 2).contiguous()
    out = to_output_frame(t[None].double())
    assert out.shape == (2, 2, 3) and out[0, 0].tolist() == [0, 128, 255]
    with pytest.raises(FrameError, match="shape"):
        to_output_frame(torch.zeros(4, 2, 2))
    with pytest.raises(FrameError, match="yuv"):
        to_output_frame(torch.zeros(3, 2, 2), encoding="yuv")


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="resize_mode"):
        PreprocessConfig(resize_mode="crop")
    with pytest.raises(ValueError, match="model_size"):
        PreprocessConfig(model_size=(0, 10))
    with pytest.raises(ValueError, match="pad_multiple"):
        PreprocessConfig(pad_multiple=0)


# ------------------------------------------------------------------------------ registration
def _smooth(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (30000 + 2000 * np.sin(xx / 6.0) * np.cos(yy / 5.0)).astype(np.uint16)


def test_registration_matches_warp_perspective() -> None:
    hmat = [[1.5, 0.02, 10.0], [0.01, 1.5, 5.0], [0.0, 0.0, 1.0]]
    th = _smooth(40, 60)
    reg = ThermalRegistration(RegistrationConfig(homography=hmat))
    out = reg(th, (100, 70))
    ref = cv2.warpPerspective(th, np.array(hmat), (100, 70))
    assert out.shape == (70, 100) and out.dtype == np.uint16
    inner = (slice(10, 60), slice(15, 90))
    assert np.abs(out[inner].astype(float) - ref[inner]).max() < 20
    assert out[0, 0] == 0  # outside the thermal field of view (constant border)


def test_registration_flat_list_identity_and_disabled() -> None:
    th = _smooth(20, 30)
    reg = ThermalRegistration(RegistrationConfig(homography=[1, 0, 0, 0, 1, 0, 0, 0, 1]))
    np.testing.assert_array_equal(reg(th, (30, 20)), th)
    shifted = ThermalRegistration(RegistrationConfig(homography=[2, 0, 4, 0, 2, 6, 0, 0, 2]))
    out = shifted(th.astype(np.float32), (30, 20))  # scaled H: translation by (2, 3)
    np.testing.assert_allclose(out[3:, 2:], th[:-3, :-2], atol=1)
    off = ThermalRegistration()
    assert not off.enabled and off(th, (99, 99)) is th


def test_homography_validation() -> None:
    assert parse_homography([[2, 0, 0], [0, 2, 0], [0, 0, 2]])[2, 2] == 1.0
    with pytest.raises(ValueError, match="9 values"):
        parse_homography([1, 0, 0, 1])
    with pytest.raises(ValueError, match="singular"):
        parse_homography([1, 2, 3, 2, 4, 6, 0, 0, 1])
    with pytest.raises(ValueError, match="NaN"):
        RegistrationConfig(homography=[1, 0, 0, 0, 1, 0, 0, 0, float("nan")])
    with pytest.raises(ValueError, match="border"):
        RegistrationConfig(border="wrap")


def test_array_pool_reuses_only_unreferenced_buffers() -> None:
    pool = ArrayPool(per_key=2)
    a = pool.empty((4, 5), np.float32)
    b = pool.empty((4, 5), np.float32)
    assert a is not b  # a is still referenced here
    a_id = id(a)
    del a
    c = pool.empty((4, 5), np.float32)
    assert id(c) == a_id
    held = torch.from_numpy(pool.empty((4, 5), np.float32))  # a tensor keeps its buffer
    view = held[1:]
    del held
    d = pool.empty((4, 5), np.float32)
    assert d.ctypes.data != view.data_ptr() - 5 * 4
    assert pool.empty((4, 5), np.uint8).dtype == np.uint8


def test_pooled_tensors_survive_while_held() -> None:
    pool = ArrayPool()
    vis, ir = _pair()
    kept = [to_model_tensor(vis, ir, pool=pool)[0] for _ in range(3)]
    for t in kept:
        np.testing.assert_array_equal(to_output_frame(t, pool=pool), vis)
    vis2, ir2 = _pair()
    to_model_tensor(vis2, ir2, pool=pool)
    np.testing.assert_array_equal(to_output_frame(kept[0]), vis)


def test_registration_at_model_size_matches_full_size_then_resize() -> None:
    """Registering straight to the model size equals registering and then scaling.

    Registering straight to the model size equals registering at the RGB size and then scaling down
    (the pipeline's shortcut), for a thermal camera of another size.
    """
    hmat = [[2.9, 0.05, 20.0], [-0.04, 2.9, 12.0], [0.0, 0.0, 1.0]]  # 160x128 → 640x480
    yy, xx = np.mgrid[:128, :160]
    th = (128 + 100 * np.sin(xx / 9.0) * np.cos(yy / 7.0)).astype(np.float32)
    reg = ThermalRegistration(RegistrationConfig(homography=hmat))
    full = reg(th, (640, 480))
    small = reg(th, (640, 480), out_size=(320, 240))
    ref = cv2.resize(full, (320, 240), interpolation=cv2.INTER_AREA)
    inner = (slice(12, 185), slice(15, 235))  # inside the thermal field of view
    assert small.shape == (240, 320)
    assert np.abs(small[inner] - ref[inner]).max() < 3.0
    valid = reg.valid_mask((160, 128), (640, 480), (320, 240))
    assert valid.shape == (240, 320) and not valid[0, 0] and valid[120, 160]
    # the tensor path takes it as the model's content, padded not resized
    cfg = PreprocessConfig(model_size=(320, 256), resize_mode="pad")
    vis = np.zeros((480, 640, 3), np.uint8)
    ir = np.clip(small / 255.0, 0, 1).astype(np.float32)
    _, ir_t = to_model_tensor(vis, ir, cfg, infrared_at_content_size=True)
    assert tuple(ir_t.shape) == (3, 256, 320)
    np.testing.assert_allclose(ir_t[0, :240].numpy(), ir, atol=1e-6)
    with pytest.raises(FrameError, match="content size"):
        to_model_tensor(vis, ir[:100], cfg, infrared_at_content_size=True)


def test_pipeline_normalises_thermal_on_its_own_pixels_and_registers_at_model_size() -> None:
    """A 40x30 16-bit thermal camera seeing the middle of a 160x120 RGB frame.

    The gain uses only thermal pixels (the black area outside the thermal view must not stretch the
    range), and the warp goes straight to the 80x60 model size.
    """
    from temcoco_core.pipeline import AverageEngine, FrameInput, FusionPipeline, PipelineConfig

    yy, xx = np.mgrid[:30, :40]
    thermal = (27000 + 100 * xx + 50 * yy).astype(np.uint16)  # raw 27000..32350
    hmat = [2.0, 0.0, 40.5, 0.0, 2.0, 30.5, 0.0, 0.0, 1.0]  # into x 40..119, y 30..89
    cfg = PipelineConfig(preprocess=PreprocessConfig(model_size=(80, 60)),
                         registration=RegistrationConfig(homography=hmat),
                         output_size="model", metrics=False)
    pipe = FusionPipeline(AverageEngine(), cfg)
    (out,) = pipe.fuse_frames(FrameInput(0, np.zeros((120, 160, 3), np.uint8), thermal))
    ir = out.infrared_unit
    assert ir.shape == (60, 80)
    inside = ir[17:43, 22:58]
    assert inside.min() < 0.1 and inside.max() > 0.9  # full range over the thermal pixels
    assert ir[:10].max() == 0.0  # outside the thermal view: black
    assert pipe.summary()["alignment"]["alignment_readings"] == 1
    names = [s.name for s in pipe.statuses()]
    assert "temcoco_fusion: registration" in names
