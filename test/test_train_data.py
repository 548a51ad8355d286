# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Training clips (temcoco_core.train.data): seeded reproducibility, crops, flips, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from temcoco_core.io.datasets import DatasetError, FusionSequence
from temcoco_core.train.data import ClipDataset, DataConfig, DataSource, load_sources
from temcoco_core.train.degrade import DegradeConfig

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _seq(name: str, t: int = 10, h: int = 40, w: int = 48, seed: int = 0) -> FusionSequence:
    rng = np.random.default_rng(seed)
    vis = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    ir = rng.integers(0, 256, (t, h, w), dtype=np.uint8)
    return FusionSequence(name, vis, ir)


NO_DEGRADE = DegradeConfig(visible_blur=False, infrared_minmax=False, infrared_noise=(0, 0),
                           infrared_stripes=(0, 0))


def test_items_shapes_and_ranges():
    ds = ClipDataset([_seq("a"), _seq("b", seed=1)], DataConfig(clip_len=4, crop=16), seed=3)
    item = ds[0]
    assert item["visible"].shape == (4, 3, 16, 16) and item["visible"].dtype == torch.float32
    assert item["infrared"].shape == (4, 3, 16, 16)
    assert torch.equal(item["infrared"][:, 0], item["infrared"][:, 2])     # grey x 3
    assert item["visible_ref"].shape == (4, 3, 16, 16)
    assert item["infrared_ref"].shape == (4, 1, 16, 16)
    for k in ("visible", "infrared", "visible_ref", "infrared_ref"):
        assert 0.0 <= float(item[k].min()) and float(item[k].max()) <= 1.0
    assert ds.num_clips == 2 * (10 - 4 + 1)


def test_clips_reproducible_by_seed():
    seqs = [_seq("a"), _seq("b", t=7, seed=1)]
    cfg = DataConfig(clip_len=4, crop=16, hflip=True, vflip=True, reverse=True)
    a, b, c = ClipDataset(seqs, cfg, seed=5), ClipDataset(seqs, cfg, seed=5), \
        ClipDataset(seqs, cfg, seed=6)
    for i in (0, 1, 17, 123456):
        x, y = a[i], b[i]
        for k in ("visible", "infrared", "visible_ref", "infrared_ref"):
            assert torch.equal(x[k], y[k])
    # order does not matter: item 17 is the same whether or not others were drawn before
    assert torch.equal(ClipDataset(seqs, cfg, seed=5)[17]["visible"], a[17]["visible"])
    assert any(not torch.equal(a[i]["visible"], c[i]["visible"]) for i in range(4))
    assert len({(a[i]["sequence"], a[i]["start"], a[i]["top"]) for i in range(20)}) > 5


def test_clip_is_the_source_window_with_flips():
    seq = _seq("a", t=8, h=32, w=40, seed=2)
    cfg = DataConfig(clip_len=3, crop=16, hflip=True, vflip=True, reverse=True,
                     degrade=NO_DEGRADE)
    ds = ClipDataset([seq], cfg, seed=0)
    seen = set()
    for i in range(24):
        it = ds[i]
        s, top, left = it["start"], it["top"], it["left"]
        vis = seq.visible[s:s + 3, top:top + 16, left:left + 16]
        ir = seq.infrared[s:s + 3, top:top + 16, left:left + 16]
        if it["hflip"]:
            vis, ir = vis[:, :, ::-1], ir[:, :, ::-1]
        if it["vflip"]:
            vis, ir = vis[:, ::-1], ir[:, ::-1]
        if it["reversed"]:
            vis, ir = vis[::-1], ir[::-1]
        want_v = torch.from_numpy(vis.copy()).permute(0, 3, 1, 2).float() / 255
        want_i = torch.from_numpy(ir.copy()).unsqueeze(1).float() / 255
        assert torch.equal(it["visible_ref"], want_v)
        assert torch.equal(it["visible"], want_v)            # no degradation configured
        assert torch.equal(it["infrared_ref"], want_i)
        seen.add((it["hflip"], it["vflip"], it["reversed"]))
    assert len(seen) >= 4                                    # the flips do happen


