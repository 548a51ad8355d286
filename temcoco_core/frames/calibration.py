# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Estimate the thermal → RGB registration from frame pairs (``temcoco calibrate``).

The estimate is the 3×3 matrix ``H`` that :mod:`temcoco_core.frames.registration` applies:
it maps *thermal pixel* coordinates to *RGB pixel* coordinates (pixel centres at integer
coordinates, as OpenCV), whatever the two resolutions and aspect ratios are.

Thermal and visible intensities are unrelated (a warm wall is bright in one, dark in the other),
so nothing here compares intensities. Both images become *structure maps*: the gradient magnitude
of the robustly normalised grey image, divided by its local average so that a few hot objects
do not outweigh the rest of the scene. On those maps:

1. **global search** (:func:`global_search`): thermal structure maps scaled to a range of
   resolution ratios (default ½× to 2× the ratio at which the thermal image fills the RGB
   image, which covers a 3× resolution difference and different fields of view) are correlated
   (normalised cross-correlation, every shift at once) with the RGB maps of a few frames; the
   summed correlation peaks give candidate scale + shift (+ rotation) starts;
2. **coarse-to-fine ECC** per frame pair (:func:`refine_pair`): OpenCV's enhanced correlation
   coefficient maximisation (``cv2.findTransformECC``) on a pyramid whose finest level samples
   both images at the same density, affine at the coarsest level, the requested model above;
3. **robust consensus** (:func:`consensus`): every frame's estimate maps a grid of thermal
   points into the RGB image; frames whose points lie far from the per-point median (moving
   objects, parallax, blank frames, non-convergence) are rejected, and the model is fitted by
   least squares to the points of the remaining frames.

