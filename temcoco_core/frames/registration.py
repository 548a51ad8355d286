# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Registration of the thermal image into the RGB camera's frame by a fixed homography.

Thermal and RGB cameras on a robot sit side by side; for scenes far away compared with the
baseline a single 3×3 homography ``H`` maps thermal pixel coordinates to RGB pixel coordinates:

    [x_rgb, y_rgb, 1]^T  ~  H · [x_thermal, y_thermal, 1]^T

(pixel centres at integer coordinates, as OpenCV). ``H`` is always given in the *full-resolution*
pixels of both cameras, whatever their sizes and aspect ratios; ``temcoco calibrate``
(:mod:`temcoco_core.frames.calibration`) estimates it from recorded frame pairs.

The pipeline needs the thermal image at the model's size, not at the RGB camera's: with an
``out_size`` the warp goes straight there (``H`` composed with the RGB → output scaling), one
resampling instead of a full-resolution warp followed by a resize. Warping uses precomputed
fixed-point remap tables, so the per-frame cost is one ``cv2.remap`` at the output size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from temcoco_core.frames.calibration import scale_matrix
from temcoco_core.frames.preprocess import FrameError

__all__ = ["RegistrationConfig", "ThermalRegistration", "parse_homography"]

_BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}


def parse_homography(values: Sequence[float] | Sequence[Sequence[float]] | np.ndarray
                     ) -> np.ndarray:
    """A 3×3 homography from a nested list, a flat list of 9 (ROS parameters) or an array.

    Returns:
        ``(3, 3)`` float64, scaled so that ``H[2, 2] == 1``.

    Raises:
        ValueError: not 9 finite numbers, ``H[2, 2] == 0`` or singular.
    """
    h = np.asarray(values, dtype=np.float64)
    if h.size != 9:
        raise ValueError(f"homography needs 9 values (3x3, row-major), got {h.size}")
    h = h.reshape(3, 3)
    if not np.isfinite(h).all():
        raise ValueError("homography contains NaN or Inf")
    if abs(h[2, 2]) < 1e-12:
        raise ValueError("homography H[2][2] must be non-zero")
    h = h / h[2, 2]
    if abs(np.linalg.det(h)) < 1e-12:
        raise ValueError(f"homography is singular: {h.tolist()}")
    return h


@dataclass
class RegistrationConfig:
    """Thermal → RGB registration.

    Attributes:
        homography: 3×3 (nested or flat row-major list of 9) mapping thermal pixels to RGB
            pixels; ``None`` disables registration (the images must then be aligned already).
        border: ``"constant"`` (black outside the thermal field of view) or ``"replicate"``.
    """

    homography: Sequence[float] | Sequence[Sequence[float]] | None = None
    border: str = "constant"

    def __post_init__(self) -> None:
        if self.border not in _BORDERS:
            raise ValueError(f"RegistrationConfig.border must be one of {tuple(_BORDERS)}, "
                             f"got {self.border!r}")
        if self.homography is not None:
            parse_homography(self.homography)

    @property
    def enabled(self) -> bool:
        return self.homography is not None


class ThermalRegistration:
    """Warps thermal frames into the RGB frame; caches the remap tables per size pair."""

    def __init__(self, cfg: RegistrationConfig | None = None) -> None:
        self.cfg = cfg or RegistrationConfig()
        self.homography = (parse_homography(self.cfg.homography)
                           if self.cfg.homography is not None else None)
        self._maps: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._valid: dict[tuple[int, ...], np.ndarray] = {}

    @property
    def enabled(self) -> bool:
        return self.homography is not None

    def output_homography(self, rgb_size: tuple[int, int],
                          out_size: tuple[int, int] | None = None) -> np.ndarray:
        """``H`` for an output of ``out_size`` covering the RGB image.

        ``H`` for an output of ``out_size`` ``(W, H)`` covering the RGB image of ``rgb_size``
        (scaled as ``cv2.resize`` scales, pixel centres kept).
        """
        assert self.homography is not None
        if out_size is None or tuple(out_size) == tuple(rgb_size):
            return self.homography
        return scale_matrix(out_size[0] / rgb_size[0], out_size[1] / rgb_size[1]) @ self.homography

    def _tables(self, src_wh: tuple[int, int], rgb_wh: tuple[int, int],
                dst_wh: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        key = (*src_wh, *rgb_wh, *dst_wh)
        if key not in self._maps:
            w, h = dst_wh
            inv = np.linalg.inv(self.output_homography(rgb_wh, dst_wh))
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
            pts = np.stack([xs, ys, np.ones_like(xs)], axis=-1) @ inv.T
            with np.errstate(divide="ignore", invalid="ignore"):
                mx = (pts[..., 0] / pts[..., 2]).astype(np.float32)
                my = (pts[..., 1] / pts[..., 2]).astype(np.float32)
            bad = ~np.isfinite(mx) | ~np.isfinite(my) | (pts[..., 2] <= 0)
            mx[bad] = -1e4
            my[bad] = -1e4
            self._maps[key] = cv2.convertMaps(mx, my, cv2.CV_16SC2)
        return self._maps[key]

    def __call__(self, thermal: np.ndarray, rgb_size: tuple[int, int],
                 out_size: tuple[int, int] | None = None) -> np.ndarray:
        """Warp ``thermal`` ``(h, w[, 1])`` into the RGB frame.

        Args:
            thermal: the thermal frame at its own resolution.
            rgb_size: ``(W, H)`` of the RGB image the homography maps into.
            out_size: ``(W, H)`` of the result, an image covering the whole RGB frame at
                another resolution (the model's); ``None``: ``rgb_size``.

        Without a homography the frame is returned unchanged (its size must then already be
        the RGB size, which :func:`~temcoco_core.frames.preprocess.to_model_tensor` checks).

        Returns:
            ``(H, W)`` array of the input dtype (uint8, uint16 or float32).
        """
        thermal = np.asarray(thermal)
        if thermal.ndim == 3 and thermal.shape[2] == 1:
            thermal = thermal[:, :, 0]
        if thermal.ndim != 2:
            raise FrameError(f"thermal frame must be (H, W) grey, got shape {thermal.shape}")
        if self.homography is None:
            return thermal
        src = np.ascontiguousarray(thermal)
        if src.dtype not in (np.uint8, np.uint16, np.float32):
            src = src.astype(np.float32)
        rgb_wh = (int(rgb_size[0]), int(rgb_size[1]))
        dst_wh = rgb_wh if out_size is None else (int(out_size[0]), int(out_size[1]))
        m1, m2 = self._tables((src.shape[1], src.shape[0]), rgb_wh, dst_wh)
        return cv2.remap(src, m1, m2, interpolation=cv2.INTER_LINEAR,
                         borderMode=_BORDERS[self.cfg.border], borderValue=0)

    def valid_mask(self, thermal_size: tuple[int, int], rgb_size: tuple[int, int],
                   out_size: tuple[int, int] | None = None) -> np.ndarray | None:
        """Where the warped thermal image has content.

        ``(H, W)`` bool: where the warped thermal image has content (inside the thermal field of
        view); ``None`` without a homography (everywhere).
        """
        if self.homography is None:
            return None
        dst = tuple(rgb_size) if out_size is None else tuple(out_size)
        key = (*thermal_size, *rgb_size, *dst)
        if key not in self._valid:
            ones = np.full((thermal_size[1], thermal_size[0]), 255, np.uint8)
            m1, m2 = self._tables(tuple(thermal_size), tuple(rgb_size), dst)
            self._valid[key] = cv2.remap(ones, m1, m2, interpolation=cv2.INTER_NEAREST,
                                         borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
        return self._valid[key]
