# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Training losses on hand-checkable cases (temcoco_core.train.losses)."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from temcoco_core.train.losses import (
    brightness_temporal_loss,
    color_loss,
    DistillationError,
    DistillationLoss,
    FusionLoss,
    gaussian_window,
    gradient_max_loss,
    intensity_max_loss,
    loss_weights,
    LossConfig,
    motion_target_loss,
    rgb_to_ycbcr,
    salience_loss,
    sobel_gradients,
    ssim,
    ssim_loss,
    temporal_consistency_loss,
    unsharp_mask,
    warm_excess,
    warm_target,
    warm_target_loss,
)

OFF = 128.0 / 255.0


def _rgb(r: float, g: float, b: float) -> torch.Tensor:
    return torch.tensor([r, g, b]).view(3, 1, 1)


@pytest.mark.parametrize(
    ("rgb", "expected"),
    [
        ((1.0, 0.0, 0.0), (0.299, -0.169 + OFF, 1.0)),            # Cr 0.5 + 0.502 clamps to 1
        ((0.0, 0.0, 1.0), (0.114, 1.0, -0.081 + OFF)),            # Cb clamps to 1
        ((0.5, 0.5, 0.5), (0.5, OFF, OFF)),                      # grey: no chroma
        ((1.0, 1.0, 1.0), (1.0, OFF, OFF)),
        ((0.2, 0.4, 0.6), (0.299 * .2 + 0.587 * .4 + 0.114 * .6,
                           -0.169 * .2 - 0.331 * .4 + 0.5 * .6 + OFF,
                           0.5 * .2 - 0.419 * .4 - 0.081 * .6 + OFF)),
    ],
)
def test_ycbcr_released_formulas(rgb, expected):
    y, cb, cr = rgb_to_ycbcr(_rgb(*rgb))
    assert y.shape == (1, 1, 1)
    for got, want in zip((y, cb, cr), expected):
        assert float(got) == pytest.approx(want, abs=1e-6)


def test_ycbcr_hand_numbers():
    # (0.2, 0.4, 0.6): Y = 0.0598 + 0.2348 + 0.0684 = 0.3630
    #                  Cb = -0.0338 - 0.1324 + 0.3 + 0.50196 = 0.63576
    #                  Cr = 0.1 - 0.1676 - 0.0486 + 0.50196 = 0.38576
    y, cb, cr = rgb_to_ycbcr(_rgb(0.2, 0.4, 0.6))
    assert float(y) == pytest.approx(0.3630, abs=1e-6)
    assert float(cb) == pytest.approx(0.635760784, abs=1e-6)
    assert float(cr) == pytest.approx(0.385760784, abs=1e-6)


def test_ssim_identical_is_one_and_loss_zero():
    torch.manual_seed(0)
    a = torch.rand(2, 1, 32, 32)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-5)
    assert float(ssim_loss(a, a, 13)) == pytest.approx(0.0, abs=1e-5)
    assert float(ssim_loss(a, 1 - a, 13)) > 0.5


def test_gaussian_window():
    w = gaussian_window(13, 1.5)
    assert w.shape == (13, 13)
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    assert int(w.argmax()) == 6 * 13 + 6
    assert torch.allclose(w, w.T) and torch.allclose(w, w.flip(0))


def test_max_intensity_target():
    y_vis = torch.tensor([0.2, 0.8, 0.0, 0.5]).view(1, 1, 2, 2)
    y_ir = torch.tensor([0.5, 0.1, 0.3, 0.5]).view(1, 1, 2, 2)
    target = torch.tensor([0.5, 0.8, 0.3, 0.5]).view(1, 1, 2, 2)
    assert float(intensity_max_loss(target, y_vis, y_ir)) == pytest.approx(0.0)
    zeros = torch.zeros_like(target)
    expected = (0.5 + 0.8 + 0.3 + 0.5) / 4
    assert float(intensity_max_loss(zeros, y_vis, y_ir)) == pytest.approx(expected)


