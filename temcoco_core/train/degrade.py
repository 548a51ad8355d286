# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Synthetic degradations of clean infrared-visible clips (training inputs; targets stay clean).

As released (``../shared/notes/official-implementation.md``, "Training as released"):

* **visible**: isotropic Gaussian blur, kernel 12, σ ~ U(0.5, 3.5) drawn once per clip.
  An even kernel has no centre tap; the 12 taps sit at offsets −5 … +6 (BasicSR's
  ``mesh_grid`` convention), borders reflected (OpenCV's default ``BORDER_REFLECT_101``).
* **infrared**: per-frame min–max normalisation, then Gaussian noise with σ = n/255,
  n ~ randint[9, 15] (inclusive) per clip, fresh noise every frame, plus column stripes: one
  offset per column ~ N(0, (s/255)²), s ~ randint[5, 16], the same pattern on every frame of
  the clip; clamp to [0, 1]. The min–max normalisation is a normalisation, not a degradation:
  it is applied to the clean infrared reference too, so input and target share a range.
  ``infrared_minmax_scope`` says over what: ``"frame"`` (default) uses each *full* frame's
  minimum and maximum (the caller passes them as ``ir_range``; the degraded M3SVD val inputs
  are normalised that way), ``"crop"`` the training crop's own (a 96 px crop of plain
  background is then stretched to [0, 1]: bright, noisy infrared targets everywhere, which
  taught the first edge weights a brightness bias and pale warm targets).

Options modelling real thermal cameras (off by default):

* ``agc_gain``/``agc_offset``: the automatic gain control re-scales every frame: frame t
  becomes g_t·x + o_t with g_t ~ U(1 − agc_gain, 1 + agc_gain), o_t ~ U(−agc_offset,
  agc_offset), drawn per frame (brightness flicker the network has to remove).
* ``dead_pixels``/``hot_pixels``: fractions of pixels stuck at 0 / 1, at positions fixed for
  the clip (a sensor defect does not move).
* ``infrared_gamma``: a tone curve ``x ** γ``, γ ~ U(low, high) per clip, on the infrared
  input only (after the min–max, before noise): cameras and drivers map temperature to grey
  differently. The degraded M3SVD val infrared is such a curve of its clean reference
  (γ ≈ 0.67 fitted on 0114_1551 and 0115_1834: dark background lifted ~2×, hot targets kept),
  so a network trained without it meets brighter infrared than it ever saw.

Everything random comes from one ``numpy.random.Generator`` so a seed reproduces a clip
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
import torch.nn.functional as F

__all__ = [
    "MINMAX_SCOPES",
    "DegradeConfig",
    "DegradeParams",
    "Degrader",
    "gaussian_blur",
    "gaussian_kernel_1d",
    "minmax_per_frame",
]


#: Where the infrared min–max normalisation takes its range (see the module docstring).
MINMAX_SCOPES: tuple[str, ...] = ("frame", "crop")


@dataclass
class DegradeConfig:
    """Degradation options (defaults: as released, camera effects off).

    Attributes:
        visible_blur: blur the visible input.
        blur_kernel: Gaussian kernel side (12 as released).
        blur_sigma: (low, high) of the uniform σ draw, in pixels.
        infrared_minmax: per-frame min–max normalisation of infrared input and reference.
        infrared_minmax_scope: ``"frame"``: over the full frame (``ir_range`` given by the
            dataset; the crop's own range when absent), ``"crop"``: over the crop.
        infrared_noise: (low, high) inclusive integer range of 255·σ of the Gaussian noise;
            (0, 0) disables it.
        infrared_stripes: (low, high) inclusive integer range of 255·σ of the column stripes;
            (0, 0) disables them.
        agc_gain: half-width of the per-frame gain draw around 1 (0 = off; 0.1 = ±10 %).
        agc_offset: half-width of the per-frame additive offset (0 = off).
        dead_pixels: fraction of infrared pixels stuck at 0.
        hot_pixels: fraction of infrared pixels stuck at 1.
    """

    visible_blur: bool = True
    blur_kernel: int = 12
    blur_sigma: tuple[float, float] = (0.5, 3.5)
    infrared_minmax: bool = True
    infrared_minmax_scope: str = "frame"
    infrared_noise: tuple[int, int] = (9, 15)
    infrared_stripes: tuple[int, int] = (5, 16)
    agc_gain: float = 0.0
    agc_offset: float = 0.0
    dead_pixels: float = 0.0
    hot_pixels: float = 0.0
    infrared_gamma: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        self.blur_sigma = _pair("blur_sigma", self.blur_sigma, float)
        self.infrared_noise = _pair("infrared_noise", self.infrared_noise, int)
        self.infrared_stripes = _pair("infrared_stripes", self.infrared_stripes, int)
        if self.infrared_minmax_scope not in MINMAX_SCOPES:
            raise ValueError(f"infrared_minmax_scope must be one of {MINMAX_SCOPES}, got "
                             f"{self.infrared_minmax_scope!r}")
        if self.blur_kernel < 1:
            raise ValueError(f"blur_kernel must be >= 1, got {self.blur_kernel}")
        if self.blur_sigma[0] <= 0:
            raise ValueError(f"blur_sigma must be > 0, got {self.blur_sigma}")
        for name in ("agc_gain", "agc_offset", "dead_pixels", "hot_pixels"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v}")
        self.infrared_gamma = _pair("infrared_gamma", self.infrared_gamma, float)
        if self.infrared_gamma[0] <= 0:
            raise ValueError(f"infrared_gamma must be > 0, got {self.infrared_gamma}")
        if self.dead_pixels + self.hot_pixels >= 1.0:
            raise ValueError("dead_pixels + hot_pixels must be < 1")


