# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The shipped ``edge`` weights on a held-out M3SVD val sequence (real data, skips without it)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from temcoco_core.io.datasets import load_m3svd_val
from temcoco_core.metrics.fusion import luma, mutual_information
from temcoco_core.model import build_model
from temcoco_core.model.edge import EdgeConfig

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "m3svd" / "val"
FRAMES = 7
#: rows, columns of the frame where the two people walk (the full frame costs 3x the time)
CROP = (slice(192, 480), slice(256, 640))


def _fuse(model: torch.nn.Module, visible: torch.Tensor, infrared: torch.Tensor) -> np.ndarray:
    """(1, T, 3, H, W) inputs in [0, 1] -> (T, H, W) uint8 luma of the fused clip."""
    with torch.inference_mode():
        fused = model.eval()(visible, infrared)[0].clamp(0, 1).mul(255).round().byte()
    return np.stack([luma(f) for f in fused.permute(0, 2, 3, 1).numpy()])


def _top_block_difference(a: np.ndarray, b: np.ndarray, block: int = 16) -> float:
    """99th percentile over frames and 16 px blocks of the blocks' mean |a - b| (grey levels)."""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    t, h, w = d.shape
    d = d[:, :h // block * block, :w // block * block]
    blocks = d.reshape(t, h // block, block, w // block, block).mean(axis=(2, 4))
    return float(np.percentile(blocks, 99))


def _mi(fused: np.ndarray, seq, start: int) -> float:
    """Mean MI(F, visible) + MI(F, infrared) against the clean references, from ``start``."""
    refs = [(luma(seq.vis_ref[t])[CROP], luma(seq.ir_ref[t])[CROP])
            for t in range(start, start + len(fused))]
    return float(np.mean([mutual_information(f, v) + mutual_information(f, i)
                          for f, (v, i) in zip(fused, refs)]))


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
    seq = load_m3svd_val(DATA, sequences=["0111_1753"], max_frames=FRAMES)[0]
    visible = np.stack(seq.visible)[:, CROP[0], CROP[1]]
    visible = torch.from_numpy(visible).float().div(255).permute(0, 3, 1, 2)[None]
    infrared = np.stack(seq.infrared)[:, CROP[0], CROP[1]].astype(np.float32) / 255
    if infrared.ndim == 3:
        infrared = np.repeat(infrared[..., None], 3, -1)
    infrared = torch.from_numpy(infrared).permute(0, 3, 1, 2)[None]

    gated = _fuse(build_model("edge", pretrained=True), visible, infrared)
    ungated = _fuse(build_model("edge", pretrained=True, motion_gate=None), visible, infrared)
    framewise = _fuse(build_model("edge-framewise", pretrained=True), visible, infrared)
    # no history yet: the gate is inert (up to float rounding)
    assert np.abs(gated[0] - ungated[0]).max() <= 1

    start = 3  # the ghost builds up over the first frames
    late = slice(start, None)
    ghost_gated = _top_block_difference(gated[late], framewise[late])
    ghost_ungated = _top_block_difference(ungated[late], framewise[late])
    assert ghost_gated < 0.75 * ghost_ungated, (ghost_gated, ghost_ungated)

    average = ((visible.mean(2, keepdim=True) + infrared.mean(2, keepdim=True)) / 2)
    average = average[0, :, 0].mul(255).round().byte().numpy()
    mi_gated, mi_ungated = _mi(gated[late], seq, start), _mi(ungated[late], seq, start)
    assert mi_gated > mi_ungated, (mi_gated, mi_ungated)
    assert mi_gated > _mi(average[late], seq, start) + 0.5
