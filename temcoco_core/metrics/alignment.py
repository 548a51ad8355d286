# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Live thermal ↔ RGB alignment score: notices a knocked camera mount within seconds.

Every ``every``-th frame pair (after registration, i.e. the thermal image already warped into
the RGB frame) both images are scaled down to ``max_side`` pixels and turned into structure
maps (:func:`temcoco_core.frames.calibration.structure_map`: normalised gradient magnitude,
comparable across modalities). The central part of the thermal map is correlated with the RGB
map at every shift within ``±search`` of the image size (one ``cv2.matchTemplate``):

* ``score`` = correlation at zero shift / best correlation over all shifts, in ``[0, 1]``:
  about 1 when the registration holds (the best match *is* the registered position), falling
  towards 0 as the images slide apart;
* ``offset_px`` = where the best match is, converted to RGB pixels: the size and direction of
  the misregistration (a shift; a rotation or a scale error lowers ``score`` and shows no clear
  offset);
* ``correlation`` = the zero-shift correlation itself (depends on the scene).

Readings whose best correlation is below ``min_structure`` (fog, night, a blank wall: nothing to
compare) are skipped, and the status says so instead of raising a false alarm. The status is the
median of the last ``window`` readings, so one odd frame (a passing object, motion blur) does
not flip it; with ``every=3`` and ``window=7`` a misregistration turns the status to WARN after
about a dozen frames (under half a second at 30 fps, about a second and a half at 10 fps).

Cost: two ``cv2.resize`` of the full frames, two small Sobel filters and one template match of
a ``max_side``-pixel image every ``every`` frames: a few milliseconds per reading (640×480
input, one busy CPU core), i.e. 1-3 ms per frame at the defaults.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
import math
import statistics
import threading

import cv2
import numpy as np

from temcoco_core.diagnostics import DiagnosticLevel, StatusValue
from temcoco_core.frames.calibration import structure_map, to_grey_unit

__all__ = ["AlignmentConfig", "AlignmentMonitor", "AlignmentReading", "measure_alignment",
           "stream_alignment"]


@dataclass
class AlignmentConfig:
    """Settings of the live alignment check.

    Attributes:
        every: evaluate every N-th frame pair (1: all).
        max_side: longer side of the downscaled pair, pixels.
        search: shifts searched, as a fraction of the image size each way.
        window: readings in the median that decides the status.
        warn_score: WARN when the median score is lower.
        min_structure: readings whose best correlation is lower are skipped (no information).
    """

    every: int = 3
    max_side: int = 128
    search: float = 0.12
    window: int = 7
    warn_score: float = 0.75
    min_structure: float = 0.18

    def __post_init__(self) -> None:
        if self.every < 1 or self.window < 1:
            raise ValueError("AlignmentConfig.every and window must be >= 1")
        if self.max_side < 32:
            raise ValueError(f"AlignmentConfig.max_side must be >= 32, got {self.max_side}")
        if not 0.0 < self.search < 0.4:
            raise ValueError(f"AlignmentConfig.search must be in (0, 0.4), got {self.search}")
        if not 0.0 < self.warn_score <= 1.0:
            raise ValueError(f"AlignmentConfig.warn_score must be in (0, 1], got "
                             f"{self.warn_score}")


@dataclass(frozen=True)
class AlignmentReading:
    """One evaluation.

    Attributes:
        score: zero-shift / best correlation, ``[0, 1]``; ``nan`` when skipped.
        offset_px: ``(dx, dy)`` of the best match in RGB pixels (the thermal content sits that
            far from where the registration puts it).
        correlation: zero-shift structure correlation.
        peak: best structure correlation over the searched shifts.
    """

    score: float
    offset_px: tuple[float, float]
    correlation: float
    peak: float

    @property
    def valid(self) -> bool:
        return not math.isnan(self.score)


def _small_size(shape: tuple[int, ...], max_side: int) -> tuple[int, int]:
    """``(w, h)`` of an image of ``shape`` scaled so that its longer side is ``max_side``."""
    h, w = shape[:2]
    f = min(1.0, max_side / max(h, w))
    return (max(8, round(w * f)), max(8, round(h * f))) if f < 1.0 else (w, h)


def _small(img: np.ndarray, max_side: int) -> np.ndarray:
    size = _small_size(img.shape, max_side)
    if size != (img.shape[1], img.shape[0]):
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return img