def _pair(name: str, value: object, kind: type) -> tuple:
    try:
        lo, hi = (kind(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}") from None
    if lo > hi or lo < 0:
        raise ValueError(f"{name} must satisfy 0 <= low <= high, got ({lo}, {hi})")
    return (lo, hi)


@dataclass
class DegradeParams:
    """The random draws for one clip of T frames of H × W (arrays are numpy)."""

    blur_sigma: float | None
    noise_sigma: float
    stripe_sigma: float
    stripes: np.ndarray          # (W,) float32 column offsets, in [0, 1] units
    gains: np.ndarray            # (T,) float32
    offsets: np.ndarray          # (T,) float32
    dead: np.ndarray | None      # (H, W) bool
    hot: np.ndarray | None       # (H, W) bool
    gamma: float = 1.0           # infrared tone curve exponent


def gaussian_kernel_1d(size: int, sigma: float) -> tuple[Tensor, int]:
    """Normalised 1-D Gaussian taps at offsets ``-(size//2) + 1 … size//2`` (BasicSR grid).

    Returns:
        (taps (size,) float32, left) where ``left = size//2 - 1`` for even sizes and
        ``size//2`` for odd ones is the number of taps left of offset 0.
    """
    offsets = np.arange(-size // 2 + 1, size // 2 + 1, dtype=np.float64)
    taps = np.exp(-(offsets**2) / (2.0 * sigma**2))
    taps /= taps.sum()
    return torch.from_numpy(taps.astype(np.float32)), int(-offsets[0])


def gaussian_blur(frames: Tensor, sigma: float, size: int = 12) -> Tensor:
    """Separable isotropic Gaussian blur, reflected borders.

    Args:
        frames: (N, C, H, W) float.
        sigma: σ in pixels.
        size: kernel side.

    Returns:
        (N, C, H, W) blurred.
    """
    taps, left = gaussian_kernel_1d(size, sigma)
    taps = taps.to(frames.device, frames.dtype)
    right = size - 1 - left
    n, c, h, w = frames.shape
    mode = "reflect" if max(left, right) < min(h, w) else "replicate"
    x = frames.reshape(n * c, 1, h, w)
    x = F.conv2d(F.pad(x, (left, right, 0, 0), mode=mode), taps.view(1, 1, 1, size))
    x = F.conv2d(F.pad(x, (0, 0, left, right), mode=mode), taps.view(1, 1, size, 1))
    return x.reshape(n, c, h, w)


def minmax_per_frame(frames: Tensor, eps: float = 1e-6,
                     value_range: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """(T, C, H, W) -> each frame stretched to [0, 1] (a constant frame becomes 0).

    ``value_range``: per-frame ``(lo, hi)``, each (T,), to stretch with instead of the frames'
    own minimum and maximum (e.g. those of the full frames a crop was cut from); the result is
    clamped to [0, 1].
    """
    if value_range is None:
        flat = frames.flatten(1)
        lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
        hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
        return (frames - lo) / (hi - lo).clamp_min(eps)
    lo, hi = (torch.as_tensor(v, dtype=frames.dtype).reshape(-1, 1, 1, 1) for v in value_range)
    if lo.shape[0] != frames.shape[0] or hi.shape[0] != frames.shape[0]:
        raise ValueError(f"value_range needs one (lo, hi) per frame: {frames.shape[0]} frames, "
                         f"got {lo.shape[0]} and {hi.shape[0]}")
    return ((frames - lo) / (hi - lo).clamp_min(eps)).clamp(0.0, 1.0)


class Degrader:
    """Applies :class:`DegradeConfig` to clips.

    ``degrader(visible, infrared, rng)``:
        visible: (T, 3, H, W) float in [0, 1], clean.
        infrared: (T, 1, H, W) float in [0, 1], clean.
        rng: ``numpy.random.Generator`` (all draws come from it).

        ir_range: optional per-frame ``(lo, hi)`` (each (T,)) of the full frames the clip was
            cropped from, used by the min–max normalisation when
            ``infrared_minmax_scope == "frame"`` (ignored for ``"crop"``).

    Returns ``(visible_lq, infrared_lq, infrared_ref, params)``: degraded inputs of the same
    shapes, the clean infrared reference after the (optional) min–max normalisation, and the
    draws. The clean visible reference is the input itself.
    """

    def __init__(self, config: DegradeConfig | None = None) -> None:
        self.config = config or DegradeConfig()

    def sample(self, rng: np.random.Generator, frames: int, height: int,
               width: int) -> DegradeParams:
        """Draw the per-clip and per-frame parameters."""
        c = self.config
        sigma = float(rng.uniform(*c.blur_sigma)) if c.visible_blur else None
        noise = float(rng.integers(c.infrared_noise[0], c.infrared_noise[1] + 1)) / 255.0
        stripe = float(rng.integers(c.infrared_stripes[0], c.infrared_stripes[1] + 1)) / 255.0
        stripes = (rng.standard_normal(width, dtype=np.float32) * stripe).astype(np.float32)
        gains = (1.0 + rng.uniform(-c.agc_gain, c.agc_gain, frames)).astype(np.float32) \
            if c.agc_gain else np.ones(frames, np.float32)
        offsets = rng.uniform(-c.agc_offset, c.agc_offset, frames).astype(np.float32) \
            if c.agc_offset else np.zeros(frames, np.float32)
        dead = hot = None
        if c.dead_pixels or c.hot_pixels:
            u = rng.random((height, width))
            dead = u < c.dead_pixels if c.dead_pixels else None
            hot = (u >= c.dead_pixels) & (u < c.dead_pixels + c.hot_pixels) \
                if c.hot_pixels else None
        # drawn last and only when enabled: configs without it reproduce earlier clips exactly
        gamma = float(rng.uniform(*c.infrared_gamma)) if c.infrared_gamma != (1.0, 1.0) \
            else 1.0
        return DegradeParams(sigma, noise, stripe, stripes, gains, offsets, dead, hot, gamma)

    def __call__(self, visible: Tensor, infrared: Tensor, rng: np.random.Generator,
                 ir_range: tuple[Tensor, Tensor] | None = None,
                 ) -> tuple[Tensor, Tensor, Tensor, DegradeParams]:
        if visible.ndim != 4 or visible.shape[1] != 3:
            raise ValueError(f"visible must be (T, 3, H, W), got {tuple(visible.shape)}")
        if infrared.ndim != 4 or infrared.shape[1] != 1:
            raise ValueError(f"infrared must be (T, 1, H, W), got {tuple(infrared.shape)}")
        if visible.shape[0] != infrared.shape[0] or visible.shape[2:] != infrared.shape[2:]:
            raise ValueError(f"visible {tuple(visible.shape)} and infrared "
                             f"{tuple(infrared.shape)} differ in T, H or W")
        t, _, h, w = visible.shape
        p = self.sample(rng, t, h, w)
        c = self.config

        vis_lq = visible
        if p.blur_sigma is not None:
            vis_lq = gaussian_blur(visible, p.blur_sigma, c.blur_kernel)
        if c.infrared_minmax:
            scope_range = ir_range if c.infrared_minmax_scope == "frame" else None
            ir_ref = minmax_per_frame(infrared, value_range=scope_range)
        else:
            ir_ref = infrared
        ir = ir_ref if p.gamma == 1.0 else ir_ref.clamp(0.0, 1.0) ** p.gamma
        if c.agc_gain or c.agc_offset:
            ir = ir * torch.from_numpy(p.gains).view(t, 1, 1, 1) \
                + torch.from_numpy(p.offsets).view(t, 1, 1, 1)
        if p.noise_sigma > 0:
            noise = rng.standard_normal((t, 1, h, w), dtype=np.float32) * p.noise_sigma
            ir = ir + torch.from_numpy(noise)
        if p.stripe_sigma > 0:
            ir = ir + torch.from_numpy(p.stripes).view(1, 1, 1, w)
        if p.dead is not None:
            ir = ir.masked_fill(torch.from_numpy(p.dead).view(1, 1, h, w), 0.0)
        if p.hot is not None:
            ir = ir.masked_fill(torch.from_numpy(p.hot).view(1, 1, h, w), 1.0)
        return vis_lq.clamp(0.0, 1.0), ir.clamp(0.0, 1.0), ir_ref, p
