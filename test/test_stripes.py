# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Fixed-pattern (stripe) noise removal of thermal frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from temcoco_core.frames.stripes import StripeConfig, StripeCorrector
from temcoco_core.frames.thermal import ThermalConfig, ThermalNormalizer

PERIOD = 33_333_333
VAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "m3svd" / "val"


def _scene(t: int, h: int = 120, w: int = 160) -> np.ndarray:
    """A smooth moving scene with a warm blob and a vertical post, in [0, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 0.3 + 0.2 * np.sin(xx / 17.0 + 0.3 * t) * np.cos(yy / 23.0)
    img += 0.4 * np.exp(-(((xx - 40 - 3 * t) ** 2) + (yy - 60) ** 2) / 60.0)
    img[30:70, 100:103] += 0.25   # a post over a third of the height
    return img.astype(np.float32)


def _pattern(w: int = 160, sigma: float = 12 / 255, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(w) * sigma).astype(np.float32)


def _stripe_rms(img: np.ndarray, clean: np.ndarray) -> float:
    """Spread of the column-mean error's fine part (what is left of a stripe pattern).

    A smooth error over many columns is shading, not stripes, and no estimator can tell it
    from the scene, so a 9-column running mean of the error is taken off first.
    """
    err = (img - clean).mean(axis=0)
    return float(np.std(err - cv2.blur(err[None, :].astype(np.float32), (9, 1))[0]))


def test_column_pattern_is_removed_and_the_scene_kept() -> None:
    rng = np.random.default_rng(1)
    pattern = _pattern()
    corrector = StripeCorrector(StripeConfig(smoothing_s=0.5))
    for t in range(30):
        clean = _scene(t)
        noisy = clean + pattern[None, :] + rng.normal(0, 6 / 255, clean.shape).astype(np.float32)
        out = corrector(np.clip(noisy, 0, 1), t * PERIOD)
    before, after = _stripe_rms(np.clip(noisy, 0, 1), clean), _stripe_rms(out, clean)
    assert before > 10 / 255
    assert after < before / 5
    # the estimated offsets are the pattern (up to its mean, which carries no stripes)
    est = corrector.column_offsets
    assert np.corrcoef(est, pattern)[0, 1] > 0.95
    assert corrector.amplitude == pytest.approx(float(np.sqrt(np.mean(est ** 2))))
    # the post and the warm blob survive: the scene's own columns are not flattened
    assert abs(out[30:70, 100:103].mean() - out[30:70, 95:98].mean()) > 0.15


def test_a_clean_frame_passes_almost_unchanged() -> None:
    clean = _scene(0)
    corrector = StripeCorrector()
    out = corrector(clean.copy(), 0)
    assert np.abs(out - clean).mean() < 2 / 255
    assert corrector.amplitude < 3 / 255


def test_rows_mode_removes_a_row_pattern_and_off_is_the_identity() -> None:
    clean = _scene(0)
    rows = _pattern(clean.shape[0], seed=3)
    noisy = np.clip(clean + rows[:, None], 0, 1).astype(np.float32)
    out = StripeCorrector(StripeConfig(mode="rows"))(noisy, 0)
    assert _stripe_rms((out - clean).T, 0) < _stripe_rms((noisy - clean).T, 0) / 4
    off = StripeCorrector(StripeConfig(mode="off"))
    assert off(noisy, 0) is noisy and not off.enabled and off.amplitude == 0.0


def test_moving_average_is_stamp_aware_and_resets_on_a_new_size() -> None:
    a, b = _pattern(seed=4), _pattern(seed=5)
    base = _scene(0)
    corrector = StripeCorrector(StripeConfig(smoothing_s=1.0, max_offset=1.0))
    corrector(np.clip(base + a, 0, 1), 0)
    first = corrector.column_offsets
    # one frame of pattern b one second later moves the estimate by 1 - exp(-1) of the way
    corrector(np.clip(base + b, 0, 1), 1_000_000_000)
    moved = corrector.column_offsets - first
    target = StripeCorrector()._estimate(np.clip(base + b, 0, 1) - first[None, :])
    assert np.allclose(moved, (1 - np.exp(-1.0)) * target, atol=1e-4)
    # a frame of another size starts over from that frame alone
    small = np.clip(_scene(0, 64, 80) + b[:80], 0, 1)
    corrector(small, 2_000_000_000)
    assert corrector.column_offsets.shape == (80,)
    corrector.reset()
    assert corrector.column_offsets is None


def test_offsets_are_bounded_and_tiny_frames_left_alone() -> None:
    clean = _scene(0)
    huge = np.zeros(160, np.float32)
    huge[::2] = 0.5
    out_cfg = StripeConfig(max_offset=0.05)
    corrector = StripeCorrector(out_cfg)
    corrector(np.clip(clean + huge, 0, 1), 0)
    assert np.abs(corrector.column_offsets).max() <= 0.05 + 1e-7
    strip = np.linspace(0, 1, 40, dtype=np.float32)[None, :].repeat(4, 0)
    np.testing.assert_array_equal(StripeCorrector()(strip, 0), strip)
    with pytest.raises(ValueError, match="mode"):
        StripeConfig(mode="diagonal")
    with pytest.raises(ValueError, match="neighbours"):
        StripeConfig(neighbours=0)


def test_thermal_normaliser_removes_stripes_by_default_and_resets_them() -> None:
    pattern = _pattern()
    frames = [np.clip((_scene(t) + pattern[None, :]) * 255, 0, 255).astype(np.uint8)
              for t in range(10)]
    norm = ThermalNormalizer(ThermalConfig())
    outs = [norm(f, t * PERIOD) for t, f in enumerate(frames)]
    assert norm.stripes.enabled and norm.stripes.amplitude > 8 / 255
    assert _stripe_rms(outs[-1], _scene(9)) < _stripe_rms(frames[-1] / 255.0, _scene(9)) / 4
    norm.reset()
    assert norm.stripes.amplitude == 0.0
    plain = ThermalNormalizer(ThermalConfig(stripes=StripeConfig(mode="off")))
    np.testing.assert_allclose(plain(frames[0], 0), frames[0] / np.float32(255), atol=1e-6)


@pytest.mark.skipif(not VAL.is_dir(), reason=f"shared val data not found at {VAL}")
def test_real_val_infrared_stripes_are_found_and_reduced() -> None:
    """The shared val protocol's infrared carries a fixed column pattern (corr 0.99 over time)."""
    seq = "0115_1831"
    corrector = StripeCorrector()
    for t in range(10):
        noisy = cv2.imread(str(VAL / "infrared_noise" / seq / f"{t:04d}.png"),
                           cv2.IMREAD_GRAYSCALE)
        ref = cv2.imread(str(VAL / "infrared_Enhance" / seq / f"{t:04d}.png"),
                         cv2.IMREAD_GRAYSCALE)
        out = corrector(noisy.astype(np.float32) / 255.0, t * PERIOD)

    # the reference has no stripes: the column means of (input - smoothed input) measure them
    def column_pattern(img: np.ndarray) -> float:
        col = img.mean(axis=0)
        return float(np.std(col - cv2.blur(col[None, :], (9, 1))[0]))

    assert column_pattern(noisy / 255.0) > 3 * column_pattern(ref / 255.0)
    assert column_pattern(out) < column_pattern(noisy / 255.0) / 3
    assert corrector.amplitude * 255 > 5


def test_pipeline_reports_the_stripes_it_removes() -> None:
    from temcoco_core.pipeline import AverageEngine, FrameInput, FusionPipeline, PipelineConfig

    pattern = _pattern()
    pipe = FusionPipeline(AverageEngine(), PipelineConfig(metrics=False))
    for t in range(3):
        thermal = np.clip((_scene(t) + pattern[None, :]) * 255, 0, 255).astype(np.uint8)
        pipe.fuse_frames(FrameInput(t * PERIOD, np.zeros((120, 160, 3), np.uint8), thermal))
    assert pipe.summary()["thermal_stripes_grey"] > 8
    values = {k: v for status in pipe.statuses() for k, v in status.values.items()}
    assert float(values["thermal_stripes_grey"]) > 8