def _parabola_peak(line: np.ndarray, i: int) -> float:
    """Sub-pixel offset of the maximum at ``i`` of a 1-D profile (parabola through 3 points)."""
    if i <= 0 or i >= len(line) - 1:
        return 0.0
    a, b, c = float(line[i - 1]), float(line[i]), float(line[i + 1])
    den = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < 0 else 0.0


def small_valid_mask(valid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``valid`` (where the registered thermal image has content) at ``size`` ``(w, h)``.

    Eroded so that the edge of the thermal field of view does not count as structure.
    """
    m = cv2.resize(valid.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return cv2.erode(m, np.ones((5, 5), np.uint8)) > 0


def measure_alignment(visible: np.ndarray, infrared: np.ndarray,
                      cfg: AlignmentConfig | None = None,
                      valid: np.ndarray | None = None) -> AlignmentReading:
    """Alignment of one registered pair (see the module doc).

    Args:
        visible: ``(H, W, 3)`` RGB or ``(H, W)`` grey, any dtype.
        infrared: the thermal image registered into the visible frame (any size with the
            visible image's aspect ratio: it is compared at ``max_side``).
        cfg: settings.
        valid: ``(H', W')`` bool, where ``infrared`` has content (inside the thermal field
            of view; already at the downscaled size: used as is); ``None``: everywhere.
    """
    cfg = cfg or AlignmentConfig()
    vis = _small(np.asarray(visible), cfg.max_side)
    h, w = vis.shape[:2]
    ir = np.asarray(infrared)
    ir = cv2.resize(ir, (w, h), interpolation=cv2.INTER_AREA) if ir.shape[:2] != (h, w) else ir
    sv = structure_map(to_grey_unit(vis), sigma=0.8, local_sigma=6.0)
    st = structure_map(to_grey_unit(ir), sigma=0.8, local_sigma=6.0)
    if valid is not None:
        m = valid if valid.shape == (h, w) and valid.dtype == np.bool_ else small_valid_mask(
            valid, (w, h))
        sv[~m] = 0.0
        st[~m] = 0.0
    mx, my = max(1, round(cfg.search * w)), max(1, round(cfg.search * h))
    tmpl = np.ascontiguousarray(st[my:h - my, mx:w - mx])
    nan = float("nan")
    if tmpl.size < 64 or float(tmpl.std()) < 1e-6 or float(sv.std()) < 1e-6:
        return AlignmentReading(nan, (nan, nan), nan, nan)
    res = cv2.matchTemplate(sv, tmpl, cv2.TM_CCOEFF_NORMED)
    res = np.nan_to_num(res, nan=-1.0)
    _, peak, _, loc = cv2.minMaxLoc(res)
    zero = float(res[my, mx])
    scale = np.asarray(visible).shape[1] / w
    px, py = loc[0] + _parabola_peak(res[loc[1], :], loc[0]), loc[1] + _parabola_peak(
        res[:, loc[0]], loc[1])
    # the thermal content sits at +offset from the RGB content it shows
    offset = ((mx - px) * scale, (my - py) * scale)
    if peak < cfg.min_structure:
        return AlignmentReading(nan, (nan, nan), zero, float(peak))
    return AlignmentReading(float(np.clip(zero / peak, 0.0, 1.0)), offset, zero, float(peak))


class AlignmentMonitor:
    """Smoothed live alignment status of a registered stream.

    Feed every frame pair to :meth:`update`; it measures every ``cfg.every``-th pair and keeps
    the last ``cfg.window`` readings. Thread-safe: the node's worker thread updates it while
    its diagnostics timer reads the status.
    """

    def __init__(self, cfg: AlignmentConfig | None = None) -> None:
        self.cfg = cfg or AlignmentConfig()
        self._readings: deque[AlignmentReading] = deque(maxlen=self.cfg.window)
        self.frames = 0
        self.evaluated = 0
        self.skipped = 0
        self.warn_readings = 0
        self.last: AlignmentReading | None = None
        self._score_sum = 0.0
        self._scored = 0
        self._lock = threading.Lock()
        self._valid_src: np.ndarray | None = None
        self._valid_small: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the recent readings (a new stream, or the registration changed)."""
        with self._lock:
            self._readings.clear()
            self.last = None

    def update(self, visible: np.ndarray, infrared: np.ndarray,
               valid: np.ndarray | None = None) -> AlignmentReading | None:
        """Count one pair; measure it when it is due. Returns the reading or ``None``."""
        self.frames += 1
        if (self.frames - 1) % self.cfg.every:
            return None
        if valid is not None:
            if valid is not self._valid_src:
                size = _small_size(np.asarray(visible).shape, self.cfg.max_side)
                self._valid_src, self._valid_small = valid, small_valid_mask(valid, size)
            valid = self._valid_small
        reading = measure_alignment(visible, infrared, self.cfg, valid)
        with self._lock:
            self.evaluated += 1
            self.last = reading
            if not reading.valid:
                self.skipped += 1
                return reading
            self._readings.append(reading)
            self._score_sum += reading.score
            self._scored += 1
            if reading.score < self.cfg.warn_score:
                self.warn_readings += 1
        return reading

    def _recent(self) -> list[AlignmentReading]:
        with self._lock:
            return list(self._readings)

    # ------------------------------------------------------------------ smoothed state
    @property
    def score(self) -> float:
        """Median score of the recent valid readings (``nan`` before the first)."""
        vals = [r.score for r in self._recent()]
        return float(statistics.median(vals)) if vals else float("nan")

    @property
    def offset_px(self) -> tuple[float, float]:
        """Median offset of the recent valid readings, RGB pixels."""
        recent = self._recent()
        if not recent:
            return (float("nan"), float("nan"))
        return (float(statistics.median(r.offset_px[0] for r in recent)),
                float(statistics.median(r.offset_px[1] for r in recent)))

    @property
    def level(self) -> DiagnosticLevel:
        """WARN when the median score is below ``warn_score``.

        OK otherwise (also while there is nothing to judge yet: the status message says so).
        """
        s = self.score
        if not math.isnan(s) and s < self.cfg.warn_score:
            return DiagnosticLevel.WARN
        return DiagnosticLevel.OK

    def values(self) -> dict[str, float]:
        """The status values, also used by the replay/eval summaries."""
        dx, dy = self.offset_px
        last = self.last
        return {"alignment_score": self.score, "alignment_offset_x_px": dx,
                "alignment_offset_y_px": dy,
                "alignment_correlation": last.correlation if last else float("nan"),
                "alignment_readings": float(self.evaluated),
                "alignment_skipped": float(self.skipped)}

    def summary(self) -> dict[str, float]:
        """Over the whole run: mean score, share of readings below ``warn_score``.

        Last smoothed state.
        """
        n = self._scored
        return {"alignment_score_mean": self._score_sum / n if n else float("nan"),
                "alignment_warn_share": self.warn_readings / n if n else float("nan"),
                "alignment_score_last": self.score,
                "alignment_readings": float(self.evaluated),
                "alignment_skipped": float(self.skipped)}

    def status(self, name: str = "temcoco_fusion", hardware_id: str = "") -> StatusValue:
        """``<name>: registration`` diagnostic status."""
        vals = {k: ("nan" if math.isnan(v) else f"{v:.4g}") for k, v in self.values().items()}
        s = self.score
        if math.isnan(s):
            msg = ("no alignment reading yet" if not self.evaluated else
                   "too little structure in view to judge the alignment")
        elif self.level == DiagnosticLevel.WARN:
            dx, dy = self.offset_px
            msg = (f"thermal and RGB misregistered (score {s:.2f} < {self.cfg.warn_score}, "
                   f"best match {dx:+.0f}, {dy:+.0f} px away): check the camera mounts and "
                   "re-run `temcoco calibrate`")
        else:
            msg = f"registered (score {s:.2f})"
        return StatusValue(self.level, f"{name}: registration", msg, hardware_id, vals)


def stream_alignment(visible: Iterable[np.ndarray], infrared: Iterable[np.ndarray],
                     cfg: AlignmentConfig | None = None) -> dict[str, float]:
    """Alignment summary of a whole registered sequence.

    :meth:`AlignmentMonitor.summary` of a whole registered sequence (``temcoco eval``'s input
    check): ``(T, H, W, 3)`` visible and ``(T, H, W)`` infrared frames, pairwise.
    """
    mon = AlignmentMonitor(cfg)
    for v, i in zip(visible, infrared, strict=False):
        mon.update(v, i)
    return mon.summary()
