# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""TemCoCo training losses: the paper's (Eqs. 13-17) and the released code's composition.

Every image term works on luma/chroma of the YCbCr conversion the released code uses
(:func:`rgb_to_ycbcr`), per frame, on clips laid out (B, T, C, H, W) with values in [0, 1]:
the fused output against the **clean** references (the network sees degraded inputs).

Terms (names are the keys of the dict :class:`FusionLoss` returns, before weighting):

=====================  =====================================================================
``ssim``               (1 − SSIM(Y_vis, Y_f)) + w_ir·(1 − SSIM(Y_ir, Y_f)), Gaussian window 13
                       (σ 1.5), valid convolution (released ``L_SSIM(window_size=13)``)
``intensity_max``      ‖Y_f − max(Y_vis, Y_ir)‖₁, mean absolute error (Eq. 13, 2nd term)
``gradient_max``       ‖|∇ₓY_f| − max(|∇ₓY_vis|, |∇ₓY_ir|)‖₁ + the same along y, Sobel
                       with replicate padding (Eq. 13, 1st term)
``intensity``          ‖Y_f − Y_vis‖₁ + ‖Y_f − Y_ir‖₁ (released "pixel consist")
``color``              ‖Cb_f − Cb_vis‖₁ + ‖Cr_f − Cr_vis‖₁ (Eq. 14)
``temporal_infrared``  mean over t of 1 − cos(Y_fᵗ − Y_fᵗ⁻¹, Y_irᵗ − Y_irᵗ⁻¹), the cosine
                       taken over all pixels of a frame difference (Eq. 16, x = ir)
``temporal_visible``   the same against the visible differences (Eq. 16, x = vis)
``salience``           ‖Y_f − Y_ir‖₁ averaged over the *warm* pixels only (soft mask where
                       Y_ir exceeds Y_vis by a margin), so a small hot target weighs as much
                       as the background; 0 for frames without warm pixels
``intensity_warm``     ‖Y_f − (Y_vis + g·W)‖₁ with W = max(0, Y_ir − G_σ∗Y_ir − τ) the
                       infrared's *local* warm excess (``LossConfig.warm_*``): keep the visible
                       image and add warm objects' contrast against their surroundings, where
                       ``intensity_max`` hands every region the infrared happens to be
                       brighter in (warm ground under dark foliage) over to the infrared;
                       ``Y_vis`` is the clean visible, or (``warm_visible: input``) the
                       visible the network sees, unsharp-masked by ``warm_sharpen``
``temporal_warm``      Eq. 16 against the ``intensity_warm`` target's differences: the fused
                       video changes as the visible one does, plus the warm objects' motion;
                       the two source terms pull ΔF towards the infrared's differences
                       everywhere (its texture leaks into the visible scene)
``intensity_motion``   ``intensity_warm`` on the pixels where that target *changed* in the
                       last ``motion_frames`` frames only (soft mask of |Δ target|), averaged
                       over those pixels: a streaming network that blends earlier frames leaves
                       a fading copy of a moving warm object (a ghost) where it was, which the
                       plain L1 barely notices on the few pixels a motion covers
``brightness_temporal``  mean over t of |ΔB_f − ΔB_vis| with B the mean luma of a frame:
                       the fused video's brightness must change as the visible one does
                       (the ``flicker`` metric, in [0, 1] units)
``distill_*``          MSE between student feature maps and frozen teachers (Eq. 15), see
                       :class:`DistillationLoss`
=====================  =====================================================================

Compositions (:data:`COMPOSITIONS`):

* ``"paper"`` -- Eq. 17: L = L_con + 2·L_cor + 0.1·L_d + 0.25·L_t with L_con the two Eq. 13
  terms (weight 1 each), L_t summed over both modalities and L_d over both modalities and both
  teachers.
* ``"edge"`` -- for the small causal network trained on CPUs (config/train_edge.yaml): the
  released content terms with the infrared SSIM halved and the max-intensity and max-gradient
  weights doubled (20 each: warm targets and sharp edges over an average-like blend),
  ``salience`` 20, both Eq. 16 terms (2 each) and ``brightness_temporal`` 400 (its values
  are ~1e-3: a global brightness step of a quarter grey level), no distillation.
* ``"released"`` -- what ``loss.py``/``train.py`` of the release optimise: 1·ssim (IR weight 1)
  + 10·intensity_max + 1·intensity + 20·color + 10·gradient_max + 2·temporal_infrared
  + 1·(VGG on visible + DINOv2 on visible and infrared). The infrared VGG term is absent
  because of a line-continuation bug in ``train.py``; it is kept out here so the composition
  matches what was trained (set ``distill_visual_infrared`` to re-enable it).

The paper's ‖·‖₂ in Eq. 15 is implemented, as released, as a mean squared error; the paper's L1
norms as mean absolute errors.

The fused frame's Y, Cb, Cr are taken **without** the [0, 1] clamp of :func:`rgb_to_ycbcr`
(the references are clamped as released): a clamp would give an overshooting output no
gradient, so the network could drift out of range unpenalised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
import logging
from typing import Protocol

