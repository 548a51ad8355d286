# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""launch_testing tests of ``launch/fusion.launch.py`` on a ROS 2 Humble or Jazzy install.

Three nodes are started through the launch file (namespaces ``fast``, ``slow`` and ``strict``,
each with its own parameter file) and one directly with unusable weights (``bad``). The tests
publish synthetic RGB + thermal pairs (mono16, 16UC1, 32FC1 and mono8 thermal) and check:

* ``/fast/fused/image`` arrives with the RGB message's stamp, frame_id and size;
* reliable (REP-2003 camera) and best-effort publishers both reach the default best-effort
  subscription; a node configured with a reliable subscription reports the best-effort
  camera as incompatible QoS on ``/diagnostics`` instead of staying silent;
* ``/diagnostics`` reports rates, pairing, latency p50/p99, backend, temporal consistency, and
  WARNs naming a silent input;
* a deliberately slow backend (``simulate_inference_ms``) keeps latency bounded: outputs stay
  fresh and the skipped pairs are counted as drops;
* every node exits 0 on SIGINT without a traceback, and the node with unusable weights exits 1
  with a clear fatal message.

Run with ``colcon test --packages-select temcoco_ros`` or ``launch_test test/test_launch.py``
after building the package. Without rclpy or launch_testing the module is skipped.
"""

from __future__ import annotations

import array
import json
import math
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
from launch_ros.actions import Node  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import launch_testing.markers  # noqa: E402
import numpy as np  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "fusion.launch.py"
W, H = 64, 48
RATE_HZ = 30.0
SLOW_MS = 200.0
STARTUP_S = 90.0  # node start (torch import) + discovery; a deadline, not a measurement
THERMAL_SKEW_NS = 3_000_000

COMMON = {"fusion_engine": "average", "diagnostics_period": 0.5, "topic_timeout": 1.0,
          "diagnostics_use_fqn": True,  # three nodes named fusion_node: /ns/fusion_node: ...
          "metrics": "flicker,dirc"}
NODES = {
    "fast": dict(COMMON),
    "slow": {**COMMON, "simulate_inference_ms": SLOW_MS, "queue_depth": 1,
             "latency_warn_ms": 0.0, "latency_error_ms": 0.0},
    "strict": {**COMMON, "input_reliability": "reliable"},
}


def _param_file(directory: Path, name: str, values: dict) -> str:
    path = directory / f"{name}.yaml"
    lines = ["/**:", "  ros__parameters:"]
    lines += [f"    {k}: {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    directory = Path(tempfile.mkdtemp(prefix="temcoco_launch_test_"))
    actions = []
    for namespace, values in NODES.items():
        actions.append(IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
            launch_arguments={"namespace": namespace,
                              "config": _param_file(directory, namespace, values),
                              "log_level": "info"}.items()))
    bad_node = Node(package="temcoco_ros", executable="fusion_node", name="fusion_node",
                    namespace="bad", output="screen",
                    parameters=[{"weights": str(directory / "missing.safetensors"),
                                 "backend": "eager", "device": "cpu"}])
    actions += [bad_node, launch_testing.actions.ReadyToTest()]
    return LaunchDescription(actions), {"bad_node": bad_node}


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _image(stamp_ns: int, frame_id: str, arr: np.ndarray, encoding: str) -> Image:
    arr = np.ascontiguousarray(arr)
    msg = Image()
    msg.header.stamp = TimeMsg(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.height, msg.width = arr.shape[0], arr.shape[1]
    msg.encoding, msg.is_bigendian, msg.step = encoding, 0, arr.strides[0]
    msg.data = array.array("B", arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    return msg


def _thermal(rng: np.random.Generator, encoding: str) -> np.ndarray:
    centi_kelvin = rng.integers(29000, 31000, (H, W))
    if encoding in ("mono16", "16UC1"):
        return centi_kelvin.astype(np.uint16)
    if encoding == "32FC1":
        return (centi_kelvin / 100.0 - 273.15).astype(np.float32)
    return ((centi_kelvin - 29000) // 8).astype(np.uint8)  # mono8


class _Camera:
    """Synthetic RGB + thermal publishers into one node's namespace, and its fused output."""

    def __init__(self, node, namespace: str, reliability=ReliabilityPolicy.RELIABLE) -> None:
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=reliability)
        self.node = node
        self.rgb_pub = node.create_publisher(Image, f"/{namespace}/rgb/image_raw", qos)
        self.thermal_pub = node.create_publisher(Image, f"/{namespace}/thermal/image_raw", qos)
        self.fused: list[Image] = []
        self.sub = node.create_subscription(
            Image, f"/{namespace}/fused/image", self.fused.append,
            QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200,
                       reliability=ReliabilityPolicy.RELIABLE))
        self.sent: list[int] = []
        self.rng = np.random.default_rng(0)

    def publish(self, thermal_encoding: str = "mono16", thermal: bool = True) -> None:
        stamp = self.node.get_clock().now().nanoseconds
        rgb = self.rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        self.rgb_pub.publish(_image(stamp, "rgb_optical", rgb, "rgb8"))
        if thermal:
            self.thermal_pub.publish(_image(stamp + THERMAL_SKEW_NS, "thermal_optical",
                                            _thermal(self.rng, thermal_encoding),
                                            thermal_encoding))
        self.sent.append(stamp)

    def fused_since(self, stamp_ns: int) -> list[Image]:
        return [m for m in self.fused if _stamp_ns(m) >= stamp_ns]

    def destroy(self) -> None:
        self.node.destroy_publisher(self.rgb_pub)
        self.node.destroy_publisher(self.thermal_pub)
        self.node.destroy_subscription(self.sub)


