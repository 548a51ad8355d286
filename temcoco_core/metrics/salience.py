# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Target salience: does the fused video keep the thermal contrast of warm objects?

A robotics user looks for warm people and vehicles; an average-like fusion shows them pale and
semi-transparent although MI and SD look fine. This metric measures it directly, per frame
(grey 0-255 images, the fused RGB frame converted to BT.601 luma as in :mod:`.fusion`):

1. **hot region** ``H``: the hottest ``top_percent`` % of the infrared reference's pixels
   (at or above that percentile);
2. **surroundings** ``S``: a ring around ``H``, pixels within ``outer`` px of it but farther
   than ``inner`` px (so edge blur does not count), and not themselves in ``H``;
3. contrast of an image ``X``: ``C_X = mean(X[H]) − mean(X[S])``;
4. frame value ``C_F / C_IR``: the share of the infrared target contrast the fused frame keeps
   (1 = as salient as in the infrared; an average of a flat visible frame and the infrared
   gives 0.5; > 1 when the visible adds to it; < 0 when the target turns darker than its
   surroundings).

Frames whose infrared contrast is below ``min_contrast`` grey levels have no warm target to
speak of and are skipped; the sequence value is the mean over the remaining frames (NaN when
none is left). Higher is better.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["SalienceRegions", "salience_regions", "target_contrast", "target_salience"]


class SalienceRegions:
    """Hot-region and surroundings masks of one infrared frame, both (H, W) bool."""

    __slots__ = ("hot", "ring")

    def __init__(self, hot: np.ndarray, ring: np.ndarray) -> None:
        self.hot = hot
        self.ring = ring

    def contrast(self, img: np.ndarray) -> float:
        """``mean(img[hot]) − mean(img[ring])`` of a grey (H, W) image."""
        return float(img[self.hot].mean() - img[self.ring].mean())


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def salience_regions(infrared: np.ndarray, top_percent: float = 1.0, inner: int = 4,
                     outer: int = 16) -> SalienceRegions | None:
    """Masks of the hottest pixels and their surroundings; ``None`` if either is empty.

    Args:
        infrared: (H, W) grey infrared reference (any numeric dtype).
        top_percent: share of pixels, in percent, that make the hot region (ties included).
        inner: the ring's inner distance from the hot region, pixels.
        outer: the ring's outer distance from the hot region, pixels.
    """
    if infrared.ndim != 2:
        raise ValueError(f"infrared must be (H, W), got {infrared.shape}")
    if not 0.0 < top_percent < 100.0:
        raise ValueError(f"top_percent must be in (0, 100), got {top_percent}")
    if not 0 <= inner < outer:
        raise ValueError(f"need 0 <= inner < outer, got inner={inner}, outer={outer}")
    ir = infrared.astype(np.float64)
    hot = ir >= np.percentile(ir, 100.0 - top_percent)
    h8 = hot.astype(np.uint8)
    near = cv2.dilate(h8, _disk(inner)).astype(bool) if inner else hot
    far = cv2.dilate(h8, _disk(outer)).astype(bool)
    ring = far & ~near & ~hot
    if not hot.any() or not ring.any():
        return None
    return SalienceRegions(hot, ring)


def target_contrast(fused_grey: np.ndarray, infrared: np.ndarray, top_percent: float = 1.0,
                    inner: int = 4, outer: int = 16) -> tuple[float, float] | None:
    """``(C_F, C_IR)`` of one frame (grey levels), or ``None`` without usable regions.

    Args:
        fused_grey: (H, W) grey fused image.
        infrared: (H, W) grey infrared reference of the same size.
        top_percent: share of pixels, in percent, that make the hot region.
        inner: the ring's inner distance from the hot region, pixels.
        outer: the ring's outer distance from the hot region, pixels.
    """
    if fused_grey.shape != infrared.shape:
        raise ValueError(f"fused {fused_grey.shape} and infrared {infrared.shape} differ")
    regions = salience_regions(infrared, top_percent, inner, outer)
    if regions is None:
        return None
    return (regions.contrast(fused_grey.astype(np.float64)),
            regions.contrast(infrared.astype(np.float64)))


def target_salience(fused: np.ndarray, infrared: np.ndarray, top_percent: float = 1.0,
                    inner: int = 4, outer: int = 16, min_contrast: float = 10.0) -> float:
    """Mean over frames of ``C_F / C_IR`` (see the module docstring).

    NaN if no frame has an infrared target contrast of at least ``min_contrast``.

    Args:
        fused: (T, H, W, 3) uint8 RGB or (T, H, W) grey fused video.
        infrared: (T, H, W) grey infrared reference (or (T, H, W, 3), converted to grey).
        top_percent: share of pixels, in percent, that make the hot region.
        inner: the ring's inner distance from the hot region, pixels.
        outer: the ring's outer distance from the hot region, pixels.
        min_contrast: the least infrared target contrast (grey levels) for a frame to count.
    """
    from .fusion import luma

    if len(fused) != len(infrared):
        raise ValueError(f"frame counts differ: fused {len(fused)}, infrared {len(infrared)}")
    ratios = []
    for f, ir in zip(fused, infrared):
        c = target_contrast(luma(f), luma(ir), top_percent, inner, outer)
        if c is not None and c[1] >= min_contrast:
            ratios.append(c[0] / c[1])
    return float(np.mean(ratios)) if ratios else float("nan")
