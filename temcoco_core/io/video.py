# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Video files and image-frame folders as uint8 RGB numpy arrays.

Every reader returns RGB (OpenCV's BGR is converted once, here), shaped (T, H, W, 3) uint8, or
(T, H, W) uint8 for grey frame folders. Every failure raises :class:`VideoError` (a
``ValueError``) naming the file or folder.

* :func:`read_video` / :func:`iter_video` -- decode any container OpenCV reads (mp4, avi, mkv).
* :class:`VideoWriter` -- mp4 (``mp4v`` fourcc) writer, a context manager.
* :func:`read_frame_folder` / :func:`write_frame_folder` -- numbered image files (png/jpg/...),
  in natural order (``2.png`` before ``10.png``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
import re

import cv2
import numpy as np

__all__ = [
    "IMAGE_EXTENSIONS",
    "VideoError",
    "VideoInfo",
    "VideoWriter",
    "iter_video",
    "list_frame_files",
    "natural_key",
    "read_frame_folder",
    "read_image",
    "read_video",
    "video_info",
    "write_frame_folder",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class VideoError(ValueError):
    """A video file or frame folder is missing, unreadable, empty or inconsistent."""


@dataclass(frozen=True)
class VideoInfo:
    """Container metadata as reported by OpenCV (``frame_count`` may be an estimate)."""

    fps: float
    frame_count: int
    width: int
    height: int


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders embedded numbers numerically: ``f2.png`` < ``f10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _open_capture(path: str | Path) -> cv2.VideoCapture:
    p = Path(path)
    if not p.exists():
        raise VideoError(f"video file not found: {p}")
    if not p.is_file():
        raise VideoError(f"not a video file (is a directory?): {p}")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"cannot open video (unknown container or codec): {p}")
    return cap


def video_info(path: str | Path) -> VideoInfo:
    """Return fps, frame count and size of a video without decoding it."""
    cap = _open_capture(path)
    try:
        return VideoInfo(
            fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            frame_count=int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
    finally:
        cap.release()


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def iter_video(
    path: str | Path, start: int = 0, max_frames: int | None = None
) -> Iterator[np.ndarray]:
    """Yield frames of a video one at a time, each (H, W, 3) uint8 RGB.

    Args:
        path: video file.
        start: index of the first frame to yield (earlier frames are decoded and skipped, which
            is exact where container seeking is not).
        max_frames: stop after this many frames (``None``: until the end).
    """
    if start < 0:
        raise VideoError(f"start must be >= 0, got {start}")
    if max_frames is not None and max_frames < 0:
        raise VideoError(f"max_frames must be >= 0 or None, got {max_frames}")
    cap = _open_capture(path)
    try:
        for _ in range(start):
            if not cap.grab():
                return
        n = 0
        while max_frames is None or n < max_frames:
            ok, frame = cap.read()
            if not ok or frame is None:
                return
            if frame.dtype != np.uint8:
                raise VideoError(f"{path}: frame {start + n} has dtype {frame.dtype}, need uint8")
            yield _to_rgb(frame)
            n += 1
    finally:
        cap.release()


def read_video(path: str | Path, max_frames: int | None = None, start: int = 0) -> np.ndarray:
    """Decode a video into memory.

    Args:
        path: video file (any container/codec the installed OpenCV reads).
        max_frames: read at most this many frames (``None``: all).
        start: first frame index to return.

    Returns:
        (T, H, W, 3) uint8 RGB array, T >= 1.

    Raises:
        VideoError: missing file, unreadable container, or no frame decoded.
    """
    frames = list(iter_video(path, start=start, max_frames=max_frames))
    if not frames:
        if max_frames == 0:
            raise VideoError(f"max_frames=0 requested for {path}: nothing to read")
        raise VideoError(f"video has no decodable frames at or after frame {start}: {path}")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise VideoError(f"video changes frame size mid-stream ({sorted(shapes)}): {path}")
    return np.stack(frames)


class VideoWriter:
    """Write RGB uint8 frames to an mp4 file (OpenCV, fourcc ``mp4v``).

    Use as a context manager::

        with VideoWriter("out.mp4", fps=30) as w:
            for frame in frames:      # (H, W, 3) RGB or (H, W) grey, uint8
                w.write(frame)

    Args:
        path: output file; parent folders are created.
        fps: frame rate (> 0).
        size: (width, height); ``None`` takes it from the first frame.
        fourcc: four-character codec code.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        size: tuple[int, int] | None = None,
        fourcc: str = "mp4v",
    ) -> None:
        if not fps or fps <= 0:
            raise VideoError(f"fps must be > 0, got {fps}")
        if len(fourcc) != 4:
            raise VideoError(f"fourcc must have 4 characters, got {fourcc!r}")
        self.path = Path(path)
        self.fps = float(fps)
        self.size = tuple(size) if size is not None else None
        self.fourcc = fourcc
        self.frames_written = 0
        self._writer: cv2.VideoWriter | None = None
        self._closed = False

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(
            str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (width, height)
        )
        if not writer.isOpened():
            raise VideoError(
                f"cannot open video writer for {self.path} (fourcc {self.fourcc!r}, "
                f"{width}x{height})"
            )
        self._writer = writer
        self.size = (width, height)

    def write(self, frame: np.ndarray) -> None:
        """Append one frame, (H, W, 3) RGB uint8 or (H, W) grey uint8."""
        if self._closed:
            raise VideoError(f"writer for {self.path} is closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise VideoError(f"{self.path}: frames must be uint8, got {frame.dtype}")
        if frame.ndim == 2:
            frame = np.repeat(frame[..., None], 3, axis=2)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise VideoError(f"{self.path}: frame must be (H, W, 3) or (H, W), got {frame.shape}")
        h, w = frame.shape[:2]
        if self._writer is None:
            if self.size is not None and tuple(self.size) != (w, h):
                raise VideoError(
                    f"{self.path}: frame {w}x{h} does not match writer size "
                    f"{self.size[0]}x{self.size[1]}"
                )
            self._open(w, h)
        elif (w, h) != self.size:
            raise VideoError(
                f"{self.path}: frame {self.frames_written} is {w}x{h}, earlier frames were "
                f"{self.size[0]}x{self.size[1]}"
            )
        assert self._writer is not None
        self._writer.write(np.ascontiguousarray(frame[..., ::-1]))
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file (idempotent)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._closed = True

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def list_frame_files(folder: str | Path) -> list[Path]:
    """Image files of a folder in natural order.

    Raises:
        VideoError: folder missing, not a folder, or without image files.
    """
    d = Path(folder)
    if not d.exists():
        raise VideoError(f"frame folder not found: {d}")
    if not d.is_dir():
        raise VideoError(f"not a folder: {d}")
    files = [p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise VideoError(
            f"frame folder has no image files ({', '.join(IMAGE_EXTENSIONS)}): {d}"
        )
    return sorted(files, key=lambda p: natural_key(p.name))


def read_image(path: str | Path, grey: bool = False) -> np.ndarray:
    """Read one image file as (H, W, 3) uint8 RGB, or (H, W) uint8 when ``grey``.

    Colour files read with ``grey=True`` are converted with OpenCV's BT.601 luma; grey files read
    with ``grey=False`` get three equal channels. 16-bit files are scaled to 8 bit by OpenCV.
    """
    p = Path(path)
    if not p.is_file():
        raise VideoError(f"image file not found: {p}")
    img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if img is None:
        raise VideoError(f"cannot decode image file: {p}")
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_frame_folder(
    folder: str | Path, grey: bool = False, max_frames: int | None = None
) -> np.ndarray:
    """Read the numbered image files of a folder as a frame stack.

    Args:
        folder: folder of image files, ordered naturally by name.
        grey: return grey frames.
        max_frames: read only the first ``max_frames`` files.

    Returns:
        (T, H, W, 3) uint8 RGB, or (T, H, W) uint8 when ``grey``.

    Raises:
        VideoError: missing or empty folder, an unreadable file, or files of different sizes
            (the message names the file).
    """
    files = list_frame_files(folder)
    if max_frames is not None:
        if max_frames <= 0:
            raise VideoError(f"max_frames must be > 0 or None, got {max_frames}")
        files = files[:max_frames]
    frames: list[np.ndarray] = []
    for f in files:
        img = read_image(f, grey=grey)
        if frames and img.shape[:2] != frames[0].shape[:2]:
            h0, w0 = frames[0].shape[:2]
            raise VideoError(
                f"frame size mismatch in {folder}: {f.name} is {img.shape[1]}x{img.shape[0]}, "
                f"{files[0].name} is {w0}x{h0}"
            )
        frames.append(img)
    return np.stack(frames)


def write_frame_folder(
    folder: str | Path, frames: Sequence[np.ndarray] | np.ndarray, ext: str = ".png"
) -> list[Path]:
    """Write frames as ``0000.png, 0001.png, ...``; RGB (H, W, 3) or grey (H, W) uint8.

    Returns the paths written.
    """
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8:
            raise VideoError(f"frame {i} for {d} must be uint8, got {frame.dtype}")
        img = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        p = d / f"{i:04d}{ext}"
        if not cv2.imwrite(str(p), img):
            raise VideoError(f"cannot write image file: {p}")
        out.append(p)
    return out
