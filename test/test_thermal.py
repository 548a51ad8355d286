# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Thermal normalisation policies (temcoco_core.frames.thermal)."""

from __future__ import annotations

import numpy as np
import pytest

from temcoco_core.frames.preprocess import FrameError, NonFiniteFrameError
from temcoco_core.frames.stripes import StripeConfig
from temcoco_core.frames.thermal import ThermalConfig, ThermalNormalizer

NO_STRIPES = StripeConfig(mode="off")  # the policy's own mapping, without stripe removal

H, W = 60, 80
YY, XX = np.mgrid[:H, :W]
SCENE = 29000.0 + 800.0 * np.sin(XX / 9.0) + 500.0 * np.cos(YY / 7.0)  # centi-kelvin
PERIOD = 33_000_000


def _frames(gains: list[tuple[float, float]], hot_from: int | None = None,
            seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for t, (a, b) in enumerate(gains):
        s = SCENE.copy()
        if hot_from is not None and t >= hot_from:
            s[20:40, 30:45] += 4000.0  # a hot object, ~6 % of the frame
        raw = a * s + b + rng.normal(0.0, 15.0, s.shape)
        out.append(np.clip(raw, 0, 65535).astype(np.uint16))
    return out


def _run(cfg: ThermalConfig, frames: list[np.ndarray]) -> tuple[np.ndarray, ThermalNormalizer]:
    n = ThermalNormalizer(cfg)
    return np.stack([n(f, i * PERIOD) for i, f in enumerate(frames)]), n


def _background_flicker(out: np.ndarray) -> float:
    """Mean absolute frame-to-frame change away from the hot object."""
    return float(np.abs(np.diff(out[:, :15], axis=0)).mean())


def test_fixed_range_maps_linearly_and_clips() -> None:
    n = ThermalNormalizer(ThermalConfig(policy="fixed", fixed_range=(1000, 3000)))
    out = n(np.array([[500, 1000, 2000, 3000, 4000]], np.uint16))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.0, 0.5, 1.0, 1.0]])


def test_fixed_without_range_uses_the_dtype_range_and_invert() -> None:
    n = ThermalNormalizer(ThermalConfig(policy="fixed"))
    np.testing.assert_allclose(n(np.array([[0, 51, 255]], np.uint8)), [[0.0, 0.2, 1.0]],
                               atol=1e-6)
    inv = ThermalNormalizer(ThermalConfig(policy="fixed", invert=True))
    np.testing.assert_allclose(inv(np.array([[0, 65535]], np.uint16)), [[1.0, 0.0]])


def test_minmax_spans_zero_to_one() -> None:
    n = ThermalNormalizer(ThermalConfig(policy="minmax", subsample=1, stripes=NO_STRIPES))
    out = n(_frames([(1.0, 0.0)])[0])
    assert out.min() == 0.0 and out.max() == 1.0


def test_percentile_output_range_and_float_input() -> None:
    n = ThermalNormalizer()
    temps = (SCENE / 100.0 - 273.15).astype(np.float32)  # 32FC1 in °C
    out = n(temps, 0)
    assert out.shape == (H, W) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0.1


def test_camera_gain_jumps_do_not_become_flicker() -> None:
    gains = [(1.0, 0.0)] * 10 + [(1.3, -5000.0)] * 10 + [(0.9, 2000.0)] * 10
    frames = _frames(gains)
    tracked, n = _run(ThermalConfig(), frames)
    smoothed_only, _ = _run(ThermalConfig(track_gain=False), frames)
    fixed, _ = _run(ThermalConfig(policy="fixed", fixed_range=(25000, 35000)), frames)
    assert n.stats.gain_jumps >= 2
    assert _background_flicker(tracked) < 0.5 * _background_flicker(smoothed_only)
    assert _background_flicker(tracked) < 0.5 * _background_flicker(fixed)


def test_content_change_moves_the_gain_less_than_minmax() -> None:
    frames = _frames([(1.0, 0.0)] * 30, hot_from=10)
    pct, _ = _run(ThermalConfig(), frames)
    mm, _ = _run(ThermalConfig(policy="minmax"), frames)
    # the step right when the hot object appears
    step_pct = float(np.abs(pct[10, :15] - pct[9, :15]).mean())
    step_mm = float(np.abs(mm[10, :15] - mm[9, :15]).mean())
    assert step_pct < 0.5 * step_mm


def test_smoothing_is_stamp_aware() -> None:
    a, b = _frames([(1.0, 0.0), (1.0, 1500.0)], seed=1)
    cfg = ThermalConfig(track_gain=False, smoothing_s=1.0)
    fast, slow = ThermalNormalizer(cfg), ThermalNormalizer(cfg)
    fast(a, 0)
    fast(b, 2_000_000_000)  # 2 s later: alpha = 1 - e^-2
    slow(a, 0)
    slow(b, 10_000_000)  # 10 ms later: alpha ~ 0.01
    lo_a = ThermalNormalizer(cfg)
    lo_a(a, 0)
    start = lo_a.current_range[0]
    assert fast.current_range[0] - start > 5 * (slow.current_range[0] - start) > 0


def test_reset_forgets_state() -> None:
    n = ThermalNormalizer()
    n(_frames([(1.0, 0.0)])[0], 0)
    assert n.current_range is not None
    n.reset()
    assert n.current_range is None and n.stats.resets == 1


def test_flat_image_is_not_stretched_into_noise() -> None:
    n = ThermalNormalizer()
    flat = np.full((H, W), 30000, np.uint16)
    flat[0, 0] = 30003
    out = n(flat, 0)
    assert float(out.max() - out.min()) < 0.1


