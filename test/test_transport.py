# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""image_transport naming and compressed round trips (JPEG RGB, 16-bit PNG thermal)."""

from types import SimpleNamespace

import numpy as np
import pytest

from temcoco_core.frames.image_msg import (
    compressed_to_numpy,
    decode_image,
    encode_compressed,
    EncodingError,
    to_grey,
    to_rgb,
)
from temcoco_core.frames.transport import (
    camera_info_topic,
    compressed_topic,
    transport_topic,
    TransportError,
)

RNG = np.random.default_rng(3)


def _smooth_rgb(h=48, w=64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4, y * 5, (x + y) * 2], axis=2).clip(0, 255).astype(np.uint8)


def test_topic_names_follow_image_transport() -> None:
    assert compressed_topic("/cam/image_raw") == "/cam/image_raw/compressed"
    assert compressed_topic("fused/image/") == "fused/image/compressed"
    assert transport_topic("rgb/image_raw", "raw") == "rgb/image_raw"
    assert transport_topic("rgb/image_raw", "compressed") == "rgb/image_raw/compressed"
    assert camera_info_topic("/cam/color/image_raw") == "/cam/color/camera_info"
    assert camera_info_topic("/fused/image") == "/fused/camera_info"
    assert camera_info_topic("rgb/image_raw") == "rgb/camera_info"
    assert camera_info_topic("image") == "camera_info"
    with pytest.raises(TransportError, match="theora"):
        transport_topic("/a/image", "theora")
    with pytest.raises(TransportError, match="base topic '/a/image'"):
        transport_topic("/a/image/compressed", "compressed")
    with pytest.raises(TransportError, match="empty"):
        compressed_topic(" ")


def test_jpeg_rgb_round_trip_matches_compressed_image_transport() -> None:
    rgb = _smooth_rgb()
    data, fmt = encode_compressed(rgb, "rgb8", "jpeg", quality=95)
    assert fmt == "rgb8; jpeg compressed bgr8"
    arr, enc = decode_image(SimpleNamespace(format=fmt, data=data.tobytes()))
    assert enc == "bgr8"
    assert np.abs(to_rgb(arr, enc).astype(int) - rgb).mean() < 2.0
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    data, fmt = encode_compressed(bgr, "bgr8", "jpeg", quality=95)
    assert fmt == "bgr8; jpeg compressed bgr8"
    arr, enc = compressed_to_numpy(SimpleNamespace(format=fmt, data=data))
    assert np.abs(to_rgb(arr, enc).astype(int) - rgb).mean() < 2.0
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    data, fmt = encode_compressed(rgba, "rgba8", "png")
    assert fmt == "rgba8; png compressed bgr8"  # alpha dropped, as image_transport does
    arr, enc = compressed_to_numpy(SimpleNamespace(format=fmt, data=data))
    np.testing.assert_array_equal(to_rgb(arr, enc), rgb)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_png_thermal_keeps_16_bits(encoding) -> None:
    th = RNG.integers(27000, 32000, (24, 32)).astype(np.uint16)
    data, fmt = encode_compressed(th, encoding, "png")
    assert fmt == f"{encoding}; png compressed "
    arr, enc = compressed_to_numpy(SimpleNamespace(format=fmt, data=data))
    assert enc == "mono16" and arr.dtype == np.uint16
    np.testing.assert_array_equal(arr, th)


def test_jpeg_of_16_bit_is_8_bit_like_cv_bridge_and_mono8() -> None:
    th = np.linspace(0, 65535, 24 * 32).reshape(24, 32).astype(np.uint16)
    data, fmt = encode_compressed(th, "mono16", "jpeg", quality=100)
    assert fmt == "mono16; jpeg compressed mono8"
    arr, enc = compressed_to_numpy(SimpleNamespace(format=fmt, data=data))
    assert enc == "mono8" and arr.dtype == np.uint8
    assert np.abs(arr.astype(int) - (th.astype(float) / 257).round()).max() <= 3
    g = to_grey(_smooth_rgb(), "rgb8")
    data, fmt = encode_compressed(g, "mono8", "png")
    assert fmt == "mono8; png compressed "
    arr, _ = compressed_to_numpy(SimpleNamespace(format=fmt, data=data))
    np.testing.assert_array_equal(arr, g)


def test_uncompressible_encodings_are_refused() -> None:
    with pytest.raises(EncodingError, match="8 or 16-bit"):
        encode_compressed(np.zeros((4, 4), np.float32), "32FC1", "png")
    with pytest.raises(EncodingError, match="debayer"):
        encode_compressed(np.zeros((4, 4), np.uint8), "bayer_rggb8", "jpeg")
    with pytest.raises(EncodingError, match="tiff"):
        encode_compressed(np.zeros((4, 4), np.uint8), "mono8", "tiff")