def test_frame_stride_takes_every_s_th_frame_within_the_sequence():
    seq = _seq("a", t=12, h=32, w=40, seed=3)
    cfg = DataConfig(clip_len=3, crop=16, hflip=False, frame_stride=[1, 4], degrade=NO_DEGRADE)
    assert cfg.frame_stride == (1, 4)
    ds = ClipDataset([seq], cfg, seed=0)
    strides = set()
    for i in range(40):
        it = ds[i]
        s, k, top, left = it["start"], it["stride"], it["top"], it["left"]
        assert 1 <= k <= 4 and s + 2 * k <= 11               # capped where the sequence ends
        vis = seq.visible[s:s + 2 * k + 1:k, top:top + 16, left:left + 16]
        want = torch.from_numpy(vis.copy()).permute(0, 3, 1, 2).float() / 255
        assert torch.equal(it["visible_ref"], want)
        strides.add(k)
    assert len(strides) >= 3                                 # the stride does vary
    assert ClipDataset([seq], DataConfig(clip_len=3, crop=16), seed=0)[0]["stride"] == 1
    with pytest.raises(ValueError, match="frame_stride"):
        DataConfig(frame_stride=(3, 2))


def test_inputs_degraded_targets_clean():
    seq = _seq("a", seed=4)
    ds = ClipDataset([seq], DataConfig(clip_len=3, crop=16, hflip=False), seed=0)
    it = ds[0]
    s, top, left = it["start"], it["top"], it["left"]
    clean = torch.from_numpy(seq.visible[s:s + 3, top:top + 16, left:left + 16].copy())
    assert torch.equal(it["visible_ref"], clean.permute(0, 3, 1, 2).float() / 255)
    assert not torch.equal(it["visible"], it["visible_ref"])               # blurred
    assert not torch.equal(it["infrared"][:, :1], it["infrared_ref"])      # noisy


def test_references_are_used_when_present():
    base = _seq("a", seed=5)
    ref = _seq("a", seed=6)
    seq = FusionSequence("a", base.visible, base.infrared, ref.visible, ref.infrared)
    ds = ClipDataset([seq], DataConfig(clip_len=2, crop=16, hflip=False, degrade=NO_DEGRADE))
    it = ds[3]
    s, top, left = it["start"], it["top"], it["left"]
    want = ref.visible[s:s + 2, top:top + 16, left:left + 16]
    assert torch.equal(it["visible_ref"],
                       torch.from_numpy(want.copy()).permute(0, 3, 1, 2).float() / 255)


def test_short_and_small_sequences():
    with pytest.raises(DatasetError, match="tiny"):
        ClipDataset([_seq("tiny", h=12, w=40)], DataConfig(clip_len=2, crop=16))
    ds = ClipDataset([_seq("short", t=2), _seq("long", t=6)], DataConfig(clip_len=4, crop=16))
    assert [s.name for s in ds.sequences] == ["long"]
    with pytest.raises(DatasetError, match="clip_len=4"):
        ClipDataset([_seq("short", t=2)], DataConfig(clip_len=4, crop=16))


def test_bad_config_values():
    with pytest.raises(ValueError):
        DataConfig(clip_len=0)
    with pytest.raises(ValueError):
        DataConfig(crop=8)
    with pytest.raises(ValueError, match="kind"):
        DataSource(root="x", kind="tape")


# ---------------------------------------------------------------------------- bad folders


def _write_folder(root: Path, seq: str, n_vis: int, n_ir: int, size=(24, 32),
                  ir_size=None) -> None:
    h, w = size
    ih, iw = ir_size or size
    (root / "visible" / seq).mkdir(parents=True, exist_ok=True)
    (root / "infrared" / seq).mkdir(parents=True, exist_ok=True)
    for i in range(n_vis):
        cv2.imwrite(str(root / "visible" / seq / f"{i:04d}.png"), np.full((h, w, 3), i, np.uint8))
    for i in range(n_ir):
        cv2.imwrite(str(root / "infrared" / seq / f"{i:04d}.png"), np.full((ih, iw), i, np.uint8))


def test_load_sources_good_folder(tmp_path):
    _write_folder(tmp_path, "seqA", 5, 5)
    seqs = load_sources([DataSource(root=str(tmp_path), kind="folders")], progress=False)
    assert [s.name for s in seqs] == ["seqA"] and seqs[0].num_frames == 5