def test_bad_input_and_config() -> None:
    n = ThermalNormalizer()
    with pytest.raises(FrameError, match="NaN"):
        n(np.array([[np.nan, 1.0]], np.float32))
    with pytest.raises(FrameError, match="shape"):
        n(np.zeros((4, 4, 3), np.uint16))
    with pytest.raises(ValueError, match="policy"):
        ThermalConfig(policy="agc")
    with pytest.raises(ValueError, match="hi > lo"):
        ThermalConfig(policy="fixed", fixed_range=(5.0, 5.0))
    with pytest.raises(ValueError, match="percentiles"):
        ThermalConfig(percentiles=(99.0, 1.0))


@pytest.mark.parametrize("policy", ["auto", "percentile", "camera", "minmax", "fixed"])
def test_absurd_and_non_finite_frames_are_rejected_not_a_crash(policy: str) -> None:
    """Issue 11 case 6: NaN, Inf or 1e20 in a 32FC1 frame (ZeroDivisionError before)."""
    n = ThermalNormalizer(ThermalConfig(policy=policy))
    good = np.linspace(20.0, 40.0, 64, dtype=np.float32).reshape(8, 8)
    first = n(good, 0).copy()
    state = n.current_range
    for bad in (np.full((8, 8), 1e20, np.float32), np.full((8, 8), np.inf, np.float32),
                np.where(good > 30, np.nan, good).astype(np.float32)):
        with pytest.raises(NonFiniteFrameError):
            n(bad, 1)
    assert n.stats.rejected == 3 and n.current_range == state
    # a huge but flat frame with a relaxed limit: the range collapses in float -> rejected
    n2 = ThermalNormalizer(ThermalConfig(policy=policy, max_abs_value=1e30))
    if policy not in ("fixed", "camera"):  # those two do not take the range from the frame
        with pytest.raises(NonFiniteFrameError, match="cannot be normalised"):
            n2(np.full((8, 8), 1e20, np.float32), 0)
    np.testing.assert_allclose(n(good, 2), first, atol=1e-6)


def _mono8(gains: list[tuple[float, float]], seed: int = 0) -> list[np.ndarray]:
    """A low-contrast 8-bit scene whose camera applies gain ``a`` and offset ``b`` (grey)."""
    rng = np.random.default_rng(seed)
    scene = 60.0 + 12.0 * np.sin(XX / 9.0) + 8.0 * np.cos(YY / 7.0)
    return [np.clip(a * scene + b + rng.normal(0.0, 4.0, scene.shape), 0, 255).astype(np.uint8)
            for a, b in gains]


def test_camera_policy_keeps_the_mono8_scale() -> None:
    """A steady mono8 camera passes through as x / 255: no stretch of a low-contrast frame."""
    frames = _mono8([(1.0, 0.0)] * 12)
    out, n = _run(ThermalConfig(policy="camera", stripes=NO_STRIPES), frames)
    expected = np.stack(frames).astype(np.float32) / 255.0
    assert np.abs(out - expected).max() < 0.02
    stretched, _ = _run(ThermalConfig(policy="percentile", stripes=NO_STRIPES), frames)
    assert stretched.std() > 2.5 * out.std()  # what the percentile range does to the same frames
    assert n.policy == "camera" and n.stats.gain_jumps == 0


def test_camera_policy_undoes_an_agc_transient_then_returns_to_the_camera_scale() -> None:
    """The val sequence 0114_1611 case: the camera's AGC darkens the frame by ~25 % in 2 steps."""
    gains = [(1.35, 0.0), (1.17, 0.0)] + [(1.0, 0.0)] * 40
    frames = _mono8(gains)
    cam, n = _run(ThermalConfig(policy="camera", camera_return_s=1.0), frames)
    raw = np.stack(frames).astype(np.float32) / 255.0
    means, raw_means = cam.mean(axis=(1, 2)), raw.mean(axis=(1, 2))
    assert n.stats.gain_jumps >= 1
    # the two AGC steps: the raw input drops by > 20 grey levels, the normalised one holds
    assert raw_means[0] - raw_means[2] > 20 / 255
    assert abs(means[2] - means[0]) < 0.25 * (raw_means[0] - raw_means[2])
    # afterwards it fades back to the camera's own scale, slowly (no step larger than the
    # transient's share of one frame at a 1 s time constant)
    assert np.abs(np.diff(means[2:])).max() < 0.1 * (raw_means[0] - raw_means[2])
    assert abs(means[-1] - raw_means[-1]) < 0.5 * abs(means[2] - raw_means[2])
    untracked, _ = _run(ThermalConfig(policy="camera", track_gain=False, stripes=NO_STRIPES),
                        frames)
    np.testing.assert_allclose(untracked, raw, atol=1e-6)


def test_auto_policy_picks_camera_for_8_bit_and_percentile_otherwise() -> None:
    n = ThermalNormalizer(ThermalConfig(stripes=NO_STRIPES))
    assert n.cfg.policy == "auto"
    eight = _mono8([(1.0, 0.0)])[0]
    np.testing.assert_allclose(n(eight, 0), eight / np.float32(255.0), atol=1e-6)
    assert n.policy == "camera"
    sixteen = _frames([(1.0, 0.0)])[0]
    pct = ThermalNormalizer(ThermalConfig(policy="percentile", stripes=NO_STRIPES))
    np.testing.assert_allclose(n(sixteen, PERIOD), pct(sixteen, PERIOD), atol=1e-6)
    assert n.policy == "percentile"  # the encoding changed: started over with the other policy
