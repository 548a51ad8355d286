# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The shipped ``edge`` weights on a held-out M3SVD val sequence (real data, skips without it)."""

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from temcoco_core.baselines import fuse_average, ModelMethod
from temcoco_core.io.datasets import FusionSequence, load_m3svd_val
from temcoco_core.metrics.fusion import luma, mi
from temcoco_core.metrics.temporal import ghosting
from temcoco_core.model import build_model
from temcoco_core.model.edge import EdgeConfig

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "m3svd" / "val"
FRAMES = 7
#: rows, columns of the frame where the two people walk (the full frame costs 3x the time)
CROP = (slice(192, 480), slice(256, 640))


def _mi(fused: np.ndarray, seq: FusionSequence) -> float:
    """Mean MI(F, visible) + MI(F, infrared) against the clean references."""
    return float(np.mean([mi(luma(f), luma(v), i)
                          for f, v, i in zip(fused, seq.vis_ref, seq.ir_ref)]))


def test_shipped_weights_stream_without_ghosts_on_held_out_val():
    """The default motion gate keeps streaming free of ghosts on held-out 0111_1753.

    Two people walk past a car: with the gate the streaming output stays close to the
    frame-by-frame one where they move (the ungated network carries their earlier positions
    along: a second, fainter silhouette), keeps more mutual information than ungated
    streaming, and much more than averaging the inputs.
    """
    if not DATA.is_dir():
        pytest.skip(f"M3SVD val data not present at {DATA}")
    assert EdgeConfig().motion_gate == (0.1, 0.25)
    full = load_m3svd_val(DATA, sequences=["0111_1753"], max_frames=FRAMES)[0]
    seq = FusionSequence(full.name, *(a[:, CROP[0], CROP[1]] for a in (
        full.visible, full.infrared, full.visible_ref, full.infrared_ref)))

    gated = ModelMethod(build_model("edge", pretrained=True), clip_len=FRAMES)(seq)
    ungated = ModelMethod(build_model("edge", pretrained=True, motion_gate=None),
                          clip_len=FRAMES)(seq)
    framewise = ModelMethod(build_model("edge-framewise", pretrained=True), clip_len=1)(seq)
    # no history yet: the gate is inert (up to float rounding)
    assert np.abs(luma(gated[0]) - luma(ungated[0])).max() <= 1

    start = 3  # the ghost builds up over the first frames
    late = slice(start, None)
    ghost_gated = ghosting(gated[late], framewise[late])
    ghost_ungated = ghosting(ungated[late], framewise[late])
    assert ghost_gated < 0.75 * ghost_ungated, (ghost_gated, ghost_ungated)

    tail = FusionSequence(seq.name, seq.visible[late], seq.infrared[late],
                          seq.visible_ref[late], seq.infrared_ref[late])
    average = np.stack([fuse_average(v, i) for v, i in zip(seq.visible, seq.infrared)])
    mi_gated, mi_ungated = _mi(gated[late], tail), _mi(ungated[late], tail)
    assert mi_gated > mi_ungated, (mi_gated, mi_ungated)
    assert mi_gated > _mi(average[late], tail) + 0.5


def test_motion_gate_sweep_script_reports_json():
    """``scripts/motion_gate_sweep.py`` (the model card's gate sweep) runs and reports JSON."""
    if not DATA.is_dir():
        pytest.skip(f"M3SVD val data not present at {DATA}")
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "motion_gate_sweep.py"), "--val", str(DATA),
         "--sequences", "0111_1716", "--max-frames", "4", "--ghost-from", "2",
         "--gates", "none,0.1:0.25"], capture_output=True, text=True, check=True, timeout=600)
    rows = json.loads(out.stdout)
    assert [r["gate"] for r in rows] == ["none", "0.1:0.25", "framewise"]
    for r in rows:
        assert 0.5 < r["MI"] < 5.0 and r["frames"] == 4
    assert rows[-1]["ghosting"] == 0.0 and rows[0]["ghosting"] > 0.0
