# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Training data: datasets -> random, seeded T-frame clips with degraded inputs, clean targets.

Sources (:class:`DataSource`) are read once through :mod:`temcoco_core.io.datasets` (frame
folders in the M3SVD / HDO / MS3V layouts, visible+infrared video pairs) or
:mod:`temcoco_core.io.bag` (rosbags), and kept in memory as uint8 (T, H, W, 3) + (T, H, W).

Why decode once and keep uint8 in memory: a random clip from an H.264 file needs a seek to the
previous key frame and decoding up to a whole group of pictures, i.e. tens to hundreds of
frames per 8-frame clip, which costs more than a training step on a GPU; the whole M3SVD test
split (1708 frames at 640×480) is about 2.1 GB as uint8 (1.2 MB per visible+infrared pair),
small next to the machine's memory. ``max_frames`` per source caps it.

:class:`ClipDataset` is map-style and *stateless*: item ``i`` is drawn from
``numpy.random.default_rng([seed, i])``, so a clip depends only on (seed, i) -- not on worker
count, order or resume point. The trainer asks for items ``step·B … step·B + B − 1``.
Each item: a clip start chosen uniformly over every valid (sequence, start) pair (so longer
sequences are drawn more often), a random ``crop × crop`` window, optional horizontal/vertical
flips and temporal reversal (same for the whole clip), then :class:`~.degrade.Degrader`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from temcoco_core.io.datasets import (
    DatasetError,
    FusionSequence,
    load_dataset,
    load_folder_dataset,
    load_video_pairs,
)
from temcoco_core.train.degrade import DegradeConfig, Degrader

__all__ = [
    "SOURCE_KINDS",
    "ClipDataset",
    "DataConfig",
    "DataSource",
    "load_sources",
]

log = logging.getLogger(__name__)

SOURCE_KINDS: tuple[str, ...] = ("auto", "folders", "videos", "bag")


@dataclass
class DataSource:
    """One dataset root.

    Attributes:
        root: folder (frame folders / video pairs) or rosbag (directory or ``.db3``/``.mcap``);
            relative to the working directory.
        kind: ``"auto"`` (frame-folder layouts, then video pairs), ``"folders"``, ``"videos"``
            or ``"bag"``.
        layout: frame-folder layout name (see ``temcoco_core.io.datasets.FOLDER_LAYOUTS``);
            ``None`` detects it.
        sequences: sequence names to use (default all).
        max_frames: first frames per sequence to keep (memory cap).
        visible_topic, infrared_topic: image topics for ``kind: bag``.
    """

    root: str = ""
    kind: str = "auto"
    layout: str | None = None
    sequences: list[str] | None = None
    max_frames: int | None = None
    visible_topic: str | None = None
    infrared_topic: str | None = None

    def __post_init__(self) -> None:
        if not self.root:
            raise ValueError("data source needs a root")
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"data source {self.root}: kind must be one of {SOURCE_KINDS}, "
                             f"got {self.kind!r}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"data source {self.root}: max_frames must be >= 1")


