# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""CameraInfo arithmetic of the fused image (temcoco_core.frames.camera_info)."""

from types import SimpleNamespace

import numpy as np
import pytest

from temcoco_core.frames.camera_info import (
    CameraInfoData,
    CameraInfoError,
    load_calibration_yaml,
    RegionOfInterest,
    resolve_camera_info_url,
)
from temcoco_core.frames.preprocess import compute_geometry, PreprocessConfig

D = (-0.2, 0.05, 0.001, -0.002, 0.0)


def _info(w=640, h=480, fx=500.0, fy=510.0, cx=319.5, cy=239.5, **kw) -> CameraInfoData:
    return CameraInfoData(width=w, height=h, k=(fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0), d=D,
                          **kw)


def _project(info: CameraInfoData, xyz) -> np.ndarray:
    """Pixel of a 3-D point through P (rectified pinhole)."""
    p = np.array(info.p).reshape(3, 4)
    u = p @ np.append(np.asarray(xyz, float), 1.0)
    return u[:2] / u[2]


def test_default_projection_is_k_and_passthrough_fields() -> None:
    info = _info()
    assert info.p == (500.0, 0.0, 319.5, 0.0, 0.0, 510.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0)
    out = info.for_output((640, 480), (640, 480))
    assert out == info  # output_size: rgb -> the RGB camera unchanged


def test_resize_to_model_size_scales_k_p_and_size() -> None:
    info = _info()
    out = info.for_output((640, 480), (320, 256))  # resize mode: non-uniform scale
    sx, sy = 320 / 640, 256 / 480
    assert (out.width, out.height) == (320, 256)
    assert out.k == pytest.approx((500 * sx, 0, 319.5 * sx, 0, 510 * sy, 239.5 * sy, 0, 0, 1))
    assert out.p[0] == pytest.approx(500 * sx) and out.p[5] == pytest.approx(510 * sy)
    assert out.d == D and out.r == info.r and out.distortion_model == "plumb_bob"
    # a 3-D point lands where the resized image shows it
    xyz = (0.3, -0.2, 2.0)
    u0, u1 = _project(info, xyz), _project(out, xyz)
    np.testing.assert_allclose(u1, u0 * [sx, sy], rtol=1e-9)


def test_pad_mode_output_is_content_size_with_uniform_scale() -> None:
    """Pad: the output is the content (padding cropped off, top-left aligned).

    So the camera is the RGB camera scaled by the content size.
    """
    geom = compute_geometry((640, 480), PreprocessConfig(model_size=(320, 320),
                                                         resize_mode="pad"))
    assert geom.content_size == (320, 240) and geom.padded
    out = _info().for_output((640, 480), geom.content_size)
    assert (out.width, out.height) == (320, 240)
    assert out.k[0] == pytest.approx(250.0) and out.k[4] == pytest.approx(255.0)
    assert out.k[2] == pytest.approx(159.75) and out.k[5] == pytest.approx(119.75)


def test_stereo_tx_scales_and_shift_moves_principal_point_only() -> None:
    info = CameraInfoData(width=640, height=480, k=(500, 0, 320, 0, 500, 240, 0, 0, 1),
                          p=(500, 0, 320, -50.0, 0, 500, 240, 0, 0, 0, 1, 0))
    half = info.scaled(0.5, 0.5)
    assert half.p[3] == pytest.approx(-25.0)
    padded = info.shifted(10, 20, size=(660, 500))
    assert padded.k[2] == 330 and padded.k[5] == 260 and padded.p[2] == 330
    assert padded.p[6] == 260 and padded.p[3] == -50.0 and padded.k[0] == 500
    assert (padded.width, padded.height) == (660, 500)
    crop = info.cropped(100, 50, 200, 100)
    assert crop.k[2] == 220 and crop.k[5] == 190 and (crop.width, crop.height) == (200, 100)
    xyz = (0.1, 0.2, 3.0)
    np.testing.assert_allclose(_project(crop, xyz), _project(info, xyz) - [100, 50])


def test_binning_and_roi_follow_image_proc_conventions() -> None:
    """Binning stays (the binned image scales with the full one), ROI scales.

    The image the info describes is the resized image.
    """
    info = _info(w=1280, h=960, fx=1000, fy=1000, cx=640, cy=480, binning_x=2, binning_y=2,
                 roi=RegionOfInterest(0, 0, 0, 0, False))
    assert info.image_size == (640, 480)
    out = info.for_output((640, 480), (320, 240))
    assert out.binning_x == 2 and out.image_size == (320, 240)
    assert out.k[0] == pytest.approx(500.0) and out.k[2] == pytest.approx(320.0)
    roi = _info(roi=RegionOfInterest(x_offset=100, y_offset=50, height=100, width=200,
                                     do_rectify=True))
    assert roi.image_size == (200, 100)
    small = roi.for_output((200, 100), (100, 50))
    assert small.roi == RegionOfInterest(x_offset=50, y_offset=25, height=50, width=100,
                                         do_rectify=True)
    assert small.image_size == (100, 50)


def test_info_at_another_resolution_is_rescaled_to_the_image() -> None:
    """A 1280x960 calibration for a 640x480 stream: first to the image, then to the output."""
    info = _info(w=1280, h=960, fx=1000, fy=1000, cx=640, cy=480)
    out = info.for_output((640, 480), (320, 240))
    assert (out.width, out.height) == (320, 240)
    assert out.k[0] == pytest.approx(250.0) and out.k[2] == pytest.approx(160.0)


