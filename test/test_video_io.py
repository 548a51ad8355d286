# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Video / frame-folder readers and dataset loaders (temcoco_core.io.video, .datasets)."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from temcoco_core.io.datasets import (
    DatasetError,
    detect_folder_layout,
    FusionSequence,
    load_dataset,
    load_m3svd_val,
    load_sequence,
    load_video_pairs,
)
from temcoco_core.io.video import (
    iter_video,
    read_frame_folder,
    read_video,
    video_info,
    VideoError,
    VideoWriter,
    write_frame_folder,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "m3svd"


def _frames(t=4, h=32, w=48, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    big = cv2.resize(base, (w, h), interpolation=cv2.INTER_NEAREST)
    return np.stack([np.roll(big, i, axis=1) for i in range(t)])


def _write_video(path, frames, fps=10):
    with VideoWriter(path, fps=fps) as w:
        for f in frames:
            w.write(f)
    return path


def test_video_roundtrip_rgb_order_and_slicing(tmp_path):
    frames = np.zeros((5, 32, 48, 3), np.uint8)
    frames[..., 0] = 200  # pure red in RGB
    frames[:, :, :, 2] = np.arange(5)[:, None, None] * 40
    p = _write_video(tmp_path / "sub" / "v.mp4", frames)
    out = read_video(p)
    assert out.shape == (5, 32, 48, 3) and out.dtype == np.uint8
    assert abs(int(out[0, ..., 0].mean()) - 200) < 12  # red stays in channel 0
    assert out[0, ..., 1].mean() < 12
    assert read_video(p, max_frames=2).shape[0] == 2
    part = read_video(p, start=3)
    assert part.shape[0] == 2
    assert abs(part[0, ..., 2].mean() - 120) < 12
    assert len(list(iter_video(p, start=1, max_frames=2))) == 2
    info = video_info(p)
    assert (info.width, info.height) == (48, 32) and info.frame_count == 5


def test_video_errors(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        read_video(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video")
    with pytest.raises(VideoError, match="bad.mp4"):
        read_video(bad)
    p = _write_video(tmp_path / "v.mp4", _frames(3))
    with pytest.raises(VideoError, match="no decodable frames"):
        read_video(p, start=10)
    with VideoWriter(tmp_path / "w.mp4", fps=5) as w:
        w.write(np.zeros((16, 16, 3), np.uint8))
        with pytest.raises(VideoError, match="16x16"):
            w.write(np.zeros((16, 32, 3), np.uint8))
        with pytest.raises(VideoError, match="uint8"):
            w.write(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(VideoError, match="fps"):
        VideoWriter(tmp_path / "x.mp4", fps=0)


def test_frame_folder_natural_order_grey_and_errors(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i in (1, 2, 10):  # natural order: 1, 2, 10 (lexicographic would put 10 second)
        img = np.full((8, 12, 3), i * 10, np.uint8)
        img[..., 0] = 255  # blue in BGR on disk
        cv2.imwrite(str(d / f"{i}.png"), img)
    rgb = read_frame_folder(d)
    assert rgb.shape == (3, 8, 12, 3)
    assert list(rgb[:, 0, 0, 1]) == [10, 20, 100]
    assert (rgb[..., 2] == 255).all()  # BGR -> RGB
    grey = read_frame_folder(d, grey=True)
    assert grey.shape == (3, 8, 12)
    assert read_frame_folder(d, max_frames=2).shape[0] == 2

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoError, match="no image files"):
        read_frame_folder(empty)
    with pytest.raises(VideoError, match="not found"):
        read_frame_folder(tmp_path / "missing")
    cv2.imwrite(str(d / "11.png"), np.zeros((9, 12, 3), np.uint8))
    with pytest.raises(VideoError, match="11.png"):
        read_frame_folder(d)
    (d / "11.png").unlink()
    (d / "12.png").write_bytes(b"garbage")
    with pytest.raises(VideoError, match="12.png"):
        read_frame_folder(d)


def test_write_frame_folder_roundtrip(tmp_path):
    frames = _frames(3)
    write_frame_folder(tmp_path / "out", frames)
    assert np.array_equal(read_frame_folder(tmp_path / "out"), frames)


def _make_m3svd(root, seqs=("a", "b"), t=3, h=16, w=24):
    for sub, grey in (("visible_Blur", False), ("infrared_noise", True),
                      ("visible_Enhance", False), ("infrared_Enhance", True)):
        for s in seqs:
            d = root / sub / s
            d.mkdir(parents=True)
            for i in range(t):
                shape = (h, w) if grey else (h, w, 3)
                img = np.full(shape, 10 * i + (5 if "Enhance" in sub else 0), np.uint8)
                if not grey:
                    img[..., 0] = 250  # B
                cv2.imwrite(str(d / f"{i:04d}.png"), img)
    return root


def test_m3svd_layout_synthetic(tmp_path):
    root = _make_m3svd(tmp_path / "ds")
    assert detect_folder_layout(root).name == "m3svd-val"
    seqs = load_m3svd_val(root)
    assert [s.name for s in seqs] == ["a", "b"]
    s = seqs[0]
    assert s.visible.shape == (3, 16, 24, 3) and s.infrared.shape == (3, 16, 24)
    assert (s.visible[..., 2] == 250).all()  # RGB order
    assert s.infrared[1, 0, 0] == 10 and s.infrared_ref[1, 0, 0] == 15
    assert s.visible_ref is not None and s.ir_ref is s.infrared_ref
    assert len(load_dataset(root)) == 2
    assert len(load_m3svd_val(root, sequences=["b"], max_frames=2)[0].visible) == 2


def test_m3svd_layout_errors_name_the_sequence(tmp_path):
    root = _make_m3svd(tmp_path / "ds")
    (root / "infrared_noise" / "b" / "0002.png").unlink()
    with pytest.raises(DatasetError, match=r"sequence b: unequal frame counts"):
        load_m3svd_val(root)
    with pytest.raises(DatasetError, match="sequence zz"):
        load_m3svd_val(root, sequences=["zz"])
    cv2.imwrite(str(root / "visible_Enhance" / "a" / "0001.png"), np.zeros((17, 24, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"sequence a: .*0001.png"):
        load_m3svd_val(root, sequences=["a"])
    (root / "visible_Enhance" / "a" / "0001.png").unlink()
    cv2.imwrite(str(root / "visible_Enhance" / "a" / "0001.png"), np.zeros((16, 24, 3), np.uint8))
    for f in (root / "infrared_Enhance" / "a").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"sequence a: .*no image files"):
        load_m3svd_val(root, sequences=["a"])
    with pytest.raises(DatasetError, match="not a recognised dataset"):
        load_dataset(tmp_path)


def test_fusion_sequence_validation():
    v = np.zeros((3, 8, 8, 3), np.uint8)
    with pytest.raises(DatasetError, match="seqX: infrared has 2 frames"):
        FusionSequence("seqX", v, np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DatasetError, match="seqX: infrared is 9x8"):
        FusionSequence("seqX", v, np.zeros((3, 8, 9), np.uint8))
    with pytest.raises(DatasetError, match="uint8"):
        FusionSequence("seqX", v.astype(np.float32), np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(DatasetError, match="no frames"):
        FusionSequence("seqX", v[:0], np.zeros((0, 8, 8), np.uint8))
    s = FusionSequence("ok", v, np.zeros((3, 8, 8), np.uint8))
    assert s.head(2).num_frames == 2 and s.vis_ref is s.visible and s.size == (8, 8)


def test_video_pairs_and_load_sequence(tmp_path):
    vis = _frames(4, seed=1)
    ir = _frames(4, seed=2)
    ir3 = np.repeat(ir[..., :1], 3, axis=3)
    _write_video(tmp_path / "visible" / "s1.mp4", vis)
    _write_video(tmp_path / "infrared" / "s1.mp4", ir3)
    seqs = load_video_pairs(tmp_path)
    assert len(seqs) == 1 and seqs[0].name == "s1"
    s = seqs[0]
    assert s.infrared.shape == (4, 32, 48) and s.visible.shape == (4, 32, 48, 3)
    assert np.abs(s.infrared.astype(int) - ir[..., 0]).mean() < 8
    assert s.visible_ref is s.visible
    assert load_dataset(tmp_path)[0].name == "s1"
    one = load_sequence(tmp_path / "visible" / "s1.mp4", tmp_path / "infrared" / "s1.mp4")
    assert one.name == "s1" and one.num_frames == 4

    _write_video(tmp_path / "infrared" / "s1.mp4", ir3[:3])
    with pytest.raises(DatasetError, match=r"sequence s1: unequal frame counts"):
        load_video_pairs(tmp_path)
    assert load_video_pairs(tmp_path, max_frames=3)[0].num_frames == 3
    _write_video(tmp_path / "visible" / "s2.mp4", vis)
    with pytest.raises(DatasetError, match="sequence s2: no infrared video"):
        load_video_pairs(tmp_path, max_frames=3)


def test_real_m3svd_val_and_test():
    if not (DATA / "val").is_dir() or not (DATA / "test").is_dir():
        pytest.skip(f"real data not present at {DATA}")
    seqs = load_m3svd_val(DATA / "val", sequences=["0111_1716"], max_frames=2)
    s = seqs[0]
    assert s.visible.shape == (2, 480, 640, 3) and s.infrared.shape == (2, 480, 640)
    # blurred input and clean reference differ, references are present
    assert s.visible_ref is not None and not np.array_equal(s.visible, s.visible_ref)
    pairs = load_video_pairs(DATA / "test", max_frames=2, sequences=["0111_1716"])
    assert pairs[0].infrared.shape == (2, 480, 640)