import torch
from torch import nn, Tensor
import torch.nn.functional as F

from temcoco_core.train.degrade import gaussian_blur

__all__ = [
    "COMPOSITIONS",
    "WARM_VISIBLE",
    "DistillationError",
    "DistillationLoss",
    "FusionLoss",
    "LossConfig",
    "LossWeights",
    "Teacher",
    "brightness_temporal_loss",
    "color_loss",
    "gaussian_window",
    "gradient_max_loss",
    "intensity_consistency_loss",
    "intensity_max_loss",
    "loss_weights",
    "motion_target_loss",
    "warm_excess",
    "warm_target",
    "unsharp_mask",
    "warm_target_loss",
    "rgb_to_ycbcr",
    "salience_loss",
    "sobel_gradients",
    "ssim",
    "ssim_loss",
    "temporal_consistency_loss",
]

log = logging.getLogger(__name__)

COMPOSITIONS: tuple[str, ...] = ("paper", "released", "edge")
WARM_VISIBLE: tuple[str, ...] = ("reference", "input")


class DistillationError(ValueError):
    """Student and teacher feature maps cannot be compared (channels, layout)."""


# ------------------------------------------------------------------------------- colour space


def rgb_to_ycbcr(rgb: Tensor, clamp: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """RGB in [0, 1] to Y, Cb, Cr with the released coefficients, each clamped to [0, 1].

    ``clamp=False``: not clamped, for network outputs that need gradients everywhere.

    Y = 0.299 R + 0.587 G + 0.114 B; Cb = −0.169 R − 0.331 G + 0.5 B + 128/255;
    Cr = 0.5 R − 0.419 G − 0.081 B + 128/255.

    Args:
        rgb: (..., 3, H, W).

    Returns:
        Y, Cb, Cr, each (..., 1, H, W).
    """
    if rgb.shape[-3] != 3:
        raise ValueError(f"rgb_to_ycbcr expects (..., 3, H, W), got {tuple(rgb.shape)}")
    r, g, b = rgb[..., 0:1, :, :], rgb[..., 1:2, :, :], rgb[..., 2:3, :, :]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.169 * r - 0.331 * g + 0.5 * b + 128.0 / 255.0
    cr = 0.5 * r - 0.419 * g - 0.081 * b + 128.0 / 255.0
    if not clamp:
        return y, cb, cr
    return y.clamp(0.0, 1.0), cb.clamp(0.0, 1.0), cr.clamp(0.0, 1.0)


def _luma(x: Tensor) -> Tensor:
    """(..., 3 or 1, H, W) -> (..., 1, H, W): Y of RGB, or the grey channel itself (clamped)."""
    if x.shape[-3] == 1:
        return x.clamp(0.0, 1.0)
    return rgb_to_ycbcr(x)[0]


# ------------------------------------------------------------------------------------- SSIM


def gaussian_window(size: int, sigma: float = 1.5) -> Tensor:
    """Normalised 2-D Gaussian window (size, size), taps centred at ``size // 2``."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).float()


def ssim(a: Tensor, b: Tensor, window_size: int = 13, sigma: float = 1.5,
         data_range: float = 1.0) -> Tensor:
    """Mean structural similarity of two image batches (valid convolution, no padding).

    Args:
        a, b: (N, C, H, W), same shape; every channel is filtered separately.
        window_size: Gaussian window side (clipped to the image size).
        sigma: Gaussian σ.
        data_range: L in C1 = (0.01 L)², C2 = (0.03 L)².

    Returns:
        Scalar mean SSIM (1 for identical images).
    """
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"ssim needs two (N, C, H, W) tensors of one shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    c = a.shape[1]
    size = min(window_size, a.shape[-2], a.shape[-1])
    win = gaussian_window(size, sigma).to(a.device, a.dtype).expand(c, 1, size, size)
    mu_a = F.conv2d(a, win, groups=c)
    mu_b = F.conv2d(b, win, groups=c)
    var_a = F.conv2d(a * a, win, groups=c) - mu_a**2
    var_b = F.conv2d(b * b, win, groups=c) - mu_b**2
    cov = F.conv2d(a * b, win, groups=c) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).mean()


def ssim_loss(a: Tensor, b: Tensor, window_size: int = 13) -> Tensor:
    """1 − :func:`ssim` (0 for identical images)."""
    return 1.0 - ssim(a, b, window_size)


# ---------------------------------------------------------------------------- content terms


_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def sobel_gradients(img: Tensor) -> tuple[Tensor, Tensor]:
    """Absolute Sobel responses with replicate padding.

    Args:
        img: (N, 1, H, W).

    Returns:
        (|∂x|, |∂y|), each (N, 1, H, W); ∂x uses [[-1,0,1],[-2,0,2],[-1,0,1]] (correlation),
        ∂y its transpose.
    """
    kx = torch.tensor(_SOBEL_X, dtype=img.dtype, device=img.device).view(1, 1, 3, 3)
    ky = kx.transpose(-1, -2)
    p = F.pad(img, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(p, kx).abs(), F.conv2d(p, ky).abs()


def intensity_max_loss(y_f: Tensor, y_vis: Tensor, y_ir: Tensor) -> Tensor:
    """‖Y_f − max(Y_vis, Y_ir)‖₁ (mean), the intensity half of Eq. 13. Any equal shapes."""
    return F.l1_loss(y_f, torch.maximum(y_vis, y_ir))


def gradient_max_loss(y_f: Tensor, y_vis: Tensor, y_ir: Tensor) -> Tensor:
    """Sobel max-gradient loss, the texture half of Eq. 13. Inputs (N, 1, H, W)."""
    fx, fy = sobel_gradients(y_f)
    vx, vy = sobel_gradients(y_vis)
    ix, iy = sobel_gradients(y_ir)
    return F.l1_loss(fx, torch.maximum(vx, ix)) + F.l1_loss(fy, torch.maximum(vy, iy))


def warm_excess(y_ir: Tensor, sigma: float = 10.0, threshold: float = 0.03) -> Tensor:
    """``max(0, Y_ir − G_σ∗Y_ir − τ)``: how much warmer each pixel is than its surroundings.

    ``G_σ∗`` is a separable Gaussian blur (reflect padding) of standard deviation ``sigma``
    pixels; a warm object smaller than about ``2σ`` keeps most of its contrast, a large warm
    area (a sun-lit wall) is its own surroundings and gets none.

    Args:
        y_ir: (N, 1, H, W) infrared luma in [0, 1].
        sigma: the surroundings' scale, pixels.
        threshold: ``τ``, contrast below which nothing counts as warm (noise, texture).

    Returns:
        (N, 1, H, W), ≥ 0.
    """
    if y_ir.ndim != 4 or y_ir.shape[1] != 1:
        raise ValueError(f"warm_excess needs an (N, 1, H, W) luma, got {tuple(y_ir.shape)}")
    return (y_ir - _blur(y_ir, sigma) - threshold).clamp_min(0.0)


def _blur(y: Tensor, sigma: float) -> Tensor:
    """Gaussian blur with a centred kernel of radius ``3σ`` (borders reflected).

    :func:`~temcoco_core.train.degrade.gaussian_blur` with the radius at most one pixel less
    than the image's shorter side, so that reflect padding applies.
    """
    radius = max(1, int(round(3.0 * sigma)))
    radius = min(radius, y.shape[-1] - 1, y.shape[-2] - 1)
    return gaussian_blur(y, sigma, size=2 * radius + 1)


def unsharp_mask(y: Tensor, amount: float, sigma: float = 1.0) -> Tensor:
    """``Y + a·(Y − G_s∗Y)``: the image with its detail finer than ``s`` pixels amplified.

    Args:
        y: (N, 1, H, W) luma in [0, 1].
        amount: ``a`` ≥ 0 (0 returns ``y``).
        sigma: ``s``, the Gaussian's standard deviation, pixels.

    Returns:
        (N, 1, H, W), not clamped.
    """
    if y.ndim != 4 or y.shape[1] != 1:
        raise ValueError(f"unsharp_mask needs an (N, 1, H, W) luma, got {tuple(y.shape)}")
    if amount == 0:
        return y
    return y + amount * (y - _blur(y, sigma))


def warm_target_loss(y_f: Tensor, y_vis: Tensor, y_ir: Tensor, sigma: float = 10.0,
                     threshold: float = 0.03, gain: float = 1.0) -> Tensor:
    """‖Y_f − clamp(Y_vis + g·W, 0, 1)‖₁ (mean), ``W`` the :func:`warm_excess` of ``Y_ir``.

    The visible image with the warm objects' local thermal contrast added: a fused frame
    that keeps the visible scene's tones (what mutual information with the visible rewards)
    and shows people and vehicles as warm as they stand out in the infrared.

    Args:
        y_f: (N, 1, H, W) fused luma (may overshoot [0, 1]).
        y_vis: (N, 1, H, W) visible reference luma in [0, 1].
        y_ir: (N, 1, H, W) infrared reference luma in [0, 1].
        sigma: the surroundings' scale, pixels (see :func:`warm_excess`).
        threshold: the least local contrast that counts as warm (see :func:`warm_excess`).
        gain: ``g``, how strongly the warm excess is added (> 1 makes up for the contrast the
            blurred surroundings take from an object larger than the blur).
    """
    if not (y_f.shape == y_vis.shape == y_ir.shape):
        raise ValueError(f"warm target loss needs three tensors of one shape, got "
                         f"{tuple(y_f.shape)}, {tuple(y_vis.shape)}, {tuple(y_ir.shape)}")
    return F.l1_loss(y_f, warm_target(y_vis, y_ir, sigma, threshold, gain))


def warm_target(y_vis: Tensor, y_ir: Tensor, sigma: float = 10.0, threshold: float = 0.03,
                gain: float = 1.0) -> Tensor:
    """``clamp(Y_vis + g·W, 0, 1)``, the target of :func:`warm_target_loss` (no gradient).

    Args:
        y_vis, y_ir: (N, 1, H, W) visible and infrared reference luma in [0, 1].
        sigma, threshold, gain: as in :func:`warm_target_loss`.

    Returns:
        (N, 1, H, W) in [0, 1].
    """
    if y_vis.shape != y_ir.shape:
        raise ValueError(f"warm target needs two tensors of one shape, got "
                         f"{tuple(y_vis.shape)}, {tuple(y_ir.shape)}")
    return (y_vis + gain * warm_excess(y_ir, sigma, threshold)).clamp(0.0, 1.0).detach()


def intensity_consistency_loss(y_f: Tensor, y_vis: Tensor, y_ir: Tensor,
                               infrared_weight: float = 1.0) -> Tensor:
    """‖Y_f − Y_vis‖₁ + w·‖Y_f − Y_ir‖₁ (released ``L_Intensity_Consist``)."""
    return F.l1_loss(y_f, y_vis) + infrared_weight * F.l1_loss(y_f, y_ir)


def color_loss(cb_f: Tensor, cr_f: Tensor, cb_vis: Tensor, cr_vis: Tensor) -> Tensor:
    """‖Cb_f − Cb_vis‖₁ + ‖Cr_f − Cr_vis‖₁ (Eq. 14)."""
    return F.l1_loss(cb_f, cb_vis) + F.l1_loss(cr_f, cr_vis)


def temporal_consistency_loss(y_f: Tensor, y_src: Tensor, eps: float = 1e-8) -> Tensor:
    """One modality's term of Eq. 16: mean over t ≥ 1 of 1 − cos(ΔF_t, ΔX_t).

    The frame differences ΔF_t = F_t − F_{t−1} and ΔX_t = X_t − X_{t−1} are flattened over
    (C, H, W); the cosine is taken per clip and averaged over the batch and the T − 1 steps
    (released ``cos_consist``). A zero source difference (static scene) gives cos = 0.

    Args:
        y_f, y_src: (B, T, C, H, W).

    Returns:
        Scalar in [0, 2]; 0 when T == 1.
    """
    if y_f.shape != y_src.shape or y_f.ndim != 5:
        raise ValueError(f"temporal loss needs two (B, T, C, H, W) tensors of one shape, got "
                         f"{tuple(y_f.shape)} and {tuple(y_src.shape)}")
    b, t = y_f.shape[:2]
    if t < 2:
        return y_f.new_zeros(())
    df = (y_f[:, 1:] - y_f[:, :-1]).reshape(b, t - 1, -1)
    dx = (y_src[:, 1:] - y_src[:, :-1]).reshape(b, t - 1, -1)
    cos = F.cosine_similarity(df, dx, dim=-1, eps=eps)
    return (1.0 - cos).clamp_min(0.0).mean()


def salience_loss(y_f: Tensor, y_vis: Tensor, y_ir: Tensor, margin: float = 0.05,
                  softness: float = 0.1) -> Tensor:
    """L1 to the infrared on warm pixels only, normalised by their (soft) area.

    The mask ``m = clamp((Y_ir − Y_vis − margin) / softness, 0, 1)`` marks where the infrared
    is brighter than the visible (where the max-intensity target is the infrared); per frame
    ``Σ m·|Y_f − Y_ir| / Σ m``, averaged over the frames with at least one pixel of mask.
    Area-normalised, a warm person covering 1 % of a frame weighs as much as a large one,
    where the plain max-intensity L1 barely notices a pale small target.

    Args:
        y_f, y_vis, y_ir: (N, 1, H, W) lumas in [0, 1] (``y_f`` may overshoot).
        margin, softness: the mask ramps from 0 at ``Y_ir − Y_vis = margin`` to 1 at
            ``margin + softness``.

    Returns:
        Scalar ≥ 0; 0 when no frame has warm pixels.
    """
    if not (y_f.shape == y_vis.shape == y_ir.shape) or y_f.ndim != 4:
        raise ValueError(f"salience loss needs three (N, 1, H, W) tensors of one shape, got "
                         f"{tuple(y_f.shape)}, {tuple(y_vis.shape)}, {tuple(y_ir.shape)}")
    if softness <= 0:
        raise ValueError(f"softness must be > 0, got {softness}")
    m = ((y_ir - y_vis - margin) / softness).clamp(0.0, 1.0).detach()
    area = m.flatten(1).sum(1)
    err = (m * (y_f - y_ir).abs()).flatten(1).sum(1)
    has = area >= 1.0
    if not bool(has.any()):
        return y_f.new_zeros(()) + 0.0 * y_f.sum()
    return (err[has] / area[has]).mean()


def motion_target_loss(y_f: Tensor, y_target: Tensor, frames: int = 2,
                       softness: float = 0.05) -> Tensor:
    """L1 to a target on the pixels where the target moved, normalised by their (soft) area.

    For every t ≥ 1 the mask ``m_t = clamp(max_k |Y*_t − Y*_{t−k}| / softness, 0, 1)``
    (k = 1 … ``frames``, the earlier frames that exist) marks where the target changed: where a
    moving object is now *and where it was*. Per frame ``Σ m·|Y_f − Y*| / Σ m``, averaged over
    the frames with at least one pixel of mask. A causal network that carries a warm object's
    earlier position into frame t (a ghost) is fully charged for it here, however small the
    object; the plain L1 over the frame divides it by the whole area.

    Args:
        y_f, y_target: (B, T, 1, H, W) lumas; the target in [0, 1].
        frames: how many earlier frames' positions count (≥ 1).
        softness: a target change of this much (or more) gives mask 1.

    Returns:
        Scalar ≥ 0; 0 when T == 1 or the target never changes.
    """
    if y_f.shape != y_target.shape or y_f.ndim != 5:
        raise ValueError(f"motion loss needs two (B, T, C, H, W) tensors of one shape, got "
                         f"{tuple(y_f.shape)} and {tuple(y_target.shape)}")
    if frames < 1 or softness <= 0:
        raise ValueError(f"need frames >= 1 and softness > 0, got {frames} and {softness}")
    t = y_f.shape[1]
    if t < 2:
        return y_f.new_zeros(()) + 0.0 * y_f.sum()
    target = y_target.detach()
    change = torch.zeros_like(target[:, 1:])
    for k in range(1, min(frames, t - 1) + 1):
        step = (target[:, k:] - target[:, :-k]).abs()          # change over k frames, t ≥ k
        change[:, k - 1:] = torch.maximum(change[:, k - 1:], step)
    m = (change / softness).clamp(0.0, 1.0).flatten(0, 1)      # (B·(T−1), 1, H, W)
    err = (m * (y_f[:, 1:] - target[:, 1:]).abs().flatten(0, 1)).flatten(1).sum(1)
    area = m.flatten(1).sum(1)
    has = area >= 1.0
    if not bool(has.any()):
        return y_f.new_zeros(()) + 0.0 * y_f.sum()
    return (err[has] / area[has]).mean()


def brightness_temporal_loss(y_f: Tensor, y_src: Tensor) -> Tensor:
    """Mean over t ≥ 1 of |ΔB_f,t − ΔB_src,t|, B the per-frame mean: global flicker.

    Args:
        y_f, y_src: (B, T, C, H, W).

    Returns:
        Scalar ≥ 0 (in the inputs' units); 0 when T == 1.
    """
    if y_f.shape != y_src.shape or y_f.ndim != 5:
        raise ValueError(f"brightness loss needs two (B, T, C, H, W) tensors of one shape, got "
                         f"{tuple(y_f.shape)} and {tuple(y_src.shape)}")
    if y_f.shape[1] < 2:
        return y_f.new_zeros(()) + 0.0 * y_f.sum()
    bf = y_f.flatten(2).mean(-1)
    bs = y_src.flatten(2).mean(-1)
    return ((bf[:, 1:] - bf[:, :-1]) - (bs[:, 1:] - bs[:, :-1])).abs().mean()


# ---------------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class LossWeights:
    """Weight of every term (0 switches a term off and skips its computation)."""

    ssim: float = 0.0
    ssim_infrared: float = 1.0
    intensity_max: float = 0.0
    gradient_max: float = 0.0
    intensity: float = 0.0
    color: float = 0.0
    temporal_infrared: float = 0.0
    temporal_visible: float = 0.0
    salience: float = 0.0
    intensity_warm: float = 0.0
    temporal_warm: float = 0.0
    intensity_motion: float = 0.0
    brightness_temporal: float = 0.0
    distill_visual_visible: float = 0.0
    distill_visual_infrared: float = 0.0
    distill_semantic_visible: float = 0.0
    distill_semantic_infrared: float = 0.0


_PRESET_WEIGHTS: dict[str, LossWeights] = {
    "paper": LossWeights(
        intensity_max=1.0, gradient_max=1.0, color=2.0,
        temporal_infrared=0.25, temporal_visible=0.25,
        distill_visual_visible=0.1, distill_visual_infrared=0.1,
        distill_semantic_visible=0.1, distill_semantic_infrared=0.1,
    ),
    "released": LossWeights(
        ssim=1.0, ssim_infrared=1.0, intensity_max=10.0, gradient_max=10.0, intensity=1.0,
        color=20.0, temporal_infrared=2.0,
        distill_visual_visible=1.0, distill_visual_infrared=0.0,
        distill_semantic_visible=1.0, distill_semantic_infrared=1.0,
    ),
    "edge": LossWeights(
        ssim=1.0, ssim_infrared=0.5, intensity_max=20.0, gradient_max=20.0, intensity=1.0,
        color=20.0, temporal_infrared=2.0, temporal_visible=2.0, salience=20.0,
        brightness_temporal=400.0,
    ),
}


@dataclass
class LossConfig:
    """Which loss composition to train with.

    Attributes:
        composition: ``"paper"`` (Eq. 17), ``"released"`` (the official training code) or
            ``"edge"`` (the CPU edge recipe, see the module docstring).
        weights: overrides of single :class:`LossWeights` fields, e.g. ``{"temporal_visible":
            0.5}``; unknown names are rejected.
        ssim_window: SSIM Gaussian window side (13 as released).
        warm_sigma: the warm target's (``intensity_warm``, ``temporal_warm``) surroundings'
            scale σ, pixels.
        warm_threshold: the warm target's least local contrast τ that counts as warm.
        warm_gain: the warm target's gain on the warm excess added to the visible.
        warm_visible: the visible the warm target starts from: ``"reference"`` (the clean
            visible reference) or ``"input"`` (the visible the network sees, degraded under the
            degraded protocol): with ``"input"`` the target's visible part is a fixed function of
            the network's input, which the network can learn exactly instead of guessing
            lost detail.
        warm_sharpen: unsharp-mask amount ``a`` on that visible luma, ``Y + a·(Y − G_s∗Y)``
            (0 = none): sharper edges than the input without inventing detail.
        warm_sharpen_sigma: ``s``, the unsharp mask's Gaussian standard deviation, pixels.
        motion_frames: ``intensity_motion``'s reach: a pixel counts as moved if the target
            changed against any of the last this many frames.
        motion_softness: ``intensity_motion``'s target change that gives full mask weight.
    """

    composition: str = "released"
    weights: dict[str, float] = field(default_factory=dict)
    ssim_window: int = 13
    warm_sigma: float = 10.0
    warm_threshold: float = 0.03
    warm_gain: float = 1.0
    warm_visible: str = "reference"
    warm_sharpen: float = 0.0
    warm_sharpen_sigma: float = 1.0
    motion_frames: int = 2
    motion_softness: float = 0.05

    def __post_init__(self) -> None:
        if self.composition not in COMPOSITIONS:
            raise ValueError(f"loss composition must be one of {COMPOSITIONS}, got "
                             f"{self.composition!r}")
        names = {f.name for f in fields(LossWeights)}
        unknown = sorted(set(self.weights) - names)
        if unknown:
            raise ValueError(f"unknown loss weight name(s): {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(names))})")
        if self.ssim_window < 1:
            raise ValueError(f"ssim_window must be >= 1, got {self.ssim_window}")
        if not (self.warm_sigma > 0 and self.warm_threshold >= 0 and self.warm_gain >= 0):
            raise ValueError(f"need warm_sigma > 0, warm_threshold >= 0 and warm_gain >= 0, got "
                             f"{self.warm_sigma}, {self.warm_threshold} and {self.warm_gain}")
        if self.warm_visible not in WARM_VISIBLE:
            raise ValueError(f"warm_visible must be one of {WARM_VISIBLE}, got "
                             f"{self.warm_visible!r}")
        if not (self.warm_sharpen >= 0 and self.warm_sharpen_sigma > 0):
            raise ValueError(f"need warm_sharpen >= 0 and warm_sharpen_sigma > 0, got "
                             f"{self.warm_sharpen} and {self.warm_sharpen_sigma}")
        if not (self.motion_frames >= 1 and self.motion_softness > 0):
            raise ValueError(f"need motion_frames >= 1 and motion_softness > 0, got "
                             f"{self.motion_frames} and {self.motion_softness}")


def loss_weights(config: LossConfig) -> LossWeights:
    """The composition's preset weights with ``config.weights`` applied."""
    return replace(_PRESET_WEIGHTS[config.composition],
                   **{k: float(v) for k, v in config.weights.items()})


# ----------------------------------------------------------------------------- distillation


class Teacher(Protocol):
    """A frozen feature extractor: (N, 3, H, W) RGB in [0, 1] -> (N, channels, h, w)."""

    name: str
    channels: int

    def __call__(self, images: Tensor) -> Tensor: ...


def _as_frames(feat: Tensor, batch: int, frames: int, channels: int, what: str) -> Tensor:
    """Student map to (B·T, C, h, w). Accepts (B·T, C, h, w), (B, T, C, h, w), (B, C, T, h, w)."""
    if feat.ndim == 4 and feat.shape[0] == batch * frames and feat.shape[1] == channels:
        return feat
    if feat.ndim == 5 and feat.shape[:2] == (batch, frames) and feat.shape[2] == channels:
        return feat.flatten(0, 1)
    if feat.ndim == 5 and feat.shape[0] == batch and feat.shape[1] == channels \
            and feat.shape[2] == frames:
        return feat.transpose(1, 2).flatten(0, 1)
    raise DistillationError(
        f"student feature {what} has shape {tuple(feat.shape)}; expected {channels} channels "
        f"laid out (B·T, C, h, w), (B, T, C, h, w) or (B, C, T, h, w) with B={batch}, "
        f"T={frames} (the teacher has {channels} channels)"
    )


def _match(student: Tensor, target: Tensor) -> Tensor:
    """MSE after bilinearly resizing the student map to the teacher map's (h, w)."""
    if student.shape[-2:] != target.shape[-2:]:
        student = F.interpolate(student, size=target.shape[-2:], mode="bilinear",
                                align_corners=False)
    return F.mse_loss(student.float(), target.float())


class DistillationLoss(nn.Module):
    """Feature distillation to frozen teachers (Eq. 15), as MSE.

    Teachers see the clean reference frames, (B·T, 3, H, W); the infrared grey is repeated to
    three channels. The student's maps (``feats`` of ``model.forward_train``: ``{"visual":
    {"visible", "infrared"}, "semantic": {...}}``) are bilinearly interpolated
    (``align_corners=False``) to the teacher map's spatial size before the MSE, so the student
    grid need not equal the teacher's (e.g. VGG19 relu3_1 is at H/4 × W/4, DINOv2 ViT-L/14
    tokens at ⌊H/16⌋ × ⌊W/16⌋, see :mod:`temcoco_core.train.teachers`). Channels must match.

    A missing teacher (``None``) switches its terms off.
    """

    def __init__(self, visual: Teacher | None = None, semantic: Teacher | None = None) -> None:
        super().__init__()
        # Teachers that are modules become submodules (so .to(device) moves them), frozen.
        for t in (visual, semantic):
            if isinstance(t, nn.Module):
                t.requires_grad_(False)
        self.visual = visual
        self.semantic = semantic

    @property
    def active(self) -> bool:
        """True when at least one teacher is present."""
        return self.visual is not None or self.semantic is not None

    def forward(self, feats: Mapping[str, Mapping[str, Tensor]], visible_ref: Tensor,
                infrared_ref: Tensor, weights: LossWeights) -> dict[str, Tensor]:
        """Unweighted terms ``distill_{visual,semantic}_{visible,infrared}`` with weight > 0.

        Args:
            feats: student maps (see class docstring).
            visible_ref: (B, T, 3, H, W) clean visible.
            infrared_ref: (B, T, 1 or 3, H, W) clean infrared.
            weights: which terms to compute.
        """
        b, t = visible_ref.shape[:2]
        images = {
            "visible": visible_ref.flatten(0, 1),
            "infrared": infrared_ref.flatten(0, 1).expand(-1, 3, -1, -1)
            if infrared_ref.shape[2] == 1 else infrared_ref.flatten(0, 1),
        }
        out: dict[str, Tensor] = {}
        for kind, teacher in (("visual", self.visual), ("semantic", self.semantic)):
            if teacher is None:
                continue
            for modality in ("visible", "infrared"):
                key = f"distill_{kind}_{modality}"
                if getattr(weights, key) == 0.0:
                    continue
                try:
                    student = feats[kind][modality]
                except KeyError as e:
                    raise DistillationError(
                        f"model.forward_train gave no feats[{kind!r}][{modality!r}] "
                        f"(keys: {sorted(feats)})"
                    ) from e
                with torch.no_grad():
                    target = teacher(images[modality])
                s = _as_frames(student, b, t, teacher.channels, f"{kind}/{modality}")
                out[key] = _match(s, target)
        return out


# ------------------------------------------------------------------------------- full loss


class FusionLoss(nn.Module):
    """The weighted training loss (composition per :class:`LossConfig`).

    Args:
        config: composition, weight overrides, SSIM window.
        distillation: teachers; ``None`` or teacher-less means the distillation terms are
            skipped (a message is logged once, naming the missing teachers).

    ``forward(fused, visible_ref, infrared_ref, feats=None, visible_input=None)``:
        fused: (B, T, 3, H, W) network output (not clamped; evaluated in float32).
        visible_ref: (B, T, 3, H, W) clean visible in [0, 1].
        infrared_ref: (B, T, 1 or 3, H, W) clean infrared in [0, 1].
        feats: optional student features of ``model.forward_train``.
        visible_input: (B, T, 3, H, W) the visible the network saw; needed by the warm terms
            when ``LossConfig.warm_visible`` is ``"input"``.

    Returns:
        ``{"total": weighted sum, <term>: unweighted value, ...}`` (scalars) for every term
        with a non-zero weight.
    """

    def __init__(self, config: LossConfig | None = None,
                 distillation: DistillationLoss | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()
        self.weights = loss_weights(self.config)
        self.distillation = distillation
        w = self.weights
        wants = {
            "visual": w.distill_visual_visible + w.distill_visual_infrared > 0,
            "semantic": w.distill_semantic_visible + w.distill_semantic_infrared > 0,
        }
        have = {
            "visual": distillation is not None and distillation.visual is not None,
            "semantic": distillation is not None and distillation.semantic is not None,
        }
        self.skipped_teachers = [k for k in ("visual", "semantic") if wants[k] and not have[k]]
        if self.skipped_teachers:
            names = {"visual": "VGG19 (teachers.vgg19)", "semantic": "DINOv2 (teachers.dinov2)"}
            log.warning(
                "distillation skipped for %s: no teacher weights given; training continues "
                "without these terms of Eq. 15",
                ", ".join(names[k] for k in self.skipped_teachers),
            )

    @property
    def uses_distillation(self) -> bool:
        """True when the model must return student features (some teacher is active)."""
        return self.distillation is not None and self.distillation.active and any(
            getattr(self.weights, f.name) > 0 for f in fields(LossWeights)
            if f.name.startswith("distill_")
        )

    def forward(self, fused: Tensor, visible_ref: Tensor, infrared_ref: Tensor,
                feats: Mapping[str, Mapping[str, Tensor]] | None = None,
                visible_input: Tensor | None = None) -> dict[str, Tensor]:
        if fused.ndim != 5 or fused.shape[2] != 3:
            raise ValueError(f"fused must be (B, T, 3, H, W), got {tuple(fused.shape)}")
        if visible_ref.shape != fused.shape:
            raise ValueError(f"visible_ref {tuple(visible_ref.shape)} != fused "
                             f"{tuple(fused.shape)}")
        if infrared_ref.shape[:2] != fused.shape[:2] or infrared_ref.shape[3:] != fused.shape[3:]:
            raise ValueError(f"infrared_ref {tuple(infrared_ref.shape)} does not match fused "
                             f"{tuple(fused.shape)}")
        w = self.weights
        fused = fused.float()
        visible_ref = visible_ref.float()
        infrared_ref = infrared_ref.float()
        b, t, _, h, wd = fused.shape
        frames = fused.flatten(0, 1)                        # (B·T, 3, H, W)
        y_f, cb_f, cr_f = rgb_to_ycbcr(frames, clamp=False)  # (B·T, 1, H, W)
        y_v, cb_v, cr_v = rgb_to_ycbcr(visible_ref.flatten(0, 1))
        y_i = _luma(infrared_ref.flatten(0, 1))

        terms: dict[str, Tensor] = {}
        if w.ssim:
            win = self.config.ssim_window
            terms["ssim"] = ssim_loss(y_v, y_f, win) + w.ssim_infrared * ssim_loss(y_i, y_f, win)
        if w.intensity_max:
            terms["intensity_max"] = intensity_max_loss(y_f, y_v, y_i)
        if w.gradient_max:
            terms["gradient_max"] = gradient_max_loss(y_f, y_v, y_i)
        if w.intensity:
            terms["intensity"] = intensity_consistency_loss(y_f, y_v, y_i)
        if w.color:
            terms["color"] = color_loss(cb_f, cr_f, cb_v, cr_v)
        if w.salience:
            terms["salience"] = salience_loss(y_f, y_v, y_i)
        y_warm = None
        if w.intensity_warm or w.temporal_warm or w.intensity_motion:
            c = self.config
            y_base = y_v
            if c.warm_visible == "input":
                if visible_input is None or visible_input.shape != fused.shape:
                    got = None if visible_input is None else tuple(visible_input.shape)
                    raise ValueError(f"loss.warm_visible 'input' needs the network's visible "
                                     f"input of the fused shape {tuple(fused.shape)}, got {got}")
                y_base = _luma(visible_input.float().flatten(0, 1))
            y_base = unsharp_mask(y_base, c.warm_sharpen, c.warm_sharpen_sigma)
            y_warm = warm_target(y_base, y_i, c.warm_sigma, c.warm_threshold, c.warm_gain)
        if w.intensity_warm:
            terms["intensity_warm"] = F.l1_loss(y_f, y_warm)
        if w.intensity_motion:
            terms["intensity_motion"] = motion_target_loss(
                y_f.view(b, t, 1, h, wd), y_warm.view(b, t, 1, h, wd),
                self.config.motion_frames, self.config.motion_softness)
        if w.temporal_infrared or w.temporal_visible or w.temporal_warm or w.brightness_temporal:
            yf5 = y_f.view(b, t, 1, h, wd)
            if w.temporal_warm:
                terms["temporal_warm"] = temporal_consistency_loss(
                    yf5, y_warm.view(b, t, 1, h, wd))
            if w.brightness_temporal:
                terms["brightness_temporal"] = brightness_temporal_loss(
                    yf5, y_v.view(b, t, 1, h, wd))
            if w.temporal_infrared:
                terms["temporal_infrared"] = temporal_consistency_loss(
                    yf5, y_i.view(b, t, 1, h, wd))
            if w.temporal_visible:
                terms["temporal_visible"] = temporal_consistency_loss(
                    yf5, y_v.view(b, t, 1, h, wd))
        if feats is not None and self.distillation is not None and self.distillation.active:
            terms.update(self.distillation(feats, visible_ref, infrared_ref, w))

        total = fused.new_zeros(())
        for name, value in terms.items():
            weight = w.ssim if name == "ssim" else getattr(w, name)
            total = total + weight * value
        return {"total": total, **terms}

    def describe(self) -> dict[str, float | str]:
        """Composition name and effective weights (for logs and checkpoints)."""
        return {"composition": self.config.composition, **asdict(self.weights)}
