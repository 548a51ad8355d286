# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""launch_testing: the fusion node in a ROS 2 image pipeline, started from the launch file.

Two nodes run the ``edge`` network at a small size, each started through
``launch/fusion.launch.py`` (which drives configure + activate with lifecycle events):

* ``/net/fusion_net``: raw RGB + 16-bit thermal inputs, the RGB camera's ``camera_info`` topic,
  compressed output on;
* ``/cmp/fusion_cmp``: JPEG RGB and 16-bit PNG thermal over image_transport's ``compressed``
  topics, ``camera_info`` from a calibration file, output at the model size.

The tests check ``/fused/image``, ``/fused/camera_info`` (same header as the image; intrinsics
unchanged at the RGB size, scaled at the model size), ``/fused/image/compressed``,
``/diagnostics`` (diagnostic_updater's names, ``hardware_id``, the output topic's frequency
and timestamp checks), that every parameter can be read back like ``ros2 param dump`` does,
and that both nodes exit 0 on SIGINT without a traceback or a rosout error.

Run with ``colcon test --packages-select temcoco_ros`` after building the package; without
rclpy or launch_testing the module is skipped.
"""

from __future__ import annotations

import array
import json
from pathlib import Path
import tempfile
import time
import unittest

import pytest

rclpy = pytest.importorskip(
    "rclpy", reason="rclpy is not importable: source a ROS 2 Humble or Jazzy install and build "
                    "this package with colcon to run the launch tests")
pytest.importorskip("launch_testing", reason="launch_testing is not importable "
                                             "(ros-$ROS_DISTRO-launch-testing)")
pytest.importorskip("launch_ros", reason="launch_ros is not importable")

from builtin_interfaces.msg import Time as TimeMsg  # noqa: E402, I100 (after the skips)
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description import LaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.markers  # noqa: E402
import numpy as np  # noqa: E402
from rcl_interfaces.msg import ParameterType  # noqa: E402
from rcl_interfaces.srv import GetParameters, ListParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402

from temcoco_core.frames.image_msg import compressed_to_numpy, encode_compressed  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "fusion.launch.py"
W, H = 64, 48
MODEL = (32, 32)  # the cmp node's model input and output size
RATE_HZ = 15.0
STARTUP_S = 180.0  # torch import + edge network + discovery; a deadline, not a measurement
K = (50.0, 0.0, 32.0, 0.0, 52.0, 24.0, 0.0, 0.0, 1.0)
HARDWARE_ID = "thermal-rgb-rig-1"

COMMON = {"fusion_engine": "model", "diagnostics_period": 0.5, "topic_timeout": 2.0,
          "metrics": "flicker", "hardware_id": HARDWARE_ID, "min_rate_hz": 0.5}
NODES = {
    "net": ("fusion_net", {**COMMON, "output_compressed": True,
                           "output_compressed_format": "jpeg"}),
    "cmp": ("fusion_cmp", {**COMMON, "rgb_transport": "compressed",
                           "thermal_transport": "compressed", "output_size": "model",
                           "camera_info_source": "url"}),
}
CALIBRATION = f"""image_width: {W}
image_height: {H}
camera_name: rgb
camera_matrix:
  rows: 3
  cols: 3
  data: {list(K)}
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.1, 0.01, 0.0, 0.0, 0.0]
"""


def _param_file(directory: Path, name: str, values: dict) -> str:
    path = directory / f"{name}.yaml"
    lines = ["/**:", "  ros__parameters:"]
    lines += [f"    {k}: {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    directory = Path(tempfile.mkdtemp(prefix="temcoco_pipeline_test_"))
    (directory / "rgb.yaml").write_text(CALIBRATION)
    actions = []
    for namespace, (node_name, values) in NODES.items():
        values = dict(values)
        if namespace == "cmp":
            values["camera_info_url"] = f"file://{directory / 'rgb.yaml'}"
        actions.append(IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
            launch_arguments={
                "namespace": namespace, "node_name": node_name,
                "config": _param_file(directory, namespace, values),
                "preset": "edge", "backend": "eager", "device": "cpu",
                "input_width": str(MODEL[0] if namespace == "cmp" else W),
                "input_height": str(MODEL[1] if namespace == "cmp" else H),
                "autostart": "true", "log_level": "info"}.items()))
    actions.append(launch_testing.actions.ReadyToTest())
    return LaunchDescription(actions)


def _stamp(stamp_ns: int) -> TimeMsg:
    return TimeMsg(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _raw(stamp_ns: int, frame_id: str, arr: np.ndarray, encoding: str) -> Image:
    msg = Image()
    msg.header.stamp, msg.header.frame_id = _stamp(stamp_ns), frame_id
    msg.height, msg.width = arr.shape[0], arr.shape[1]
    msg.encoding, msg.is_bigendian, msg.step = encoding, 0, arr.strides[0]
    msg.data = array.array("B", np.ascontiguousarray(arr).tobytes())
    return msg


def _compressed(stamp_ns: int, frame_id: str, arr: np.ndarray, encoding: str,
                fmt: str) -> CompressedImage:
    data, text = encode_compressed(arr, encoding, fmt)
    msg = CompressedImage(format=text, data=array.array("B", data.tobytes()))
    msg.header.stamp, msg.header.frame_id = _stamp(stamp_ns), frame_id
    return msg


def _scene(t: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth moving RGB scene (JPEG-friendly) and a 16-bit centi-kelvin thermal image."""
    y, x = np.mgrid[0:H, 0:W]
    rgb = np.stack([(x * 4 + t) % 256, (y * 5) % 256, ((x + y) * 2) % 256],
                   axis=2).astype(np.uint8)
    thermal = (29500 + 10 * x + 5 * y + 3 * t).astype(np.uint16)
    return rgb, thermal


