# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Infrared-visible video datasets as :class:`FusionSequence` objects.

Layouts read (sequence = one scene, frame i of every stream shows the same instant):

* **Frame folders with degraded inputs and clean references** (M3SVD val as published with
  VideoFusion, and the layouts of the released TemCoCo ``dataset_base.py``, which reads four
  roots -- degraded/clean x visible/infrared -- each holding ``<seq>/<frame>.{png,jpg}``,
  naturally sorted)::

      root/visible_Blur/<seq>/0000.png      degraded visible (BGR on disk)  -> model input
      root/infrared_noise/<seq>/0000.png    degraded infrared (grey)        -> model input
      root/visible_Enhance/<seq>/0000.png   clean visible reference
      root/infrared_Enhance/<seq>/0000.png  clean infrared reference

  The HDO release names these ``vi_blur``, ``ir_noise`` (or ``ir_deg``), ``vi``, ``ir``; the
  MS3V training set ``VI_blur``/``VI_deg``, ``IR_noise``/``IR_deg``, ``VI_en``/``VI``,
  ``IR_en``/``IR``. See :data:`FOLDER_LAYOUTS`.
* **Clean frame folders** ``root/visible/<seq>/`` + ``root/infrared/<seq>/``; references are the
  inputs.
* **Video pairs** ``root/visible/<seq>.mp4`` + ``root/infrared/<seq>.mp4`` (M3SVD test): the
  infrared video is grey stored in three (nearly) equal channels and is converted to one channel;
  references are the inputs.

All loaders raise :class:`DatasetError` (a ``ValueError``) naming the sequence and the file or
folder at fault: missing streams, unequal frame counts, unreadable files, size mismatches, empty
folders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from temcoco_core.io.video import (
    IMAGE_EXTENSIONS,
    natural_key,
    read_frame_folder,
    read_video,
    VideoError,
)

__all__ = [
    "FOLDER_LAYOUTS",
    "VIDEO_EXTENSIONS",
    "DatasetError",
    "FolderLayout",
    "FusionSequence",
    "SequenceLoader",
    "dataset_loaders",
    "dataset_sequences",
    "detect_folder_layout",
    "folder_loaders",
    "load_dataset",
    "load_folder_dataset",
    "load_m3svd_val",
    "load_sequence",
    "load_video_pairs",
    "video_pair_loaders",
    "rgb_to_grey",
]

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


class DatasetError(ValueError):
    """A dataset or sequence is missing, empty or inconsistent (message names the sequence)."""


