# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Column/row fixed-pattern noise removal for uncooled thermal cameras.

A microbolometer reads its pixels out through one amplifier per column (or row), and the
amplifiers' offsets drift apart between flat-field corrections: the image carries vertical
(or horizontal) stripes that stay put from frame to frame. The fusion network sees them as
structure (they are the strongest "edges" of a dim thermal frame) and has to spend capacity on
removing them; the shared val protocol's infrared has exactly this noise (column offsets whose
frame-to-frame correlation is 0.99).

The estimate (per column ``c``, of a normalised grey image ``x`` in ``[0, 1]``):

1. residual ``r = x − n`` where ``n`` is the mean of the ``2k`` horizontal neighbours of each
   pixel (the pixel itself excluded, so a stripe is not diluted into its own reference);
2. frame estimate ``m_c = median over rows of r[:, c]``: robust to objects, which change the
   residual in some rows only (a vertical edge that spans more than half the frame height would
   be taken for a stripe; the temporal average below lets a moving camera wash it out);
3. the estimate is refined on the image already corrected: ``o_c ← o_c + α·m_c(x − o)``, with
   ``α = 1 − exp(−dt / smoothing_s)`` (stamp-aware, as the thermal gain policy). A frame's
   ``m_c`` also contains the neighbours' own stripes (a mean of ``2k`` of them); measured on
   the corrected image they shrink pass by pass, so the offsets converge to the pattern itself,
   and averaging over a second of frames takes the remaining scene content and noise out of
   it. The first frame (after a reset) is refined ``first_passes`` times with ``α = 1``;
4. ``x − o`` (with ``|o_c|`` at most ``max_offset``), clipped to ``[0, 1]``.

Frames with fewer than 16 sampled rows (columns, for row stripes) are left alone: a median of so
few values cannot tell a stripe from the scene.

Rows are handled the same way with the axes swapped. :class:`StripeCorrector` holds the state;
the thermal normaliser owns one and resets it with the gain state (time jump, new stream) and
whenever the frame size changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from temcoco_core.frames.timeline import smoothing_weight

__all__ = ["STRIPE_MODES", "StripeConfig", "StripeCorrector"]

STRIPE_MODES = ("off", "columns", "rows", "both")

_MIN_LINES = 16  # rows (columns) a median needs before a column (row) offset is estimated


@dataclass
class StripeConfig:
    """Fixed-pattern (stripe) noise removal.

    Attributes:
        mode: ``"columns"`` (default: vertical stripes, the common microbolometer pattern),
            ``"rows"``, ``"both"`` or ``"off"``.
        neighbours: ``k``, the neighbours on each side that make a pixel's reference.
        smoothing_s: time constant of the offsets' moving average, seconds; 0: every frame on
            its own.
        max_offset: largest offset removed, in normalised units (0.1 = 25.5 grey levels); a
            larger estimate is scene content, not a stripe.
        row_stride: rows (columns, for row stripes) sampled for the median; 1 uses every one,
            larger strides bound the cost on big frames.
        first_passes: refinement passes on the first frame after a reset (later frames: one).
    """

    mode: str = "columns"
    neighbours: int = 4
    smoothing_s: float = 1.0
    max_offset: float = 0.1
    row_stride: int = 1
    first_passes: int = 3

    def __post_init__(self) -> None:
        if self.mode not in STRIPE_MODES:
            raise ValueError(f"StripeConfig.mode must be one of {STRIPE_MODES}, got "
                             f"{self.mode!r}")
        if self.neighbours < 1 or self.row_stride < 1 or self.first_passes < 1:
            raise ValueError(f"StripeConfig: neighbours, row_stride and first_passes must be "
                             f">= 1, got {self.neighbours}, {self.row_stride} and "
                             f"{self.first_passes}")
        if self.smoothing_s < 0 or not self.max_offset >= 0:
            raise ValueError("StripeConfig: smoothing_s >= 0 and max_offset >= 0 are required")


