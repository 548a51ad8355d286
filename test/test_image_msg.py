# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""sensor_msgs/Image and CompressedImage <-> numpy (temcoco_core.frames.image_msg)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from temcoco_core.frames.image_msg import (
    compressed_to_numpy,
    decode_image,
    encode_compressed,
    EncodingError,
    ENCODINGS,
    image_to_numpy,
    make_image,
    numpy_to_image_fields,
    to_grey,
    to_rgb,
)
from temcoco_core.frames.preprocess import FrameError

RNG = np.random.default_rng(0)


def _random(encoding: str, h: int = 5, w: int = 7) -> np.ndarray:
    dtype, ch = ENCODINGS[encoding]
    shape = (h, w) if ch == 1 else (h, w, ch)
    if dtype == np.float32:
        return RNG.uniform(-40.0, 120.0, shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def _msg(**fields: Any) -> SimpleNamespace:
    return SimpleNamespace(**fields)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16",
                                      "16UC1", "32FC1", "8UC1", "8UC3", "rgb16", "16UC3"])
def test_roundtrip_every_encoding(encoding: str) -> None:
    arr = _random(encoding)
    f = numpy_to_image_fields(arr, encoding)
    assert f.step == arr.shape[1] * arr.itemsize * (arr.shape[2] if arr.ndim == 3 else 1)
    assert f.data.dtype == np.uint8 and f.data.size == f.step * f.height
    out = image_to_numpy(f)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "32FC1"])
def test_step_padding_is_honoured(encoding: str) -> None:
    arr = _random(encoding, 4, 5)
    row = numpy_to_image_fields(arr, encoding)
    pad = 6
    padded = np.zeros((row.height, row.step + pad), np.uint8)
    padded[:, :row.step] = row.data.reshape(row.height, row.step)
    padded[:, row.step:] = 0xAB  # garbage in the padding must not leak in
    msg = _msg(encoding=encoding, height=row.height, width=row.width, step=row.step + pad,
               is_bigendian=0, data=padded.tobytes())
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


@pytest.mark.parametrize("encoding,dtype", [("mono16", ">u2"), ("16UC1", ">u2"),
                                            ("32FC1", ">f4")])
def test_big_endian(encoding: str, dtype: str) -> None:
    arr = _random(encoding, 3, 4)
    msg = _msg(encoding=encoding, height=3, width=4, step=4 * arr.itemsize, is_bigendian=1,
               data=arr.astype(dtype).tobytes())
    out = image_to_numpy(msg)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_sixteen_bit_is_not_reduced() -> None:
    arr = np.array([[0, 1, 65535, 30000]], np.uint16)
    out = image_to_numpy(numpy_to_image_fields(arr, "mono16"))
    assert out.dtype == np.uint16 and out.tolist() == arr.tolist()


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_demosaic_recovers_flat_colour(pattern: str) -> None:
    colour = {"r": 200, "g": 100, "b": 30}
    h, w = 8, 8
    mosaic = np.zeros((h, w), np.uint8)
    for dy in range(2):
        for dx in range(2):
            mosaic[dy::2, dx::2] = colour[pattern[2 * dy + dx]]
    msg = _msg(encoding=f"bayer_{pattern}8", height=h, width=w, step=w, is_bigendian=0,
               data=mosaic.tobytes())
    rgb, enc = decode_image(msg)
    assert enc == "rgb8" and rgb.shape == (h, w, 3)
    np.testing.assert_allclose(rgb[2:-2, 2:-2].reshape(-1, 3).mean(0), [200, 100, 30], atol=2)