def test_from_msg_duck_typed_and_fill_msg() -> None:
    roi = SimpleNamespace(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    msg = SimpleNamespace(width=640, height=480, k=[500, 0, 320, 0, 500, 240, 0, 0, 1],
                          d=list(D), r=[1, 0, 0, 0, 1, 0, 0, 0, 1],
                          p=[500, 0, 320, 0, 0, 500, 240, 0, 0, 0, 1, 0],
                          distortion_model="plumb_bob", binning_x=0, binning_y=0, roi=roi)
    info = CameraInfoData.from_msg(msg)
    assert info.k[0] == 500.0 and info.d == D
    rosbags_style = SimpleNamespace(width=640, height=480, K=msg.k, D=msg.d, R=msg.r, P=msg.p,
                                    distortion_model="", binning_x=0, binning_y=0, roi=roi)
    assert CameraInfoData.from_msg(rosbags_style).distortion_model == "plumb_bob"
    out = SimpleNamespace(roi=SimpleNamespace())
    info.scaled(0.5, 0.5).fill_msg(out)
    assert out.width == 320 and out.k[0] == 250.0 and out.roi.do_rectify is False


def test_rejects_uncalibrated_and_malformed() -> None:
    with pytest.raises(CameraInfoError, match="uncalibrated"):
        CameraInfoData(width=640, height=480, k=(0.0,) * 9)
    with pytest.raises(CameraInfoError, match="9 values"):
        CameraInfoData(width=640, height=480, k=(1.0, 2.0))
    with pytest.raises(CameraInfoError, match="size"):
        _info(w=0)
    with pytest.raises(CameraInfoError, match="scale"):
        _info().scaled(0.0, 1.0)


CALIB = """image_width: 640
image_height: 480
camera_name: rgb
camera_matrix:
  rows: 3
  cols: 3
  data: [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.2, 0.05, 0.001, -0.002, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [500.0, 0.0, 320.0, 0.0, 0.0, 500.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
"""


def test_calibration_yaml_and_urls(tmp_path, monkeypatch) -> None:
    path = tmp_path / "rgb.yaml"
    path.write_text(CALIB)
    info = load_calibration_yaml(path)
    assert (info.width, info.height) == (640, 480) and info.d == D and info.p[2] == 320.0
    assert resolve_camera_info_url(f"file://{path}") == path
    assert resolve_camera_info_url(str(path)) == path
    assert resolve_camera_info_url("package://pkg/calib/rgb.yaml",
                                   lambda p: f"/opt/share/{p}").as_posix() == \
        "/opt/share/pkg/calib/rgb.yaml"
    monkeypatch.setenv("ROS_HOME", str(tmp_path))
    assert resolve_camera_info_url("file://${ROS_HOME}/rgb.yaml") == path
    with pytest.raises(CameraInfoError, match="scheme"):
        resolve_camera_info_url("http://example.com/rgb.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("camera_matrix: {rows: 3, cols: 3, data: [1, 2]}\nimage_width: 4\n"
                   "image_height: 3\n")
    with pytest.raises(CameraInfoError, match="bad.yaml"):
        load_calibration_yaml(bad)
    with pytest.raises(CameraInfoError, match="not a camera calibration"):
        (tmp_path / "x.yaml").write_text("a: 1\n")
        load_calibration_yaml(tmp_path / "x.yaml")


def test_fused_camera_info_tracks_the_source_and_caches() -> None:
    from temcoco_core.frames.camera_info import FusedCameraInfo

    roi = SimpleNamespace(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)

    def msg(fx):
        return SimpleNamespace(width=640, height=480, k=[fx, 0, 320, 0, fx, 240, 0, 0, 1],
                               d=[], r=[1, 0, 0, 0, 1, 0, 0, 0, 1], p=[], distortion_model="",
                               binning_x=0, binning_y=0, roi=roi)

    fused = FusedCameraInfo("/cam/camera_info", required=True)
    assert fused.for_output((320, 240)) is None
    level, text, _ = fused.status()
    assert level == 1 and "no camera_info received on /cam/camera_info" in text
    assert fused.update_from_msg(msg(500.0))
    a = fused.for_output((320, 240))
    assert a.k[0] == 250.0 and fused.for_output((320, 240)) is a  # cached
    # a 640x480 calibration of a camera streaming 1280x960: same field of view, K doubles
    assert fused.for_output((1280, 960), input_size=(1280, 960)).k[0] == 1000.0
    assert fused.update_from_msg(msg(600.0))  # recalibrated: the cache is dropped
    assert fused.for_output((320, 240)).k[0] == 300.0
    assert not fused.update_from_msg(msg(0.0))  # uncalibrated
    level, text, values = fused.status()
    assert level == 1 and "uncalibrated" in text and values["received"] == "3"
    assert fused.for_output((320, 240)) is None
    assert fused.update_from_msg(msg(500.0)) and fused.status()[0] == 0  # recovers
    optional = FusedCameraInfo("/cam/camera_info")
    assert optional.status()[0] == 0
    fixed = FusedCameraInfo("file.yaml", fixed=_info())
    fixed.update_from_msg(msg(100.0))
    assert fixed.for_output((640, 480)).k[0] == 500.0  # a calibration file wins over the topic