def test_sobel_on_step_edge():
    img = torch.zeros(1, 1, 5, 8)
    img[..., 4:] = 1.0                          # vertical edge between columns 3 and 4
    gx, gy = sobel_gradients(img)
    expect = torch.zeros(5, 8)
    expect[:, 3] = 4.0                          # (1 + 2 + 1) * 1 on both sides of the edge
    expect[:, 4] = 4.0
    assert torch.equal(gx[0, 0], expect)
    assert torch.equal(gy, torch.zeros_like(gy))  # replicate padding: no edge along y
    # transpose: horizontal edge -> only gy
    gx2, gy2 = sobel_gradients(img.transpose(-1, -2))
    assert torch.equal(gy2[0, 0], expect.T) and float(gx2.abs().sum()) == 0.0


def test_gradient_max_loss_zero_when_fused_has_the_max_gradients():
    img = torch.zeros(1, 1, 8, 8)
    img[..., 4:] = 1.0
    flat = torch.full_like(img, 0.3)
    assert float(gradient_max_loss(img, img, flat)) == 0.0
    # a flat fused image misses |gx| = 4 on 2 of 8 columns: mean 1.0, gy term 0
    assert float(gradient_max_loss(flat, img, flat)) == pytest.approx(1.0)


def test_color_loss_hand_numbers():
    cb_f, cr_f = torch.full((1, 1, 2, 2), 0.5), torch.full((1, 1, 2, 2), 0.4)
    cb_v, cr_v = torch.full((1, 1, 2, 2), 0.6), torch.full((1, 1, 2, 2), 0.4)
    assert float(color_loss(cb_f, cr_f, cb_v, cr_v)) == pytest.approx(0.1)


def test_temporal_loss_parallel_differences_zero():
    torch.manual_seed(1)
    ir = torch.rand(2, 4, 1, 8, 8)
    fused = 0.5 * ir + 0.2                      # every frame difference is 0.5 x the IR one
    assert float(temporal_consistency_loss(fused, ir)) == pytest.approx(0.0, abs=1e-6)
    assert float(temporal_consistency_loss(-ir, ir)) == pytest.approx(2.0, abs=1e-6)
    assert float(temporal_consistency_loss(ir[:, :1], ir[:, :1])) == 0.0   # T = 1


def test_temporal_loss_orthogonal_is_one():
    ir = torch.zeros(1, 2, 1, 1, 2)
    fused = torch.zeros(1, 2, 1, 1, 2)
    ir[0, 1, 0, 0, 0] = 1.0                      # ΔIR = (1, 0)
    fused[0, 1, 0, 0, 1] = 1.0                   # ΔF = (0, 1)
    assert float(temporal_consistency_loss(fused, ir)) == pytest.approx(1.0)


def test_composition_weights():
    paper = loss_weights(LossConfig("paper"))
    assert (paper.intensity_max, paper.gradient_max, paper.color) == (1.0, 1.0, 2.0)
    assert (paper.temporal_infrared, paper.temporal_visible) == (0.25, 0.25)
    assert paper.distill_visual_visible == paper.distill_semantic_infrared == 0.1
    assert paper.ssim == 0.0 and paper.intensity == 0.0
    rel = loss_weights(LossConfig("released"))
    assert (rel.intensity_max, rel.intensity, rel.color, rel.gradient_max,
            rel.temporal_infrared) == (10.0, 1.0, 20.0, 10.0, 2.0)
    assert rel.ssim == 1.0 and rel.temporal_visible == 0.0
    assert rel.distill_visual_infrared == 0.0     # dropped by the release's bug
    over = loss_weights(LossConfig("released", weights={"temporal_visible": 0.5}))
    assert over.temporal_visible == 0.5
    with pytest.raises(ValueError, match="bogus"):
        LossConfig("released", weights={"bogus": 1.0})
    with pytest.raises(ValueError, match="composition"):
        LossConfig("nope")


def _clip(seed: int, t: int = 3, size: int = 24) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, t, 3, size, size, generator=g)