def test_to_rgb_and_to_grey_channel_orders() -> None:
    rgb = _random("rgb8")
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    bgra = np.concatenate([bgr, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(to_rgb(bgr, "bgr8"), rgb)
    np.testing.assert_array_equal(to_rgb(bgra, "bgra8"), rgb)
    np.testing.assert_array_equal(to_rgb(rgb, "rgb8"), rgb)
    mono = _random("mono8")
    assert to_rgb(mono, "mono8").shape == mono.shape + (3,)
    np.testing.assert_array_equal(to_grey(mono, "mono8"), mono)
    np.testing.assert_array_equal(to_grey(bgr, "bgr8"), cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def test_unsupported_encoding_names_it() -> None:
    msg = _msg(encoding="yuv422_yuy2", height=2, width=2, step=4, is_bigendian=0, data=bytes(8))
    with pytest.raises(EncodingError, match="yuv422_yuy2"):
        image_to_numpy(msg)
    with pytest.raises(ValueError, match="nv21"):
        numpy_to_image_fields(np.zeros((2, 2), np.uint8), "nv21")


def test_short_data_and_short_step_raise() -> None:
    with pytest.raises(FrameError, match="needs"):
        image_to_numpy(_msg(encoding="rgb8", height=4, width=4, step=12, is_bigendian=0,
                            data=bytes(20)))
    with pytest.raises(FrameError, match="step"):
        image_to_numpy(_msg(encoding="mono16", height=2, width=4, step=4, is_bigendian=0,
                            data=bytes(16)))


def test_encode_rejects_mismatched_array() -> None:
    with pytest.raises(FrameError, match="mono16"):
        numpy_to_image_fields(np.zeros((2, 2), np.uint8), "mono16")
    with pytest.raises(FrameError, match="rgb8"):
        numpy_to_image_fields(np.zeros((2, 2), np.uint8), "rgb8")


def test_compressed_png_roundtrip_is_exact_and_jpeg_close() -> None:
    yy, xx = np.mgrid[:32, :48]
    rgb = np.stack([xx * 5, yy * 7, (xx + yy) * 2], -1).astype(np.uint8)
    data, fmt = encode_compressed(rgb, "rgb8", "png")
    assert fmt == "rgb8; png compressed bgr8"
    arr, enc = compressed_to_numpy(_msg(format=fmt, data=data.tobytes()))
    np.testing.assert_array_equal(to_rgb(arr, enc), rgb)
    data, fmt = encode_compressed(rgb, "rgb8", "jpeg", quality=95)
    arr, enc = decode_image(_msg(format="jpeg", data=data))
    assert np.abs(to_rgb(arr, enc).astype(int) - rgb).mean() < 4


def test_compressed_mono16_png_and_compressed_depth() -> None:
    th = RNG.integers(0, 65535, (6, 9)).astype(np.uint16)
    data, fmt = encode_compressed(th, "mono16", "png")
    arr, enc = compressed_to_numpy(_msg(format=fmt, data=data))
    assert enc == "mono16"
    np.testing.assert_array_equal(arr, th)
    depth = np.concatenate([np.zeros(12, np.uint8), data])  # ConfigHeader + PNG
    arr, enc = compressed_to_numpy(_msg(format="16UC1; compressedDepth png", data=depth))
    np.testing.assert_array_equal(arr, th)


def test_compressed_errors() -> None:
    with pytest.raises(EncodingError, match="theora"):
        compressed_to_numpy(_msg(format="theora", data=b"\x00" * 10))
    with pytest.raises(EncodingError, match="does not decode"):
        compressed_to_numpy(_msg(format="jpeg", data=b"not a jpeg at all"))
    with pytest.raises(EncodingError, match="empty"):
        compressed_to_numpy(_msg(format="png", data=b""))


@dataclass
class _FakeImage:  # stands in for an rclpy message class
    header: Any
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: Any


def test_make_image_with_factories() -> None:
    from temcoco_core.io.bag import get_typestore, make_header

    arr = _random("bgra8")
    msg = make_image(_FakeImage, arr, "bgra8", header="h")
    assert msg.header == "h" and msg.step == arr.shape[1] * 4
    np.testing.assert_array_equal(image_to_numpy(msg), arr)
    ros_cls = get_typestore().types["sensor_msgs/msg/Image"]
    msg = make_image(ros_cls, arr, "bgra8", make_header(5, "cam"))
    raw = get_typestore().serialize_cdr(msg, "sensor_msgs/msg/Image")
    back = get_typestore().deserialize_cdr(raw, "sensor_msgs/msg/Image")
    np.testing.assert_array_equal(image_to_numpy(back), arr)


# ------------------------------------------------------------------ issue 11: untrusted input
def _encoded(ext: str, img: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, data = cv2.imencode(ext, img, params or [])
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("ext,name", [(".bmp", "BMP"), (".tiff", "TIFF"), (".webp", "WebP"),
                                      (".pfm", "PFM"), (".hdr", "HDR"), (".ppm", "PPM")])
@pytest.mark.parametrize("fmt", ["jpeg", "png", "rgb8; jpeg compressed bgr8", ""])
def test_compressed_accepts_only_the_named_format(ext: str, name: str, fmt: str) -> None:
    """Issue 11 case 7: other formats labelled jpeg/png are rejected, never decoded."""
    img = RNG.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    if ext in (".pfm", ".hdr"):
        img = img.astype(np.float32) / 255.0
    try:
        data = _encoded(ext, img)
    except cv2.error:
        pytest.skip(f"this OpenCV cannot write {ext}")
    with pytest.raises(EncodingError, match=name if name != "HDR" else "Radiance HDR"):
        compressed_to_numpy(_msg(format=fmt, data=data))


def test_png_labelled_jpeg_and_jpeg_labelled_png_are_rejected() -> None:
    img = RNG.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    with pytest.raises(EncodingError, match="it is PNG"):
        decode_image(_msg(format="jpeg", data=_encoded(".png", img)))
    with pytest.raises(EncodingError, match="it is JPEG"):
        decode_image(_msg(format="bgr8; png compressed bgr8", data=_encoded(".jpg", img)))


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 says ``width x height``."""
    data = bytearray(_encoded(".jpg", np.zeros((8, 8), np.uint8)))
    i = data.index(b"\xff\xc0")
    data[i + 5:i + 7] = height.to_bytes(2, "big")
    data[i + 7:i + 9] = width.to_bytes(2, "big")
    return bytes(data)


def test_compressed_size_cap_is_checked_from_the_header_before_decoding() -> None:
    """Issue 11 cases 5-7: a JPEG claiming 65500^2 pixels gave cv2.error.

    A 261 KB PNG decoded to 256 MiB; nothing capped the size.
    """
    from temcoco_core.frames.image_msg import check_message_size, compressed_info
    from temcoco_core.frames.preprocess import FrameTooLargeError

    big_png = _encoded(".png", np.zeros((4096, 16384), np.uint8),
                       [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert len(big_png) < 300_000
    assert compressed_info(_msg(format="png", data=big_png)).width == 16384
    with pytest.raises(FrameTooLargeError, match="16384x4096"):
        compressed_to_numpy(_msg(format="png", data=big_png), max_pixels=4096 * 4096)
    with pytest.raises(FrameTooLargeError, match="65500x65500"):
        decode_image(_msg(format="jpeg", data=_jpeg_claiming(65500, 65500)))
    with pytest.raises(FrameTooLargeError):
        check_message_size(_msg(format="png", data=_png_header(10000, 10000)))
    with pytest.raises(EncodingError, match="frame header"):
        jpeg = _jpeg_claiming(64, 64)
        decode_image(_msg(format="jpeg", data=jpeg[:jpeg.index(b"\xff\xc0")]))
    with pytest.raises(EncodingError, match="IHDR|decode"):
        decode_image(_msg(format="png", data=_png_header(64, 64)[:20]))


def test_raw_size_cap_is_checked_before_touching_the_data() -> None:
    from temcoco_core.frames.preprocess import FrameTooLargeError

    msg = _msg(encoding="rgb8", height=10000, width=10000, step=30000, is_bigendian=0,
               data=b"")  # the cap fires before the (missing) data is even looked at
    with pytest.raises(FrameTooLargeError, match="10000x10000") as err:
        decode_image(msg)
    assert err.value.kind == "too_large"
    small = numpy_to_image_fields(np.zeros((4, 6, 3), np.uint8), "rgb8")
    with pytest.raises(FrameTooLargeError):
        image_to_numpy(small, max_pixels=20)
    assert image_to_numpy(small, max_pixels=24).shape == (4, 6, 3)
    assert image_to_numpy(small, max_pixels=None).shape == (4, 6, 3)