class _Rig:
    """A synthetic RGB + thermal camera pair feeding one node, and that node's outputs."""

    def __init__(self, node, namespace: str, compressed: bool) -> None:
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                         reliability=ReliabilityPolicy.RELIABLE)
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200,
                             reliability=ReliabilityPolicy.RELIABLE)
        self.node, self.compressed = node, compressed
        ns = f"/{namespace}"
        if compressed:
            self.rgb = node.create_publisher(CompressedImage, f"{ns}/rgb/image_raw/compressed",
                                             qos)
            self.thermal = node.create_publisher(
                CompressedImage, f"{ns}/thermal/image_raw/compressed", qos)
        else:
            self.rgb = node.create_publisher(Image, f"{ns}/rgb/image_raw", qos)
            self.thermal = node.create_publisher(Image, f"{ns}/thermal/image_raw", qos)
        self.info = node.create_publisher(CameraInfo, f"{ns}/rgb/camera_info", qos)
        self.images: list[Image] = []
        self.infos: list[CameraInfo] = []
        self.packed: list[CompressedImage] = []
        self.subs = [
            node.create_subscription(Image, f"{ns}/fused/image", self.images.append, out_qos),
            node.create_subscription(CameraInfo, f"{ns}/fused/camera_info", self.infos.append,
                                     out_qos),
            node.create_subscription(CompressedImage, f"{ns}/fused/image/compressed",
                                     self.packed.append, out_qos),
        ]
        self.sent: list[int] = []

    def publish(self) -> None:
        stamp = self.node.get_clock().now().nanoseconds
        rgb, thermal = _scene(len(self.sent))
        if self.compressed:
            self.rgb.publish(_compressed(stamp, "rgb_optical", rgb, "rgb8", "jpeg"))
            self.thermal.publish(_compressed(stamp + 2_000_000, "thermal_optical", thermal,
                                             "mono16", "png"))
        else:
            self.rgb.publish(_raw(stamp, "rgb_optical", rgb, "rgb8"))
            self.thermal.publish(_raw(stamp + 2_000_000, "thermal_optical", thermal, "mono16"))
        info = CameraInfo(width=W, height=H, distortion_model="plumb_bob",
                          d=[0.0] * 5, k=list(K), r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                          p=[K[0], 0.0, K[2], 0.0, 0.0, K[4], K[5], 0.0, 0.0, 0.0, 1.0, 0.0])
        info.header.stamp, info.header.frame_id = _stamp(stamp), "rgb_optical"
        self.info.publish(info)
        self.sent.append(stamp)

    def destroy(self) -> None:
        for pub in (self.rgb, self.thermal, self.info):
            self.node.destroy_publisher(pub)
        for sub in self.subs:
            self.node.destroy_subscription(sub)