class StripeCorrector:
    """Stateful stripe removal, ``(H, W)`` float32 in ``[0, 1]`` → the same, corrected.

    Args:
        cfg: the settings; ``mode="off"`` makes :meth:`__call__` return its input.
        nominal_fps: frame rate assumed when stamps are missing or not increasing (the thermal
            normaliser passes its own).
    """

    def __init__(self, cfg: StripeConfig | None = None, nominal_fps: float = 30.0) -> None:
        if not nominal_fps > 0:
            raise ValueError(f"nominal_fps must be > 0, got {nominal_fps}")
        self.cfg = cfg or StripeConfig()
        self.nominal_fps = nominal_fps
        self._columns: np.ndarray | None = None  # (W,) offsets
        self._rows: np.ndarray | None = None     # (H,) offsets
        self._shape: tuple[int, int] | None = None
        self._stamp_ns: int | None = None

    @property
    def enabled(self) -> bool:
        """Whether frames are corrected at all."""
        return self.cfg.mode != "off"

    @property
    def column_offsets(self) -> np.ndarray | None:
        """The current ``(W,)`` column offsets (normalised units), ``None`` before a frame."""
        return None if self._columns is None else self._columns.copy()

    @property
    def amplitude(self) -> float:
        """RMS of the current offsets (normalised units; 0 before a frame)."""
        parts = [o for o in (self._columns, self._rows) if o is not None]
        return float(np.sqrt(np.mean(np.concatenate(parts) ** 2))) if parts else 0.0

    def reset(self) -> None:
        """Forget the estimated pattern (time jumped, stream restarted)."""
        self._columns = self._rows = None
        self._shape = None
        self._stamp_ns = None

    def __call__(self, grey: np.ndarray, stamp_ns: int | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        """Remove the stripes of one frame.

        Args:
            grey: ``(H, W)`` float32 image in ``[0, 1]`` (the thermal normaliser's output).
            stamp_ns: header stamp, for the stamp-aware moving average.
            out: where to write the result (may be ``grey`` itself); ``None``: a new array.

        Returns:
            ``(H, W)`` float32 in ``[0, 1]``.
        """
        if grey.ndim != 2:
            raise ValueError(f"stripe correction needs an (H, W) image, got {grey.shape}")
        if not self.enabled:
            if out is None:
                return grey
            np.copyto(out, grey)
            return out
        x = np.asarray(grey, np.float32)
        if self._shape != x.shape:
            self.reset()
            self._shape = x.shape
        first = self._columns is None and self._rows is None
        alpha = np.float32(1.0 if first else smoothing_weight(
            stamp_ns, self._stamp_ns, self.cfg.smoothing_s, self.nominal_fps))
        if stamp_ns is not None:
            self._stamp_ns = stamp_ns if self._stamp_ns is None else max(self._stamp_ns,
                                                                         stamp_ns)
        h, w = x.shape
        cols = self._columns if self._columns is not None else np.zeros(w, np.float32)
        rows = self._rows if self._rows is not None else np.zeros(h, np.float32)
        fix_cols = self.cfg.mode in ("columns", "both")
        fix_rows = self.cfg.mode in ("rows", "both")
        for _ in range(self.cfg.first_passes if first else 1):
            if fix_cols:
                residual = x - cols[None, :] - rows[:, None]
                cols = self._bound(cols + alpha * self._estimate(residual))
            if fix_rows:
                residual = x - cols[None, :] - rows[:, None]
                rows = self._bound(rows + alpha * self._estimate(residual.T))
        self._columns = cols if fix_cols else None
        self._rows = rows if fix_rows else None
        if out is None:
            out = np.empty_like(x)
        if self._columns is not None:
            np.subtract(x, self._columns[None, :], out=out)
        else:
            np.copyto(out, x)
        if self._rows is not None:
            out -= self._rows[:, None]
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def _bound(self, offsets: np.ndarray) -> np.ndarray:
        return np.clip(offsets, -self.cfg.max_offset, self.cfg.max_offset).astype(np.float32)

    def _estimate(self, x: np.ndarray) -> np.ndarray:
        """Per-column offsets of one ``(H, W)`` frame: median over rows of ``x − neighbours``."""
        k = self.cfg.neighbours
        sample = x[::self.cfg.row_stride]
        if sample.shape[0] < _MIN_LINES or sample.shape[1] < 2:
            # too few rows for a median to tell a stripe from the scene: leave it alone
            return np.zeros(x.shape[1], np.float32)
        width = 2 * k + 1
        box = cv2.blur(np.ascontiguousarray(sample), (width, 1),
                       borderType=cv2.BORDER_REFLECT_101)
        # mean of the 2k neighbours, the pixel itself left out
        neighbours = (box * np.float32(width) - sample) / np.float32(width - 1)
        est = np.median(sample - neighbours, axis=0).astype(np.float32)
        est -= np.float32(est.mean())  # stripes carry no overall brightness
        return est