def test_fusion_loss_total_is_weighted_sum_released():
    fused, vis, ir = _clip(0), _clip(1), _clip(2)[:, :, :1]
    fused.requires_grad_(True)
    loss = FusionLoss(LossConfig("released"))
    out = loss(fused, vis, ir)
    vals = {k: float(v.detach()) for k, v in out.items()}
    assert set(out) == {"total", "ssim", "intensity_max", "gradient_max", "intensity", "color",
                        "temporal_infrared"}
    w = {"ssim": 1, "intensity_max": 10, "gradient_max": 10, "intensity": 1, "color": 20,
         "temporal_infrared": 2}
    assert vals["total"] == pytest.approx(sum(w[k] * vals[k] for k in w), rel=1e-5)
    y_f = rgb_to_ycbcr(fused.flatten(0, 1))[0]
    y_v = rgb_to_ycbcr(vis.flatten(0, 1))[0]
    y_i = ir.flatten(0, 1)
    want_ssim = ssim_loss(y_v, y_f, 13) + ssim_loss(y_i, y_f, 13)
    assert vals["ssim"] == pytest.approx(float(want_ssim.detach()), rel=1e-5)
    out["total"].backward()
    assert fused.grad is not None and torch.isfinite(fused.grad).all()


def test_fusion_loss_paper_and_perfect_color():
    vis = _clip(3)
    grey_ir = rgb_to_ycbcr(vis.flatten(0, 1))[0].view(1, 3, 1, 24, 24)
    out = FusionLoss(LossConfig("paper"))(vis.clone(), vis, grey_ir)
    # fused == visible and IR == its luma: content, colour and temporal terms vanish
    for k in ("intensity_max", "gradient_max", "color", "temporal_infrared", "temporal_visible"):
        assert float(out[k]) == pytest.approx(0.0, abs=1e-5), k
    assert float(out["total"]) == pytest.approx(0.0, abs=1e-5)


def test_fusion_loss_logs_skipped_teachers(caplog):
    with caplog.at_level(logging.WARNING, logger="temcoco_core.train.losses"):
        loss = FusionLoss(LossConfig("released"))
    assert "distillation skipped" in caplog.text and "VGG19" in caplog.text
    assert not loss.uses_distillation


class _ConvTeacher(nn.Module):
    """Tiny stand-in teacher: (N, 3, H, W) -> (N, 4, H/4, W/4)."""

    name = "conv"
    channels = 4

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 4, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_distillation_resizes_student_to_teacher_grid():
    teacher = _ConvTeacher()
    dist = DistillationLoss(visual=teacher)
    vis, ir = _clip(4, t=2, size=16), _clip(5, t=2, size=16)[:, :, :1]
    # student (B, C, T, h, w) at 8x8 while the teacher gives 4x4
    student_v = torch.randn(1, 4, 2, 8, 8, requires_grad=True)
    student_i = torch.randn(1, 4, 2, 8, 8)
    feats = {"visual": {"visible": student_v, "infrared": student_i}}
    w = loss_weights(LossConfig("paper"))
    out = dist(feats, vis, ir, w)
    assert set(out) == {"distill_visual_visible", "distill_visual_infrared"}
    with torch.no_grad():
        target = teacher(vis.flatten(0, 1))
    resized = F.interpolate(student_v.transpose(1, 2).flatten(0, 1), size=(4, 4),
                            mode="bilinear", align_corners=False)
    assert float(out["distill_visual_visible"].detach()) == pytest.approx(
        float(F.mse_loss(resized, target).detach()), rel=1e-6)
    out["distill_visual_visible"].backward()
    assert student_v.grad is not None and float(student_v.grad.abs().sum()) > 0
    assert all(p.grad is None for p in teacher.parameters())

    full = FusionLoss(LossConfig("paper"), dist)
    assert full.uses_distillation and full.skipped_teachers == ["semantic"]
    res = full(vis, vis, ir, feats)
    assert "distill_visual_visible" in res

    bad = {"visual": {"visible": torch.randn(2, 5, 8, 8), "infrared": student_i}}
    with pytest.raises(DistillationError, match="4 channels"):
        dist(bad, vis, ir, w)


# ------------------------------------------------------------------ edge recipe (issue 13)