class TestPipeline(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("temcoco_pipeline_test")
        cls.executor = SingleThreadedExecutor()
        cls.executor.add_node(cls.node)
        cls.diagnostics: dict[str, DiagnosticStatus] = {}
        cls.diag_sub = cls.node.create_subscription(
            DiagnosticArray, "/diagnostics",
            lambda msg: cls.diagnostics.update({s.name: s for s in msg.status}), 50)
        cls.rigs = {"net": _Rig(cls.node, "net", compressed=False),
                    "cmp": _Rig(cls.node, "cmp", compressed=True)}

    @classmethod
    def tearDownClass(cls):
        for rig in cls.rigs.values():
            rig.destroy()
        cls.executor.shutdown()
        cls.node.destroy_node()
        rclpy.shutdown()

    def run_for(self, seconds: float, until=None) -> bool:
        """Publish both rigs at RATE_HZ and spin until ``until()`` or ``seconds`` pass."""
        end = time.monotonic() + seconds
        next_pub = time.monotonic()
        while time.monotonic() < end:
            if time.monotonic() >= next_pub:
                for rig in self.rigs.values():
                    rig.publish()
                next_pub += 1.0 / RATE_HZ
            self.executor.spin_once(timeout_sec=0.005)
            if until is not None and until():
                return True
        return until() if until is not None else True

    def started(self, namespace: str, n: int = 3) -> _Rig:
        rig = self.rigs[namespace]
        self.assertTrue(self.run_for(STARTUP_S, lambda: len(rig.images) >= n),
                        f"no /{namespace}/fused/image within the start-up deadline")
        return rig

    # ------------------------------------------------------------------ outputs
    def test_raw_inputs_give_image_and_camera_info_with_the_same_header(self):
        rig = self.started("net")
        self.assertTrue(self.run_for(20.0, lambda: len(rig.infos) >= 3),
                        "no /net/fused/camera_info")
        images = {_stamp_ns(m): m for m in rig.images}
        sent = set(rig.sent)
        for info in rig.infos:
            stamp = _stamp_ns(info)
            self.assertIn(stamp, sent)  # the RGB stamp
            self.assertEqual(info.header.frame_id, "rgb_optical")
            self.assertEqual((info.width, info.height), (W, H))  # output_size: rgb
            np.testing.assert_allclose(info.k, K)
            if stamp in images:
                self.assertEqual(images[stamp].header.frame_id, info.header.frame_id)
        self.assertTrue(set(images) & {_stamp_ns(i) for i in rig.infos},
                        "no camera_info shares a stamp with a fused image")
        for msg in rig.images:
            self.assertEqual((msg.width, msg.height, msg.encoding), (W, H, "rgb8"))

    def test_compressed_output_decodes_to_the_fused_image(self):
        rig = self.started("net")
        self.assertTrue(self.run_for(20.0, lambda: len(rig.packed) >= 2),
                        "no /net/fused/image/compressed")
        msg = rig.packed[-1]
        self.assertEqual(msg.format, "rgb8; jpeg compressed bgr8")
        arr, encoding = compressed_to_numpy(msg)
        self.assertEqual((arr.shape, encoding), ((H, W, 3), "bgr8"))
        self.assertIn(_stamp_ns(msg), set(rig.sent))

    def test_compressed_inputs_and_calibration_file_at_the_model_size(self):
        rig = self.started("cmp")
        self.assertTrue(self.run_for(20.0, lambda: len(rig.infos) >= 2),
                        "no /cmp/fused/camera_info")
        for msg in rig.images:
            self.assertEqual((msg.width, msg.height), MODEL)
        info = rig.infos[-1]
        sx, sy = MODEL[0] / W, MODEL[1] / H
        self.assertEqual((info.width, info.height), MODEL)
        np.testing.assert_allclose(
            info.k, [K[0] * sx, 0.0, K[2] * sx, 0.0, K[4] * sy, K[5] * sy, 0.0, 0.0, 1.0])
        np.testing.assert_allclose(info.d, [-0.1, 0.01, 0.0, 0.0, 0.0])
        self.assertEqual(info.distortion_model, "plumb_bob")

    # ------------------------------------------------------------------ diagnostics
    def test_diagnostics_follow_diagnostic_updater_conventions(self):
        self.started("net")

        def complete() -> bool:
            return "fusion_net: /net/fused/image topic status" in self.diagnostics

        self.assertTrue(self.run_for(20.0, complete), "no output topic status on /diagnostics")
        ours = {n: s for n, s in self.diagnostics.items() if n.startswith("fusion_net: ")}
        self.assertGreaterEqual(len(ours), 3)
        for status in ours.values():
            self.assertEqual(status.hardware_id, HARDWARE_ID, status.name)
        topic = ours["fusion_net: /net/fused/image topic status"]
        values = {kv.key: kv.value for kv in topic.values}
        for key in ("Events in window", "Actual frequency (Hz)",
                    "Minimum acceptable frequency (Hz)", "Latest timestamp delay:"):
            self.assertIn(key, values)
        self.assertGreater(float(values["Actual frequency (Hz)"]), 0.0)

    def test_every_parameter_reads_back_like_ros2_param_dump(self):
        self.started("net", 1)
        client = self.node.create_client(ListParameters, "/net/fusion_net/list_parameters")
        self.assertTrue(client.wait_for_service(timeout_sec=10.0))
        future = client.call_async(ListParameters.Request())
        self.assertTrue(self.run_for(10.0, future.done))
        names = list(future.result().result.names)
        self.node.destroy_client(client)
        self.assertIn("thermal_range", names)
        self.assertIn("homography", names)
        client = self.node.create_client(GetParameters, "/net/fusion_net/get_parameters")
        self.assertTrue(client.wait_for_service(timeout_sec=10.0))
        future = client.call_async(GetParameters.Request(names=names))
        self.assertTrue(self.run_for(10.0, future.done))
        values = future.result().values
        self.node.destroy_client(client)
        self.assertEqual(len(values), len(names))
        unset = [n for n, v in zip(names, values) if v.type == ParameterType.PARAMETER_NOT_SET]
        self.assertEqual(unset, [], "parameters without a value break `ros2 param dump`")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_codes(self, proc_info):
        for action in proc_info.processes():
            code = proc_info[action].returncode
            self.assertEqual(code, 0, f"{action.process_details['name']} exited with {code}")

    def test_no_traceback_abort_or_rosout_error(self, proc_output):
        for event in proc_output:
            text = event.text.decode(errors="replace")
            for bad in ("Traceback", "terminate called", "Failed to publish log message"):
                self.assertNotIn(bad, text)
