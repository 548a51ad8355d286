# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Synthetic degradations (temcoco_core.train.degrade): seeds, released ranges, camera effects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from temcoco_core.train.degrade import (
    DegradeConfig,
    Degrader,
    gaussian_blur,
    gaussian_kernel_1d,
    minmax_per_frame,
)


def _clip(seed: int = 0, t: int = 3, h: int = 24, w: int = 32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(t, 3, h, w, generator=g), torch.rand(t, 1, h, w, generator=g)


def test_same_seed_same_output_different_seed_differs():
    vis, ir = _clip()
    d = Degrader()
    a = d(vis, ir, np.random.default_rng(7))
    b = d(vis, ir, np.random.default_rng(7))
    c = d(vis, ir, np.random.default_rng(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    assert a[0].shape == vis.shape and a[1].shape == ir.shape and a[2].shape == ir.shape
    for x in a[:3]:
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_released_parameter_ranges():
    d = Degrader()
    sig, noise, stripe = [], [], []
    for seed in range(300):
        p = d.sample(np.random.default_rng(seed), 4, 8, 8)
        sig.append(p.blur_sigma)
        noise.append(round(p.noise_sigma * 255))
        stripe.append(round(p.stripe_sigma * 255))
    assert 0.5 <= min(sig) and max(sig) <= 3.5 and max(sig) - min(sig) > 2.5
    assert set(noise) == set(range(9, 16))        # randint 9..15 inclusive
    assert set(stripe) == set(range(5, 17))       # randint 5..16 inclusive
    assert DegradeConfig().blur_kernel == 12


def test_kernel_12_taps_basicsr_grid():
    taps, left = gaussian_kernel_1d(12, 2.0)
    assert taps.shape == (12,) and left == 5
    assert float(taps.sum()) == pytest.approx(1.0, abs=1e-6)
    # offsets -5..6: tap at offset 0 is the largest, offsets ±k equal
    assert int(taps.argmax()) == 5
    for k in range(1, 6):
        assert float(taps[5 - k]) == pytest.approx(float(taps[5 + k]), rel=1e-6)
    odd, left_odd = gaussian_kernel_1d(13, 1.0)
    assert left_odd == 6 and torch.allclose(odd, odd.flip(0))


def test_blur_keeps_constants_and_smooths():
    const = torch.full((2, 3, 20, 20), 0.4)
    assert torch.allclose(gaussian_blur(const, 2.0, 12), const, atol=1e-6)
    x = torch.zeros(1, 1, 21, 21)
    x[..., 10, 10] = 1.0
    y = gaussian_blur(x, 1.5, 12)
    assert float(y.sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(y.max()) < 0.2


def test_blur_fixed_per_clip_stripes_fixed_per_clip():
    frame_v = torch.rand(1, 3, 24, 24)
    frame_i = torch.full((1, 1, 24, 24), 0.5)
    frame_i[..., 0, 0] = 0.0                     # keep min-max non-degenerate
    frame_i[..., 0, 1] = 1.0
    vis, ir = frame_v.repeat(4, 1, 1, 1), frame_i.repeat(4, 1, 1, 1)
    d = Degrader(DegradeConfig(infrared_noise=(0, 0), infrared_stripes=(10, 10)))
    vis_lq, ir_lq, ir_ref, p = d(vis, ir, np.random.default_rng(3))
    for t in range(1, 4):                        # same kernel, same stripes on every frame
        assert torch.equal(vis_lq[t], vis_lq[0])
        assert torch.equal(ir_lq[t], ir_lq[0])
    assert not torch.equal(vis_lq[0], vis[0])
    # column stripes: rows 1.. of a column all carry the same offset
    diff = ir_lq[0, 0, 1:] - ir_ref[0, 0, 1:]
    assert torch.allclose(diff, diff[:1].expand_as(diff), atol=1e-6)
    assert float(diff[0].std()) > 0.01
    assert p.stripes.shape == (24,)


def test_noise_changes_every_frame():
    ir = torch.full((3, 1, 16, 16), 0.5)
    ir[:, :, 0, 0] = 0.0
    ir[:, :, 0, 1] = 1.0
    d = Degrader(DegradeConfig(infrared_stripes=(0, 0)))
    _, ir_lq, ir_ref, p = d(torch.rand(3, 3, 16, 16), ir, np.random.default_rng(0))
    assert not torch.equal(ir_lq[0], ir_lq[1])
    resid = (ir_lq - ir_ref)[:, :, 2:, 2:]
    assert float(resid.std()) == pytest.approx(p.noise_sigma, rel=0.25)


def test_minmax_per_frame():
    x = torch.stack([torch.linspace(0.2, 0.6, 16).view(1, 4, 4),
                     torch.linspace(0.1, 0.3, 16).view(1, 4, 4)])
    y = minmax_per_frame(x)
    for t in range(2):
        assert float(y[t].min()) == pytest.approx(0.0, abs=1e-6)
        assert float(y[t].max()) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(minmax_per_frame(torch.full((1, 1, 2, 2), 0.3)), torch.zeros(1, 1, 2, 2))


def test_agc_flicker_and_defective_pixels():
    t, h, w = 6, 32, 32
    ir = torch.linspace(0, 1, h * w).view(1, 1, h, w).repeat(t, 1, 1, 1)
    cfg = DegradeConfig(infrared_noise=(0, 0), infrared_stripes=(0, 0), agc_gain=0.2,
                        agc_offset=0.05, dead_pixels=0.02, hot_pixels=0.01)
    _, ir_lq, ir_ref, p = Degrader(cfg)(torch.rand(t, 3, h, w), ir, np.random.default_rng(4))
    assert p.gains.shape == (t,) and np.all(np.abs(p.gains - 1) <= 0.2)
    assert np.all(np.abs(p.offsets) <= 0.05) and p.gains.std() > 0
    means = ir_lq.mean(dim=(1, 2, 3))
    assert float(means.std()) > 0.005            # brightness flickers frame to frame
    assert torch.equal(ir_ref[0], ir_ref[1])     # the target does not
    dead, hot = torch.from_numpy(p.dead), torch.from_numpy(p.hot)
    assert 0.005 < float(dead.float().mean()) < 0.04
    assert 0.001 < float(hot.float().mean()) < 0.03
    assert not bool((dead & hot).any())
    for k in range(t):                           # same positions on every frame
        assert bool((ir_lq[k, 0][dead] == 0).all()) and bool((ir_lq[k, 0][hot] == 1).all())


def test_defaults_leave_camera_effects_off():
    p = Degrader().sample(np.random.default_rng(0), 3, 8, 8)
    assert np.all(p.gains == 1) and np.all(p.offsets == 0) and p.dead is None and p.hot is None


@pytest.mark.parametrize("kwargs", [
    {"blur_sigma": (3.0, 1.0)}, {"infrared_noise": (5,)}, {"agc_gain": 1.5},
    {"dead_pixels": 0.6, "hot_pixels": 0.6}, {"blur_kernel": 0},
])
def test_bad_config_rejected(kwargs):
    with pytest.raises(ValueError):
        DegradeConfig(**kwargs)


def test_bad_shapes_rejected():
    with pytest.raises(ValueError, match="infrared"):
        Degrader()(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="differ"):
        Degrader()(torch.rand(2, 3, 8, 8), torch.rand(3, 1, 8, 8), np.random.default_rng(0))


def test_minmax_with_full_frame_range():
    crop = torch.tensor([[0.2, 0.3], [0.3, 0.4]]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)
    lo, hi = torch.tensor([0.0, 0.2]), torch.tensor([0.8, 0.4])
    y = minmax_per_frame(crop, value_range=(lo, hi))
    assert torch.allclose(y[0].flatten(), torch.tensor([0.25, 0.375, 0.375, 0.5]))
    assert torch.allclose(y[1].flatten(), torch.tensor([0.0, 0.5, 0.5, 1.0]))
    # the crop's own range stretches a dull crop to [0, 1]; the frame's range keeps it dull
    assert float(minmax_per_frame(crop)[0].max()) == 1.0
    with pytest.raises(ValueError, match="per frame"):
        minmax_per_frame(crop, value_range=(lo[:1], hi[:1]))


def test_minmax_scope_frame_uses_given_range_crop_ignores_it():
    rng_vals = (torch.zeros(3), torch.ones(3) * 2.0)     # a frame range twice the crop's
    vis = torch.rand(3, 3, 8, 8)
    ir = torch.rand(3, 1, 8, 8) * 0.5 + 0.25
    quiet = {"visible_blur": False, "infrared_noise": (0, 0), "infrared_stripes": (0, 0)}
    _, _, ref_f, _ = Degrader(DegradeConfig(**quiet))(
        vis, ir, np.random.default_rng(0), ir_range=rng_vals)
    assert torch.allclose(ref_f, ir / 2.0)
    _, _, ref_c, _ = Degrader(DegradeConfig(infrared_minmax_scope="crop", **quiet))(
        vis, ir, np.random.default_rng(0), ir_range=rng_vals)
    assert torch.allclose(ref_c, minmax_per_frame(ir))
    with pytest.raises(ValueError, match="infrared_minmax_scope"):
        DegradeConfig(infrared_minmax_scope="tile")


def test_infrared_gamma_lifts_the_input_only_and_is_off_by_default():
    vis, ir = _clip(4)
    quiet = {"visible_blur": False, "infrared_minmax": False, "infrared_noise": (0, 0),
             "infrared_stripes": (0, 0)}
    lq, ir_lq, ref, p = Degrader(DegradeConfig(infrared_gamma=(0.5, 0.5), **quiet))(
        vis, ir, np.random.default_rng(0))
    assert p.gamma == 0.5
    assert torch.allclose(ir_lq, ir.sqrt(), atol=1e-6)  # dark values lifted
    assert torch.equal(ref, ir)                          # the target stays clean
    # default: no draw, no change, the earlier random sequence untouched
    _, ir0, _, p0 = Degrader(DegradeConfig(**quiet))(vis, ir, np.random.default_rng(0))
    assert p0.gamma == 1.0 and torch.equal(ir0, ir)
    a = Degrader(DegradeConfig()).sample(np.random.default_rng(3), 3, 8, 8)
    b = Degrader(DegradeConfig(infrared_gamma=(0.6, 1.0))).sample(np.random.default_rng(3),
                                                                  3, 8, 8)
    assert a.noise_sigma == b.noise_sigma and np.array_equal(a.stripes, b.stripes)
    assert 0.6 <= b.gamma <= 1.0
    with pytest.raises(ValueError, match="infrared_gamma"):
        DegradeConfig(infrared_gamma=(0.0, 1.0))