@dataclass
class DataConfig:
    """Clip sampling.

    Attributes:
        sources: training data roots.
        clip_len: frames per clip, T (10 as released; 6-8 on a CPU).
        crop: square crop side in pixels (224 as released; 128-160 on a CPU).
        hflip, vflip: random flips (probability 0.5 each, same for the whole clip).
        reverse: random temporal reversal (probability 0.5).
        frame_stride: ``(low, high)``: a clip takes every ``s``-th frame, ``s`` uniform in
            ``[low, high]`` per clip (capped where the sequence ends), so the network meets the
            larger motion between frames of a slower camera or a faster scene; ``(1, 1)``:
            consecutive frames.
        degrade: input degradations.
        num_workers: DataLoader worker processes (0 = in the training process).
    """

    sources: list[DataSource] = field(default_factory=list)
    clip_len: int = 6
    crop: int = 128
    hflip: bool = True
    vflip: bool = False
    reverse: bool = False
    frame_stride: tuple[int, int] = (1, 1)
    degrade: DegradeConfig = field(default_factory=DegradeConfig)
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.clip_len < 1:
            raise ValueError(f"clip_len must be >= 1, got {self.clip_len}")
        if self.crop < 16:
            raise ValueError(f"crop must be >= 16, got {self.crop}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        lo, hi = (int(v) for v in self.frame_stride)
        if not 1 <= lo <= hi:
            raise ValueError(f"frame_stride must be (low, high) with 1 <= low <= high, got "
                             f"{self.frame_stride}")
        self.frame_stride = (lo, hi)


def _load_bag(src: DataSource) -> list[FusionSequence]:
    """One sequence from a rosbag: RGB and thermal image topics (auto-detected unless named).

    Paired by approximate time (:mod:`temcoco_core.frames.pairing`), decoded by
    :mod:`temcoco_core.frames.image_msg`, thermal brought to 8 bits by
    :class:`temcoco_core.frames.thermal.ThermalNormalizer` (as the node does) and resized to the
    RGB size when the cameras differ (no registration: the bag must be aligned).
    """
    try:
        from temcoco_core.frames.image_msg import decode_image, to_grey, to_rgb
        from temcoco_core.frames.pairing import ApproximatePairer, PairingConfig
        from temcoco_core.frames.thermal import ThermalNormalizer
        from temcoco_core.io.bag import BagReader, select_image_topics, stamp_to_ns
    except ImportError as e:
        raise DatasetError(
            f"data source {src.root}: rosbag training data needs temcoco_core.io.bag, which "
            f"is not available in this install ({e})"
        ) from e
    import cv2

    name = Path(src.root).stem
    vis_frames: list[np.ndarray] = []
    ir_frames: list[np.ndarray] = []
    with BagReader(src.root) as reader:
        rgb_t, th_t = select_image_topics(reader.topics, src.visible_topic, src.infrared_topic,
                                          source=str(src.root))
        pairer = ApproximatePairer(2, PairingConfig(queue_size=30), [rgb_t, th_t])
        norm = ThermalNormalizer()
        for m in reader.messages([rgb_t, th_t]):
            res = pairer.add(0 if m.topic == rgb_t else 1, stamp_to_ns(m.msg.header.stamp),
                             m.msg)
            if res.reset:
                norm.reset()
            if res.pair is None:
                continue
            v_arr, v_enc = decode_image(res.pair.payloads[0])
            t_arr, t_enc = decode_image(res.pair.payloads[1])
            vis = to_rgb(v_arr, v_enc)
            if vis.dtype != np.uint8:
                vis = (vis.astype(np.float32) / 257.0).round().astype(np.uint8)
            grey = norm(to_grey(t_arr, t_enc), res.pair.stamps_ns[1])
            ir = (grey * 255.0).round().astype(np.uint8)
            if ir.shape != vis.shape[:2]:
                ir = cv2.resize(ir, (vis.shape[1], vis.shape[0]), interpolation=cv2.INTER_AREA)
            vis_frames.append(vis)
            ir_frames.append(ir)
            if src.max_frames is not None and len(vis_frames) >= src.max_frames:
                break
    if not vis_frames:
        raise DatasetError(f"sequence {name}: no RGB/thermal pairs in bag {src.root} "
                           f"(topics {rgb_t}, {th_t})")
    return [FusionSequence(name, np.stack(vis_frames), np.stack(ir_frames),
                           meta={"bag": str(src.root), "visible_topic": rgb_t,
                                 "infrared_topic": th_t})]


def load_sources(sources: Sequence[DataSource], progress: bool = True) -> list[FusionSequence]:
    """Read every source into memory.

    Raises:
        DatasetError: unreadable / inconsistent data (names the sequence and file), no source.
    """
    if not sources:
        raise DatasetError("no training data: give at least one data source")
    out: list[FusionSequence] = []
    for src in sources:
        root = Path(src.root)
        if src.kind == "bag":
            seqs = _load_bag(src)
        elif not root.exists():
            raise DatasetError(f"data source not found: {root}")
        elif src.kind == "folders":
            seqs = load_folder_dataset(root, src.layout, sequences=src.sequences,
                                       max_frames=src.max_frames, progress=progress)
        elif src.kind == "videos":
            seqs = load_video_pairs(root, max_frames=src.max_frames, sequences=src.sequences,
                                    progress=progress)
        else:
            seqs = load_dataset(root, sequences=src.sequences, max_frames=src.max_frames,
                                progress=progress)
        out.extend(seqs)
    return out


class ClipDataset(Dataset):
    """Seeded random clips from in-memory sequences.

    Args:
        sequences: the data; clean frames are ``seq.vis_ref`` / ``seq.ir_ref`` (the
            references where a dataset has them, else the inputs).
        config: clip length, crop, flips, degradations.
        seed: base seed; item ``i`` uses ``default_rng([seed, i])``.
        length: ``len(dataset)`` (the sampler decides which indices are used).

    Items are dicts of float32 tensors in [0, 1]:
        ``visible`` (T, 3, c, c) degraded, ``infrared`` (T, 3, c, c) degraded grey ×3,
        ``visible_ref`` (T, 3, c, c) clean, ``infrared_ref`` (T, 1, c, c) clean,
        and where it came from: ``index``, ``sequence`` (name), ``start``, ``top``, ``left``
        (ints), ``hflip``, ``vflip``, ``reversed`` (bools).

    Raises:
        DatasetError: no sequence has ``clip_len`` frames, or a sequence is smaller than the
            crop (names it).
    """

    def __init__(self, sequences: Sequence[FusionSequence], config: DataConfig, seed: int = 0,
                 length: int = 10**9) -> None:
        self.config = config
        self.seed = int(seed)
        self.length = int(length)
        self.degrader = Degrader(config.degrade)
        t, c = config.clip_len, config.crop
        usable = []
        for seq in sequences:
            h, w = seq.size
            if h < c or w < c:
                raise DatasetError(f"sequence {seq.name}: frames are {w}x{h}, smaller than the "
                                   f"{c}x{c} crop")
            if seq.num_frames < t:
                log.warning("sequence %s: %d frames < clip_len %d, not used", seq.name,
                            seq.num_frames, t)
                continue
            usable.append(seq)
        if not usable:
            raise DatasetError(f"no sequence has clip_len={t} frames "
                               f"({', '.join(f'{s.name}: {s.num_frames}' for s in sequences)})")
        self.sequences = usable
        # full-frame infrared range per frame, in [0, 1] (infrared_minmax_scope == "frame")
        self._ir_ranges: list[tuple[np.ndarray, np.ndarray]] = []
        for s in usable:
            flat = s.ir_ref.reshape(s.num_frames, -1)
            self._ir_ranges.append((flat.min(axis=1).astype(np.float32) / 255.0,
                                    flat.max(axis=1).astype(np.float32) / 255.0))
        starts = np.array([s.num_frames - t + 1 for s in usable], dtype=np.int64)
        self._cum = np.cumsum(starts)

    def __len__(self) -> int:
        return self.length

    @property
    def num_clips(self) -> int:
        """Number of distinct (sequence, start) pairs."""
        return int(self._cum[-1])

    def __getitem__(self, index: int) -> dict[str, Tensor | int | str]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        cfg = self.config
        rng = np.random.default_rng([self.seed, int(index)])
        k = int(rng.integers(0, self.num_clips))
        si = int(np.searchsorted(self._cum, k, side="right"))
        start = k - (int(self._cum[si - 1]) if si else 0)
        seq = self.sequences[si]
        h, w = seq.size
        c, t = cfg.crop, cfg.clip_len
        top = int(rng.integers(0, h - c + 1))
        left = int(rng.integers(0, w - c + 1))
        hflip = cfg.hflip and bool(rng.random() < 0.5)
        vflip = cfg.vflip and bool(rng.random() < 0.5)
        rev = cfg.reverse and bool(rng.random() < 0.5)
        stride = 1
        if cfg.frame_stride[1] > 1:
            stride = int(rng.integers(cfg.frame_stride[0], cfg.frame_stride[1] + 1))
            room = (len(seq.vis_ref) - 1 - start) // max(t - 1, 1)
            stride = max(1, min(stride, room))
        stop = start + stride * (t - 1) + 1

        vis = seq.vis_ref[start:stop:stride, top:top + c, left:left + c]   # (T, c, c, 3)
        ir = seq.ir_ref[start:stop:stride, top:top + c, left:left + c]     # (T, c, c)
        if hflip:
            vis, ir = vis[:, :, ::-1], ir[:, :, ::-1]
        if vflip:
            vis, ir = vis[:, ::-1], ir[:, ::-1]
        if rev:
            vis, ir = vis[::-1], ir[::-1]
        vis_t = torch.from_numpy(np.ascontiguousarray(vis)).permute(0, 3, 1, 2).float() / 255.0
        ir_t = torch.from_numpy(np.ascontiguousarray(ir)).unsqueeze(1).float() / 255.0
        lo, hi = self._ir_ranges[si]
        ir_range = (torch.from_numpy(lo[start:stop:stride].copy()),
                    torch.from_numpy(hi[start:stop:stride].copy()))
        if rev:
            ir_range = (ir_range[0].flip(0), ir_range[1].flip(0))
        vis_lq, ir_lq, ir_ref, _ = self.degrader(vis_t, ir_t, rng, ir_range=ir_range)
        return {
            "visible": vis_lq,
            "infrared": ir_lq.expand(-1, 3, -1, -1).contiguous(),
            "visible_ref": vis_t,
            "infrared_ref": ir_ref,
            "index": int(index),
            "sequence": seq.name,
            "start": int(start),
            "stride": stride,
            "top": top,
            "left": left,
            "hflip": hflip,
            "vflip": vflip,
            "reversed": rev,
        }
