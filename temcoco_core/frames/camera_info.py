# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``sensor_msgs/CameraInfo`` for the fused image, without ROS.

The fused image is the RGB image, possibly scaled (``output_size: model`` with ``resize_mode``
``resize`` or ``pad``; the padding is cropped off, so the content stays top-left aligned), so its
camera model is the RGB camera's, transformed the way the pixels were. :class:`CameraInfoData`
holds the message fields and does that arithmetic; it is filled from a received message
(:meth:`CameraInfoData.from_msg`, duck-typed: rclpy and rosbags messages alike), from a
camera_calibration_parsers YAML file (:func:`load_calibration_yaml`, what ``camera_info_url``
points to) or from plain values.

Conventions (those of ``image_proc``'s resize and crop_decimate nodes, so the whole ROS image
pipeline agrees on them):

* ``width``/``height`` are the calibrated resolution; ``binning_x/y`` (0 or 1: none) and
  ``roi`` describe the published image relative to it. Scaling by ``(sx, sy)`` multiplies
  ``fx, cx, fy, cy`` of ``K``, ``fx, cx, Tx, fy, cy, Ty`` of ``P``, the ROI and the calibrated size
  by the scale and keeps the binning (the binned image scales with the full one).
* Padding the left/top of the image by ``(dx, dy)`` output pixels (negative: cropping) moves the
  principal point by ``dx * binning_x`` (``K``'s and ``P``'s ``cx``; ``P``'s ``Tx`` = -fx' B is
  unchanged by a translation).
* ``D``, ``R`` and ``distortion_model`` pass through: distortion acts in normalised image
  coordinates, which an affine change of pixel coordinates does not touch.

Example::

    info = CameraInfoData.from_msg(rgb_camera_info)          # 640 x 480
    out = info.for_output((640, 480), (320, 240))            # output_size: model
    fields = out.as_fields()                                 # -> sensor_msgs/CameraInfo(**...)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
import math
from pathlib import Path
from typing import Any

__all__ = [
    "DISTORTION_MODELS",
    "CameraInfoData",
    "CameraInfoError",
    "FusedCameraInfo",
    "RegionOfInterest",
    "load_calibration_yaml",
    "resolve_camera_info_url",
]

#: ``sensor_msgs/distortion_models.hpp`` names.
DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")


class CameraInfoError(ValueError):
    """A CameraInfo (message, file or values) is malformed or cannot describe the image."""


@dataclass(frozen=True)
class RegionOfInterest:
    """``sensor_msgs/RegionOfInterest`` (all zero: the full image)."""

    x_offset: int = 0
    y_offset: int = 0
    height: int = 0
    width: int = 0
    do_rectify: bool = False

    @property
    def is_full(self) -> bool:
        """True when the ROI does not restrict the image (all zero)."""
        return not (self.x_offset or self.y_offset or self.height or self.width)