def _warm_scene(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Visible luma 0.4 everywhere; infrared 0.1 background with a 4x4 warm target at 0.9."""
    y_v = torch.full((1, 1, size, size), 0.4)
    y_i = torch.full((1, 1, size, size), 0.1)
    y_i[..., 10:14, 10:14] = 0.9
    return y_v, y_i


def test_salience_zero_when_warm_target_kept_and_grows_when_pale():
    y_v, y_i = _warm_scene()
    kept = torch.maximum(y_v, y_i)                       # the target as bright as in the IR
    assert float(salience_loss(kept, y_v, y_i)) == pytest.approx(0.0, abs=1e-6)
    pale = kept.clone()
    pale[..., 10:14, 10:14] = 0.65                       # semi-transparent: halfway
    washed = kept.clone()
    washed[..., 10:14, 10:14] = 0.4                      # gone
    assert float(salience_loss(pale, y_v, y_i)) == pytest.approx(0.25, abs=1e-5)
    assert float(salience_loss(washed, y_v, y_i)) == pytest.approx(0.5, abs=1e-5)
    # area-normalised: the 16-pixel target weighs fully, where the plain L1 hardly sees it
    assert float(intensity_max_loss(washed, y_v, y_i)) < 0.01


def test_salience_ignores_background_and_frames_without_warm_pixels():
    y_v, y_i = _warm_scene()
    kept = torch.maximum(y_v, y_i)
    changed_bg = kept.clone()
    changed_bg[..., :5, :] = 0.0                         # far from the warm target
    assert float(salience_loss(changed_bg, y_v, y_i)) == pytest.approx(0.0, abs=1e-6)
    cold = torch.full_like(y_i, 0.1)                     # no warm pixel: term is 0, no NaN
    out = salience_loss(torch.rand_like(y_v), y_v, cold)
    assert float(out) == 0.0
    # a batch of a warm and a cold frame averages over the warm one only
    both = salience_loss(torch.cat([torch.full_like(y_v, 0.4)] * 2),
                         torch.cat([y_v, y_v]), torch.cat([y_i, cold]))
    assert float(both) == pytest.approx(0.5, abs=1e-5)
    with pytest.raises(ValueError, match="shape"):
        salience_loss(y_v, y_v, y_i[..., :8])


def test_salience_gradient_brightens_the_target():
    y_v, y_i = _warm_scene()
    f = torch.full_like(y_v, 0.4, requires_grad=True)
    salience_loss(f, y_v, y_i).backward()
    assert float(f.grad[..., 11, 11]) < 0                # descent raises the warm pixels
    assert float(f.grad[..., 0, 0]) == 0.0               # and leaves the background alone


def test_brightness_temporal_tracks_visible_brightness_changes():
    g = torch.Generator().manual_seed(0)
    vis = torch.rand(2, 5, 1, 16, 16, generator=g)
    # fused = visible + a fixed offset + any zero-mean texture change: no global flicker
    tex = torch.randn(2, 5, 1, 16, 16, generator=g)
    tex = tex - tex.mean(dim=(2, 3, 4), keepdim=True)
    assert float(brightness_temporal_loss(vis + 0.2 + 0.1 * tex, vis)) == pytest.approx(
        0.0, abs=1e-6)
    # a per-frame brightness jump of +-0.05 alternating: |d| = 0.1 per step
    flick = torch.tensor([0.0, 0.05, 0.0, 0.05, 0.0]).view(1, 5, 1, 1, 1)
    assert float(brightness_temporal_loss(vis + flick, vis)) == pytest.approx(0.05, abs=1e-6)
    assert float(brightness_temporal_loss(vis[:, :1], vis[:, :1])) == 0.0
    with pytest.raises(ValueError, match="shape"):
        brightness_temporal_loss(vis, vis[:, :3])


def test_fused_ycbcr_not_clamped_so_overshoot_has_gradient():
    vis = _clip(7)
    ir = rgb_to_ycbcr(vis.flatten(0, 1))[0].view(1, 3, 1, 24, 24)
    fused = (vis + 0.8).requires_grad_(True)             # far above 1 everywhere
    out = FusionLoss(LossConfig("edge"))(fused, vis, ir)
    out["total"].backward()
    assert float(out["intensity_max"].detach()) > 0.5
    assert float(fused.grad.mean()) > 0                  # descent pulls it down


def test_edge_composition_weights_and_terms():
    w = loss_weights(LossConfig("edge"))
    assert (w.intensity_max, w.gradient_max) == (20.0, 20.0)
    assert w.ssim_infrared == 0.5 and w.salience > 0 and w.brightness_temporal > 0
    assert w.temporal_infrared > 0 and w.temporal_visible > 0
    assert all(getattr(w, k) == 0.0 for k in ("distill_visual_visible",
                                              "distill_semantic_visible"))
    fused, vis, ir = _clip(0, t=4), _clip(1, t=4), _clip(2, t=4)[:, :, :1]
    out = FusionLoss(LossConfig("edge"))(fused, vis, ir)
    assert {"salience", "brightness_temporal", "temporal_visible"} <= set(out)
    vals = {k: float(v) for k, v in out.items()}
    total = sum(getattr(w, k) * v for k, v in vals.items() if k not in ("total", "ssim"))
    assert vals["total"] == pytest.approx(total + w.ssim * vals["ssim"], rel=1e-5)


def test_warm_excess_keeps_small_warm_objects_and_drops_large_warm_areas():
    y_v, y_i = _warm_scene(48)
    w = warm_excess(y_i)
    # the 4x4 target stands out by 0.8; its blurred surroundings take a little of that
    assert 0.6 < float(w[..., 11, 11]) < 0.8
    assert float(w[..., 0, 0]) == 0.0 and float(w[..., 30, 30]) == 0.0
    # a warm half of the frame is its own surroundings: nothing in its interior is "warm"
    half = torch.full((1, 1, 96, 96), 0.1)
    half[..., :, 48:] = 0.9
    assert float(warm_excess(half)[..., 48, 72:].max()) == 0.0   # 2.4 sigma in
    # texture below the threshold does not count
    faint = y_i.clone()
    faint[..., 10:14, 10:14] = 0.12
    assert float(warm_excess(faint).max()) == 0.0
    with pytest.raises(ValueError, match="luma"):
        warm_excess(y_i[0])


def test_warm_target_keeps_the_visible_and_adds_the_target():
    y_v, y_i = _warm_scene(48)
    target = (y_v + warm_excess(y_i)).clamp(0, 1)
    assert float(warm_target_loss(target, y_v, y_i)) == pytest.approx(0.0, abs=1e-7)
    # max-intensity's target turns the target-free visible into ... the visible (IR is darker),
    # but a frame without the target is penalised by the warm term only
    assert float(warm_target_loss(y_v, y_v, y_i)) > 0.0
    f = y_v.clone().requires_grad_(True)
    warm_target_loss(f, y_v, y_i).backward()
    assert float(f.grad[..., 11, 11]) < 0                # descent brightens the target
    assert float(f.grad[..., 40, 40]) == 0.0             # the visible elsewhere is the target
    with pytest.raises(ValueError, match="shape"):
        warm_target_loss(y_v, y_v, y_i[..., :8])
    # the gain scales the added excess; the config carries sigma, threshold and gain
    faint = y_i.clone()
    faint[..., 10:14, 10:14] = 0.3                       # so that twice the excess stays < 1
    once, doubled = y_v + warm_excess(faint), y_v + 2 * warm_excess(faint)
    assert float(warm_target_loss(doubled, y_v, faint, gain=2.0)) == pytest.approx(0.0, abs=1e-7)
    assert float(warm_target_loss(once, y_v, faint, gain=2.0)) > 0.0
    with pytest.raises(ValueError, match="warm_sigma"):
        LossConfig(warm_sigma=0.0)
    weights = loss_weights(LossConfig(composition="edge", weights={"intensity_warm": 5.0}))
    assert weights.intensity_warm == 5.0
    fused = torch.rand(1, 2, 3, 48, 48)
    vis, ir = torch.rand(1, 2, 3, 48, 48), torch.rand(1, 2, 1, 48, 48)
    cfg = LossConfig(composition="edge", weights={"intensity_warm": 5.0}, warm_sigma=4.0,
                     warm_gain=2.0)
    out = FusionLoss(cfg)(fused, vis, ir)
    y_f = rgb_to_ycbcr(fused.flatten(0, 1), clamp=False)[0]
    y_v = rgb_to_ycbcr(vis.flatten(0, 1))[0]
    y_i = ir.flatten(0, 1)
    assert float(out["intensity_warm"]) == pytest.approx(
        float(warm_target_loss(y_f, y_v, y_i, 4.0, 0.03, 2.0)), rel=1e-5)


def test_temporal_warm_follows_the_warm_target_not_the_infrared_texture():
    # a clip whose infrared changes everywhere (texture/noise) while the visible is still and a
    # warm target moves: the fused video that follows the warm target scores ~0, one that
    # copies the infrared's frame differences does not (the temporal_infrared term would)
    torch.manual_seed(0)
    y_v, y_i = _warm_scene(48)                          # (1, 1, 48, 48) each
    frames_v, frames_i = [], []
    for t in range(3):
        ir = 0.1 + 0.3 * torch.rand_like(y_i)          # texture: below the threshold
        ir[..., 10 + 4 * t:14 + 4 * t, 10:14] = 0.9    # the target moves 4 px per frame
        frames_v.append(y_v)
        frames_i.append(ir)
    vis = torch.stack(frames_v, 1).expand(1, 3, 3, 48, 48)    # grey visible, (B, T, 3, H, W)
    ir = torch.stack(frames_i, 1)                             # (1, 3, 1, 48, 48)
    cfg = LossConfig(composition="edge", warm_sigma=6.0, warm_threshold=0.35, warm_gain=1.0,
                     weights={"temporal_warm": 1.0, "temporal_infrared": 0.0,
                              "temporal_visible": 0.0})
    loss = FusionLoss(cfg)
    target = warm_target(vis[:, :, :1].flatten(0, 1), ir.flatten(0, 1), 6.0, 0.35, 1.0)
    follows = target.view(1, 3, 1, 48, 48).expand(1, 3, 3, 48, 48)
    copies_ir = (vis + (ir - ir[:, :1])).clamp(0, 1)
    assert float(loss(follows, vis, ir)["temporal_warm"]) == pytest.approx(0.0, abs=1e-5)
    assert float(loss(copies_ir, vis, ir)["temporal_warm"]) > 0.3
    assert "temporal_infrared" not in loss(follows, vis, ir)
    with pytest.raises(ValueError, match="shape"):
        warm_target(y_v, y_i[..., :8])


def _moving_square(t: int = 3, size: int = 32, step: int = 4) -> torch.Tensor:
    """(1, T, 1, size, size): a 4x4 square of 0.8 on 0.2 that moves `step` px per frame."""
    clip = torch.full((1, t, 1, size, size), 0.2)
    for i in range(t):
        clip[0, i, 0, 8:12, 4 + step * i:8 + step * i] = 0.8
    return clip


def test_motion_loss_charges_a_ghost_fully_however_small_the_object():
    target = _moving_square()
    assert float(motion_target_loss(target, target)) == pytest.approx(0.0, abs=1e-7)
    # a ghost: the output keeps half of the square where it was one frame earlier
    ghost = target.clone()
    for i in range(1, 3):
        prev = target[0, i - 1, 0] > 0.5
        ghost[0, i, 0][prev] = 0.5
    # mask: the previous and current squares (and, frames=2, the one before), error 0.3 on
    # the 16 ghost pixels of the 32 (frame 1) or 48 (frame 2) masked ones
    assert float(motion_target_loss(ghost, target)) == pytest.approx(
        (0.3 * 16 / 32 + 0.3 * 16 / 48) / 2, rel=1e-5)
    assert float(motion_target_loss(ghost, target, frames=1)) == pytest.approx(0.15, rel=1e-5)
    # the frame-mean L1 sees the same ghost ~20x smaller on a 32x32 frame
    assert float(F.l1_loss(ghost, target)) < float(motion_target_loss(ghost, target)) / 10
    # an error outside the moving pixels is not this term's business
    off = target.clone()
    off[..., 20:, 20:] += 0.3
    assert float(motion_target_loss(off, target)) == pytest.approx(0.0, abs=1e-7)
    # a still target (or one frame) gives 0 and still a gradient path
    still = torch.rand(1, 3, 1, 8, 8, requires_grad=True)
    out = motion_target_loss(still, torch.zeros(1, 3, 1, 8, 8))
    assert float(out.detach()) == 0.0
    out.backward()
    assert float(motion_target_loss(target[:, :1], target[:, :1])) == 0.0
    with pytest.raises(ValueError, match="frames"):
        motion_target_loss(target, target, frames=0)
    with pytest.raises(ValueError, match="shape"):
        motion_target_loss(target, target[..., :8])


def test_fusion_loss_intensity_motion_term_uses_the_warm_target():
    torch.manual_seed(0)
    vis = torch.rand(1, 3, 3, 24, 24)
    ir = torch.rand(1, 3, 1, 24, 24)
    fused = torch.rand(1, 3, 3, 24, 24)
    cfg = LossConfig(composition="edge", warm_sigma=4.0, warm_threshold=0.03, warm_gain=2.0,
                     motion_frames=1, motion_softness=0.1,
                     weights={"intensity_motion": 1.0})
    out = FusionLoss(cfg)(fused, vis, ir)
    y_f = rgb_to_ycbcr(fused.flatten(0, 1), clamp=False)[0].view(1, 3, 1, 24, 24)
    y_v = rgb_to_ycbcr(vis.flatten(0, 1))[0]
    target = warm_target(y_v, ir.flatten(0, 1), 4.0, 0.03, 2.0).view(1, 3, 1, 24, 24)
    assert float(out["intensity_motion"]) == pytest.approx(
        float(motion_target_loss(y_f, target, 1, 0.1)), rel=1e-5)
    with pytest.raises(ValueError, match="motion_frames"):
        LossConfig(motion_frames=0)


def test_unsharp_mask_sharpens_edges_and_keeps_flat_areas():
    flat = torch.full((1, 1, 16, 16), 0.4)
    assert torch.allclose(unsharp_mask(flat, 1.0), flat, atol=1e-6)
    step = torch.zeros(1, 1, 16, 16)
    step[..., 8:] = 0.6
    assert unsharp_mask(step, 0.0) is step
    sharp = unsharp_mask(step, 1.0, sigma=1.0)
    # overshoot on both sides of the edge, unchanged far from it
    assert float(sharp[0, 0, 4, 8]) > 0.6 and float(sharp[0, 0, 4, 7]) < 0.0
    assert float(sharp[0, 0, 4, 0]) == pytest.approx(0.0, abs=1e-6)
    assert float(sharp[0, 0, 4, 15]) == pytest.approx(0.6, abs=1e-6)
    with pytest.raises(ValueError, match="luma"):
        unsharp_mask(step[0], 1.0)


def test_warm_target_from_the_visible_input_is_the_sharpened_input_plus_the_warm_excess():
    torch.manual_seed(0)
    vis_ref = torch.rand(1, 2, 3, 32, 32)            # clean visible
    vis_in = torch.rand(1, 2, 3, 32, 32)             # what the network saw (degraded)
    y_v, y_i = _warm_scene(32)
    ir = y_i.unsqueeze(1).expand(1, 2, 1, 32, 32)
    cfg = LossConfig(composition="edge", weights={"intensity_warm": 1.0}, warm_sigma=4.0,
                     warm_visible="input", warm_sharpen=0.5, warm_sharpen_sigma=1.0)
    loss = FusionLoss(cfg)
    y_in = rgb_to_ycbcr(vis_in.flatten(0, 1))[0]
    target = warm_target(unsharp_mask(y_in, 0.5, 1.0), ir.flatten(0, 1), 4.0, 0.03, 1.0)
    fused = target.view(1, 2, 1, 32, 32).expand(1, 2, 3, 32, 32)   # grey: Y is the target
    out = loss(fused, vis_ref, ir, visible_input=vis_in)
    assert float(out["intensity_warm"]) == pytest.approx(0.0, abs=1e-5)
    # the same output against the clean reference's target is off
    ref_cfg = LossConfig(composition="edge", weights={"intensity_warm": 1.0}, warm_sigma=4.0)
    assert float(FusionLoss(ref_cfg)(fused, vis_ref, ir)["intensity_warm"]) > 0.05
    with pytest.raises(ValueError, match="visible input"):
        loss(fused, vis_ref, ir)
    with pytest.raises(ValueError, match="warm_visible"):
        LossConfig(warm_visible="clean")
    with pytest.raises(ValueError, match="warm_sharpen"):
        LossConfig(warm_sharpen=-1.0)
