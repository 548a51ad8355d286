# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Numpy frames ↔ model tensors: the one array ↔ tensor path of the pipeline.

:func:`to_model_tensor` turns a decoded frame pair into the two ``(3, h, w)`` float32 tensors in
``[0, 1]`` that every engine takes (visible RGB, infrared grey repeated to three channels, as the
TemCoCo network expects), resizing or padding to the model size. :func:`to_output_frame` turns
the engine's fused ``(3, h, w)`` tensor back into a ``uint8`` image at the size the caller
publishes.

Thermal normalisation (16-bit → ``[0, 1]``) is *not* done here: it is the job of the thermal gain
policy (:mod:`temcoco_core.frames.thermal`), which keeps state across frames. Infrared reaching
this module must already be ``uint8`` or float in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
import sys

import cv2
import numpy as np
import torch

__all__ = [
    "ArrayPool",
    "CorruptMessageError",
    "FrameError",
    "FrameGeometry",
    "FrameSizeMismatchError",
    "FrameTooLargeError",
    "NonFiniteFrameError",
    "PreprocessConfig",
    "compute_geometry",
    "resize_image",
    "to_model_tensor",
    "to_output_frame",
]

_RESIZE_MODES = ("resize", "pad")
_OUTPUT_ENCODINGS = ("rgb8", "bgr8", "mono8")


class FrameError(ValueError):
    """A frame has the wrong shape, dtype, encoding, size or contains NaN/Inf.

    ``kind`` names the failure class for counters and diagnostics (subclasses refine it).
    """

    kind = "bad_frame"


class FrameTooLargeError(FrameError):
    """A frame exceeds the configured ``max_input_pixels`` (checked before decoding)."""

    kind = "too_large"


class NonFiniteFrameError(FrameError):
    """A float frame contains NaN/Inf or values too large to normalise."""

    kind = "non_finite"


class CorruptMessageError(FrameError):
    """An input message cannot even be deserialised (a corrupt record in a bag)."""

    kind = "corrupt_message"


class FrameSizeMismatchError(FrameError):
    """Thermal and RGB frames differ in size and resampling is disabled."""

    kind = "size_mismatch"


