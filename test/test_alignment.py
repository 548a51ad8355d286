# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Live alignment score (temcoco_core.metrics.alignment) on real M3SVD video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from temcoco_core.diagnostics import DiagnosticLevel
from temcoco_core.metrics.alignment import AlignmentConfig, AlignmentMonitor, measure_alignment

SEQS = ("0111_1716", "0117_1605")


@pytest.fixture(scope="module", params=SEQS)
def video(request, data_dir: Path) -> tuple[str, np.ndarray, np.ndarray]:
    from temcoco_core.io.video import read_video

    root = data_dir / "m3svd" / "test"
    vis = read_video(root / "visible" / f"{request.param}.mp4", max_frames=120)
    ir = read_video(root / "infrared" / f"{request.param}.mp4", max_frames=120)[..., 0]
    return request.param, vis, ir


def knock(ir: np.ndarray, dx: float = 28.0, dy: float = -12.0, angle: float = 1.5
          ) -> tuple[np.ndarray, np.ndarray]:
    """The thermal image after a knocked mount (registered with the old map) and its valid area."""
    h, w = ir.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return (cv2.warpAffine(ir, m, (w, h)),
            cv2.warpAffine(np.full_like(ir, 255), m, (w, h)) > 0)


@pytest.mark.parametrize("fps, step", [(30, 1), (10, 3)])
def test_registered_stream_stays_ok_and_a_knock_warns_within_seconds(video, fps, step) -> None:
    seq, vis, ir = video
    vis, ir = vis[::step], ir[::step]
    mon = AlignmentMonitor()
    n_ok = len(vis) // 2
    for v, i in zip(vis[:n_ok], ir[:n_ok], strict=True):
        mon.update(v, i)
        assert mon.level == DiagnosticLevel.OK, mon.status().message
    assert mon.score > 0.9 and mon.status().level == DiagnosticLevel.OK
    assert mon.status().message.startswith("registered")
    frames_to_warn = None
    for k, (v, i) in enumerate(zip(vis[n_ok:], ir[n_ok:], strict=True), start=1):
        warped, valid = knock(i)
        mon.update(v, warped, valid)
        if mon.level == DiagnosticLevel.WARN:
            frames_to_warn = k
            break
    assert frames_to_warn is not None, f"no WARN after {len(vis) - n_ok} knocked frames"
    seconds = frames_to_warn / fps
    print(f"\n[{seq}] {fps} fps: WARN {frames_to_warn} frames = {seconds:.2f} s after the knock;"
          f" score {mon.score:.2f}, offset {mon.offset_px}")
    assert seconds <= 3.0
    st = mon.status("node")
    assert st.level == DiagnosticLevel.WARN and st.name == "node: registration"
    assert "misregistered" in st.message and float(st.values["alignment_score"]) < 0.75
    # the best match shows where the thermal content went (about +28, -12 px)
    dx, dy = mon.offset_px
    assert abs(dx - 28) <= 6 and abs(dy + 12) <= 6
    summary = mon.summary()
    assert 0 < summary["alignment_warn_share"] < 1


def test_no_structure_is_not_a_false_alarm(video) -> None:
    _, vis, ir = video
    mon = AlignmentMonitor(AlignmentConfig(every=1))
    fog = np.full_like(vis[0], 180)
    for i in ir[:10]:
        reading = mon.update(fog, i)
        assert reading is not None and not reading.valid
    assert mon.level == DiagnosticLevel.OK and np.isnan(mon.score)
    assert "too little structure" in mon.status().message


def test_every_n_frames_and_reset(video) -> None:
    _, vis, ir = video
    mon = AlignmentMonitor(AlignmentConfig(every=4, window=3))
    got = [mon.update(v, i) is not None for v, i in zip(vis[:9], ir[:9], strict=True)]
    assert got == [True, False, False, False, True, False, False, False, True]
    assert mon.evaluated == 3 and not np.isnan(mon.score)
    mon.reset()
    assert np.isnan(mon.score)


def test_reading_at_another_resolution_and_config_checks(video) -> None:
    _, vis, ir = video
    # the registered thermal image may come at the model size (smaller than the RGB frame)
    r = measure_alignment(vis[0], cv2.resize(ir[0], (320, 240), interpolation=cv2.INTER_AREA))
    assert r.valid and r.score > 0.9
    with pytest.raises(ValueError):
        AlignmentConfig(every=0)
    with pytest.raises(ValueError):
        AlignmentConfig(search=0.5)


def test_eval_reports_the_input_alignment(video, tmp_path: Path) -> None:
    import json

    from temcoco_core.evaluate import EvalConfig, evaluate, write_reports
    from temcoco_core.io.datasets import FusionSequence

    seq, vis, ir = video
    vis, ir = vis[:24:2], ir[:24:2]
    shifted = np.stack([knock(i)[0] for i in ir])
    seqs = [FusionSequence("aligned", vis, ir), FusionSequence("knocked", vis, shifted)]
    cfg = EvalConfig(fusion_metrics=("EN",), flow=None, tof=False, feacd=False, plots=False,
                     progress=False)
    result, art = evaluate(seqs, {"average": lambda s: ((s.visible.astype(np.uint16)
                                                         + s.infrared[..., None]) // 2
                                                        ).astype(np.uint8)}, cfg)
    assert result.alignment["aligned"]["alignment_score_mean"] > 0.9
    assert result.alignment["knocked"]["alignment_warn_share"] > 0.5
    assert any(n.startswith("knocked: the thermal and visible inputs look misregistered")
               for n in result.notes)
    assert not any(n.startswith("aligned:") for n in result.notes)
    write_reports(result, art, tmp_path, cfg)
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data["input_alignment"]) == {"aligned", "knocked"}
    assert "Input alignment score" in (tmp_path / "table.md").read_text()