class TestFusionNode(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("temcoco_launch_test")
        cls.executor = SingleThreadedExecutor()
        cls.executor.add_node(cls.node)
        cls.diagnostics: dict[str, DiagnosticStatus] = {}
        cls.diag_sub = cls.node.create_subscription(
            DiagnosticArray, "/diagnostics",
            lambda msg: cls.diagnostics.update({s.name: s for s in msg.status}), 50)

    @classmethod
    def tearDownClass(cls):
        cls.executor.shutdown()
        cls.node.destroy_node()
        rclpy.shutdown()

    def setUp(self):
        self.cameras: list[_Camera] = []

    def tearDown(self):
        for cam in self.cameras:
            cam.destroy()

    # ------------------------------------------------------------------ helpers
    def camera(self, namespace: str, reliability=ReliabilityPolicy.RELIABLE) -> _Camera:
        cam = _Camera(self.node, namespace, reliability)
        self.cameras.append(cam)
        return cam

    def run_for(self, seconds: float, cameras=(), until=None, thermal_encoding="mono16",
                thermal=True) -> bool:
        """Publish pairs at RATE_HZ and spin until ``until()`` or ``seconds`` pass."""
        end = time.monotonic() + seconds
        next_pub = time.monotonic()
        while time.monotonic() < end:
            if cameras and time.monotonic() >= next_pub:
                for cam in cameras:
                    cam.publish(thermal_encoding, thermal)
                next_pub += 1.0 / RATE_HZ
            self.executor.spin_once(timeout_sec=0.005)
            if until is not None and until():
                return True
        return until() if until is not None else True

    def status(self, namespace: str, suffix: str) -> DiagnosticStatus | None:
        return self.diagnostics.get(f"/{namespace}/fusion_node: {suffix}")

    @staticmethod
    def values(status: DiagnosticStatus) -> dict[str, str]:
        return {kv.key: kv.value for kv in status.values}

    def fresh_status(self, namespace: str, suffix: str, cameras=()) -> DiagnosticStatus:
        """The next status published after now."""
        self.diagnostics.pop(f"/{namespace}/fusion_node: {suffix}", None)
        self.assertTrue(self.run_for(10.0, cameras, lambda: self.status(namespace, suffix)),
                        f"no '{suffix}' status from /{namespace}/fusion_node")
        return self.status(namespace, suffix)

    # ------------------------------------------------------------------ tests
    def test_fused_image_keeps_the_rgb_stamp_frame_id_and_size(self):
        cam = self.camera("fast")  # reliable, like a REP-2003 camera driver; mono16 thermal
        self.assertTrue(self.run_for(STARTUP_S, [cam], lambda: len(cam.fused) >= 5),
                        "no /fast/fused/image within the start-up deadline")
        sent = set(cam.sent)
        for msg in cam.fused:
            self.assertIn(_stamp_ns(msg), sent)  # the RGB stamp, not the thermal one
            self.assertEqual((msg.width, msg.height, msg.encoding, msg.header.frame_id),
                             (W, H, "rgb8", "rgb_optical"))
            self.assertEqual(len(msg.data), msg.step * msg.height)
            self.assertEqual(msg.step, 3 * W)

    def test_every_thermal_encoding_is_fused(self):
        cam = self.camera("fast")
        self.run_for(STARTUP_S, [cam], lambda: len(cam.fused) >= 1)
        for encoding in ("16UC1", "32FC1", "mono8", "mono16"):
            start = self.node.get_clock().now().nanoseconds
            self.assertTrue(
                self.run_for(20.0, [cam], lambda s=start: len(cam.fused_since(s)) >= 3,
                             thermal_encoding=encoding),
                f"no fused output with {encoding} thermal")

    def test_best_effort_camera_connects_to_the_default_subscription(self):
        cam = self.camera("fast", ReliabilityPolicy.BEST_EFFORT)
        self.assertTrue(self.run_for(STARTUP_S, [cam], lambda: len(cam.fused) >= 3),
                        "a best-effort publisher did not reach the best-effort subscription")
        sent = set(cam.sent)
        self.assertTrue(all(_stamp_ns(m) in sent for m in cam.fused[-3:]))

    def test_reliable_subscription_reports_a_best_effort_camera(self):
        cam = self.camera("strict", ReliabilityPolicy.BEST_EFFORT)

        def flagged():
            st = self.status("strict", "inputs")
            return st is not None and "incompatible QoS" in st.message

        self.assertTrue(self.run_for(STARTUP_S, [cam], flagged),
                        "the QoS mismatch was not reported on /diagnostics")
        st = self.status("strict", "inputs")
        self.assertEqual(st.level, DiagnosticStatus.WARN)
        self.assertIn("RELIABILITY", st.message + str(self.values(st)))
        self.assertEqual(cam.fused, [])  # the silent failure the status makes visible

    def test_diagnostics_report_rates_latency_backend_and_temporal_values(self):
        cam = self.camera("fast")
        self.assertTrue(self.run_for(STARTUP_S, [cam], lambda: len(cam.fused) >= 10))
        worker = self.values(self.fresh_status("fast", "worker", [cam]))
        for key in ("latency_ms p50 (stamp to publish)", "latency_ms p99 (stamp to publish)",
                    "inference_ms p50", "inference_ms p99", "pairs dropped (latest wins)",
                    "pair rate_hz"):
            self.assertIn(key, worker)
        self.assertFalse(math.isnan(float(worker["latency_ms p99 (stamp to publish)"])))
        self.assertEqual((worker["backend"], worker["precision"]), ("none", "fp32"))
        pairing = self.values(self.fresh_status("fast", "pairing", [cam]))
        self.assertGreater(float(pairing["/fast/rgb/image_raw rate_hz"]), 0.0)
        self.assertIn("/fast/thermal/image_raw dropped", pairing)
        temporal = self.fresh_status("fast", "temporal consistency", [cam])
        self.assertIn("flicker mean", self.values(temporal))
        self.assertIsNotNone(self.status("fast", "output"))

    def test_silent_thermal_topic_warns_naming_it(self):
        cam = self.camera("fast")
        self.run_for(STARTUP_S, [cam], lambda: len(cam.fused) >= 1)

        def warned():
            st = self.status("fast", "inputs")
            return (st is not None and st.level == DiagnosticStatus.WARN
                    and "/fast/thermal/image_raw" in st.message)

        self.diagnostics.clear()
        self.assertTrue(self.run_for(15.0, [cam], warned, thermal=False),
                        "no WARN naming the silent thermal topic")
        self.assertNotIn("/fast/rgb/image_raw", self.status("fast", "inputs").message)

    def test_slow_backend_keeps_latency_bounded_and_counts_drops(self):
        cam = self.camera("slow")
        self.assertTrue(self.run_for(STARTUP_S, [cam], lambda: len(cam.fused) >= 1),
                        "no /slow/fused/image within the start-up deadline")
        start = self.node.get_clock().now().nanoseconds
        n_sent = len(cam.sent)
        self.run_for(6.0, [cam])  # 30 Hz in, about 5 Hz of inference
        sent = cam.sent[n_sent:]
        self.run_for(1.0)  # collect what is still in flight
        outputs = cam.fused_since(start)
        self.assertGreater(len(outputs), 3)
        self.assertLess(len(outputs), len(sent) / 2)  # most pairs skipped, not queued
        # latest wins: the last output shows one of the last pairs sent (a FIFO would lag
        # (1 - 5/30) * 6 s = 5 s behind by now)
        lag_s = (sent[-1] - _stamp_ns(outputs[-1])) / 1e9
        self.assertLess(lag_s, 1.0)
        worker = self.values(self.fresh_status("slow", "worker"))
        self.assertGreater(int(worker["pairs dropped (latest wins)"]), 0)
        per_inference = math.ceil(RATE_HZ * SLOW_MS / 1e3)
        self.assertLessEqual(float(worker["frames waited max"]), 3 * per_inference + 2)
        self.assertLess(float(worker["latency_ms p99 (stamp to publish)"]), 4 * SLOW_MS)

    def test_unusable_weights_are_a_clear_fatal_error(self, proc_output, bad_node):
        proc_output.assertWaitFor("cannot start", process=bad_node, timeout=STARTUP_S)
        proc_output.assertWaitFor("missing.safetensors", process=bad_node, timeout=5)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_exit_codes(self, proc_info, bad_node):
        for action in proc_info.processes():
            code = proc_info[action].returncode
            if action is bad_node:
                self.assertEqual(code, 1, "the node with unusable weights must exit 1")
            else:
                self.assertEqual(code, 0, f"{action.process_details['name']} exited with "
                                          f"{code} on SIGINT")

    def test_no_tracebacks(self, proc_output):
        for event in proc_output:
            self.assertNotIn("Traceback", event.text.decode(errors="replace"))
