# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Target-salience metric (temcoco_core.metrics.salience) on scenes with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from temcoco_core.metrics import METRIC_INFO
from temcoco_core.metrics.fusion import FUSION_METRICS, fusion_metrics
from temcoco_core.metrics.salience import salience_regions, target_contrast, target_salience


def _scene(t: int = 3, h: int = 64, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Infrared: 40 background, a 10x10 warm target at 200; visible: flat grey 100."""
    ir = np.full((t, h, w), 40, np.uint8)
    ir[:, 20:30, 30:40] = 200
    vis = np.full((t, h, w, 3), 100, np.uint8)
    return vis, ir


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(np.round(grey), 0, 255).astype(np.uint8)[..., None], 3, -1)


def test_infrared_itself_is_fully_salient_visible_not_at_all():
    vis, ir = _scene()
    assert target_salience(_rgb(ir), ir) == pytest.approx(1.0)
    assert target_salience(vis, ir) == pytest.approx(0.0)


def test_average_keeps_half_and_pale_targets_score_lower():
    vis, ir = _scene()
    avg = _rgb((vis[..., 0].astype(float) + ir) / 2)
    assert target_salience(avg, ir) == pytest.approx(0.5, abs=0.01)
    pale = _rgb(np.maximum(vis[..., 0], ir) * 0.0 + 100.0)
    pale[:, 20:30, 30:40] = 130                          # faint warm target on the grey
    strong = pale.copy()
    strong[:, 20:30, 30:40] = 230
    assert target_salience(pale, ir) < 0.25 < target_salience(strong, ir)
    darker = pale.copy()
    darker[:, 20:30, 30:40] = 60                         # target darker than surroundings
    assert target_salience(darker, ir) < 0


def test_ring_leaves_a_gap_around_the_target():
    _, ir = _scene(t=1)
    reg = salience_regions(ir[0], top_percent=1.0, inner=4, outer=16)
    assert reg is not None
    assert reg.hot[25, 35] and not reg.ring[25, 35]
    assert not reg.ring[25, 42] and not reg.hot[25, 42]  # 3 px from the target: the gap
    assert reg.ring[25, 48]                              # 9 px away: surroundings
    assert not reg.ring[25, 60]                          # 21 px away: too far
    # blur spilling into the gap does not change the contrast
    _, ir1 = _scene(t=1)
    fused = ir1[0].astype(float)
    fused[18:32, 28:42] = np.maximum(fused[18:32, 28:42], 120)
    fused[20:30, 30:40] = 200
    c = target_contrast(fused, ir1[0])
    assert c is not None and c[0] == pytest.approx(c[1])


def test_frames_without_a_warm_target_are_skipped_or_nan():
    vis, ir = _scene(t=2)
    ir[1] = 40                                           # second frame: no warm target
    ir[1, 0, 0] = 45                                     # contrast 5 < min_contrast
    fused = _rgb(ir.astype(float))
    fused[0] = 100                                       # frame 0 loses its target
    assert target_salience(fused, ir) == pytest.approx(0.0)   # frame 1 skipped, not 1.0
    flat = np.full_like(ir, 40)
    assert math.isnan(target_salience(fused, flat))


def test_bad_input():
    vis, ir = _scene()
    with pytest.raises(ValueError, match="frame counts"):
        target_salience(vis[:2], ir)
    with pytest.raises(ValueError, match="differ"):
        target_contrast(ir[0, :10].astype(float), ir[0])
    with pytest.raises(ValueError, match="top_percent"):
        salience_regions(ir[0], top_percent=0)
    with pytest.raises(ValueError, match="inner"):
        salience_regions(ir[0], inner=8, outer=4)


def test_reported_by_fusion_metrics_and_eval_tables():
    vis, ir = _scene()
    assert "salience" in FUSION_METRICS and METRIC_INFO["salience"].higher_is_better
    out = fusion_metrics(_rgb(ir.astype(float)), vis, ir)
    assert list(out)[-1] == "salience" and out["salience"] == pytest.approx(1.0)
    only = fusion_metrics(vis, vis, ir, metrics=("salience", "SD"))
    assert list(only) == ["salience", "SD"] and only["salience"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="unknown fusion metric"):
        fusion_metrics(vis, vis, ir, metrics=("PSNR",))
