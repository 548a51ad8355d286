# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Thermal normalisation policies: raw thermal counts → grey in ``[0, 1]``.

Thermal cameras publish ``mono8`` (already gain-controlled by the camera), ``mono16``/``16UC1``
(raw or radiometric counts, e.g. centi-kelvin) or ``32FC1`` (temperatures). The network wants a
stable grey image, and how that grey is computed decides whether the fused *video* flickers:

``fixed``
    ``(x - lo) / (hi - lo)`` with a range from config (radiometric cameras, where a count is a
    temperature). Stateless and perfectly stable; needs a sensible range. Without a range the
    input dtype's full range is used (0…255, 0…65535, or 0…1 for floats): the identity for
    images that are already grey.
``minmax``
    Per-frame minimum/maximum. Uses the whole range of every frame but a hot object entering the
    view rescales everything else: flicker.
``percentile``
    A temporally smoothed robust range. Every frame contributes its ``(p_lo, p_hi)`` percentiles;
    the range used is an exponential moving average of them with time constant
    ``smoothing_s`` (stamp-aware: ``alpha = 1 - exp(-dt / smoothing_s)``), so content changes
    move the gain slowly. On top of that, with ``track_gain`` the camera's *own* gain/offset
    changes (AGC steps, flat-field corrections) are followed at once: the affine map ``a·y + b``
    between the previous and the current frame's inner quantiles (10 %…90 %, which a moving
    object barely shifts) is fitted by least squares, and the smoothed range is carried through
    it. A global gain jump of the camera therefore leaves the normalised image unchanged instead
    of becoming a flash that slowly fades.

``camera``
    The camera's own grey scale: ``fixed_range`` if given, else the dtype's full range (the
    identity for ``mono8``, whose camera has already applied its gain control). With
    ``track_gain`` the camera's gain/offset changes are undone as for ``percentile``, so an
    automatic-gain transient or a flat-field correction does not flash through the fusion (one
    that moves the inner quantiles by more than 2 % of the range is counted as a gain jump), and
    the range returns to the camera scale with time constant ``camera_return_s`` (10 s): a fade
    too slow to see instead of a step.
``auto`` (default)
    ``camera`` for 8-bit images (a camera that gain-controls itself: its tone is what the network
    was trained on, and stretching a low-contrast 8-bit frame would turn its noise into content),
    ``percentile`` for 16-bit and float images (raw or radiometric counts need a range).

