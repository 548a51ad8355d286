# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The core side of the node's ROS integration (no ROS needed).

Parameters that ``ros2 param dump`` can read, diagnostic_updater conventions of the worker's
statuses, statuses that recover when their condition clears.
"""

from __future__ import annotations

import numpy as np

from temcoco_core.diagnostics import DiagnosticLevel as L
from temcoco_core.frames.image_msg import numpy_to_image_fields
from temcoco_core.io.bag import get_typestore, make_header
from temcoco_core.node_config import IDENTITY, NodeConfig, parameter_specs
from temcoco_core.worker import FusionWorker

W, H = 48, 32


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _msg(arr: np.ndarray, encoding: str, stamp_ns: int):
    image_cls = get_typestore().types["sensor_msgs/msg/Image"]
    f = numpy_to_image_fields(arr, encoding)
    return image_cls(header=make_header(stamp_ns, "cam"), height=f.height, width=f.width,
                     encoding=f.encoding, is_bigendian=0, step=f.step, data=f.data)


def _pair(worker: FusionWorker, i: int) -> None:
    rng = np.random.default_rng(i)
    stamp = (i + 1) * 33_000_000
    worker.offer(0, stamp, _msg(rng.integers(0, 256, (H, W, 3), np.uint8), "rgb8", stamp))
    worker.offer(1, stamp, _msg(rng.integers(0, 65535, (H, W), np.uint16), "mono16", stamp))


def test_every_parameter_has_a_typed_value_for_ros2_param_dump() -> None:
    """ROS cannot type an empty list: a parameter declared without a value has no value.

    And ``ros2 param dump`` fails on it. Every schema default is typed and non-empty.
    """
    for spec in parameter_specs():
        assert spec.default is not None, spec.name
        if spec.type == "double_array":
            assert len(spec.default) > 0 and all(isinstance(v, float) for v in spec.default), \
                spec.name
    cfg = NodeConfig()
    assert cfg.thermal_range == (0.0, 0.0) and cfg.homography == IDENTITY
    pipe = cfg.pipeline_config()
    assert pipe.thermal.fixed_range is None and pipe.registration.homography is None
    shifted = NodeConfig(thermal_range=(27315.0, 31315.0),
                         homography=(1.0, 0.0, 4.0, 0.0, 1.0, -2.0, 0.0, 0.0, 1.0))
    pipe = shifted.pipeline_config()
    assert pipe.thermal.fixed_range == (27315.0, 31315.0)
    assert pipe.registration.homography[2] == 4.0


def test_statuses_use_the_updater_names_and_the_output_topic_checks() -> None:
    clock = Clock()
    cfg = NodeConfig(fusion_engine="average", metrics="", min_rate_hz=5.0, rate_window=2,
                     diagnostics_period=1.0)
    worker = FusionWorker.from_config(cfg, _Average(), name="fusion_node", hardware_id="rig-7",
                                      clock=clock, output_topic="/fused/image")
    statuses = {s.name: s for s in worker.statuses()}
    topic = statuses["fusion_node: /fused/image topic status"]
    assert topic.level == L.ERROR and "No events recorded." in topic.message
    assert all(s.hardware_id == "rig-7" for s in statuses.values())
    assert all(name.startswith("fusion_node: ") for name in statuses)
    for i in range(20):  # 10 Hz output for 2 s
        _pair(worker, i)
        res = worker.step(0)
        for frame in res.outputs:
            worker.record_publish(frame.stamp_ns, frame.stamp_ns + 20_000_000)
        clock.t += 0.1
    topic = next(s for s in worker.statuses() if s.name.endswith("topic status"))
    assert topic.level == L.OK, topic.message
    assert topic.values["Minimum acceptable frequency (Hz)"] == "4.500000"
    assert float(topic.values["Latest timestamp delay:"]) == 0.02
    clock.t += 2.0  # output stops: the window empties
    worker.statuses()
    clock.t += 1.0
    topic = next(s for s in worker.statuses() if s.name.endswith("topic status"))
    assert topic.level == L.ERROR


def test_output_error_and_qos_mismatch_clear_when_the_condition_does() -> None:
    cfg = NodeConfig(fusion_engine="average", metrics="")
    worker = FusionWorker.from_config(cfg, _Average(), name="n", topic_names=("/rgb", "/th"))
    _pair(worker, 0)
    assert worker.step(0).outputs
    worker.pipeline.diagnostics.error("decode failed: truncated data")
    output = next(s for s in worker.statuses() if s.name == "n: output")
    assert output.level == L.WARN and "truncated" in output.message
    _pair(worker, 1)
    assert worker.step(0).outputs  # a good frame: the error is history
    output = next(s for s in worker.statuses() if s.name == "n: output")
    assert output.level == L.OK and output.values["last error"].endswith("truncated data")
    worker.report_qos_incompatible(1, "RELIABILITY")
    inputs = next(s for s in worker.statuses() if s.name == "n: inputs")
    assert inputs.level == L.WARN and "/th" in inputs.message
    worker.clear_qos_incompatible(1)  # the node found no incompatible publisher left
    _pair(worker, 2)
    inputs = next(s for s in worker.statuses() if s.name == "n: inputs")
    assert "incompatible" not in inputs.message


class _Average:
    def push(self, visible, infrared):
        return (visible + infrared) / 2

    def reset(self) -> None:
        pass


def test_fused_frames_know_their_input_size_for_camera_info() -> None:
    from temcoco_core.frames.camera_info import CameraInfoData, FusedCameraInfo

    cfg = NodeConfig(fusion_engine="average", metrics="", input_width=32, input_height=16,
                     output_size="model", resize_mode="pad")
    worker = FusionWorker.from_config(cfg, _Average())
    _pair(worker, 0)
    (frame,) = worker.step(0).outputs
    assert frame.input_size == (W, H)
    h, w = frame.image.shape[:2]
    assert (w, h) == (24, 16)  # pad: the content, scaled by 0.5, padding cropped off
    rgb = CameraInfoData.from_intrinsics(W, H, fx=40.0, fy=40.0, cx=24.0, cy=16.0)
    out = FusedCameraInfo("rgb", fixed=rgb).for_output((w, h), frame.input_size)
    assert (out.width, out.height) == (24, 16)
    assert out.k[0] == 20.0 and out.k[2] == 12.0 and out.k[5] == 8.0