def rgb_to_grey(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 RGB -> (..., H, W) uint8, BT.601 luma (OpenCV ``RGB2GRAY``)."""
    frames = np.asarray(frames)
    if frames.ndim < 3 or frames.shape[-1] != 3:
        raise DatasetError(f"expected (..., H, W, 3) RGB frames, got shape {frames.shape}")
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in flat])
    return out.reshape(frames.shape[:-1])


@dataclass
class FusionSequence:
    """One aligned infrared-visible sequence.

    Attributes:
        name: sequence name (used in reports and error messages).
        visible: (T, H, W, 3) uint8 RGB -- the model's visible input (degraded where the dataset
            has a degraded protocol).
        infrared: (T, H, W) uint8 grey -- the model's infrared input.
        visible_ref: (T, H, W, 3) uint8 RGB clean visible reference, or ``None`` (then metrics
            use ``visible``).
        infrared_ref: (T, H, W) uint8 clean infrared reference, or ``None``.
        meta: free-form provenance (paths, fps).
    """

    name: str
    visible: np.ndarray
    infrared: np.ndarray
    visible_ref: np.ndarray | None = None
    infrared_ref: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.visible = self._check("visible", self.visible, rgb=True)
        self.infrared = self._check("infrared", self.infrared, rgb=False)
        if self.visible_ref is not None:
            self.visible_ref = self._check("visible_ref", self.visible_ref, rgb=True)
        if self.infrared_ref is not None:
            self.infrared_ref = self._check("infrared_ref", self.infrared_ref, rgb=False)

    def _check(self, what: str, arr: np.ndarray, rgb: bool) -> np.ndarray:
        arr = np.asarray(arr)
        want = "(T, H, W, 3)" if rgb else "(T, H, W)"
        if arr.dtype != np.uint8:
            raise DatasetError(f"sequence {self.name}: {what} must be uint8, got {arr.dtype}")
        if rgb and not (arr.ndim == 4 and arr.shape[3] == 3) or not rgb and arr.ndim != 3:
            raise DatasetError(f"sequence {self.name}: {what} must be {want}, got {arr.shape}")
        if arr.shape[0] == 0:
            raise DatasetError(f"sequence {self.name}: {what} has no frames")
        if what != "visible":
            t, h, w = self.visible.shape[:3]
            if arr.shape[0] != t:
                raise DatasetError(
                    f"sequence {self.name}: {what} has {arr.shape[0]} frames, visible has {t}"
                )
            if arr.shape[1:3] != (h, w):
                raise DatasetError(
                    f"sequence {self.name}: {what} is {arr.shape[2]}x{arr.shape[1]}, visible is "
                    f"{w}x{h}"
                )
        return arr

    @property
    def num_frames(self) -> int:
        """T."""
        return int(self.visible.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.visible.shape[1]), int(self.visible.shape[2])

    @property
    def vis_ref(self) -> np.ndarray:
        """Clean visible frames (T, H, W, 3): ``visible_ref`` if given, else ``visible``."""
        return self.visible if self.visible_ref is None else self.visible_ref

    @property
    def ir_ref(self) -> np.ndarray:
        """Clean infrared frames (T, H, W): ``infrared_ref`` if given, else ``infrared``."""
        return self.infrared if self.infrared_ref is None else self.infrared_ref

    def head(self, n: int) -> FusionSequence:
        """The first ``n`` frames (views, no copy)."""
        if n <= 0:
            raise DatasetError(f"sequence {self.name}: head({n}) needs n > 0")
        return self.slice(0, n)

    def slice(self, start: int, stop: int) -> FusionSequence:
        """Frames ``start:stop`` of every stream (views, no copy)."""
        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[start:stop]

        return FusionSequence(
            self.name, self.visible[start:stop], self.infrared[start:stop],
            cut(self.visible_ref), cut(self.infrared_ref), dict(self.meta),
        )


@dataclass(frozen=True)
class SequenceLoader:
    """A sequence of a dataset that is not read yet.

    Its ``name`` and ``load()``, which reads it (a :class:`FusionSequence`, or
    :class:`DatasetError`). Lets a consumer hold one sequence in memory at a time (``temcoco
    eval``).
    """

    name: str
    load: Callable[[], FusionSequence] = field(repr=False, compare=False)


def _load_all(loaders: Sequence[SequenceLoader], progress: bool, desc: str
              ) -> list[FusionSequence]:
    it: Iterable[SequenceLoader] = loaders
    if progress:
        from tqdm import tqdm

        it = tqdm(loaders, desc=desc, unit="seq")
    return [loader.load() for loader in it]


# ---------------------------------------------------------------------------- folder layouts


@dataclass(frozen=True)
class FolderLayout:
    """Names of the per-stream sub-folders of a frame-folder dataset root.

    ``visible_ref``/``infrared_ref`` of ``None`` mean the dataset has no separate references.
    """

    name: str
    visible: str
    infrared: str
    visible_ref: str | None = None
    infrared_ref: str | None = None


FOLDER_LAYOUTS: tuple[FolderLayout, ...] = (
    FolderLayout("m3svd-val", "visible_Blur", "infrared_noise", "visible_Enhance",
                 "infrared_Enhance"),
    FolderLayout("hdo", "vi_blur", "ir_noise", "vi", "ir"),
    FolderLayout("hdo-deg", "vi_blur", "ir_deg", "vi", "ir"),
    FolderLayout("ms3v", "VI_blur", "IR_noise", "VI_en", "IR_en"),
    FolderLayout("ms3v-deg", "VI_deg", "IR_deg", "VI", "IR"),
    FolderLayout("clean-folders", "visible", "infrared"),
    FolderLayout("clean-folders-short", "vi", "ir"),
)


def _has_sequence_dirs(d: Path) -> bool:
    return d.is_dir() and any(p.is_dir() for p in d.iterdir())


def detect_folder_layout(root: str | Path) -> FolderLayout | None:
    """The folder layout of a dataset root.

    The first of :data:`FOLDER_LAYOUTS` whose input folders exist under ``root`` and hold sequence
    sub-folders (and whose reference folders exist, when the layout names them).
    """
    r = Path(root)
    for lay in FOLDER_LAYOUTS:
        needed = [lay.visible, lay.infrared]
        needed += [n for n in (lay.visible_ref, lay.infrared_ref) if n is not None]
        if all(_has_sequence_dirs(r / n) for n in needed):
            return lay
    return None


def _read_stream(seq: str, folder: Path, grey: bool, max_frames: int | None) -> np.ndarray:
    try:
        return read_frame_folder(folder, grey=grey, max_frames=max_frames)
    except VideoError as e:
        raise DatasetError(f"sequence {seq}: {e}") from e


def folder_loaders(
    root: str | Path,
    layout: FolderLayout | str | None = None,
    sequences: Iterable[str] | None = None,
    max_frames: int | None = None,
) -> list[SequenceLoader]:
    """:func:`load_folder_dataset` one sequence at a time.

    The layout and the sequence names are checked now, each sequence is read by its loader.
    """
    r = Path(root)
    if not r.is_dir():
        raise DatasetError(f"dataset root not found or not a folder: {r}")
    if layout is None:
        lay = detect_folder_layout(r)
        if lay is None:
            known = "; ".join(
                "/".join(n for n in (x.visible, x.infrared, x.visible_ref, x.infrared_ref) if n)
                for x in FOLDER_LAYOUTS
            )
            raise DatasetError(f"no known frame-folder layout under {r} (known: {known})")
    elif isinstance(layout, str):
        by_name = {x.name: x for x in FOLDER_LAYOUTS}
        if layout not in by_name:
            raise DatasetError(f"unknown layout {layout!r}; known: {', '.join(by_name)}")
        lay = by_name[layout]
    else:
        lay = layout
    streams = {"visible": lay.visible, "infrared": lay.infrared,
               "visible_ref": lay.visible_ref, "infrared_ref": lay.infrared_ref}
    for sub in streams.values():
        if sub is not None and not (r / sub).is_dir():
            raise DatasetError(f"dataset {r}: stream folder {sub}/ is missing")
    if sequences is None:
        names = sorted((p.name for p in (r / lay.visible).iterdir() if p.is_dir()),
                       key=natural_key)
        if not names:
            raise DatasetError(f"dataset {r}: no sequence folders in {lay.visible}/")
    else:
        names = list(sequences)
        if not names:
            raise DatasetError(f"dataset {r}: empty sequence list")

    def load(seq: str) -> FusionSequence:
        arrays: dict[str, np.ndarray | None] = {}
        counts: dict[str, int] = {}
        for key, sub in streams.items():
            if sub is None:
                arrays[key] = None
                continue
            d = r / sub / seq
            if not d.is_dir():
                raise DatasetError(f"sequence {seq}: folder missing: {d}")
            arrays[key] = _read_stream(seq, d, grey=key.startswith("infrared"),
                                       max_frames=max_frames)
            counts[sub] = arrays[key].shape[0]
        if len(set(counts.values())) != 1:
            detail = ", ".join(f"{k}: {v}" for k, v in counts.items())
            raise DatasetError(f"sequence {seq}: unequal frame counts ({detail})")
        return FusionSequence(seq, arrays["visible"], arrays["infrared"],
                              arrays["visible_ref"], arrays["infrared_ref"],
                              {"root": str(r), "layout": lay.name})

    return [SequenceLoader(seq, lambda seq=seq: load(seq)) for seq in names]


def load_folder_dataset(
    root: str | Path,
    layout: FolderLayout | str | None = None,
    sequences: Iterable[str] | None = None,
    max_frames: int | None = None,
    progress: bool = False,
) -> list[FusionSequence]:
    """Load every sequence of a frame-folder dataset.

    Args:
        root: dataset root holding the layout's stream folders.
        layout: a :class:`FolderLayout`, the ``name`` of one of :data:`FOLDER_LAYOUTS`, or
            ``None`` to detect it.
        sequences: sequence names to load (default: all sequence folders of the visible stream,
            naturally sorted).
        max_frames: keep only the first ``max_frames`` frames of each sequence.
        progress: show a tqdm bar.

    Returns:
        One :class:`FusionSequence` per sequence; visible frames RGB, infrared grey.

    Raises:
        DatasetError: unknown layout, missing stream folder or sequence, empty folders, unequal
            frame counts, size mismatches, unreadable files.
    """
    return _load_all(folder_loaders(root, layout, sequences, max_frames), progress,
                     "loading sequences")


def load_m3svd_val(
    root: str | Path,
    sequences: Iterable[str] | None = None,
    max_frames: int | None = None,
    progress: bool = False,
) -> list[FusionSequence]:
    """Load the degraded M3SVD validation set.

    ``visible_Blur``, ``infrared_noise`` are the model inputs; ``visible_Enhance``,
    ``infrared_Enhance`` the clean references.

    Returns:
        One :class:`FusionSequence` per sequence: visible (T, H, W, 3) RGB, infrared (T, H, W),
        refs likewise.
    """
    return load_folder_dataset(root, layout="m3svd-val", sequences=sequences,
                               max_frames=max_frames, progress=progress)


# ----------------------------------------------------------------------------- video pairs


def _video_files(d: Path) -> dict[str, Path]:
    return {p.stem: p for p in d.iterdir()
            if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS}


def _read_ir_video(seq: str, path: Path, max_frames: int | None) -> np.ndarray:
    try:
        return rgb_to_grey(read_video(path, max_frames=max_frames))
    except VideoError as e:
        raise DatasetError(f"sequence {seq}: {e}") from e


def _read_vis_video(seq: str, path: Path, max_frames: int | None) -> np.ndarray:
    try:
        return read_video(path, max_frames=max_frames)
    except VideoError as e:
        raise DatasetError(f"sequence {seq}: {e}") from e


def _pair(seq: str, vis: np.ndarray, ir: np.ndarray, vis_src: Path, ir_src: Path,
          truncate: bool) -> tuple[np.ndarray, np.ndarray]:
    if vis.shape[0] != ir.shape[0]:
        if not truncate:
            raise DatasetError(
                f"sequence {seq}: unequal frame counts (visible {vis_src}: {vis.shape[0]}, "
                f"infrared {ir_src}: {ir.shape[0]})"
            )
        n = min(vis.shape[0], ir.shape[0])
        vis, ir = vis[:n], ir[:n]
    if vis.shape[1:3] != ir.shape[1:3]:
        raise DatasetError(
            f"sequence {seq}: visible {vis_src} is {vis.shape[2]}x{vis.shape[1]}, infrared "
            f"{ir_src} is {ir.shape[2]}x{ir.shape[1]}"
        )
    return vis, ir


def video_pair_loaders(
    root: str | Path,
    max_frames: int | None = None,
    sequences: Iterable[str] | None = None,
) -> list[SequenceLoader]:
    """:func:`load_video_pairs` one sequence at a time.

    Folders, names and partners are checked now, each pair is read by its loader.
    """
    r = Path(root)
    vd, idir = r / "visible", r / "infrared"
    for d in (vd, idir):
        if not d.is_dir():
            raise DatasetError(f"video-pair dataset {r}: folder {d.name}/ is missing")
    vis_files, ir_files = _video_files(vd), _video_files(idir)
    if sequences is None:
        names = sorted(vis_files, key=natural_key)
        if not names:
            raise DatasetError(
                f"video-pair dataset {r}: no video files ({', '.join(VIDEO_EXTENSIONS)}) in {vd}"
            )
        orphans = sorted(set(ir_files) - set(vis_files))
        if orphans:
            raise DatasetError(
                f"video-pair dataset {r}: infrared videos without a visible partner: "
                f"{', '.join(orphans)}"
            )
    else:
        names = list(sequences)
    for seq in names:
        if seq not in vis_files:
            raise DatasetError(f"sequence {seq}: no visible video in {vd}")
        if seq not in ir_files:
            raise DatasetError(f"sequence {seq}: no infrared video in {idir}")

    def load(seq: str) -> FusionSequence:
        vis = _read_vis_video(seq, vis_files[seq], max_frames)
        ir = _read_ir_video(seq, ir_files[seq], max_frames)
        vis, ir = _pair(seq, vis, ir, vis_files[seq], ir_files[seq], truncate=False)
        return FusionSequence(seq, vis, ir, vis, ir,
                              {"visible": str(vis_files[seq]), "infrared": str(ir_files[seq])})

    return [SequenceLoader(seq, lambda seq=seq: load(seq)) for seq in names]


def load_video_pairs(
    root: str | Path,
    max_frames: int | None = None,
    sequences: Iterable[str] | None = None,
    progress: bool = False,
) -> list[FusionSequence]:
    """Load ``root/visible/<seq>.mp4`` + ``root/infrared/<seq>.mp4`` pairs (M3SVD test layout).

    The infrared video (grey in three channels) becomes (T, H, W) uint8; references are the
    inputs themselves (``visible_ref is visible``). With ``max_frames`` both videos are cut to
    that many frames, so a length difference beyond it is not an error.

    Raises:
        DatasetError: missing folders, a sequence without its partner video, unequal frame
            counts, different sizes, unreadable video.
    """
    return _load_all(video_pair_loaders(root, max_frames, sequences), progress,
                     "loading videos")


# ------------------------------------------------------------------------- generic entry points


def _read_any(seq: str, path: str | Path, grey: bool, max_frames: int | None) -> np.ndarray:
    p = Path(path)
    if p.is_dir():
        return _read_stream(seq, p, grey=grey, max_frames=max_frames)
    if not p.exists():
        raise DatasetError(f"sequence {seq}: not found: {p}")
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        raise DatasetError(f"sequence {seq}: {p} is a single image; give its folder")
    return (_read_ir_video if grey else _read_vis_video)(seq, p, max_frames)


def load_sequence(
    visible: str | Path,
    infrared: str | Path,
    name: str | None = None,
    visible_ref: str | Path | None = None,
    infrared_ref: str | Path | None = None,
    max_frames: int | None = None,
) -> FusionSequence:
    """Load one sequence from a video file or frame folder per stream (auto-detected).

    Args:
        visible, infrared: video files or frame folders; colour infrared becomes grey (BT.601).
        name: sequence name (default: the visible path's stem).
        visible_ref, infrared_ref: optional clean references (same forms).
        max_frames: read at most this many frames of each stream.

    Raises:
        DatasetError: missing paths, unequal frame counts, size mismatches (names the files).
    """
    seq = name or Path(visible).stem
    vis = _read_any(seq, visible, grey=False, max_frames=max_frames)
    ir = _read_any(seq, infrared, grey=True, max_frames=max_frames)
    vis, ir = _pair(seq, vis, ir, Path(visible), Path(infrared), truncate=False)
    vref = None if visible_ref is None else _read_any(seq, visible_ref, False, max_frames)
    iref = None if infrared_ref is None else _read_any(seq, infrared_ref, True, max_frames)
    return FusionSequence(seq, vis, ir, vref, iref,
                          {"visible": str(visible), "infrared": str(infrared)})


def dataset_sequences(root: str | Path) -> list[str]:
    """Sequence names of a dataset root (any layout :func:`load_dataset` reads), in order.

    Without reading frames.

    Raises:
        DatasetError: not a recognised dataset root.
    """
    return [loader.name for loader in dataset_loaders(root)]


def dataset_loaders(
    root: str | Path,
    sequences: Sequence[str] | None = None,
    max_frames: int | None = None,
) -> list[SequenceLoader]:
    """:func:`load_dataset` one sequence at a time.

    The layout and the sequence names are checked now; each :class:`SequenceLoader` reads its
    sequence when called.
    """
    r = Path(root)
    if not r.is_dir():
        raise DatasetError(f"dataset root not found or not a folder: {r}")
    lay = detect_folder_layout(r)
    if lay is not None:
        return folder_loaders(r, lay, sequences=sequences, max_frames=max_frames)
    if (r / "visible").is_dir() and (r / "infrared").is_dir() and _video_files(r / "visible"):
        return video_pair_loaders(r, max_frames=max_frames, sequences=sequences)
    raise DatasetError(
        f"{r}: not a recognised dataset (need visible/ + infrared/ video pairs, or one of the "
        f"frame-folder layouts: {', '.join(x.name for x in FOLDER_LAYOUTS)})"
    )


def load_dataset(
    root: str | Path,
    sequences: Sequence[str] | None = None,
    max_frames: int | None = None,
    progress: bool = False,
) -> list[FusionSequence]:
    """Load a dataset root of any supported layout (frame folders first, then video pairs)."""
    return _load_all(dataset_loaders(root, sequences, max_frames), progress,
                     "loading sequences")