class ArrayPool:
    """Reuses frame-sized numpy buffers once nobody references them any more.

    Allocating a fresh multi-megabyte buffer per frame costs a page fault per 4 KiB page when
    the allocator hands the memory back to the OS in between (glibc does for blocks this
    large), which under CPU contention costs more than the arithmetic. A buffer is reused only
    when its reference count shows that only the pool holds it, so tensors still queued inside
    an engine (a clip buffer, a view, a storage) are never overwritten.

    Not thread-safe: one pool per pipeline/worker.

    Args:
        per_key: most buffers kept per ``(shape, dtype)``; beyond that, fresh arrays.
    """

    def __init__(self, per_key: int = 8) -> None:
        self.per_key = per_key
        self._free: dict[tuple[tuple[int, ...], str], list[np.ndarray]] = {}

    def empty(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """An uninitialised C-contiguous array, reused when possible."""
        key = (tuple(int(v) for v in shape), np.dtype(dtype).str)
        bufs = self._free.setdefault(key, [])
        for buf in bufs:
            # references: the list, the loop variable and getrefcount's argument
            if sys.getrefcount(buf) <= 3:
                return buf
        out = np.empty(key[0], dtype)
        if len(bufs) < self.per_key:
            bufs.append(out)
        return out

    def clear(self) -> None:
        self._free.clear()


def _empty(pool: ArrayPool | None, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    return pool.empty(shape, dtype) if pool is not None else np.empty(shape, dtype)


@dataclass
class PreprocessConfig:
    """How decoded frames become model tensors.

    Attributes:
        model_size: ``(W, H)`` the engine runs at; ``None`` keeps the input size.
        resize_mode: ``"resize"`` scales to exactly ``model_size`` (aspect ratio may change);
            ``"pad"`` scales to fit inside ``model_size`` keeping the aspect ratio and pads the
            bottom/right border by edge replication (with ``model_size=None`` it only pads up to
            the next multiple of ``pad_multiple``). :func:`to_output_frame` crops the padding
            off again when given the :class:`FrameGeometry`.
        pad_multiple: in ``"pad"`` mode, padded sides are rounded up to this multiple (the
            network's total down-sampling factor).
        resize_infrared_to_visible: when the infrared frame's size differs from the visible
            one (every real rig: e.g. 640x512 thermal with 1280x720 RGB), resample it into the
            visible frame (default). With a homography the registration already warps the
            thermal image into the RGB frame, so sizes agree. ``False``: raise
            :class:`FrameSizeMismatchError` naming both sizes.
    """

    model_size: tuple[int, int] | None = None
    resize_mode: str = "resize"
    pad_multiple: int = 16
    resize_infrared_to_visible: bool = True

    def __post_init__(self) -> None:
        if self.resize_mode not in _RESIZE_MODES:
            raise ValueError(
                f"PreprocessConfig.resize_mode must be one of {_RESIZE_MODES}, "
                f"got {self.resize_mode!r}"
            )
        if self.pad_multiple < 1:
            raise ValueError(f"PreprocessConfig.pad_multiple must be >= 1, got "
                             f"{self.pad_multiple}")
        if self.model_size is not None:
            w, h = (int(v) for v in self.model_size)
            if w < 1 or h < 1:
                raise ValueError(f"PreprocessConfig.model_size must be positive (W, H), got "
                                 f"{self.model_size}")
            self.model_size = (w, h)


@dataclass(frozen=True)
class FrameGeometry:
    """Where the content sits in the model tensor.

    Attributes:
        input_size: ``(W, H)`` of the visible frame given to :func:`to_model_tensor`.
        content_size: ``(W, H)`` of the scaled image content (top-left aligned).
        tensor_size: ``(W, H)`` of the model tensor (content plus bottom/right padding).
    """

    input_size: tuple[int, int]
    content_size: tuple[int, int]
    tensor_size: tuple[int, int]

    @property
    def padded(self) -> bool:
        return self.content_size != self.tensor_size


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def compute_geometry(input_size: tuple[int, int], cfg: PreprocessConfig) -> FrameGeometry:
    """The content and tensor size for a visible frame of ``input_size`` ``(W, H)``."""
    w, h = input_size
    if cfg.resize_mode == "resize":
        size = cfg.model_size if cfg.model_size is not None else (w, h)
        return FrameGeometry((w, h), size, size)
    if cfg.model_size is None:
        tensor = (_round_up(w, cfg.pad_multiple), _round_up(h, cfg.pad_multiple))
        return FrameGeometry((w, h), (w, h), tensor)
    mw, mh = cfg.model_size
    scale = min(mw / w, mh / h)
    content = (max(1, min(mw, round(w * scale))), max(1, min(mh, round(h * scale))))
    tensor = (_round_up(mw, cfg.pad_multiple), _round_up(mh, cfg.pad_multiple))
    return FrameGeometry((w, h), content, tensor)


def resize_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(H, W[, C])`` to ``size`` ``(W, H)``: area averaging down, bilinear up."""
    h, w = img.shape[:2]
    if (w, h) == tuple(size):
        return img
    shrink = size[0] <= w and size[1] <= h
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = cv2.resize(img, (int(size[0]), int(size[1])), interpolation=interp)
    if img.ndim == 3 and out.ndim == 2:  # cv2 drops a singleton channel axis
        out = out[:, :, None]
    return out


_SCALE = {np.dtype(np.uint8): 1.0 / 255.0, np.dtype(np.uint16): 1.0 / 65535.0}


def _check_dtype(arr: np.ndarray, name: str, allow_uint16: bool) -> np.ndarray:
    """Accept uint8, (uint16) or float; floats become float32 and must be finite."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        if not allow_uint16:
            raise FrameError(
                f"{name} frame is uint16: normalise it with a thermal gain policy "
                "(temcoco_core.frames.thermal) first; expected uint8 or float in [0, 1]"
            )
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise NonFiniteFrameError(f"{name} frame contains NaN or Inf values")
        return out
    raise FrameError(
        f"{name} frame has unsupported dtype {arr.dtype}; expected uint8"
        f"{', uint16' if allow_uint16 else ''} or float"
    )


def _fit(img: np.ndarray, geom: FrameGeometry) -> np.ndarray:
    """Scale ``(H, W[, C])`` to the content size and edge-pad to the tensor size (any dtype)."""
    img = resize_image(img, geom.content_size)
    if geom.padded:
        pw = geom.tensor_size[0] - geom.content_size[0]
        ph = geom.tensor_size[1] - geom.content_size[1]
        pad = ((0, ph), (0, pw)) + (((0, 0),) if img.ndim == 3 else ())
        img = np.pad(img, pad, mode="edge")
    return img


def _to_unit_tensor(img: np.ndarray, repeat: int = 1,
                    pool: ArrayPool | None = None) -> torch.Tensor:
    """An image as a float32 tensor in ``[0, 1]``.

    ``(H, W, C)`` or ``(H, W)`` uint8/uint16/float32 → contiguous ``(C * repeat, H, W)`` float32
    tensor in ``[0, 1]`` (floats clipped).

    Done plane by plane with numpy/OpenCV (single pass per plane, no torch intra-op threads,
    works on read-only message buffers).
    """
    if not img.flags.c_contiguous:
        img = np.ascontiguousarray(img)
    h, w = img.shape[:2]
    planes = cv2.split(img) if img.ndim == 3 else [img]
    n = len(planes)
    out = _empty(pool, (n * repeat, h, w), np.float32)
    scale = _SCALE.get(img.dtype)
    for c, plane in enumerate(planes):
        if scale is not None:
            np.multiply(plane, np.float32(scale), out=out[c])
        else:
            np.clip(plane, 0.0, 1.0, out=out[c])
    for r in range(1, repeat):
        out[r * n:(r + 1) * n] = out[:n]
    return torch.from_numpy(out)


def to_model_tensor(
    visible: np.ndarray,
    infrared: np.ndarray,
    cfg: PreprocessConfig | None = None,
    pool: ArrayPool | None = None,
    infrared_at_content_size: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded frame pair → model input tensors.

    Args:
        visible: ``(H, W, 3)`` RGB, ``uint8`` (/255), ``uint16`` (/65535) or float in ``[0, 1]``
            (clipped).
        infrared: ``(H, W)`` or ``(H, W, 1)`` grey, ``uint8`` or float in ``[0, 1]`` (already
            normalised by the thermal policy). Another size is resampled to the visible size
            (``cfg.resize_infrared_to_visible``, the default) or an error.
        cfg: sizing policy; default keeps the input size.
        pool: reuse output buffers that are no longer referenced (see :class:`ArrayPool`).
        infrared_at_content_size: ``infrared`` was registered straight to the model geometry
            (:class:`~temcoco_core.frames.registration.ThermalRegistration` with
            ``out_size = compute_geometry(...).content_size``): it must have that size and is
            only padded, not resized.

    Returns:
        ``(visible, infrared)``, each a contiguous ``(3, h, w)`` float32 CPU tensor in
        ``[0, 1]``; the infrared grey is repeated to 3 channels. ``(w, h)`` is
        :func:`compute_geometry` ``(...).tensor_size``.

    Raises:
        FrameError: wrong number of dimensions or channels, unsupported dtype, NaN/Inf, empty
            frame, or infrared/visible size mismatch.
    """
    cfg = cfg or PreprocessConfig()
    visible = np.asarray(visible)
    infrared = np.asarray(infrared)
    if visible.ndim != 3 or visible.shape[2] != 3:
        raise FrameError(f"visible frame must be (H, W, 3) RGB, got shape {visible.shape}")
    if infrared.ndim == 3 and infrared.shape[2] == 1:
        infrared = infrared[:, :, 0]
    if infrared.ndim != 2:
        raise FrameError(
            f"infrared frame must be (H, W) or (H, W, 1) grey, got shape {infrared.shape}"
        )
    vh, vw = visible.shape[:2]
    ih, iw = infrared.shape
    if min(vh, vw, ih, iw) == 0:
        raise FrameError(f"empty frame: visible {vw}x{vh}, infrared {iw}x{ih} (W x H)")

    vis = _check_dtype(visible, "visible", allow_uint16=True)
    ir = _check_dtype(infrared, "infrared", allow_uint16=False)
    geom = compute_geometry((vw, vh), cfg)
    if infrared_at_content_size:
        if (iw, ih) != geom.content_size:
            raise FrameError(f"registered infrared size {iw}x{ih} differs from the model "
                             f"content size {geom.content_size[0]}x{geom.content_size[1]}")
    elif (ih, iw) != (vh, vw):
        if not cfg.resize_infrared_to_visible:
            raise FrameSizeMismatchError(
                f"infrared size {iw}x{ih} differs from visible size {vw}x{vh} (W x H); register "
                "the thermal image into the RGB frame or enable resize_infrared_to_visible"
            )
        ir = resize_image(ir, (vw, vh))

    vis_t = _to_unit_tensor(_fit(vis, geom), pool=pool)
    ir_t = _to_unit_tensor(_fit(ir, geom), repeat=3, pool=pool)
    return vis_t, ir_t


def to_output_frame(
    fused: torch.Tensor,
    out_size: tuple[int, int] | None = None,
    encoding: str = "rgb8",
    geometry: FrameGeometry | None = None,
    pool: ArrayPool | None = None,
) -> np.ndarray:
    """Engine output → publishable ``uint8`` image.

    Args:
        fused: ``(3, h, w)`` (or ``(1, 3, h, w)``) RGB float tensor, nominally in ``[0, 1]``
            (clamped); any device.
        out_size: ``(W, H)`` to resize to; ``None`` keeps the (cropped) model size.
        encoding: ``"rgb8"`` → ``(H, W, 3)``, ``"bgr8"`` → ``(H, W, 3)`` BGR, ``"mono8"`` →
            ``(H, W)`` luma (ITU-R BT.601).
        geometry: from :func:`compute_geometry`; when it records padding, the padding is cropped
            off before resizing.
        pool: scratch buffers for the conversion (the returned image is always a new array).

    Returns:
        ``uint8`` array ``(H, W, 3)`` or ``(H, W)``.
    """
    if encoding not in _OUTPUT_ENCODINGS:
        raise FrameError(f"output encoding {encoding!r} not supported; use one of "
                         f"{_OUTPUT_ENCODINGS}")
    if fused.ndim == 4 and fused.shape[0] == 1:
        fused = fused[0]
    if fused.ndim != 3 or fused.shape[0] != 3:
        raise FrameError(f"fused tensor must be (3, h, w), got shape {tuple(fused.shape)}")
    t = fused.detach()
    if t.dtype != torch.float32:
        t = t.float()
    src = t.cpu().contiguous().numpy()
    a = _empty(pool, src.shape, np.float32)
    np.multiply(src, np.float32(255.0), out=a)
    a += np.float32(0.5)
    np.clip(a, 0.0, 255.0, out=a)
    p = _empty(pool, src.shape, np.uint8)
    np.copyto(p, a, casting="unsafe")
    # (3, h, w) → (h, w, 3) in one pass, in the requested channel order
    img = cv2.merge([p[2], p[1], p[0]] if encoding == "bgr8" else [p[0], p[1], p[2]])
    if geometry is not None and geometry.padded:
        cw, ch = geometry.content_size
        img = np.ascontiguousarray(img[:ch, :cw])
    if out_size is not None:
        img = resize_image(img, (int(out_size[0]), int(out_size[1])))
    if encoding == "mono8":
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return img
