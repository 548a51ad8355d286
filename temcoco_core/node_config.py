# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Every parameter of the ROS 2 fusion node, in one ROS-free schema.

:class:`NodeConfig` is the single source of truth for the node's parameters: their names (flat,
identical in ``config/*.yaml``, the launch file's overrides and ``ros2 param``), types, defaults,
descriptions and allowed values or ranges. The node declares its ROS parameters by iterating
:func:`parameter_specs` (so a ``ros2 param describe`` shows exactly the text written here),
reads them back into a :class:`NodeConfig`, and builds the core objects through
:meth:`NodeConfig.pipeline_config` and friends. Nothing here imports ROS, so the schema, the
YAML files and the conversions are tested without it.

Types map to ROS parameter types as ``str`` → string, ``int`` → integer, ``float`` → double,
``bool`` → bool and ``tuple[float, ...]`` → double array. ROS is strict about them (a YAML ``1``
is an integer and is refused for a double parameter, ``[]`` cannot be typed at all), and
:meth:`NodeConfig.from_mapping` with ``strict_types=True`` applies the same rules, so a YAML
file that validates here also loads in ROS.

Example::

    cfg = NodeConfig.from_yaml("config/fusion.yaml", strict_types=True)
    pipeline_cfg = cfg.pipeline_config()      # temcoco_core.pipeline.PipelineConfig
"""

from __future__ import annotations

import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, MISSING
import difflib
import math
from pathlib import Path
import re
import typing
from typing import Any

from temcoco_core.engine.backends import BACKENDS as ENGINE_BACKENDS
from temcoco_core.engine.backends import PRECISIONS as ENGINE_PRECISIONS
from temcoco_core.frames.pairing import PairingConfig
from temcoco_core.frames.preprocess import PreprocessConfig
from temcoco_core.frames.registration import parse_homography, RegistrationConfig
from temcoco_core.frames.stripes import StripeConfig
from temcoco_core.frames.thermal import ThermalConfig
from temcoco_core.frames.transport import TRANSPORTS
from temcoco_core.health import LivenessConfig
from temcoco_core.metrics.alignment import AlignmentConfig
from temcoco_core.pipeline import PipelineConfig

__all__ = [
    "BACKENDS",
    "METRIC_NAMES",
    "NODE_NAME",
    "PARAMETER_GROUPS",
    "ROS_BUILTIN_PARAMETERS",
    "MetricThreshold",
    "NodeConfig",
    "NodeConfigError",
    "ParamSpec",
    "load_parameter_file",
    "markdown_parameter_table",
    "parameter_specs",
]

#: The node's name: ``rclpy`` node name and the key of its entries in parameter files
#: (``fusion_node:`` entries apply besides ``/**``).
NODE_NAME = "fusion_node"
#: Inference backends the node accepts: ``auto`` (picks the fastest that works on the device and
#: logs the fallback chain) and every backend of :data:`temcoco_core.engine.backends.BACKENDS`.
BACKENDS = ("auto", *ENGINE_BACKENDS)
PRECISIONS = tuple(ENGINE_PRECISIONS)
#: Online temporal-consistency metrics (lower case, as written in the ``metrics`` parameter) →
#: the key ``temcoco_core.metrics.OnlineTemporalMetrics.update`` reports them under.
METRIC_NAMES: dict[str, str] = {"flicker": "flicker", "dirc": "dirC", "flowd": "flowD"}
#: Parameters every rclpy node has, or ROS-level keys, that may appear in a parameter file.
ROS_BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")
_ROS_BUILTIN_PREFIXES = ("qos_overrides.",)
#: The identity homography: thermal and RGB images already aligned (the default).
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

#: Group name → title, in documentation order.
PARAMETER_GROUPS: dict[str, str] = {
    "topics": "Topics and QoS",
    "sync": "Synchronisation and queueing",
    "model": "Model and inference engine",
    "thermal": "Thermal normalisation",
    "registration": "Registration",
    "output": "Output and image conversion",
    "diagnostics": "Diagnostics and online temporal metrics",
    "lifecycle": "Lifecycle",
}


class NodeConfigError(ValueError):
    """One or more parameters are unknown, of the wrong type or out of range.

    Attributes:
        problems: one line per problem, each starting with the parameter name.
        source: where the values came from (a file name), or ``""``.
    """

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        n = len(self.problems)
        head = f"{where}{n} invalid node parameter{'s' if n != 1 else ''}"
        super().__init__(head + ":\n  " + "\n  ".join(self.problems))


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter as ROS sees it.

    Attributes:
        name: parameter name (flat: the same in YAML, launch overrides and ``ros2 param``).
        type: ``"string"``, ``"integer"``, ``"double"``, ``"bool"`` or ``"double_array"``.
        default: default value (a tuple for arrays; an empty tuple means "unset").
        description: ``ParameterDescriptor.description``.
        group: key of :data:`PARAMETER_GROUPS`.
        choices: allowed values of a string parameter, or ``None``.
        range: inclusive ``(low, high)`` of a number, or ``None``.
        constraints: free text for ``ParameterDescriptor.additional_constraints``.
    """

    name: str
    type: str
    default: Any
    description: str
    group: str
    choices: tuple[str, ...] | None = None
    range: tuple[float, float] | None = None
    constraints: str = ""

    @property
    def additional_constraints(self) -> str:
        """Constraint text shown by ``ros2 param describe``."""
        parts = []
        if self.choices:
            parts.append("one of: " + ", ".join(self.choices))
        if self.range is not None:
            parts.append(f"range [{self.range[0]:g}, {self.range[1]:g}]")
        if self.constraints:
            parts.append(self.constraints)
        return "; ".join(parts)


def _param(default: Any, description: str, group: str, *, choices: Iterable[str] | None = None,
           low: float | None = None, high: float | None = None, constraints: str = "") -> Any:
    meta = {"description": description, "group": group,
            "choices": tuple(choices) if choices is not None else None,
            "range": (low, high) if low is not None and high is not None else None,
            "constraints": constraints}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class MetricThreshold:
    """WARN/ERROR levels of one online metric (compared with its mean over the window).

    ``warn``/``error`` of 0 disable that level. Lower is better for every metric here.
    """

    name: str
    key: str
    warn: float
    error: float


@dataclass
class NodeConfig:
    """All parameters of ``temcoco_ros/fusion_node.py`` (see each field's description).

    Build with :meth:`from_mapping` / :meth:`from_yaml`; direct construction validates too
    (:class:`NodeConfigError` lists every problem at once).
    """

    # ------------------------------------------------------------------ topics and QoS
    rgb_topic: str = _param(
        "rgb/image_raw", "RGB image input (sensor_msgs/Image or any encoding of "
        "temcoco_core.frames.image_msg); relative names resolve in the node's namespace.",
        "topics")
    thermal_topic: str = _param(
        "thermal/image_raw", "Thermal image input: mono8, mono16, 16UC1 or 32FC1 (16-bit and "
        "float thermal keep their depth until normalisation).", "topics")
    fused_topic: str = _param(
        "fused/image", "Fused image output (sensor_msgs/Image with the RGB message's header).",
        "topics")
    input_reliability: str = _param(
        "best_effort", "Reliability of the two input subscriptions. best_effort connects to "
        "both best-effort and reliable publishers (REP-2003 camera drivers publish reliable); "
        "reliable connects only to reliable publishers.", "topics",
        choices=("best_effort", "reliable"))
    input_depth: int = _param(
        5, "KEEP_LAST history depth of the input subscriptions (the callbacks only pair and "
        "enqueue, so a small depth suffices).", "topics", low=1, high=100)
    output_reliability: str = _param(
        "reliable", "Reliability of the fused image publisher (reliable serves both kinds of "
        "subscriber).", "topics", choices=("best_effort", "reliable"))
    output_depth: int = _param(1, "KEEP_LAST history depth of the fused image publisher.",
                               "topics", low=1, high=100)
    rgb_transport: str = _param(
        "raw", "image_transport of the RGB input: raw (sensor_msgs/Image on rgb_topic) or "
        "compressed (sensor_msgs/CompressedImage, JPEG or PNG, on rgb_topic/compressed).",
        "topics", choices=TRANSPORTS)
    thermal_transport: str = _param(
        "raw", "image_transport of the thermal input: raw or compressed (thermal_topic/"
        "compressed; a 16-bit PNG keeps its depth, JPEG is 8-bit).", "topics",
        choices=TRANSPORTS)
    camera_info_source: str = _param(
        "auto", "Where the fused image's camera_info (published beside fused_topic, e.g. "
        "fused/camera_info) comes from: topic (the RGB camera's, rgb_camera_info_topic), url "
        "(a calibration file, camera_info_url), auto (url when set, else the topic; nothing "
        "published until one arrives) or none. It is transformed for output_size / "
        "resize_mode and carries the fused image's header.", "topics",
        choices=("auto", "topic", "url", "none"))
    rgb_camera_info_topic: str = _param(
        "", "The RGB camera's sensor_msgs/CameraInfo topic; empty: camera_info beside "
        "rgb_topic (image_transport's convention, e.g. rgb/camera_info).", "topics")
    camera_info_url: str = _param(
        "", "Calibration file of the RGB camera (camera_calibration's YAML): file:///path, "
        "package://<package>/<path> or a plain path.", "topics")

    # ------------------------------------------------------------------ synchronisation
    synchronizer: str = _param(
        "core", "Who pairs RGB and thermal messages. core: temcoco_core's ApproximatePairer "
        "(the ApproximateTimeSynchronizer policy, plus per-topic drop counters and a reset "
        "when a topic's time goes backwards, e.g. a looping bag); message_filters: the stock "
        "message_filters.ApproximateTimeSynchronizer (its queues are cleared on time jumps).",
        "sync", choices=("core", "message_filters"))
    sync_queue_size: int = _param(
        10, "Messages kept per topic while waiting for a partner (ApproximateTimeSynchronizer "
        "queue_size).", "sync", low=1, high=1000)
    sync_slop: float = _param(
        0.05, "Largest stamp difference of a pair, seconds (ApproximateTimeSynchronizer slop).",
        "sync", low=1e-4, high=10.0)
    sync_max_gap: float = _param(
        1.0, "Pairs further apart than this (seconds of header time) reset the temporal "
        "state; 0 disables.", "sync", low=0.0, high=3600.0)
    stamp_source: str = _param(
        "header", "Stamps messages are paired by. header: header stamps (a zero stamp -- an "
        "unstamped driver -- is replaced by the receive time and named in /diagnostics); "
        "receive: the node clock when the message arrived (drivers whose stamps are "
        "useless).", "sync", choices=("header", "receive"))
    sync_backward_tolerance: float = _param(
        0.1, "A stamp up to this much (seconds) older than its topic's newest is jitter or a "
        "reordered message: fused, no reset; further back is a discontinuity (reset).",
        "sync", low=0.0, high=60.0)
    sync_resync_threshold: float = _param(
        0.5, "A time jump whose stamp step disagrees with the receive-time step by more than "
        "this (seconds) is one camera's clock restarting: that camera is re-synchronised at "
        "once instead of never pairing again.", "sync", low=0.001, high=3600.0)
    queue_depth: int = _param(
        1, "Depth of the latest-wins queue between the synchroniser and the inference thread; "
        "when inference is slower than the cameras the oldest pair is dropped (counted), so "
        "latency stays bounded.", "sync", low=1, high=64)

    # ------------------------------------------------------------------ model and engine
    fusion_engine: str = _param(
        "model", "model: the TemCoCo network; average: model-free (V + I) / 2, for bring-up "
        "and tests without weights or GPU.", "model", choices=("model", "average"))
    preset: str = _param(
        "edge", "Network preset (temcoco_core.model.build_model): edge, edge-framewise or "
        "official.", "model")
    weights: str = _param(
        "", "Checkpoint (.safetensors or .pth); empty: the preset's default weights "
        "($TEMCOCO_WEIGHTS_DIR, packaged weights or the torch hub cache).", "model")
    motion_gate: tuple[float, ...] = _param(
        (0.1, 0.25), "[low, high] of the edge presets' motion gate (EdgeConfig.motion_gate): "
        "at a pixel whose features changed from an earlier frame by less than low (relative) "
        "that frame counts fully, above high not at all, so moving objects leave no ghosts; "
        "[0, 0]: off (the ungated network). Other presets have none.", "model",
        constraints="[0, 0] or 2 values, 0 <= low < high")
    backend: str = _param(
        "auto", "Inference backend (temcoco_core.engine.backends), built for the real input "
        "size (input_width x input_height, or the first frame's size when those are 0). auto "
        "picks the fastest that works and logs why each one was passed over: onnxruntime, "
        "then eager on a CPU; tensorrt, then inductor, then eager on CUDA. A named backend "
        "is used as asked or the engine fails with the reason (no fallback).", "model",
        choices=BACKENDS)
    precision: str = _param(
        "fp32", "Inference precision of the backend (fp16 and bf16 on a CPU run fp32, logged).",
        "model", choices=PRECISIONS)
    device: str = _param(
        "auto", "Torch device: auto (cuda if available, else cpu), cpu, cuda or cuda:N.",
        "model", constraints="auto | cpu | cuda | cuda:N")
    cpu_threads: int = _param(
        0, "CPU threads of torch and onnxruntime for inference; 0: half the usable cores, "
        "1 to 4 (more threads spin-wait against each other on a small, busy CPU).", "model",
        low=0, high=256)
    engine_cache_dir: str = _param(
        "", "Where built TensorRT/ONNX engines are cached, keyed by model, input size, "
        "precision, GPU and TensorRT version; empty: ~/.cache/temcoco/engines. Build ahead "
        "with `temcoco export`.", "model")
    engine_path: str = _param(
        "", "A prebuilt engine file from `temcoco export --output` (.ep: TensorRT, .onnx: "
        "onnxruntime); its errors are fatal, never fallen back from. Empty: look the engine up "
        "in engine_cache_dir.", "model")
    rebuild_engine: bool = _param(
        False, "Rebuild the cached engine even when a valid one exists.", "model")
    buffer_mode: str = _param(
        "auto", "How frames reach the network (temcoco_core.engine.streaming): stream: one "
        "output per input from the causal network's state (edge presets, no delay); clip: "
        "clips of buffer_length frames, outputs buffer_length - 1 frames late; window: the "
        "last buffer_length frames recomputed per input (no delay, buffer_length times the "
        "cost); auto: stream when the preset is causal, else clip.", "model",
        choices=("auto", "stream", "clip", "window"))
    buffer_length: int = _param(
        8, "Frames per clip or window (the network's temporal context) in clip and window "
        "modes.", "model",
        low=1, high=64)
    input_width: int = _param(
        0, "Model input width in pixels; 0 with input_height 0: the RGB image's size.",
        "model", low=0, high=8192)
    input_height: int = _param(
        0, "Model input height in pixels; 0 with input_width 0: the RGB image's size.",
        "model", low=0, high=8192)
    resize_mode: str = _param(
        "resize", "resize: scale to the input size exactly; pad: keep the aspect ratio and "
        "pad (the padding is cropped off the output).", "model", choices=("resize", "pad"))
    simulate_inference_ms: float = _param(
        0.0, "Testing only: add this many milliseconds to every inference (a slow backend).",
        "model", low=0.0, high=60000.0)

    # ------------------------------------------------------------------ thermal
    thermal_policy: str = _param(
        "auto", "Thermal normalisation (temcoco_core.frames.thermal): camera (the camera's own "
        "scale, its gain jumps undone), percentile (smoothed robust range that follows the "
        "camera's gain jumps), minmax (per frame, flickers), fixed (thermal_range) or auto "
        "(camera for mono8, percentile for 16-bit and float).", "thermal",
        choices=("auto", "camera", "percentile", "minmax", "fixed"))
    thermal_range: tuple[float, ...] = _param(
        (0.0, 0.0), "[low, high] raw thermal values for the fixed and camera policies (e.g. "
        "centi-kelvin); "
        "[0, 0]: the encoding's full range.", "thermal",
        constraints="[0, 0] or 2 values, low < high")
    thermal_percentiles: tuple[float, ...] = _param(
        (1.0, 99.0), "[low, high] percentiles of the percentile policy.", "thermal",
        constraints="2 values, 0 <= low < high <= 100")
    thermal_smoothing: float = _param(
        1.0, "Time constant of the percentile range's moving average, seconds; 0: none.",
        "thermal", low=0.0, high=3600.0)
    thermal_camera_return: float = _param(
        10.0, "Camera policy: time constant with which the range returns to the camera's own "
        "scale after a gain jump was undone, seconds; 0: at once.", "thermal", low=0.0,
        high=3600.0)
    thermal_track_gain: bool = _param(
        True, "Follow the thermal camera's own gain/offset jumps (AGC, flat-field "
        "corrections) at once instead of letting them flash.", "thermal")
    thermal_invert: bool = _param(False, "Black-hot thermal (hot = dark).", "thermal")
    thermal_destripe: str = _param(
        "columns", "Remove the thermal camera's fixed-pattern stripes (per-column/row offsets of "
        "an uncooled sensor, estimated robustly and averaged over time): columns, rows, both or "
        "off.", "thermal", choices=("columns", "rows", "both", "off"))
    thermal_destripe_smoothing: float = _param(
        1.0, "Time constant of the stripe pattern's moving average, seconds; 0: every frame on "
        "its own.", "thermal", low=0.0, high=3600.0)

    # ------------------------------------------------------------------ registration
    homography: tuple[float, ...] = _param(
        IDENTITY, "3x3 thermal-to-RGB pixel homography, 9 values row-major; the identity: "
        "the images are already aligned.", "registration",
        constraints="9 values, invertible")
    registration_border: str = _param(
        "constant", "Outside the thermal field of view: constant (black) or replicate.",
        "registration", choices=("constant", "replicate"))
    resize_thermal_to_rgb: bool = _param(
        True, "Resample a thermal image of another size (e.g. 640x512 with 1280x720 RGB) into "
        "the RGB frame; with a homography the registration does it. false: a size mismatch "
        "without homography is an error (counted, named in /diagnostics).", "registration")
    alignment_every: int = _param(
        3, "Live thermal/RGB alignment check every N frame pairs (structure correlation on a "
        "128-pixel copy; the registration status WARNs when the mount was knocked); 0: off.",
        "registration", low=0, high=10000)
    alignment_warn_score: float = _param(
        0.75, "Alignment score (correlation at the registered position / best correlation "
        "within +-12 % shifts, median of 7 readings) below which the registration status "
        "WARNs.", "registration", low=0.01, high=1.0)

    # ------------------------------------------------------------------ output
    output_size: str = _param(
        "rgb", "Size of the fused image: rgb (the RGB input's size) or model (the model "
        "input size).", "output", choices=("rgb", "model"))
    output_encoding: str = _param("rgb8", "Encoding of the fused image.", "output",
                                  choices=("rgb8", "bgr8", "mono8"))
    image_conversion: str = _param(
        "auto", "Message to array conversion. auto: cv_bridge for 8-bit encodings when it "
        "imports, temcoco_core for mono16/16UC1/32FC1/Bayer (cv_bridge loses their depth) and "
        "for everything when cv_bridge fails to import (NumPy 2 ABI); cv_bridge: require it "
        "for 8-bit encodings; core: temcoco_core only.", "output",
        choices=("auto", "cv_bridge", "core"))
    output_compressed: bool = _param(
        False, "Also publish fused_topic/compressed (sensor_msgs/CompressedImage, "
        "image_transport's compressed transport) for Foxglove, rosbag or a radio link; "
        "encoded only while someone subscribes.", "output")
    output_compressed_format: str = _param(
        "jpeg", "Format of the compressed output (as compressed_image_transport writes it).",
        "output", choices=("jpeg", "png"))
    output_jpeg_quality: int = _param(
        90, "JPEG quality of the compressed output.", "output", low=1, high=100)
    max_input_pixels: int = _param(
        8192 * 4096, "Largest width x height of an input image, checked before it is decoded "
        "(compressed headers included); larger frames are skipped and counted. 0: no cap.",
        "output", low=0, high=2**31 - 1)

    # ------------------------------------------------------------------ diagnostics
    diagnostics_period: float = _param(
        1.0, "Seconds between /diagnostics messages.", "diagnostics", low=0.05, high=60.0)
    topic_timeout: float = _param(
        2.0, "An input silent for longer than this (seconds, wall clock) makes the inputs "
        "status WARN, naming the topic.", "diagnostics", low=0.1, high=3600.0)
    drop_warn_ratio: float = _param(
        0.2, "Share of input messages left unpaired above which the pairing status WARNs "
        "(check sync_slop and sync_queue_size).", "diagnostics", low=0.0, high=1.0)
    latency_warn_ms: float = _param(
        250.0, "p99 latency (header stamp to publish) above which the worker status WARNs; "
        "0 disables.", "diagnostics", low=0.0, high=1.0e6)
    latency_error_ms: float = _param(
        1000.0, "p99 latency above which the worker status is ERROR; 0 disables.",
        "diagnostics", low=0.0, high=1.0e6)
    expected_rate: float = _param(
        0.0, "Output rate you expect (Hz, e.g. the cameras' rate); the output liveness status "
        "WARNs when the fused output stays below half of it. 0: no rate check.",
        "diagnostics", low=0.0, high=1000.0)
    stall_warn: float = _param(
        0.8, "Inputs arriving but no fused output for this long (seconds) makes the output "
        "liveness status WARN, naming the last reason.", "diagnostics", low=0.1, high=3600.0)
    stall_error: float = _param(
        5.0, "... and ERROR after this long (seconds).", "diagnostics", low=0.1, high=3600.0)
    metrics: str = _param(
        "flicker,dirc", "Online temporal-consistency metrics, comma-separated: flicker "
        "(brightness change against the RGB one), dirc (frame-difference direction "
        "inconsistency, paper Eq. 16), flowd (flow-warp error; costs one optical flow per "
        "frame); empty: none.", "diagnostics",
        constraints="comma-separated subset of flicker, dirc, flowd")
    metrics_window: int = _param(
        30, "Frames over which the metrics are averaged before comparing with thresholds.",
        "diagnostics", low=1, high=10000)
    metrics_max_side: int = _param(
        160, "The metrics run on the fused, RGB and thermal images scaled down so that the "
        "longer side is at most this many pixels (flowd's optical flow included); 0: full "
        "size. Thresholds depend on it.", "diagnostics", low=0, high=8192)
    flicker_warn: float = _param(
        1.5, "Mean flicker (0-255 brightness units) above which the temporal status WARNs; 0 "
        "disables.", "diagnostics", low=0.0, high=255.0)
    flicker_error: float = _param(5.0, "Mean flicker for ERROR; 0 disables.", "diagnostics",
                                  low=0.0, high=255.0)
    dirc_warn: float = _param(
        1.2, "Mean direction inconsistency (0-4) above which the temporal status WARNs; 0 "
        "disables.", "diagnostics", low=0.0, high=4.0)
    dirc_error: float = _param(1.6, "Mean direction inconsistency for ERROR; 0 disables.",
                               "diagnostics", low=0.0, high=4.0)
    flowd_warn: float = _param(
        5.0, "Mean flowd (0-255) above which the temporal status WARNs; 0 disables.",
        "diagnostics", low=0.0, high=255.0)
    flowd_error: float = _param(12.0, "Mean flowd for ERROR; 0 disables.", "diagnostics",
                                low=0.0, high=255.0)
    hardware_id: str = _param(
        "", "DiagnosticStatus.hardware_id of every status: the camera pair this node watches "
        "(e.g. serial numbers); empty: the RGB and thermal frame_ids once seen.",
        "diagnostics")
    diagnostics_use_fqn: bool = _param(
        False, "Prefix status names with the fully qualified node name (/ns/fusion_node: "
        "output) instead of the node name, like diagnostic_updater.use_fqn; set it when "
        "several fusion nodes share a name in different namespaces.", "diagnostics")
    min_rate_hz: float = _param(
        0.0, "Lowest acceptable rate of the fused output (diagnostic_updater FrequencyStatus "
        "min, with rate_tolerance); 0: no lower bound (only a silent output is an error).",
        "diagnostics", low=0.0, high=1000.0)
    max_rate_hz: float = _param(
        0.0, "Highest acceptable rate of the fused output; 0: no upper bound.", "diagnostics",
        low=0.0, high=1000.0)
    rate_tolerance: float = _param(
        0.1, "Tolerance of the rate bounds: acceptable is min * (1 - tolerance) to max * (1 + "
        "tolerance).", "diagnostics", low=0.0, high=1.0)
    rate_window: int = _param(
        5, "Diagnostics periods the output rate is measured over (FrequencyStatus "
        "window_size).", "diagnostics", low=1, high=100)
    max_stamp_delay: float = _param(
        5.0, "Largest acceptable age of a fused frame's header stamp when published, seconds "
        "(TimeStampStatus max_acceptable).", "diagnostics", low=0.0, high=3600.0)

    # ------------------------------------------------------------------ lifecycle
    autostart: bool = _param(
        True, "Configure and activate on start-up (false: wait for a lifecycle manager or "
        "`ros2 lifecycle set`).", "lifecycle")

    def __post_init__(self) -> None:
        problems = _validate(self, strict_types=False)
        if problems:
            raise NodeConfigError(problems)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, strict_types: bool = False,
                     source: str = "") -> NodeConfig:
        """A config from ``{parameter: value}`` (missing parameters take their defaults).

        Args:
            values: flat parameter names → values; ROS built-ins (``use_sim_time``,
                ``qos_overrides.*``) are ignored.
            strict_types: apply ROS's typing rules (no int for a double parameter, no empty
                arrays); otherwise ints are accepted for doubles and lists for arrays.
            source: named in error messages (e.g. the YAML file).

        Raises:
            NodeConfigError: every unknown name, wrong type and out-of-range value at once.
        """
        specs = {s.name: s for s in parameter_specs()}
        problems: list[str] = []
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if name in ROS_BUILTIN_PARAMETERS or name.startswith(_ROS_BUILTIN_PREFIXES):
                continue
            spec = specs.get(name)
            if spec is None:
                close = difflib.get_close_matches(name, specs, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"{name}: unknown parameter{hint}")
                continue
            ok, coerced, why = _coerce(spec, value, strict_types)
            if not ok:
                problems.append(f"{name}: {why}")
                continue
            kwargs[name] = coerced
        if problems:
            raise NodeConfigError(problems, source)
        try:
            return cls(**kwargs)
        except NodeConfigError as exc:
            raise NodeConfigError(exc.problems, source) from None

    @classmethod
    def from_yaml(cls, path: str | Path, *, node_name: str | None = None,
                  strict_types: bool = True) -> NodeConfig:
        """A config from a ROS 2 parameter file (see :func:`load_parameter_file`)."""
        return cls.from_mapping(load_parameter_file(path, node_name), strict_types=strict_types,
                                source=str(path))

    @classmethod
    def from_sources(cls, params_file: str | Path | Sequence[str | Path] | None = None, *,
                     node_name: str | None = None,
                     overrides: Mapping[str, Any] | None = None) -> NodeConfig:
        """Defaults, then ROS 2 parameter files, then single values (e.g. command-line flags).

        This is how ``temcoco replay|fuse|demo --params FILE`` rehearse the node: each file is
        the node's own (``ros__parameters`` under the node name or ``/**``) and is read with
        ROS's typing rules; several files apply in order, each setting only the parameters it
        names (as ``--params-file`` given twice to a ROS node: e.g. ``config/fusion.yaml`` then
        the ``registration.yaml`` of ``temcoco calibrate``); ``overrides`` are applied on top
        with the lenient rules.

        Raises:
            FileNotFoundError: no such parameter file.
            NodeConfigError: unknown names, wrong types or out-of-range values.
        """
        files = ([] if params_file is None else [params_file]
                 if isinstance(params_file, (str, Path)) else list(params_file))
        values: dict[str, Any] = {}
        sources = []
        for path in files:
            sources.append(str(path))
            named = load_parameter_file(path, node_name)
            # validate the file alone first (as from_yaml does), so its problems name the file
            typed = cls.from_mapping(named, strict_types=True, source=str(path)).as_dict()
            values.update({k: v for k, v in typed.items() if k in named})
        source = " + ".join(sources) or "defaults"
        if overrides:
            values.update(overrides)
            source = f"{source} + command line"
        return cls.from_mapping(values, source=source)

    def as_dict(self) -> dict[str, Any]:
        """``{parameter: value}`` (arrays as lists), e.g. to write a parameter file."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in fields(self)}

    # ------------------------------------------------------------------ core configs
    @property
    def model_size(self) -> tuple[int, int] | None:
        """``(W, H)`` of the model input, ``None`` for the RGB size."""
        if self.input_width and self.input_height:
            return (self.input_width, self.input_height)
        return None

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The enabled online metrics, lower case, in the order given."""
        return _split_metrics(self.metrics)

    def model_options(self, preset: str | None = None) -> dict[str, Any]:
        """Preset options set by parameters, for :func:`temcoco_core.model.build_model`.

        For ``preset`` (default: the ``preset`` parameter): the edge presets' ``motion_gate``
        (``None`` for ``[0, 0]``); other presets have none.
        """
        from temcoco_core.model.edge import EDGE_PRESETS, motion_gate_parameter

        if (preset or self.preset) not in EDGE_PRESETS:
            return {}
        return {"motion_gate": motion_gate_parameter(self.motion_gate)}

    def pairing_config(self) -> PairingConfig:
        return PairingConfig(queue_size=self.sync_queue_size, slop=self.sync_slop,
                             max_gap_s=self.sync_max_gap or None,
                             stamp_source=self.stamp_source,
                             backward_tolerance_s=self.sync_backward_tolerance,
                             resync_threshold_s=self.sync_resync_threshold)

    def liveness_config(self) -> LivenessConfig:
        """Expected output rate and stall thresholds of the output liveness status."""
        return LivenessConfig(expected_rate_hz=self.expected_rate, stall_warn_s=self.stall_warn,
                              stall_error_s=max(self.stall_error, self.stall_warn))

    def thermal_config(self) -> ThermalConfig:
        """The thermal normalisation policy (``thermal_*`` parameters)."""
        return ThermalConfig(
            policy=self.thermal_policy,
            fixed_range=(tuple(self.thermal_range) if any(self.thermal_range) else None),
            percentiles=(self.thermal_percentiles[0], self.thermal_percentiles[1]),
            smoothing_s=self.thermal_smoothing, camera_return_s=self.thermal_camera_return,
            track_gain=self.thermal_track_gain, invert=self.thermal_invert,
            stripes=StripeConfig(mode=self.thermal_destripe,
                                 smoothing_s=self.thermal_destripe_smoothing))

    def pipeline_config(self) -> PipelineConfig:
        """The core pipeline's configuration (pairing, thermal, registration, sizes)."""
        return PipelineConfig(
            preprocess=PreprocessConfig(model_size=self.model_size, resize_mode=self.resize_mode,
                                        resize_infrared_to_visible=self.resize_thermal_to_rgb),
            thermal=self.thermal_config(),
            registration=RegistrationConfig(
                homography=(list(self.homography) if self.homography
                            and tuple(self.homography) != IDENTITY else None),
                border=self.registration_border),
            pairing=self.pairing_config(),
            output_size=self.output_size,
            output_encoding=self.output_encoding,
            metrics=bool(self.metric_names),
            metrics_max_side=self.metrics_max_side or None,
            metrics_flow="flowd" in self.metric_names,
            max_input_pixels=self.max_input_pixels or None,
            alignment=(AlignmentConfig(every=self.alignment_every,
                                       warn_score=self.alignment_warn_score)
                       if self.alignment_every else None),
        )

    def metric_thresholds(self) -> list[MetricThreshold]:
        """Thresholds of the enabled metrics, in the order given by ``metrics``."""
        return [MetricThreshold(n, METRIC_NAMES[n], getattr(self, f"{n}_warn"),
                                getattr(self, f"{n}_error")) for n in self.metric_names]


# ---------------------------------------------------------------------------------- schema


def _ros_type(annotation: Any) -> str:
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "double"
    if annotation is str:
        return "string"
    if typing.get_origin(annotation) is tuple and typing.get_args(annotation)[0] is float:
        return "double_array"
    raise TypeError(f"no ROS parameter type for {annotation!r}")


def parameter_specs() -> list[ParamSpec]:
    """Every node parameter, in declaration (and documentation) order."""
    hints = typing.get_type_hints(NodeConfig)
    specs = []
    for f in fields(NodeConfig):
        meta = f.metadata
        default = f.default if f.default is not MISSING else None
        specs.append(ParamSpec(
            name=f.name, type=_ros_type(hints[f.name]), default=default,
            description=meta["description"], group=meta["group"], choices=meta["choices"],
            range=meta["range"], constraints=meta["constraints"]))
    return specs


def _split_metrics(text: str) -> tuple[str, ...]:
    return tuple(p.strip().lower() for p in text.split(",") if p.strip())


def _coerce(spec: ParamSpec, value: Any, strict: bool) -> tuple[bool, Any, str]:
    """Type-check (and, when not strict, coerce) one value. Returns ``(ok, value, why)``."""
    t = spec.type
    if t == "bool":
        if isinstance(value, bool):
            return True, value, ""
        return False, None, f"expected a bool (true/false), got {value!r}"
    if t == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return True, value, ""
        if not strict and isinstance(value, float) and value.is_integer():
            return True, int(value), ""
        return False, None, f"expected an integer, got {value!r}"
    if t == "double":
        if isinstance(value, float):
            return True, value, ""
        if isinstance(value, int) and not isinstance(value, bool):
            if strict:
                return False, None, (f"expected a double, got the integer {value!r} (ROS refuses "
                                     f"integers for double parameters: write {value}.0)")
            return True, float(value), ""
        return False, None, f"expected a double, got {value!r}"
    if t == "string":
        if isinstance(value, str):
            return True, value, ""
        return False, None, f"expected a string, got {value!r}"
    # double_array (rclpy hands arrays over as array.array)
    if not isinstance(value, (list, tuple, array.array)):
        return False, None, f"expected a list of doubles, got {value!r}"
    if strict and len(value) == 0:
        return False, None, ("an empty list cannot be typed by ROS; leave the parameter out "
                             "(commented) to keep it unset")
    out = []
    for v in value:
        if isinstance(v, float) or (not strict and isinstance(v, int)
                                    and not isinstance(v, bool)):
            out.append(float(v))
        else:
            hint = " (ROS needs every element written as a double, e.g. 1.0)" if strict else ""
            return False, None, f"expected a list of doubles, got element {v!r}{hint}"
    return True, tuple(out), ""


def _validate(cfg: NodeConfig, strict_types: bool) -> list[str]:
    problems: list[str] = []
    mistyped = False
    for spec in parameter_specs():
        value = getattr(cfg, spec.name)
        ok, coerced, why = _coerce(spec, value, strict_types)
        if not ok:
            problems.append(f"{spec.name}: {why}")
            mistyped = True
            continue
        object.__setattr__(cfg, spec.name, coerced)
        if spec.choices is not None and coerced not in spec.choices:
            problems.append(f"{spec.name}: must be one of {', '.join(spec.choices)}; got "
                            f"{coerced!r}")
        if spec.range is not None:
            lo, hi = spec.range
            if not (math.isfinite(coerced) and lo <= coerced <= hi):
                problems.append(f"{spec.name}: must be in [{lo:g}, {hi:g}], got {coerced!r}")
    if mistyped:  # the checks below assume the types are right
        return problems

    if not _DEVICE_RE.match(cfg.device):
        problems.append(f"device: must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    if cfg.fusion_engine == "model":
        from temcoco_core.model.presets import available_presets

        if cfg.preset not in available_presets():
            problems.append(f"preset: unknown preset {cfg.preset!r}; available: "
                            f"{', '.join(available_presets())}")
    if bool(cfg.input_width) != bool(cfg.input_height):
        problems.append(f"input_width/input_height: give both or neither (0), got "
                        f"{cfg.input_width}x{cfg.input_height}")
    from temcoco_core.model.edge import motion_gate_parameter

    try:
        motion_gate_parameter(cfg.motion_gate)
    except ValueError:
        problems.append(f"motion_gate: needs [low, high] with 0 <= low < high (or [0.0, 0.0]: "
                        f"off), got {list(cfg.motion_gate)}")
    tr = cfg.thermal_range
    if tr and any(tr) and (len(tr) != 2 or not tr[0] < tr[1]):
        problems.append(f"thermal_range: needs [low, high] with low < high (or [0.0, 0.0]: "
                        f"the full range), got {list(tr)}")
    p = cfg.thermal_percentiles
    if len(p) != 2 or not 0.0 <= p[0] < p[1] <= 100.0:
        problems.append(f"thermal_percentiles: needs [low, high] with 0 <= low < high <= 100, "
                        f"got {list(p)}")
    if cfg.homography:
        try:
            parse_homography(cfg.homography)
        except ValueError as exc:
            problems.append(f"homography: {exc}")
    unknown = [m for m in _split_metrics(cfg.metrics) if m not in METRIC_NAMES]
    if unknown:
        problems.append(f"metrics: unknown metric(s) {', '.join(unknown)}; known: "
                        f"{', '.join(METRIC_NAMES)}")
    if cfg.max_rate_hz and cfg.max_rate_hz < cfg.min_rate_hz:
        problems.append(f"max_rate_hz: {cfg.max_rate_hz:g} is below min_rate_hz "
                        f"{cfg.min_rate_hz:g} (0: no upper bound)")
    if cfg.camera_info_source == "url" and not cfg.camera_info_url:
        problems.append("camera_info_url: needed with camera_info_source url")
    pairs = [("latency_warn_ms", "latency_error_ms")] + [
        (f"{n}_warn", f"{n}_error") for n in METRIC_NAMES]
    for warn, error in pairs:
        w, e = getattr(cfg, warn), getattr(cfg, error)
        if w > 0 and e > 0 and w > e:
            problems.append(f"{warn}: {w:g} is above {error} {e:g}")
    return problems


# ---------------------------------------------------------------------------------- files


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def load_parameter_file(path: str | Path, node_name: str | None = None) -> dict[str, Any]:
    """Flat ``{parameter: value}`` from a ROS 2 parameter file.

    The file maps node names (``/**`` wildcards, ``fusion_node``, ``/ns/fusion_node``) to
    ``{ros__parameters: {...}}``; nested keys are joined with dots, as ROS does. Entries apply
    in file order (later ones win); with ``node_name`` only the wildcard entries and those
    whose name ends with ``node_name`` are used.

    Raises:
        FileNotFoundError: no such file.
        NodeConfigError: not YAML, or not a parameter file.
    """
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise NodeConfigError([f"not valid YAML: {exc}"], str(path)) from None
    if not isinstance(doc, Mapping) or not doc:
        raise NodeConfigError(["expected `<node name or /**>: {ros__parameters: {...}}`"],
                              str(path))
    out: dict[str, Any] = {}
    for node, body in doc.items():
        if not isinstance(body, Mapping) or "ros__parameters" not in body:
            raise NodeConfigError([f"{node}: has no ros__parameters mapping"], str(path))
        name = str(node)
        if node_name is not None and "*" not in name and not name.endswith(node_name):
            continue
        params = body["ros__parameters"]
        if not isinstance(params, Mapping):
            raise NodeConfigError([f"{node}: ros__parameters must be a mapping"], str(path))
        _flatten("", params, out)
    return out


def markdown_parameter_table() -> str:
    """The README's parameter tables (one per group), generated from the schema."""
    lines: list[str] = []
    specs = parameter_specs()
    for group, title in PARAMETER_GROUPS.items():
        rows = [s for s in specs if s.group == group]
        if not rows:
            continue
        lines += [f"**{title}**", "", "| parameter | type | default | description |",
                  "|---|---|---|---|"]
        for s in rows:
            if isinstance(s.default, tuple):
                default = "unset" if not s.default else "[" + ", ".join(
                    f"{v:g}" for v in s.default) + "]"
            elif isinstance(s.default, bool):
                default = str(s.default).lower()
            elif isinstance(s.default, str):
                default = f'"{s.default}"'
            else:
                default = f"{s.default:g}" if isinstance(s.default, float) else str(s.default)
            extra = f" ({s.additional_constraints})" if s.additional_constraints else ""
            desc = (s.description + extra).replace("|", "\\|")
            lines.append(f"| `{s.name}` | {s.type} | `{default}` | {desc} |")
        lines.append("")
    return "\n".join(lines)
