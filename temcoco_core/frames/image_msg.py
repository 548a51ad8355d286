# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` ↔ numpy, without ROS or cv_bridge.

Everything here is duck-typed so that the same code serves rclpy messages (in the node) and
rosbags dataclasses (in replay):

* raw images: any object with ``.encoding .height .width .step .is_bigendian .data``;
* compressed images: any object with ``.format .data``.

Decoding honours ``step`` (row padding) and ``is_bigendian`` and never silently reduces bit
depth: ``mono16``/``16UC1`` stay ``uint16`` and ``32FC1`` stays ``float32`` (thermal cameras
publish all of these; see :mod:`temcoco_core.frames.thermal` for normalisation). Encoding goes
the other way through :func:`numpy_to_image_fields`, which returns plain fields that the caller
hands to its own message class (``make_image`` does it through a factory).

Supported raw encodings: ``rgb8 bgr8 rgba8 bgra8 mono8 mono16 8UC1 8UC3 8UC4 16UC1 16UC3 32FC1
rgb16 bgr16 rgba16 bgra16`` and the Bayer mosaics ``bayer_{rggb,bggr,gbrg,grbg}{8,16}`` (decoded
to RGB by OpenCV's bilinear demosaicing). Anything else raises :class:`EncodingError` naming the
encoding.

Untrusted input: every decoder takes ``max_pixels`` (default :data:`DEFAULT_MAX_INPUT_PIXELS`)
and checks it *before* allocating or decoding anything -- raw images by their ``width`` and
``height`` fields, compressed images by the dimensions in their own header (JPEG SOF, PNG IHDR),
read by :func:`compressed_info` without decoding. Compressed data must be the format its
``format`` field names (recognised by its signature): BMP, TIFF, WebP, PFM, HDR… bytes labelled
``jpeg``/``png`` are rejected, never handed to OpenCV's other decoders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from temcoco_core.frames.preprocess import FrameError, FrameTooLargeError

#: Largest ``width * height`` decoded by default: 8192 x 4096 (an 8K camera). A 10000 x 10000
#: frame would need 300 MB (RGB) before any processing -- an OOM kill on an edge board.
DEFAULT_MAX_INPUT_PIXELS = 8192 * 4096

__all__ = [
    "COMPRESSED_FORMATS",
    "DEFAULT_MAX_INPUT_PIXELS",
    "CompressedInfo",
    "ENCODINGS",
    "CompressedImageLike",
    "EncodingError",
    "ImageFields",
    "ImageLike",
    "check_message_size",
    "compressed_info",
    "compressed_to_numpy",
    "decode_image",
    "encode_compressed",
    "image_to_numpy",
    "make_image",
    "numpy_to_image_fields",
    "to_grey",
    "to_rgb",
]


class EncodingError(FrameError):
    """An image message uses an encoding or compressed format this module does not support.

    Or its data does not decode.
    """

    kind = "decode_error"


def _check_pixels(width: int, height: int, max_pixels: int | None, what: str) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise FrameTooLargeError(
            f"{what} is {width}x{height} = {width * height} pixels, above max_input_pixels "
            f"{max_pixels}; rejected before decoding")


class ImageLike(Protocol):
    """The fields of ``sensor_msgs/Image`` that decoding reads."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: int | bool
    data: Any


class CompressedImageLike(Protocol):
    """The fields of ``sensor_msgs/CompressedImage`` that decoding reads."""

    format: str
    data: Any


# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "rgb16": (np.dtype(np.uint16), 3),
    "bgr16": (np.dtype(np.uint16), 3),
    "rgba16": (np.dtype(np.uint16), 4),
    "bgra16": (np.dtype(np.uint16), 4),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "8UC4": (np.dtype(np.uint8), 4),
    "16UC1": (np.dtype(np.uint16), 1),
    "16UC3": (np.dtype(np.uint16), 3),
    "32FC1": (np.dtype(np.float32), 1),
}
for _pattern in ("rggb", "bggr", "gbrg", "grbg"):
    ENCODINGS[f"bayer_{_pattern}8"] = (np.dtype(np.uint8), 1)
    ENCODINGS[f"bayer_{_pattern}16"] = (np.dtype(np.uint16), 1)

# OpenCV names Bayer patterns after the second row's first two pixels, hence the shift.
_BAYER_TO_RGB = {
    "rggb": cv2.COLOR_BayerBG2RGB,
    "bggr": cv2.COLOR_BayerRG2RGB,
    "gbrg": cv2.COLOR_BayerGR2RGB,
    "grbg": cv2.COLOR_BayerGB2RGB,
}

COMPRESSED_FORMATS = ("jpeg", "png")

_SUPPORTED_TEXT = ", ".join(ENCODINGS)


def _check_encoding(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise EncodingError(
            f"unsupported image encoding {encoding!r}; supported: {_SUPPORTED_TEXT}"
        ) from None


def _as_bytes_array(data: Any) -> np.ndarray:
    """Message ``data`` (bytes, array.array, list, numpy) as a flat uint8 array.

    No copy if possible.
    """
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype != np.uint8 else data.reshape(-1)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)


def image_to_numpy(msg: ImageLike, max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS
                   ) -> np.ndarray:
    """Decode a raw ``sensor_msgs/Image``.

    Args:
        msg: object with ``encoding height width step is_bigendian data``.
        max_pixels: largest ``width * height`` accepted (checked first); ``None``: no cap.

    Returns:
        ``(H, W)`` for single-channel encodings, ``(H, W, C)`` otherwise, in the encoding's own
        channel order and dtype (``uint8``, ``uint16`` or ``float32``, native byte order).
        Bayer encodings are demosaiced to ``(H, W, 3)`` RGB. The array may share memory with
        ``msg.data`` (read-only) when no conversion was needed.

    Raises:
        EncodingError: unsupported encoding.
        FrameTooLargeError: more than ``max_pixels`` pixels.
        FrameError: ``data`` shorter than ``step * height`` or ``step`` shorter than a row.
    """
    encoding = str(msg.encoding)
    dtype, channels = _check_encoding(encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height < 0 or width < 0 or step < 0:
        raise FrameError(f"{encoding} image has a negative size ({width}x{height}, step {step})")
    _check_pixels(width, height, max_pixels, f"{encoding} image")
    row_bytes = width * channels * dtype.itemsize
    if height == 0 or width == 0:
        raise FrameError(f"empty {encoding} image ({width}x{height})")
    if step < row_bytes:
        raise FrameError(
            f"{encoding} image step {step} is shorter than one row ({width} px x {channels} ch x "
            f"{dtype.itemsize} B = {row_bytes} B)"
        )
    buf = _as_bytes_array(msg.data)
    if buf.size < step * (height - 1) + row_bytes:
        raise FrameError(
            f"{encoding} image {width}x{height} with step {step} needs {step * height} bytes of "
            f"data, got {buf.size}"
        )
    rows = np.lib.stride_tricks.as_strided(
        buf, shape=(height, row_bytes), strides=(step, 1), writeable=False
    )
    if step != row_bytes:
        rows = np.ascontiguousarray(rows)
    if dtype.itemsize > 1:
        arr = rows.view(dtype.newbyteorder(">" if msg.is_bigendian else "<"))
        if not arr.dtype.isnative:
            arr = arr.astype(dtype.newbyteorder("="))
    else:
        arr = rows.view(dtype)
    arr = arr.reshape(height, width, channels) if channels > 1 else arr.reshape(height, width)
    if encoding.startswith("bayer_"):
        code = _BAYER_TO_RGB[encoding[len("bayer_"):].rstrip("0123456789")]
        arr = cv2.cvtColor(np.ascontiguousarray(arr), code)
    return arr


def _native(arr: np.ndarray) -> np.ndarray:
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


@dataclass(frozen=True)
class CompressedInfo:
    """What a compressed image's own header says, read without decoding.

    Attributes:
        codec: ``"jpeg"`` or ``"png"``.
        width, height: pixel size from the JPEG SOF or PNG IHDR.
        offset: where the image data starts in the message (12 for ``compressedDepth``).
    """

    codec: str
    width: int
    height: int
    offset: int = 0


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# marker bytes of the JPEG frame headers (SOF0..SOF15 but DHT, JPG and DAC)
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# markers without a length field
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD9)])

_SIGNATURES = (  # what a mislabelled payload really is, for the error message
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"RIFF", "RIFF/WebP"),
    (b"PF", "PFM"), (b"Pf", "PFM"), (b"#?", "Radiance HDR"), (b"P5", "PGM"), (b"P6", "PPM"),
    (b"GIF8", "GIF"), (b"\x00\x00\x00\x0cjP", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
)


def _sniff(head: bytes) -> str:
    for sig, name in _SIGNATURES:
        if head.startswith(sig):
            return name
    if head.startswith(_PNG_SIGNATURE):
        return "PNG"
    if head.startswith(b"\xff\xd8"):
        return "JPEG"
    return "unrecognised data"


def _png_size(buf: bytes) -> tuple[int, int]:
    if len(buf) < 24 or buf[12:16] != b"IHDR":
        raise EncodingError("PNG data has no IHDR header (truncated or corrupt)")
    return int.from_bytes(buf[16:20], "big"), int.from_bytes(buf[20:24], "big")


def _jpeg_size(buf: bytes) -> tuple[int, int]:
    """Walk the JPEG markers up to the frame header (SOFn) and read its size."""
    i, n = 2, len(buf)
    while i < n:
        if buf[i] != 0xFF:
            raise EncodingError(f"JPEG data is corrupt (no marker at byte {i})")
        while i < n and buf[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = buf[i]
        i += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # EOI or start of scan before any frame header
            break
        if i + 2 > n:
            break
        length = int.from_bytes(buf[i:i + 2], "big")
        if length < 2:
            raise EncodingError(f"JPEG data is corrupt (segment length {length})")
        if marker in _JPEG_SOF:
            if i + 7 > n:
                break
            height = int.from_bytes(buf[i + 3:i + 5], "big")
            width = int.from_bytes(buf[i + 5:i + 7], "big")
            if height == 0 or width == 0:
                raise EncodingError(f"JPEG frame header gives no size ({width}x{height}; "
                                    "DNL-defined height is not supported)")
            return width, height
        i += length
    raise EncodingError("JPEG data has no frame header (truncated or corrupt)")


def _expected_codecs(fmt: str) -> tuple[str, ...]:
    """The codecs a ``format`` string allows (``()``: the format is not supported)."""
    lower = fmt.lower()
    if not lower.strip():
        return ("jpeg", "png")  # image_transport leaves it empty in some drivers
    found = []
    # image_transport: "<encoding>; <jpeg|png> compressed <encoding>"; bare "jpeg"/"png"
    tokens = lower.replace(";", " ").replace(",", " ").split()
    if "compresseddepth" in tokens:
        return ("png",) if "png" in tokens or tokens == ["compresseddepth"] else ()
    if any(t in ("jpeg", "jpg") for t in tokens):
        found.append("jpeg")
    if "png" in tokens:
        found.append("png")
    return tuple(found)


def compressed_info(msg: CompressedImageLike) -> CompressedInfo:
    """Check a ``sensor_msgs/CompressedImage`` without decoding it.

    Check a ``sensor_msgs/CompressedImage``'s data against its ``format`` and read its size from
    the image header, without decoding.

    Raises:
        EncodingError: unsupported ``format``, data that is not the named format (BMP, TIFF,
            WebP, PFM, HDR... labelled jpeg/png), or a corrupt/truncated header.
    """
    fmt = str(msg.format)
    allowed = _expected_codecs(fmt)
    if not allowed:
        raise EncodingError(
            f"unsupported CompressedImage format {fmt!r}; supported: "
            f"{', '.join(COMPRESSED_FORMATS)} (and compressedDepth png)")
    buf = _as_bytes_array(msg.data)
    offset = 12 if "compresseddepth" in fmt.lower() else 0  # compressed_depth ConfigHeader
    if buf.size <= offset:
        raise EncodingError(f"empty CompressedImage data (format {fmt!r})")
    head = bytes(buf[offset:offset + 65536])  # a frame header sits in the first segments
    if head.startswith(_PNG_SIGNATURE):
        codec = "png"
        width, height = _png_size(head)
    elif head.startswith(b"\xff\xd8\xff"):
        codec = "jpeg"
        width, height = _jpeg_size(bytes(buf[offset:]) if len(head) == 65536 else head)
    else:
        raise EncodingError(f"CompressedImage data labelled {fmt!r} does not decode as "
                            f"{' or '.join(allowed)}: it is {_sniff(head)}")
    if codec not in allowed:
        raise EncodingError(f"CompressedImage data labelled {fmt!r} does not decode as "
                            f"{' or '.join(allowed)}: it is {codec.upper()}")
    return CompressedInfo(codec, width, height, offset)


def compressed_to_numpy(msg: CompressedImageLike,
                        max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS
                        ) -> tuple[np.ndarray, str]:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG).

    ``format`` may be the bare ``"jpeg"``/``"png"`` or image_transport's
    ``"<encoding>; <jpeg|png> compressed <encoding>"``; ``compressedDepth`` PNGs (16UC1) are
    accepted too. The data must be the format named (checked by signature) and its header's
    size at most ``max_pixels`` -- both checked before OpenCV decodes anything.

    Returns:
        ``(array, encoding)``: ``(H, W, 3)`` ``"bgr8"``/``"bgr16"``, ``(H, W, 4)``
        ``"bgra8"``, ``(H, W)`` ``"mono8"`` or ``"mono16"`` -- the layout OpenCV decoded, named
        so that :func:`to_rgb` / :func:`to_grey` treat it correctly.

    Raises:
        EncodingError: a format other than JPEG/PNG, data of another format, or data that does
            not decode.
        FrameTooLargeError: the header's size is above ``max_pixels``.
    """
    info = compressed_info(msg)
    fmt = str(msg.format)
    _check_pixels(info.width, info.height, max_pixels, f"{info.codec.upper()} image")
    buf = _as_bytes_array(msg.data)[info.offset:]
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        msg_text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise EncodingError(f"CompressedImage data does not decode as {info.codec} "
                            f"({msg_text})") from None
    if img is None:
        raise EncodingError(f"CompressedImage data does not decode as {fmt or info.codec}")
    if img.dtype not in (np.uint8, np.uint16) or img.shape[:2] != (info.height, info.width):
        raise EncodingError(f"{info.codec} data decoded to {img.dtype} {img.shape}, not the "
                            f"{info.width}x{info.height} 8/16-bit image its header declares")
    depth = "16" if img.dtype == np.uint16 else "8"
    if img.ndim == 2:
        return img, f"mono{depth}"
    if img.shape[2] == 4:
        return img, f"bgra{depth}"
    return img, f"bgr{depth}"


def check_message_size(msg: ImageLike | CompressedImageLike,
                       max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS) -> tuple[int, int]:
    """``(width, height)`` of a raw or compressed image message without decoding it.

    Checked against ``max_pixels`` (for decoders, such as cv_bridge, that do not check themselves).

    Raises:
        FrameTooLargeError, EncodingError, FrameError: as the decoders.
    """
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        info = compressed_info(msg)
        _check_pixels(info.width, info.height, max_pixels, f"{info.codec.upper()} image")
        return info.width, info.height
    width, height = int(msg.width), int(msg.height)
    if width < 0 or height < 0:
        raise FrameError(f"image has a negative size ({width}x{height})")
    _check_pixels(width, height, max_pixels, f"{msg.encoding} image")
    return width, height


def decode_image(msg: ImageLike | CompressedImageLike,
                 max_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS) -> tuple[np.ndarray, str]:
    """Decode a raw or compressed image message; returns ``(array, encoding)``.

    Compressed messages are recognised by their ``format`` attribute. ``max_pixels`` caps
    ``width * height`` before anything is allocated (``None``: no cap).
    """
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_to_numpy(msg, max_pixels)
    encoding = str(msg.encoding)
    arr = image_to_numpy(msg, max_pixels)
    if encoding.startswith("bayer_"):
        encoding = "rgb16" if arr.dtype == np.uint16 else "rgb8"
    return arr, encoding


def to_rgb(arr: np.ndarray, encoding: str) -> np.ndarray:
    """A decoded image as ``(H, W, 3)`` RGB in its own dtype (alpha dropped, grey repeated).

    ``8UC3``/``16UC3`` are taken to be BGR (OpenCV's convention, as cv_bridge does).
    """
    _check_encoding(encoding)
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if encoding.startswith(("rgb", "bayer_")):
        return arr[:, :, :3] if arr.shape[2] == 4 else arr
    # bgr*, bgra*, 8UC3, 8UC4, 16UC3
    return np.ascontiguousarray(arr[:, :, 2::-1])


def to_grey(arr: np.ndarray, encoding: str) -> np.ndarray:
    """A decoded image as ``(H, W)`` grey in its own dtype (colour → BT.601 luma)."""
    _check_encoding(encoding)
    if arr.ndim == 2:
        return arr
    rgb = to_rgb(arr, encoding)
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


@dataclass
class ImageFields:
    """Plain ``sensor_msgs/Image`` fields (everything but the header).

    ``data`` is a flat ``uint8`` numpy array of ``step * height`` bytes; rosbags accepts it as
    is, rclpy accepts it too (or ``data.tobytes()``).
    """

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


def numpy_to_image_fields(arr: np.ndarray, encoding: str) -> ImageFields:
    """Encode an array as ``sensor_msgs/Image`` fields (little-endian, no row padding).

    Args:
        arr: ``(H, W)`` or ``(H, W, C)`` with the dtype and channel count of ``encoding``
            (a ``(H, W, 1)`` array is accepted for single-channel encodings).
        encoding: target encoding; the array must already be in its channel order.

    Raises:
        EncodingError: unsupported encoding.
        FrameError: the array's dtype or channel count does not match the encoding.
    """
    dtype, channels = _check_encoding(encoding)
    arr = np.asarray(arr)
    if arr.ndim == 3 and channels == 1 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    got = 1 if arr.ndim == 2 else (arr.shape[2] if arr.ndim == 3 else -1)
    if got != channels:
        raise FrameError(
            f"array of shape {arr.shape} cannot be encoded as {encoding!r} "
            f"({channels} channel{'s' if channels > 1 else ''})"
        )
    if arr.dtype != dtype:
        raise FrameError(f"array dtype {arr.dtype} cannot be encoded as {encoding!r} ({dtype})")
    arr = np.ascontiguousarray(_native(arr)).astype(dtype.newbyteorder("<"), copy=False)
    h, w = arr.shape[:2]
    return ImageFields(
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=w * channels * dtype.itemsize,
        data=arr.reshape(-1).view(np.uint8),
    )


def make_image(
    factory: Callable[..., Any],
    arr: np.ndarray,
    encoding: str,
    header: Any,
) -> Any:
    """Build an image message with the caller's class: ``factory(header=..., height=..., ...)``.

    ``factory`` is e.g. ``sensor_msgs.msg.Image`` (rclpy) or the rosbags typestore class.
    """
    f = numpy_to_image_fields(arr, encoding)
    return factory(header=header, height=f.height, width=f.width, encoding=f.encoding,
                   is_bigendian=f.is_bigendian, step=f.step, data=f.data)


_COLOR_ENCODINGS = ("rgb8", "rgba8", "bgr8", "bgra8", "rgb16", "rgba16", "bgr16", "bgra16")


def encode_compressed(arr: np.ndarray, encoding: str, fmt: str = "jpeg",
                      quality: int = 90, png_level: int = 3) -> tuple[np.ndarray, str]:
    """Compress an image for ``sensor_msgs/CompressedImage`` as compressed_image_transport does.

    Same targets and ``format`` strings as its publisher, so image_transport subscribers (and
    :func:`compressed_to_numpy`) decode the result:

    * ``jpeg``: colour → 8-bit BGR (``"rgb8; jpeg compressed bgr8"``), grey → ``mono8``
      (``"mono8; jpeg compressed mono8"``); 16-bit input is scaled to 8 bits, as cv_bridge does.
    * ``png``: colour → BGR of the same depth (``"rgb16; png compressed bgr16"``), grey keeps
      its depth (``"mono16; png compressed "``: a 16-bit thermal image stays 16-bit).

    Alpha is dropped (image_transport converts colour to BGR). ``32FC1`` and other non-8/16-bit
    encodings cannot be compressed this way.

    Args:
        arr: ``(H, W)`` or ``(H, W, C)`` in ``encoding``'s layout and dtype.
        encoding: the raw image's encoding (becomes the format's first word).
        fmt: ``"jpeg"`` or ``"png"``.
        quality: JPEG quality 1-100.
        png_level: PNG compression level 0-9.

    Returns:
        ``(data, format)``: flat ``uint8`` bytes and the ``format`` field.

    Raises:
        EncodingError: unsupported format or encoding, or an encoder failure.
    """
    if fmt not in COMPRESSED_FORMATS:
        raise EncodingError(f"unsupported compressed format {fmt!r}; use one of "
                            f"{COMPRESSED_FORMATS}")
    dtype, channels = _check_encoding(encoding)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise EncodingError(f"{fmt} compression needs an 8 or 16-bit image, got {encoding!r}")
    arr = np.asarray(arr)
    if arr.dtype != dtype:
        raise FrameError(f"array dtype {arr.dtype} does not match encoding {encoding!r}")
    depth = 16 if dtype == np.uint16 else 8
    colour = encoding in _COLOR_ENCODINGS
    if colour:
        img = np.ascontiguousarray(to_rgb(arr, encoding)[:, :, ::-1])
    elif channels == 1 and not encoding.startswith("bayer_"):
        img = arr[:, :, 0] if arr.ndim == 3 else arr
    else:
        raise EncodingError(f"{fmt} compression needs a colour or single-channel encoding, got "
                            f"{encoding!r} (debayer or convert it first)")
    if fmt == "jpeg":
        if depth == 16:  # cv_bridge's 16 → 8 bit conversion
            img = (img.astype(np.float32) * (255.0 / 65535.0) + 0.5).astype(np.uint8)
        target = "bgr8" if colour else "mono8"
        ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        target = f"bgr{depth}" if colour else ""
        ok, data = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    if not ok:
        raise EncodingError(f"OpenCV could not encode a {encoding} {arr.shape} image as {fmt}")
    return data.reshape(-1), f"{encoding}; {fmt} compressed {target}"