Models: ``homography`` (8 DOF), ``affine`` (6), ``similarity`` (rotation, isotropic scale and
shift: 4) and ``translation`` (isotropic scale and shift, no rotation: 3; the scale is needed
because the two cameras' resolutions differ). Per-frame estimates are affine for the two
smallest models and are projected onto the model in the consensus fit.

The result carries a quality *score* (mean structure correlation of the registered pairs, the
same number before registration for comparison) and the *residual*: the RMS distance, in RGB
pixels, between the grid points of the individual inlier frames and of the consensus (its
standard error is ``residual_px / sqrt(frames_used)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
import logging
import math

import cv2
import numpy as np

__all__ = [
    "MODELS",
    "CalibrationConfig",
    "CalibrationError",
    "CalibrationResult",
    "FrameEstimate",
    "GrayPair",
    "consensus",
    "edge_overlay",
    "estimate_registration",
    "fit_model",
    "global_search",
    "prepare_pair",
    "refine_pair",
    "scale_matrix",
    "structure_correlation",
    "structure_map",
    "to_grey_unit",
]

log = logging.getLogger(__name__)

MODELS = ("homography", "affine", "similarity", "translation")


class CalibrationError(ValueError):
    """No registration could be estimated (no usable pairs, no structure, no convergence)."""


# ---------------------------------------------------------------------------------- geometry
def scale_matrix(sx: float, sy: float | None = None) -> np.ndarray:
    """The ``(3, 3)`` pixel map of a resize by ``(sx, sy)``.

    ``(3, 3)`` map from a pixel's coordinates in an image to its coordinates in the same image
    resized by ``(sx, sy)`` (``cv2.resize`` pixel-centre convention: ``x' = sx · (x + ½) − ½``).
    """
    sy = sx if sy is None else sy
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def _normalise(h: np.ndarray) -> np.ndarray:
    return h / h[2, 2]


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map ``(N, 2)`` points by the ``(3, 3)`` matrix ``h``."""
    q = np.c_[pts, np.ones(len(pts))] @ h.T
    return q[:, :2] / q[:, 2:3]


def _grid(size: tuple[int, int], n: int = 5) -> np.ndarray:
    """``(n·n, 2)`` points spread over an image of ``size`` ``(W, H)``, corners included."""
    w, h = size
    xs, ys = np.meshgrid(np.linspace(0, w - 1, n), np.linspace(0, h - 1, n))
    return np.c_[xs.ravel(), ys.ravel()]


def _corners(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return np.array([[0.0, 0.0], [w - 1.0, 0.0], [w - 1.0, h - 1.0], [0.0, h - 1.0]])


def _local_scale(h: np.ndarray, size: tuple[int, int]) -> float:
    """RGB pixels per thermal pixel at the thermal image centre (√|det J|)."""
    c = np.array([[(size[0] - 1) / 2, (size[1] - 1) / 2]])
    p = _apply(h, np.r_[c, c + [1.0, 0.0], c + [0.0, 1.0]])
    jac = np.c_[p[1] - p[0], p[2] - p[0]]
    return float(math.sqrt(max(abs(np.linalg.det(jac)), 1e-12)))


def fit_model(src: np.ndarray, dst: np.ndarray, model: str) -> np.ndarray:
    """Least-squares ``(3, 3)`` ``model`` mapping ``src`` ``(N, 2)`` points onto ``dst``.

    ``translation`` is isotropic scale + shift (``x' = s·x + tx``), ``similarity`` adds a
    rotation, ``affine`` and ``homography`` are the usual ones.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    n = len(src)
    x, y = src[:, 0], src[:, 1]
    one, zero = np.ones(n), np.zeros(n)
    b = np.r_[dst[:, 0], dst[:, 1]]
    if model == "homography":
        h, _ = cv2.findHomography(src, dst, 0)
        if h is None:
            raise CalibrationError("homography fit failed (degenerate points)")
        return _normalise(h)
    if model == "affine":
        a = np.r_[np.c_[x, y, one, zero, zero, zero], np.c_[zero, zero, zero, x, y, one]]
        p = np.linalg.lstsq(a, b, rcond=None)[0]
        return np.array([[p[0], p[1], p[2]], [p[3], p[4], p[5]], [0.0, 0.0, 1.0]])
    if model == "similarity":  # x' = a x − b y + tx, y' = b x + a y + ty
        a = np.r_[np.c_[x, -y, one, zero], np.c_[y, x, zero, one]]
        p = np.linalg.lstsq(a, b, rcond=None)[0]
        return np.array([[p[0], -p[1], p[2]], [p[1], p[0], p[3]], [0.0, 0.0, 1.0]])
    a = np.r_[np.c_[x, one, zero], np.c_[y, zero, one]]  # translation: x' = s x + tx
    p = np.linalg.lstsq(a, b, rcond=None)[0]
    return np.array([[p[0], 0.0, p[1]], [0.0, p[0], p[2]], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------------------- images
def to_grey_unit(img: np.ndarray) -> np.ndarray:
    """Any frame → ``(H, W)`` float32 grey, its 1st/99th percentiles stretched to 0/1 (clipped).

    The frame may be ``(H, W)`` grey or ``(H, W, 3)`` RGB, uint8, uint16 or float; after the
    stretch, gain, offset and bit depth no longer matter.
    """
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3:
        if a.shape[2] != 3:
            raise ValueError(f"expected a grey or 3-channel image, got shape {a.shape}")
        a = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    elif a.ndim != 2:
        raise ValueError(f"expected a grey or 3-channel image, got shape {a.shape}")
    a = a.astype(np.float32, copy=False)
    finite = np.isfinite(a)
    if not finite.all():
        a = np.where(finite, a, 0.0).astype(np.float32)
    step = max(1, int(math.sqrt(a.size / 20000)))
    flat = a[::step, ::step].ravel()
    k = (int(0.01 * (flat.size - 1)), int(0.99 * (flat.size - 1)))
    part = np.partition(flat, k)  # the 1st/99th percentiles, without np.percentile's overhead
    lo, hi = float(part[k[0]]), float(part[k[1]])
    if hi - lo < 1e-6:
        return np.zeros(a.shape, np.float32)
    out = (a - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


def structure_map(grey: np.ndarray, sigma: float = 1.0, local_sigma: float = 8.0) -> np.ndarray:
    """Intensity-invariant structure of a ``(H, W)`` unit grey image.

    The gradient magnitude (Sobel after a Gaussian of ``sigma`` px) divided by its own local mean
    (Gaussian of ``local_sigma`` px), so that faint texture and strong edges weigh alike.

    Returns:
        ``(H, W)`` float32, about 1 on average where there is structure, 0 where flat.
    """
    g = cv2.GaussianBlur(grey.astype(np.float32, copy=False), (0, 0), sigma)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = cv2.magnitude(gx, gy)
    floor = np.float32(0.3 * float(mag.mean()) + 1e-4)
    local = cv2.GaussianBlur(mag, (0, 0), local_sigma) + floor
    return mag / local


def _resize(img: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Resize by ``(sx, sy)`` (to the rounded size; area averaging down, linear up)."""
    h, w = img.shape[:2]
    size = (max(8, round(w * scale[0])), max(8, round(h * scale[1])))
    if size == (w, h):
        return img
    interp = cv2.INTER_AREA if size[0] < w else cv2.INTER_CUBIC
    return cv2.resize(img, size, interpolation=interp)


def _scaled(img: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Image resized by about ``s`` and the exact ``(3, 3)`` map into it."""
    out = _resize(img, (s, s))
    h, w = img.shape[:2]
    return out, scale_matrix(out.shape[1] / w, out.shape[0] / h)


def structure_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation of two equally sized maps (over ``mask`` when given)."""
    if mask is not None:
        a, b = a[mask], b[mask]
    if a.size < 16:
        return float("nan")
    a = a.astype(np.float64) - a.mean()
    b = b.astype(np.float64) - b.mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else float("nan")


@dataclass
class GrayPair:
    """One frame pair ready for calibration: unit grey images at their native sizes.

    Attributes:
        thermal: ``(h, w)`` float32 in ``[0, 1]``.
        rgb: ``(H, W)`` float32 in ``[0, 1]`` (grey of the RGB frame).
    """

    thermal: np.ndarray
    rgb: np.ndarray

    @property
    def thermal_size(self) -> tuple[int, int]:
        return self.thermal.shape[1], self.thermal.shape[0]

    @property
    def rgb_size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def prepare_pair(thermal: np.ndarray, rgb: np.ndarray) -> GrayPair:
    """A decoded (thermal, RGB) pair → :class:`GrayPair` (see :func:`to_grey_unit`)."""
    return GrayPair(to_grey_unit(thermal), to_grey_unit(rgb))


# ---------------------------------------------------------------------------------- config
@dataclass
class CalibrationConfig:
    """How the registration is estimated.

    Attributes:
        model: ``homography``, ``affine``, ``similarity`` or ``translation`` (see module doc).
        initial: ``(3, 3)`` thermal → RGB map known so far (e.g. the current config): the
            "before" of the score, the start when ``search`` is false, and the last start
            tried after the search's candidates otherwise.
        search: run the global scale/shift search.
        scale_range: searched resolution ratios, relative to the ratio at which the thermal
            image just fills the RGB image (``min(W/w, H/h)``).
        scale_steps: number of ratios searched (log-spaced).
        rotations_deg: rotations searched with every ratio.
        search_side: longer side of the RGB image during the search, pixels.
        search_frames: frame pairs whose correlations are summed in the search.
        candidates: distinct search peaks kept; the next one is tried when the result from
            the previous one is doubtful (see :attr:`CalibrationResult.warnings`).
        max_side: longer side of the thermal image at the finest ECC level, where it is
            resampled to the RGB density (the finest level runs at the RGB resolution while
            the thermal image resampled to it is at most this long); smaller is faster and
            less precise.
        edge_sigma, norm_sigma: the ECC levels' :func:`structure_map` scales (pixels of the
            level): fine edges locate better across modalities than coarse blobs, whose
            thermal and visible positions differ (heat spreads, emissivity and reflectance
            boundaries differ), which biases a coarser map by a pixel or more.
        levels: pyramid levels (each halves the size).
        iterations: ECC iterations at the finest level (coarser levels use half).
        min_frame_score: frames whose final structure correlation is lower are rejected.
        outlier_px: frames whose grid points lie further than this (RMS, RGB pixels, at
            least; 3 robust sigmas when larger) from the median are rejected.
        grid: the consensus uses ``grid × grid`` points over the thermal image.
    """

    model: str = "homography"
    initial: np.ndarray | Sequence[float] | None = None
    search: bool = True
    scale_range: tuple[float, float] = (0.5, 2.0)
    scale_steps: int = 13
    rotations_deg: tuple[float, ...] = (-4.0, 0.0, 4.0)
    search_side: int = 192
    search_frames: int = 6
    candidates: int = 3
    max_side: int = 640
    edge_sigma: float = 0.7
    norm_sigma: float = 2.5
    levels: int = 3
    iterations: int = 80
    min_frame_score: float = 0.05
    outlier_px: float = 2.0
    grid: int = 5

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"CalibrationConfig.model must be one of {MODELS}, got "
                             f"{self.model!r}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"CalibrationConfig.scale_range must be 0 < low <= high, got "
                             f"{self.scale_range}")
        if self.levels < 1 or self.iterations < 1 or self.scale_steps < 1:
            raise ValueError("CalibrationConfig.levels, iterations and scale_steps must be >= 1")
        if self.initial is not None:
            from temcoco_core.frames.registration import parse_homography

            self.initial = parse_homography(self.initial)
        elif not self.search:
            raise ValueError("CalibrationConfig: without search an initial homography is needed")


# ---------------------------------------------------------------------------------- search
@dataclass
class Candidate:
    """A start for the refinement: homography and its search correlation."""

    homography: np.ndarray
    score: float


def _fill_scale(thermal_size: tuple[int, int], rgb_size: tuple[int, int]) -> float:
    return min(rgb_size[0] / thermal_size[0], rgb_size[1] / thermal_size[1])


def default_initial(thermal_size: tuple[int, int], rgb_size: tuple[int, int]) -> np.ndarray:
    """The centred fit of the thermal image into the RGB image (same aspect ratio kept).

    The guess for two boresighted cameras, and the "before" of a calibration without a prior.
    """
    s = _fill_scale(thermal_size, rgb_size)
    tw, th = thermal_size
    rw, rh = rgb_size
    return np.array([[s, 0.0, (rw - 1) / 2 - s * (tw - 1) / 2],
                     [0.0, s, (rh - 1) / 2 - s * (th - 1) / 2], [0.0, 0.0, 1.0]])


def _rotation_about(angle_deg: float, centre: tuple[float, float]) -> np.ndarray:
    r = np.eye(3)
    r[:2] = cv2.getRotationMatrix2D(centre, angle_deg, 1.0)
    return r


def global_search(pairs: Sequence[GrayPair], cfg: CalibrationConfig) -> list[Candidate]:
    """Candidate starts: scale (resolution ratio).

    Rotation and shift of the thermal image in the RGB image, found by normalised cross-correlation
    of structure maps summed over ``pairs``; best first.

    Every scale × rotation correlates the central part of the transformed thermal structure
    map (at most 60 % of the RGB size, so the thermal centre may sit anywhere within ±20 % of
    the RGB centre) against the RGB structure map at every shift.
    """
    if not pairs:
        raise CalibrationError("no frame pairs to search")
    tsize, rsize = pairs[0].thermal_size, pairs[0].rgb_size
    a_r = min(1.0, cfg.search_side / max(rsize))
    rgb_maps = []
    rgb_to_small = None
    for p in pairs:
        small, rgb_to_small = _scaled(p.rgb, a_r)
        rgb_maps.append(structure_map(small))
    assert rgb_to_small is not None
    rh, rw = rgb_maps[0].shape
    s_fill = _fill_scale(tsize, rsize)
    th_maps: dict[float, list[tuple[np.ndarray, np.ndarray]]] = {}  # per scale, all rotations

    def thermal_maps(s: float) -> list[tuple[np.ndarray, np.ndarray]]:
        if s not in th_maps:
            th_maps[s] = [(structure_map(small), to_small)
                          for small, to_small in (_scaled(p.thermal, s) for p in pairs)]
        return th_maps[s]

    def correlate(ratio: float, angle: float) -> tuple[float, np.ndarray] | None:
        s = s_fill * ratio * a_r  # thermal px → small RGB px
        acc = None
        crop_to_th = None
        for (tm, th_to_small), rgb_map in zip(thermal_maps(s), rgb_maps, strict=True):
            ch, cw = tm.shape
            rot = _rotation_about(angle, ((cw - 1) / 2, (ch - 1) / 2))
            if angle:
                tm = cv2.warpAffine(tm, rot[:2], (cw, ch), flags=cv2.INTER_LINEAR)
            # central crop: at most 60 % of the RGB size, and inside the rotated content
            inner = 1.0 - 0.04 * abs(angle)
            tw_c = int(min(cw * inner, 0.6 * rw))
            th_c = int(min(ch * inner, 0.6 * rh))
            if tw_c < 16 or th_c < 12:
                return None
            x0, y0 = (cw - tw_c) // 2, (ch - th_c) // 2
            tmpl = np.ascontiguousarray(tm[y0:y0 + th_c, x0:x0 + tw_c])
            if float(tmpl.std()) < 1e-6:
                continue
            res = cv2.matchTemplate(rgb_map, tmpl, cv2.TM_CCOEFF_NORMED)
            acc = res if acc is None else acc + res
            shift = np.eye(3)
            shift[:2, 2] = (-x0, -y0)
            crop_to_th = shift @ rot @ th_to_small  # thermal px → template px
        if acc is None or crop_to_th is None:
            return None
        acc = np.nan_to_num(acc / len(pairs), nan=-1.0)
        _, peak, _, loc = cv2.minMaxLoc(acc)
        move = np.eye(3)
        move[:2, 2] = loc
        return float(peak), _normalise(np.linalg.inv(rgb_to_small) @ move @ crop_to_th)

    lo, hi = cfg.scale_range
    ratios = np.geomspace(lo, hi, cfg.scale_steps) if cfg.scale_steps > 1 else [math.sqrt(lo * hi)]
    step = (hi / lo) ** (1.0 / max(cfg.scale_steps - 1, 1))
    coarse = [(r, a, c) for r in ratios for a in cfg.rotations_deg
              if (c := correlate(float(r), a)) is not None]
    coarse.sort(key=lambda t: -t[2][0])
    # second stage: finer scale and rotation steps around the best coarse peaks
    found: list[tuple[float, np.ndarray]] = []
    angle_step = (max(cfg.rotations_deg) - min(cfg.rotations_deg)) / max(
        len(cfg.rotations_deg) - 1, 1)
    for r, a, c in coarse[: 2 * cfg.candidates]:
        found.append(c)
        for fr in np.geomspace(step ** -0.5, step ** 0.5, 5):
            for da in ((-angle_step / 3, 0.0, angle_step / 3) if angle_step else (0.0,)):
                if fr == 1.0 and da == 0.0:
                    continue
                if (f := correlate(float(r * fr), a + da)) is not None:
                    found.append(f)
    if not found:
        raise CalibrationError("global search found no structure to correlate (blank frames, "
                               "or a scale range that makes the thermal image tiny)")
    found.sort(key=lambda t: -t[0])
    out: list[Candidate] = []
    centre = np.array([[(tsize[0] - 1) / 2, (tsize[1] - 1) / 2]])
    for peak, h in found:
        c = _apply(h, centre)[0]
        s_h = _local_scale(h, tsize)
        distinct = all(
            np.linalg.norm(_apply(o.homography, centre)[0] - c) > 0.05 * max(rsize)
            or abs(math.log(s_h / _local_scale(o.homography, tsize))) > 0.1
            for o in out)
        if distinct:
            out.append(Candidate(h, peak))
        if len(out) >= cfg.candidates:
            break
    return out


# ---------------------------------------------------------------------------------- refine
_MOTIONS = {"homography": cv2.MOTION_HOMOGRAPHY, "affine": cv2.MOTION_AFFINE,
            "similarity": cv2.MOTION_AFFINE, "translation": cv2.MOTION_AFFINE}


@dataclass
class _Level:
    """One pyramid level: structure maps and the maps from native pixels into them."""

    thermal: np.ndarray
    rgb: np.ndarray
    th_to: np.ndarray
    rgb_to: np.ndarray


def _pyramid(pair: GrayPair, h: np.ndarray, cfg: CalibrationConfig,
             levels: int | None = None) -> list[_Level]:
    """Finest level first.

    The finest level samples both images at the RGB density (the thermal image resampled to
    it, so a thermal image of a third of the RGB resolution is registered at the RGB
    resolution: downsampling the RGB image to the thermal density instead blurs its edges to
    the coarse scale where the cross-modal bias of the structure maps is larger), capped so the
    resampled thermal longer side is ``cfg.max_side``.
    """
    tsize = pair.thermal_size
    s = _local_scale(h, tsize)  # RGB px per thermal px
    a_t, a_r = s, 1.0
    cap = min(1.0, cfg.max_side / (max(tsize) * a_t))
    out = []
    for lv in range(levels or cfg.levels):
        f = cap / (2 ** lv)
        th, th_to = _scaled(pair.thermal, a_t * f)
        rg, rgb_to = _scaled(pair.rgb, a_r * f)
        if lv and min(th.shape) < 48:
            break
        out.append(_Level(structure_map(th, cfg.edge_sigma, cfg.norm_sigma),
                          structure_map(rg, cfg.edge_sigma, cfg.norm_sigma), th_to, rgb_to))
    return out


def _ecc(level: _Level, h: np.ndarray, motion: int, iterations: int, eps: float
         ) -> tuple[float, np.ndarray]:
    """One ECC run at a level; ``h`` and the result are native thermal → RGB maps."""
    w = level.rgb_to @ h @ np.linalg.inv(level.th_to)
    w = _normalise(w)
    warp = w.astype(np.float32) if motion == cv2.MOTION_HOMOGRAPHY else w[:2].astype(np.float32)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, iterations, eps)
    rho, warp = cv2.findTransformECC(level.thermal, level.rgb, warp, motion, crit, None, 3)
    w = np.eye(3)
    w[: warp.shape[0]] = warp
    return float(rho), _normalise(np.linalg.inv(level.rgb_to) @ w @ level.th_to)


def _warp_score(level: _Level, h: np.ndarray) -> float:
    """Structure correlation of the level's maps under the native map ``h``.

    Structure correlation of the level's maps under the native map ``h`` (RGB sampled into the
    thermal frame).
    """
    w = _normalise(level.rgb_to @ h @ np.linalg.inv(level.th_to))
    th, tw = level.thermal.shape
    warped = cv2.warpPerspective(level.rgb, w, (tw, th),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
    mask = warped >= 0
    if mask.mean() < 0.1:
        return float("nan")
    return structure_correlation(level.thermal, warped, mask)


def refine_pair(pair: GrayPair, h0: np.ndarray, cfg: CalibrationConfig
                ) -> tuple[np.ndarray, float]:
    """Coarse-to-fine ECC of one pair from ``h0``.

    Returns:
        ``(H, score)``: native thermal → RGB map and the structure correlation at the finest
        level run.

    Raises:
        CalibrationError: ECC did not converge or the result is degenerate.
    """
    pyr = _pyramid(pair, h0, cfg)
    if not pyr:
        raise CalibrationError(f"thermal image {pair.thermal_size} too small to calibrate")
    h = h0
    rho = float("nan")
    motion = _MOTIONS[cfg.model]
    for i, level in enumerate(reversed(pyr)):
        finest = i == len(pyr) - 1
        # degrees of freedom grow towards the fine levels: shift, then affine, then the model
        m = (cv2.MOTION_TRANSLATION if i == 0 and len(pyr) > 2 else
             cv2.MOTION_AFFINE if i < len(pyr) - 1 else motion)
        iters = cfg.iterations if finest else max(10, cfg.iterations // 2)
        try:
            rho, h = _ecc(level, h, m, iters, 1e-6 if finest else 1e-4)
        except cv2.error as exc:
            raise CalibrationError(f"ECC did not converge at level {len(pyr) - 1 - i}: "
                                   f"{str(exc).strip().splitlines()[-1]}") from exc
        if not np.isfinite(h).all() or abs(np.linalg.det(h)) < 1e-9:
            raise CalibrationError("ECC diverged")
    return h, rho


# ---------------------------------------------------------------------------------- consensus
@dataclass
class FrameEstimate:
    """One frame pair's estimate.

    Attributes:
        index: position of the pair in the input.
        homography: native thermal → RGB map, ``None`` when ECC failed.
        score: structure correlation after refinement.
        deviation_px: RMS distance of its grid points from the consensus, RGB pixels.
        inlier: used in the consensus.
        error: why the frame failed or was rejected ("" when used).
    """

    index: int
    homography: np.ndarray | None
    score: float = float("nan")
    deviation_px: float = float("nan")
    inlier: bool = False
    error: str = ""


def consensus(estimates: Sequence[FrameEstimate], thermal_size: tuple[int, int],
              cfg: CalibrationConfig) -> tuple[np.ndarray, float]:
    """Reject outlier frames and fit the model to the rest (updates ``estimates`` in place).

    Returns:
        ``(H, residual_px)``: the consensus map and the RMS grid-point distance of the inlier
        frames from it, RGB pixels.

    Raises:
        CalibrationError: no frame survives.
    """
    grid = _grid(thermal_size, cfg.grid)
    ok = [e for e in estimates if e.homography is not None]
    for e in ok:
        if not e.score >= cfg.min_frame_score:
            e.error = f"structure correlation {e.score:.3f} < {cfg.min_frame_score}"
    ok = [e for e in ok if not e.error]
    if not ok:
        raise CalibrationError("no frame pair converged to a usable registration (too little "
                               "common structure); try more frames, --model affine, or a "
                               "different scale range")
    pts = np.stack([_apply(e.homography, grid) for e in ok])  # (F, P, 2)
    med = np.median(pts, axis=0)
    dev = np.sqrt(((pts - med) ** 2).sum(-1).mean(-1))
    mad = float(np.median(np.abs(dev - np.median(dev))))
    thr = max(cfg.outlier_px, float(np.median(dev)) + 3.0 * 1.4826 * mad)
    keep = dev <= thr
    for e, d, k in zip(ok, dev, keep, strict=True):
        e.deviation_px = float(d)
        if not k:
            e.error = f"{d:.1f} px from the median of the frames (limit {thr:.1f} px)"
    inl = pts[keep]
    if len(inl) == 0:  # pragma: no cover - the median frame always passes
        raise CalibrationError("every frame was rejected as an outlier")
    h = fit_model(np.tile(grid, (len(inl), 1)), inl.reshape(-1, 2), cfg.model)
    fitted = _apply(h, grid)
    for e, k in zip(ok, keep, strict=True):
        e.inlier = bool(k)
        if k:
            e.deviation_px = float(np.sqrt(((_apply(e.homography, grid) - fitted) ** 2)
                                           .sum(-1).mean()))
    residual = float(np.sqrt(((inl - fitted) ** 2).sum(-1).mean()))
    return h, residual


# ---------------------------------------------------------------------------------- result
@dataclass
class CalibrationResult:
    """The estimated registration and how much to trust it.

    Attributes:
        homography: ``(3, 3)`` thermal pixels → RGB pixels, ``H[2, 2] == 1``.
        model: the model fitted.
        thermal_size, rgb_size: ``(W, H)`` of the images it was estimated on.
        score: mean structure correlation of the used pairs under ``homography`` (about
            0.2-0.6 for well registered cameras with structure in view; near 0 when not).
        score_before: the same under the initial map (``cfg.initial`` or the centred fit).
        residual_px: RMS distance of the inlier frames' grid points from the fit, RGB px.
        frames_used, frames_total: inlier frames / pairs given.
        frames: every pair's :class:`FrameEstimate`.
        initial: the map ``score_before`` was computed for.
        initial_given: ``initial`` came from the config (else: :func:`default_initial`).
        warnings: reasons to distrust the result, in words.
    """

    homography: np.ndarray
    model: str
    thermal_size: tuple[int, int]
    rgb_size: tuple[int, int]
    score: float
    score_before: float
    residual_px: float
    frames_used: int
    frames_total: int
    frames: list[FrameEstimate] = field(default_factory=list)
    initial: np.ndarray | None = None
    initial_given: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def standard_error_px(self) -> float:
        """Residual over √frames: the uncertainty of the consensus itself, RGB pixels."""
        return self.residual_px / math.sqrt(max(self.frames_used, 1))

    def thermal_footprint(self) -> np.ndarray:
        """``(4, 2)`` RGB-pixel positions of the thermal image's corners."""
        return _apply(self.homography, _corners(self.thermal_size))

    def parameters(self) -> dict[str, object]:
        """The node's registration parameter (``config/fusion.yaml`` name).

        ``homography``, 9 values row-major (``resize_thermal_to_rgb`` no longer matters once it is
        set).
        """
        return {"homography": [float(f"{v:.10g}") for v in self.homography.ravel()]}

    def summary(self) -> dict[str, object]:
        """Plain data for JSON."""
        return {
            "model": self.model,
            "homography": self.homography.tolist(),
            "thermal_size": list(self.thermal_size),
            "rgb_size": list(self.rgb_size),
            "score": round(self.score, 4),
            "score_before": round(self.score_before, 4),
            "residual_px": round(self.residual_px, 3),
            "standard_error_px": round(self.standard_error_px, 3),
            "frames_used": self.frames_used,
            "frames_total": self.frames_total,
            "rejected": {str(e.index): e.error for e in self.frames if not e.inlier},
            "thermal_corners_in_rgb": np.round(self.thermal_footprint(), 2).tolist(),
            "warnings": list(self.warnings),
        }


def _mean_score(pairs: Sequence[GrayPair], h: np.ndarray, cfg: CalibrationConfig) -> float:
    vals = [_warp_score(_pyramid(p, h, cfg, levels=1)[0], h) for p in pairs]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _spread(n: int, k: int) -> list[int]:
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [n // 2]


def estimate_registration(pairs: Sequence[GrayPair] | Iterable[GrayPair],
                          cfg: CalibrationConfig | None = None,
                          progress: Callable[[int, int], None] | None = None
                          ) -> CalibrationResult:
    """Estimate the thermal → RGB map from frame pairs (see the module doc).

    Args:
        pairs: :class:`GrayPair` s (all of one size each), e.g. from :func:`prepare_pair`.
            Pairs from different moments of a sequence (camera moving, scene depth varied)
            constrain the map better than many near-identical frames.
        cfg: model and search settings.
        progress: called as ``progress(done, total)`` after each refined pair.

    Raises:
        CalibrationError: no pairs, inconsistent sizes, nothing converged.
    """
    cfg = cfg or CalibrationConfig()
    pairs = list(pairs)
    if not pairs:
        raise CalibrationError("no frame pairs given")
    tsize, rsize = pairs[0].thermal_size, pairs[0].rgb_size
    for i, p in enumerate(pairs):
        if (p.thermal_size, p.rgb_size) != (tsize, rsize):
            raise CalibrationError(f"pair {i}: sizes thermal {p.thermal_size}, RGB "
                                   f"{p.rgb_size} differ from pair 0's {tsize}, {rsize}")
    initial = cfg.initial if cfg.initial is not None else default_initial(tsize, rsize)

    # starts: the search's peaks in its order (its summed correlation over several pairs
    # ranks them more reliably than any single refined pair), then the given initial map
    starts = []
    if cfg.search:
        starts = [c.homography for c in
                  global_search([pairs[i] for i in _spread(len(pairs), cfg.search_frames)], cfg)]
    if cfg.initial is not None:
        starts.append(np.asarray(cfg.initial, np.float64))
    best: CalibrationResult | None = None
    for k, h0 in enumerate(starts):
        try:
            result = _estimate_from(pairs, h0, initial, cfg, progress if k == 0 else None)
        except CalibrationError as exc:
            log.info("start %d of %d failed: %s", k + 1, len(starts), exc)
            continue
        if best is None or _rank(result) > _rank(best):
            best = result
        if not best.warnings:
            break
        log.info("start %d of %d: %s; trying the next", k + 1, len(starts),
                 "; ".join(result.warnings))
    if best is None:
        raise CalibrationError("no start converged to a usable registration (too little common "
                               "structure); try more frames, --model affine, or another "
                               "--scale-range")
    return best


def _rank(r: CalibrationResult) -> tuple[bool, float, float]:
    return (not r.warnings, r.frames_used / max(r.frames_total, 1), -r.residual_px)


def _estimate_from(pairs: Sequence[GrayPair], h0: np.ndarray, initial: np.ndarray,
                   cfg: CalibrationConfig, progress: Callable[[int, int], None] | None
                   ) -> CalibrationResult:
    """Refine every pair from ``h0`` and take the consensus."""
    tsize, rsize = pairs[0].thermal_size, pairs[0].rgb_size
    estimates = []
    for i, p in enumerate(pairs):
        try:
            h, _ = refine_pair(p, h0, cfg)
            score = _warp_score(_pyramid(p, h, cfg, levels=1)[0], h)
            estimates.append(FrameEstimate(i, h, score))
        except CalibrationError as exc:
            estimates.append(FrameEstimate(i, None, error=str(exc)))
        if progress is not None:
            progress(i + 1, len(pairs))
    h, residual = consensus(estimates, tsize, cfg)
    used = [pairs[e.index] for e in estimates if e.inlier]
    result = CalibrationResult(
        homography=h, model=cfg.model, thermal_size=tsize, rgb_size=rsize,
        score=_mean_score(used, h, cfg), score_before=_mean_score(used, initial, cfg),
        residual_px=residual, frames_used=len(used), frames_total=len(pairs),
        frames=estimates, initial=initial, initial_given=cfg.initial is not None)
    result.warnings = _warnings(result)
    return result


def _warnings(r: CalibrationResult) -> list[str]:
    out = []
    if r.frames_used < max(3, r.frames_total // 2):
        out.append(f"only {r.frames_used} of {r.frames_total} frame pairs agree")
    if not r.score >= 0.15:
        out.append(f"low structure correlation {r.score:.2f}: little common structure in view "
                   "or a wrong match; check the overlay")
    if r.residual_px > 3.0:
        out.append(f"frames disagree by {r.residual_px:.1f} px RMS (parallax from near objects, "
                   "unsynchronised frames, or a model with too few degrees of freedom)")
    corners = r.thermal_footprint()
    w, h = r.rgb_size
    inside = ((corners[:, 0] > -w) & (corners[:, 0] < 2 * w) & (corners[:, 1] > -h)
              & (corners[:, 1] < 2 * h)).all()
    if not inside:
        out.append("the thermal image maps far outside the RGB image")
    return out


# ---------------------------------------------------------------------------------- preview
def edge_overlay(thermal: np.ndarray, rgb: np.ndarray, h: np.ndarray | None,
                 colour: tuple[int, int, int] = (255, 40, 40)) -> np.ndarray:
    """Thermal edges drawn over the (dimmed) RGB image, thermal registered by ``h``.

    Args:
        thermal: thermal frame (any dtype, grey).
        rgb: RGB frame ``(H, W, 3)`` (or grey).
        h: thermal → RGB map; ``None``: the centred fit (:func:`default_initial`).
        colour: edge colour in RGB.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    t = to_grey_unit(thermal)
    base = to_grey_unit(rgb) if np.asarray(rgb).ndim == 2 else None
    if base is None:
        img = np.asarray(rgb)
        img = (img.astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)
               if img.dtype != np.float32 else img)
        canvas = np.clip(img * 0.75, 0, 1)
    else:
        canvas = np.repeat(base[:, :, None] * 0.75, 3, axis=2)
    rh, rw = canvas.shape[:2]
    if h is None:
        h = default_initial((t.shape[1], t.shape[0]), (rw, rh))
    warped = cv2.warpPerspective(t, h, (rw, rh), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    valid = cv2.warpPerspective(np.ones_like(t), h, (rw, rh), flags=cv2.INTER_NEAREST) > 0
    u8 = (warped * 255).astype(np.uint8)
    u8 = cv2.GaussianBlur(u8, (0, 0), max(1.0, 0.0015 * max(rw, rh)))
    edges = cv2.Canny(u8, 20, 60) > 0
    edges &= cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    if max(rw, rh) > 900:
        edges = cv2.dilate(edges.astype(np.uint8), np.ones((2, 2), np.uint8)) > 0
    out = (canvas * 255).astype(np.uint8)
    out[edges] = colour
    outline = _apply(h, _corners((t.shape[1], t.shape[0]))).round().astype(np.int32)
    cv2.polylines(out, [outline], True, (255, 220, 0), max(1, rw // 640), cv2.LINE_AA)
    return out