def test_unequal_frame_counts_named(tmp_path):
    _write_folder(tmp_path, "seqA", 5, 5)
    _write_folder(tmp_path, "seqB", 5, 4)
    with pytest.raises(DatasetError, match="seqB"):
        load_sources([DataSource(root=str(tmp_path))], progress=False)


def test_mismatched_sizes_named(tmp_path):
    _write_folder(tmp_path, "seqC", 3, 3, size=(24, 32), ir_size=(24, 30))
    with pytest.raises(DatasetError, match="seqC"):
        load_sources([DataSource(root=str(tmp_path), kind="folders")], progress=False)


def test_unreadable_file_named(tmp_path):
    _write_folder(tmp_path, "seqD", 3, 3)
    bad = tmp_path / "infrared" / "seqD" / "0001.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"seqD.*0001\.png|0001\.png.*seqD"):
        load_sources([DataSource(root=str(tmp_path), kind="folders")], progress=False)


def test_missing_root_and_no_sources(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_sources([DataSource(root=str(tmp_path / "nope"))], progress=False)
    with pytest.raises(DatasetError, match="no training data"):
        load_sources([], progress=False)


def test_bag_source_needs_bag_reader(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "temcoco_core.io.bag", None)   # simulate absence
    with pytest.raises(DatasetError, match=r"temcoco_core\.io\.bag"):
        load_sources([DataSource(root=str(tmp_path / "x.mcap"), kind="bag")], progress=False)


@pytest.mark.skipif(not (DATA / "m3svd" / "val").is_dir(), reason=f"{DATA}/m3svd/val absent")
def test_real_m3svd_val_clips():
    src = DataSource(root=str(DATA / "m3svd" / "val"), sequences=["0111_1716"], max_frames=6)
    seqs = load_sources([src], progress=False)
    assert seqs[0].visible_ref is not None and seqs[0].size == (480, 640)
    ds = ClipDataset(seqs, DataConfig(clip_len=4, crop=64), seed=1)
    it = ds[0]
    assert it["visible"].shape == (4, 3, 64, 64) and it["sequence"] == "0111_1716"


def test_bag_source(tmp_path):
    synthetic = pytest.importorskip("temcoco_core.io.synthetic")
    bag = synthetic.write_synthetic_bag(
        tmp_path / "bag", synthetic.SyntheticSceneConfig(width=64, height=48, frames=6))
    seqs = load_sources([DataSource(root=str(bag), kind="bag", max_frames=5)], progress=False)
    assert len(seqs) == 1 and seqs[0].num_frames == 5
    assert seqs[0].visible.shape == (5, 48, 64, 3) and seqs[0].infrared.dtype == np.uint8
    ds = ClipDataset(seqs, DataConfig(clip_len=3, crop=32), seed=0)
    assert ds[0]["infrared"].shape == (3, 3, 32, 32)


def test_infrared_minmax_over_the_full_frame_not_the_crop():
    """A crop of dull background keeps its place in the full frame's range (issue 13)."""
    t, h, w = 5, 40, 48
    ir = np.full((t, h, w), 60, np.uint8)
    ir[:, :8, :8] = 250                                  # one hot corner, outside most crops
    ir[:, 20:, 20:] = 80
    vis = np.full((t, h, w, 3), 100, np.uint8)
    seq = FusionSequence("a", vis, ir)
    quiet = {"visible_blur": False, "infrared_noise": (0, 0), "infrared_stripes": (0, 0)}
    cfg = DataConfig(clip_len=3, crop=16, hflip=False, degrade=DegradeConfig(**quiet))
    for i in range(6):
        it = ClipDataset([seq], cfg, seed=1)[i]
        top, left = it["top"], it["left"]
        want = (ir[0, top:top + 16, left:left + 16].astype(np.float32) - 60) / 190
        assert np.allclose(it["infrared_ref"][0, 0].numpy(), want, atol=1e-6)
    crop_cfg = DataConfig(clip_len=3, crop=16, hflip=False,
                          degrade=DegradeConfig(infrared_minmax_scope="crop", **quiet))
    it = ClipDataset([seq], crop_cfg, seed=1)[0]
    assert float(it["infrared_ref"].max()) in (0.0, 1.0)  # stretched to the crop's own range