All policies are :class:`ThermalNormalizer` objects with ``__call__(raw, stamp_ns)`` and
``reset()``; the pipeline resets them together with the engine when time jumps. After the policy
the normaliser removes the camera's column (or row) fixed-pattern stripes
(:mod:`temcoco_core.frames.stripes`, ``ThermalConfig.stripes``; columns by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np

from temcoco_core.frames.preprocess import ArrayPool, FrameError, NonFiniteFrameError
from temcoco_core.frames.stripes import StripeConfig, StripeCorrector
from temcoco_core.frames.timeline import smoothing_weight

__all__ = ["THERMAL_POLICIES", "ThermalConfig", "ThermalNormalizer", "ThermalStats"]

THERMAL_POLICIES = ("auto", "percentile", "camera", "minmax", "fixed")

_INNER_Q = np.linspace(10.0, 90.0, 9)


@dataclass
class ThermalConfig:
    """Thermal normalisation policy.

    Attributes:
        policy: ``"auto"`` (default), ``"percentile"``, ``"camera"``, ``"minmax"`` or
            ``"fixed"`` (see the module docstring).
        fixed_range: ``(lo, hi)`` in raw units for ``"fixed"`` and ``"camera"``; ``None``: the
            dtype's range.
        percentiles: ``(p_lo, p_hi)`` for ``"percentile"``, in percent.
        smoothing_s: time constant of the percentile range's moving average, seconds; 0
            disables.
        camera_return_s: time constant with which the ``camera`` policy returns to the camera
            scale after undoing a gain jump, seconds; 0: at once (no compensation).
        nominal_fps: frame rate assumed for smoothing when stamps are missing or not increasing.
        track_gain: follow the camera's own global gain/offset changes (see module doc).
        min_span: smallest range in raw units, so that a flat image is not stretched into
            noise; ``None``: 8 for 8-bit, 64 for 16-bit, 0.5 for float input.
        subsample: pixel stride used for statistics (speed; 4 → 1/16 of the pixels).
        invert: black-hot output (hot = dark).
        max_abs_value: float frames with a value beyond ``+-max_abs_value`` are rejected as
            absurd (a driver bug, uninitialised memory); no thermal camera measures 1e20.
        stripes: removal of the camera's column/row fixed-pattern noise, applied to the
            normalised image (:mod:`temcoco_core.frames.stripes`; columns by default).
    """

    policy: str = "auto"
    fixed_range: tuple[float, float] | None = None
    percentiles: tuple[float, float] = (1.0, 99.0)
    smoothing_s: float = 1.0
    camera_return_s: float = 10.0
    nominal_fps: float = 30.0
    track_gain: bool = True
    min_span: float | None = None
    subsample: int = 4
    invert: bool = False
    max_abs_value: float = 1e9
    stripes: StripeConfig = field(default_factory=StripeConfig)

    def __post_init__(self) -> None:
        if self.policy not in THERMAL_POLICIES:
            raise ValueError(f"ThermalConfig.policy must be one of {THERMAL_POLICIES}, "
                             f"got {self.policy!r}")
        if self.fixed_range is not None:
            lo, hi = (float(v) for v in self.fixed_range)
            if not hi > lo:
                raise ValueError(f"ThermalConfig.fixed_range must have hi > lo, got "
                                 f"{self.fixed_range}")
            self.fixed_range = (lo, hi)
        p_lo, p_hi = self.percentiles
        if not 0.0 <= p_lo < p_hi <= 100.0:
            raise ValueError(f"ThermalConfig.percentiles must satisfy 0 <= lo < hi <= 100, got "
                             f"{self.percentiles}")
        if not self.max_abs_value > 0:
            raise ValueError(f"ThermalConfig.max_abs_value must be > 0, got "
                             f"{self.max_abs_value}")
        if self.smoothing_s < 0 or self.camera_return_s < 0 or self.nominal_fps <= 0 \
                or self.subsample < 1:
            raise ValueError("ThermalConfig: smoothing_s >= 0, camera_return_s >= 0, "
                             "nominal_fps > 0 and "
                             "subsample >= 1 are required")


@dataclass
class _State:
    lo: float = 0.0
    hi: float = 1.0
    quantiles: np.ndarray | None = None
    stamp_ns: int | None = None
    initialised: bool = False


@dataclass
class ThermalStats:
    """Counters for diagnostics."""

    frames: int = 0
    gain_jumps: int = 0
    resets: int = 0
    rejected: int = 0


class ThermalNormalizer:
    """Stateful thermal normalisation, ``(H, W)`` raw → ``(H, W)`` float32 in ``[0, 1]``."""

    def __init__(self, cfg: ThermalConfig | None = None) -> None:
        self.cfg = cfg or ThermalConfig()
        self._state = _State()
        self.stats = ThermalStats()
        self._pool = ArrayPool()
        self.stripes = StripeCorrector(self.cfg.stripes, nominal_fps=self.cfg.nominal_fps)
        self._gain_jump_threshold = 0.05  # relative change of the fitted gain counted as a jump
        # camera policy: a gain/offset change that moves the inner quantiles by more than this
        # share of the range is a camera jump (2 % of 0-255: 5 grey levels)
        self._camera_jump_fraction = 0.02
        self._policy: str | None = None

    @property
    def current_range(self) -> tuple[float, float] | None:
        """The ``(lo, hi)`` raw range used for the last frame (``None`` before the first)."""
        return (self._state.lo, self._state.hi) if self._state.initialised else None

    def reset(self) -> None:
        """Forget the temporal state (time jumped, stream restarted)."""
        self._state = _State()
        self.stripes.reset()
        self.stats.resets += 1

    def _min_span(self, dtype: np.dtype) -> float:
        if self.cfg.min_span is not None:
            return float(self.cfg.min_span)
        if dtype == np.uint8:
            return 8.0
        if np.issubdtype(dtype, np.integer):
            return 64.0
        return 0.5

    def __call__(self, raw: np.ndarray, stamp_ns: int | None = None) -> np.ndarray:
        """Normalise one thermal frame.

        Args:
            raw: ``(H, W)`` or ``(H, W, 1)`` ``uint8``/``uint16``/float thermal image.
            stamp_ns: header stamp, used for stamp-aware smoothing.

        Returns:
            ``(H, W)`` float32 in ``[0, 1]`` (a pooled buffer: reused for a later frame once
            the caller has dropped every reference to it).

        Raises:
            FrameError: wrong shape/dtype.
            NonFiniteFrameError: NaN/Inf or absurd values (beyond ``max_abs_value``) in a float
                image, or a range that cannot be normalised. The frame is counted in
                ``stats.rejected`` and leaves the gain state as it was.
        """
        raw = np.asarray(raw)
        if raw.ndim == 3 and raw.shape[2] == 1:
            raw = raw[:, :, 0]
        if raw.ndim != 2:
            raise FrameError(f"thermal frame must be (H, W) grey, got shape {raw.shape}")
        if not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
            raise FrameError(f"thermal frame has unsupported dtype {raw.dtype}")
        if raw.size == 0:
            raise FrameError("thermal frame is empty")
        if np.issubdtype(raw.dtype, np.floating):
            self._check_float(raw)
        saved, saved_policy = _State(**vars(self._state)), self._policy
        lo, hi = self._range(raw, stamp_ns)
        span = float(hi) - float(lo)
        if not (math.isfinite(span) and span > 0 and math.isfinite(1.0 / span)):
            self._state, self._policy = saved, saved_policy
            self.stats.rejected += 1
            raise NonFiniteFrameError(f"thermal range [{lo:.6g}, {hi:.6g}] cannot be normalised")
        self.stats.frames += 1
        scale = np.float32(1.0 / span)
        out = self._pool.empty(raw.shape, np.float32)
        np.subtract(raw, np.float32(lo), out=out, dtype=np.float32)
        out *= scale
        np.clip(out, 0.0, 1.0, out=out)
        if self.cfg.invert:
            np.subtract(1.0, out, out=out)
        if self.stripes.enabled:
            self.stripes(out, stamp_ns, out=out)
        return out

    def _check_float(self, raw: np.ndarray) -> None:
        lo, hi = float(raw.min()), float(raw.max())  # NaN propagates through min/max
        if not (math.isfinite(lo) and math.isfinite(hi)):
            self.stats.rejected += 1
            raise NonFiniteFrameError("thermal frame contains NaN or Inf values")
        limit = self.cfg.max_abs_value
        if max(-lo, hi) > limit:
            self.stats.rejected += 1
            raise NonFiniteFrameError(
                f"thermal frame values [{lo:.3g}, {hi:.3g}] are beyond +-{limit:.3g} "
                "(ThermalConfig.max_abs_value): not a thermal image")

    @property
    def policy(self) -> str | None:
        """The policy in use: the configured one, or what ``auto`` chose for the last frame."""
        return self._policy

    def _resolve(self, dtype: np.dtype) -> str:
        policy = self.cfg.policy
        if policy == "auto":
            policy = "camera" if dtype == np.uint8 else "percentile"
        if self._policy is not None and policy != self._policy:
            self._state = _State()  # the encoding changed under "auto": start over
        self._policy = policy
        return policy

    def _camera_scale(self, dtype: np.dtype) -> tuple[float, float]:
        if self.cfg.fixed_range is not None:
            return self.cfg.fixed_range
        if np.issubdtype(dtype, np.integer):
            return 0.0, float(np.iinfo(dtype).max)
        return 0.0, 1.0

    def _range(self, raw: np.ndarray, stamp_ns: int | None) -> tuple[float, float]:
        cfg = self.cfg
        policy = self._resolve(raw.dtype)
        if policy == "fixed":
            return self._camera_scale(raw.dtype)
        s = cfg.subsample
        sample = raw[::s, ::s].reshape(-1)
        min_span = self._min_span(raw.dtype)
        if policy == "minmax":
            return _widen(float(sample.min()), float(sample.max()), min_span)

        if policy == "camera":
            inner = _quantiles(sample, _INNER_Q)
            f_lo, f_hi = self._camera_scale(raw.dtype)
        else:
            p_lo, p_hi = cfg.percentiles
            qs = _quantiles(sample, np.concatenate(([p_lo, p_hi], _INNER_Q)))
            f_lo, f_hi = float(qs[0]), float(qs[1])
            inner = qs[2:]
        st = self._state
        if not st.initialised:
            st.lo, st.hi = _widen(f_lo, f_hi, min_span)
            st.quantiles, st.stamp_ns, st.initialised = inner, stamp_ns, True
            return st.lo, st.hi

        if cfg.track_gain and st.quantiles is not None:
            a, b = _affine_fit(st.quantiles, inner)
            if policy == "camera":
                # counted as a jump when the map moves the frame's inner quantiles by more
                # than a share of the range (a fit on noise moves them by a fraction of a level)
                moved = float(np.median(np.abs((a - 1.0) * st.quantiles + b)))
                jump = moved > self._camera_jump_fraction * (st.hi - st.lo)
            else:
                jump = abs(a - 1.0) > self._gain_jump_threshold or \
                    abs(b + (a - 1.0) * st.lo) > self._gain_jump_threshold * (st.hi - st.lo)
            self.stats.gain_jumps += int(jump)
            st.lo, st.hi = a * st.lo + b, a * st.hi + b

        tau = cfg.camera_return_s if policy == "camera" else cfg.smoothing_s
        alpha = smoothing_weight(stamp_ns, st.stamp_ns, tau, cfg.nominal_fps)
        lo = st.lo + alpha * (f_lo - st.lo)
        hi = st.hi + alpha * (f_hi - st.hi)
        st.lo, st.hi = _widen(lo, hi, min_span)
        st.quantiles, st.stamp_ns = inner, stamp_ns
        return st.lo, st.hi


def _quantiles(sample: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Percentiles ``q`` (0…100) of a 1-D sample, linear interpolation (numpy's default method).

    One sort, much cheaper than ``np.percentile`` with many ``q`` on small samples.
    """
    srt = np.sort(sample)
    pos = q * ((srt.size - 1) / 100.0)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, srt.size - 1)
    frac = pos - lo
    return srt[lo] * (1.0 - frac) + srt[hi] * frac


def _widen(lo: float, hi: float, min_span: float) -> tuple[float, float]:
    """Grow ``[lo, hi]`` symmetrically to at least ``min_span``."""
    if hi - lo >= min_span:
        return lo, hi
    mid = 0.5 * (lo + hi)
    return mid - 0.5 * min_span, mid + 0.5 * min_span


def _affine_fit(prev: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Robust (Theil-Sen) fit of ``cur ≈ a * prev + b`` over matching quantiles.

    The median of the pairwise slopes ignores the few quantiles that a moving object shifts;
    ``a`` is clamped to ``[0.5, 2]``; flat ``prev`` gives a pure offset.
    """
    x = prev.astype(np.float64)
    y = cur.astype(np.float64)
    i, j = np.triu_indices(x.size, k=1)
    dx = x[j] - x[i]
    ok = dx > 1e-9 * max(1.0, float(np.abs(x).max()))
    if not ok.any():
        return 1.0, float(np.median(y - x))
    a = float(np.median((y[j] - y[i])[ok] / dx[ok]))
    a = min(max(a, 0.5), 2.0)
    return a, float(np.median(y - a * x))