def _floats(values: Any, n: int, name: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if len(out) != n:
        raise CameraInfoError(f"CameraInfo {name} needs {n} values, got {len(out)}")
    if not all(math.isfinite(v) for v in out):
        raise CameraInfoError(f"CameraInfo {name} has non-finite values: {list(out)}")
    return out


@dataclass(frozen=True)
class CameraInfoData:
    """The fields of ``sensor_msgs/CameraInfo`` (ROS 2 lower-case names), header excluded.

    Attributes:
        width, height: calibrated image size, pixels.
        k: 3x3 intrinsic matrix, row-major (9 values).
        d: distortion coefficients (``distortion_model``'s count; may be empty).
        r: 3x3 rectification matrix, row-major.
        p: 3x4 projection matrix, row-major (12 values).
        distortion_model: e.g. ``"plumb_bob"``.
        binning_x, binning_y: 0 or 1 mean no binning.
        roi: region of the calibrated image that the published image shows.
    """

    width: int
    height: int
    k: tuple[float, ...]
    d: tuple[float, ...] = ()
    r: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    p: tuple[float, ...] = field(default=())
    distortion_model: str = "plumb_bob"
    binning_x: int = 0
    binning_y: int = 0
    roi: RegionOfInterest = RegionOfInterest()

    def __post_init__(self) -> None:
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise CameraInfoError(f"CameraInfo size must be positive, got "
                                  f"{self.width}x{self.height}")
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "k", _floats(self.k, 9, "K"))
        object.__setattr__(self, "d", tuple(float(v) for v in self.d))
        object.__setattr__(self, "r", _floats(self.r, 9, "R"))
        if not self.p:  # monocular default: P = [K | 0]
            k = self.k
            object.__setattr__(self, "p", (k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0,
                                           k[6], k[7], k[8], 0.0))
        object.__setattr__(self, "p", _floats(self.p, 12, "P"))
        if self.binning_x < 0 or self.binning_y < 0:
            raise CameraInfoError(f"CameraInfo binning must be >= 0, got "
                                  f"{self.binning_x}x{self.binning_y}")
        if self.k[0] <= 0 or self.k[4] <= 0:
            raise CameraInfoError(f"CameraInfo K has non-positive focal lengths fx={self.k[0]}, "
                                  f"fy={self.k[4]} (an uncalibrated camera publishes K = 0)")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_msg(cls, msg: Any) -> CameraInfoData:
        """From a ``sensor_msgs/CameraInfo`` message (rclpy or rosbags; ``k``/``K`` both read).

        Raises:
            CameraInfoError: zero focal length (an uncalibrated camera), wrong array sizes.
        """
        def get(name: str) -> Any:
            return getattr(msg, name) if hasattr(msg, name) else getattr(msg, name.upper())

        roi = getattr(msg, "roi", None)
        return cls(
            width=int(msg.width), height=int(msg.height), k=tuple(get("k")), d=tuple(get("d")),
            r=tuple(get("r")), p=tuple(get("p")),
            distortion_model=str(msg.distortion_model or "plumb_bob"),
            binning_x=int(getattr(msg, "binning_x", 0)),
            binning_y=int(getattr(msg, "binning_y", 0)),
            roi=RegionOfInterest(int(roi.x_offset), int(roi.y_offset), int(roi.height),
                                 int(roi.width), bool(roi.do_rectify)) if roi is not None
            else RegionOfInterest())

    @classmethod
    def from_intrinsics(cls, width: int, height: int, fx: float, fy: float, cx: float,
                        cy: float, d: Sequence[float] = (),
                        distortion_model: str = "plumb_bob") -> CameraInfoData:
        """A monocular pinhole camera from its intrinsics (``P = [K | 0]``, ``R = I``)."""
        return cls(width=width, height=height, k=(fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0),
                   d=tuple(d), distortion_model=distortion_model)

    def as_fields(self) -> dict[str, Any]:
        """Keyword arguments of ``sensor_msgs/CameraInfo`` except ``header`` and ``roi``.

        The ROI is returned separately by :attr:`roi` (build a ``RegionOfInterest`` with its
        fields); arrays are lists of floats.
        """
        return {"width": self.width, "height": self.height,
                "distortion_model": self.distortion_model, "d": list(self.d),
                "k": list(self.k), "r": list(self.r), "p": list(self.p),
                "binning_x": self.binning_x, "binning_y": self.binning_y}

    def fill_msg(self, msg: Any) -> Any:
        """Write every field but the header into an existing CameraInfo message; returns it."""
        for name, value in self.as_fields().items():
            setattr(msg, name, value)
        roi = msg.roi
        roi.x_offset, roi.y_offset = self.roi.x_offset, self.roi.y_offset
        roi.height, roi.width = self.roi.height, self.roi.width
        roi.do_rectify = self.roi.do_rectify
        return msg

    # ------------------------------------------------------------------ geometry
    @property
    def image_size(self) -> tuple[int, int]:
        """``(W, H)`` of the image this info describes (ROI and binning applied)."""
        bx, by = max(self.binning_x, 1), max(self.binning_y, 1)
        w = self.roi.width if self.roi.width else self.width
        h = self.roi.height if self.roi.height else self.height
        return (w // bx, h // by)

    def scaled(self, sx: float, sy: float) -> CameraInfoData:
        """The camera of the image resized by ``(sx, sy)`` (output pixels per input pixel)."""
        if not (sx > 0 and sy > 0 and math.isfinite(sx) and math.isfinite(sy)):
            raise CameraInfoError(f"scale must be positive and finite, got {sx}, {sy}")
        k, p = list(self.k), list(self.p)
        for i in (0, 2):  # fx, cx
            k[i] *= sx
        for i in (4, 5):  # fy, cy
            k[i] *= sy
        for i in (0, 2, 3):  # fx', cx', Tx
            p[i] *= sx
        for i in (5, 6, 7):  # fy', cy', Ty
            p[i] *= sy
        roi = self.roi
        if not roi.is_full:
            roi = replace(roi, x_offset=int(roi.x_offset * sx), y_offset=int(roi.y_offset * sy),
                          width=int(roi.width * sx), height=int(roi.height * sy))
        return replace(self, width=max(1, round(self.width * sx)),
                       height=max(1, round(self.height * sy)), k=tuple(k), p=tuple(p), roi=roi)

    def shifted(self, dx: float, dy: float, size: tuple[int, int] | None = None
                ) -> CameraInfoData:
        """The camera of the image padded left/top by ``(dx, dy)`` pixels (negative: cropped).

        Args:
            dx: x of the old image's origin in the new image, published pixels.
            dy: y of the same.
            size: ``(W, H)`` of the new image; when given, the calibrated size (no ROI, no
                binning) or the ROI size (otherwise) is set to it.
        """
        bx, by = max(self.binning_x, 1), max(self.binning_y, 1)
        k, p = list(self.k), list(self.p)
        k[2] += dx * bx
        k[5] += dy * by
        p[2] += dx * bx
        p[6] += dy * by
        out = replace(self, k=tuple(k), p=tuple(p))
        if size is not None:
            w, h = int(size[0]), int(size[1])
            if self.roi.is_full and bx == 1 and by == 1:
                out = replace(out, width=w, height=h)
            else:
                out = replace(out, roi=replace(self.roi, width=w * bx, height=h * by))
        return out

    def cropped(self, x: int, y: int, width: int, height: int) -> CameraInfoData:
        """The camera of the ``width x height`` window at ``(x, y)`` of the published image."""
        return self.shifted(-x, -y, (width, height))

    def resized(self, size: tuple[int, int], from_size: tuple[int, int] | None = None
                ) -> CameraInfoData:
        """The camera of the image resized from ``from_size`` to ``size`` ``(W, H)``.

        ``from_size`` defaults to :attr:`image_size`; without binning or ROI the calibrated size
        becomes ``size``.
        """
        src = from_size or self.image_size
        out = self.scaled(size[0] / src[0], size[1] / src[1])
        if self.roi.is_full and max(self.binning_x, 1) == 1 and max(self.binning_y, 1) == 1:
            out = replace(out, width=int(size[0]), height=int(size[1]))
        return out

    def for_output(self, input_size: tuple[int, int], output_size: tuple[int, int]
                   ) -> CameraInfoData:
        """The fused image's camera: the RGB image of ``input_size`` became ``output_size``.

        The pipeline's output is always the whole RGB image, scaled (``output_size: rgb``: not
        at all; ``model`` with ``resize``: to the model size; with ``pad``: to the content
        size, the padding cropped off), so this is :meth:`resized`. When the info's own
        image size differs from ``input_size`` (a camera_info from a calibration at another
        resolution) it is rescaled first.
        """
        return self.resized(output_size, from_size=input_size) \
            if self.image_size == tuple(input_size) \
            else self.resized(input_size).resized(output_size, from_size=input_size)


def _matrix(doc: Mapping[str, Any], key: str, n: int, path: str) -> tuple[float, ...]:
    entry = doc.get(key)
    if entry is None:
        raise CameraInfoError(f"{path}: missing {key}")
    data = entry.get("data") if isinstance(entry, Mapping) else entry
    if not isinstance(data, (list, tuple)):
        raise CameraInfoError(f"{path}: {key} needs a data list")
    try:
        return _floats(data, n, key) if n else tuple(float(v) for v in data)
    except (TypeError, ValueError) as exc:
        raise CameraInfoError(f"{path}: {key}: {exc}") from None


def load_calibration_yaml(path: str | Path) -> CameraInfoData:
    """Read a camera calibration file.

    A camera calibration file as written by ``camera_calibration`` / read by
    ``camera_info_manager`` (``image_width``, ``camera_matrix: {rows, cols, data}``, ...).

    Raises:
        FileNotFoundError: no such file.
        CameraInfoError: not such a file, or values that do not form a camera.
    """
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CameraInfoError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, Mapping) or "camera_matrix" not in doc:
        raise CameraInfoError(f"{path}: not a camera calibration file (no camera_matrix)")
    p = str(path)
    r_doc = doc.get("rectification_matrix")
    p_doc = doc.get("projection_matrix")
    try:
        return CameraInfoData(
            width=int(doc.get("image_width", 0)), height=int(doc.get("image_height", 0)),
            k=_matrix(doc, "camera_matrix", 9, p),
            d=_matrix(doc, "distortion_coefficients", 0, p)
            if "distortion_coefficients" in doc else (),
            r=_matrix(doc, "rectification_matrix", 9, p) if r_doc is not None
            else (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
            p=_matrix(doc, "projection_matrix", 12, p) if p_doc is not None else (),
            distortion_model=str(doc.get("distortion_model", "plumb_bob")),
            binning_x=int(doc.get("binning_x", 0)), binning_y=int(doc.get("binning_y", 0)))
    except CameraInfoError as exc:
        msg = str(exc)
        raise CameraInfoError(msg if msg.startswith(p) else f"{p}: {msg}") from None


def resolve_camera_info_url(url: str, package_share: Any = None) -> Path:
    """The file a ``camera_info_url`` names (camera_info_manager's URL forms).

    ``file:///abs/path.yaml``, ``package://<package>/<path>`` (resolved with
    ``package_share(package) -> share directory``, e.g. ament_index_python's
    ``get_package_share_directory``) or a plain path; ``${ROS_HOME}`` (default ``~/.ros``) and
    ``~`` are expanded.

    Raises:
        CameraInfoError: an unsupported scheme, or ``package://`` without a resolver.
    """
    import os

    text = url.strip()
    ros_home = os.environ.get("ROS_HOME", os.path.join(os.path.expanduser("~"), ".ros"))
    text = text.replace("${ROS_HOME}", ros_home)
    if text.startswith("file://"):
        return Path(os.path.expanduser(text[len("file://"):]))
    if text.startswith("package://"):
        rest = text[len("package://"):]
        package, _, rel = rest.partition("/")
        if not package or not rel:
            raise CameraInfoError(f"camera_info_url {url!r}: expected package://<package>/<path>")
        if package_share is None:
            raise CameraInfoError(f"camera_info_url {url!r}: package:// needs a ROS install")
        try:
            return Path(package_share(package)) / rel
        except LookupError as exc:
            raise CameraInfoError(f"camera_info_url {url!r}: package {package!r} not found "
                                  f"({exc})") from None
    if "://" in text:
        raise CameraInfoError(f"camera_info_url {url!r}: unsupported scheme; use file://, "
                              "package:// or a path")
    return Path(os.path.expanduser(text))


class FusedCameraInfo:
    """The camera_info of the fused output, kept up to date from the RGB camera's.

    Thread-safe: :meth:`update_from_msg` runs in the camera_info callback, :meth:`for_output` in
    the publishing thread, :meth:`status` in the diagnostics timer. The transformed info is
    cached per (source, input size, output size), so publishing costs a dict lookup.

    Args:
        source: where the RGB camera's info comes from, for messages: a topic name or a file.
        fixed: a calibration loaded from a file (``camera_info_url``); then topic updates are
            ignored.
        required: WARN in :meth:`status` while no info is known (``camera_info_source: topic``);
            otherwise its absence is reported at OK level.
    """

    def __init__(self, source: str, fixed: CameraInfoData | None = None,
                 required: bool = False) -> None:
        import threading

        self.source = source
        self.required = required
        self._lock = threading.Lock()
        self._info = fixed
        self._fixed = fixed is not None
        self._cache: dict[tuple[int, int, int, int], CameraInfoData] = {}
        self.received = 0
        self.published = 0
        self.last_error = ""

    def update_from_msg(self, msg: Any) -> bool:
        """Take a received ``sensor_msgs/CameraInfo``.

        False (and :attr:`last_error` set) when it cannot describe the image (e.g. an uncalibrated
        camera's K = 0).
        """
        with self._lock:
            self.received += 1
            if self._fixed:
                return True
            try:
                info = CameraInfoData.from_msg(msg)
            except CameraInfoError as exc:
                self.last_error = str(exc)
                self._info = None
                self._cache.clear()
                return False
            if info != self._info:
                self._info = info
                self._cache.clear()
            self.last_error = ""
            return True

    def for_output(self, output_size: tuple[int, int],
                   input_size: tuple[int, int] | None = None) -> CameraInfoData | None:
        """The fused image's camera for an output of ``output_size``.

        The fused image's camera for an output of ``output_size`` ``(W, H)`` made from an RGB image
        of ``input_size`` (default: the size the info describes); ``None`` while no usable info is
        known.
        """
        with self._lock:
            info = self._info
            if info is None:
                return None
            src = tuple(input_size) if input_size is not None else info.image_size
            key = (src[0], src[1], int(output_size[0]), int(output_size[1]))
            out = self._cache.get(key)
            if out is None:
                out = info.for_output(src, (key[2], key[3]))
                self._cache[key] = out
            self.published += 1
            return out

    def status(self) -> tuple[int, str, dict[str, str]]:
        """``(level, message, values)`` for a DiagnosticStatus (level 0 OK, 1 WARN)."""
        with self._lock:
            values = {"source": self.source, "received": str(self.received),
                      "published": str(self.published)}
            if self.last_error:
                return 1, f"camera_info from {self.source} unusable: {self.last_error}", values
            if self._info is None:
                msg = f"no camera_info received on {self.source} yet; /camera_info not published"
                return (1 if self.required else 0), msg, values
            w, h = self._info.image_size
            return 0, f"camera_info from {self.source} ({w}x{h})", values
