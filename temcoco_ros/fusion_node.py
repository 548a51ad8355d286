# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""ROS 2 node ``fusion_node``: thermal + RGB in, TemCoCo-fused image and diagnostics out.

::

    <rgb_topic>[/compressed]      ─┐  message_filters.Subscriber ×2, raw or compressed
    <thermal_topic>[/compressed]  ─┘       │  (input QoS: best effort by default); callbacks
    <rgb camera_info>  (optional)          ▼  only pair, convert and enqueue
                     latest-wins queue (queue_depth, drops counted)
                                 │
                     worker thread: thermal gain → registration → engine → metrics
                                 │
    <fused_topic>              ◄─┤  sensor_msgs/Image, RGB message's header
    <fused camera_info>        ◄─┤  the RGB camera's, transformed for the output size
    <fused_topic>/compressed   ◄─┘  optional (JPEG/PNG), while subscribed
    /diagnostics    ◄── steady-clock timer: diagnostic_updater's names, hardware_id, output
                        frequency/timestamp checks; rates, drops, latency, temporal
                        consistency, silent topics, QoS mismatches (statuses recover)

A lifecycle node: ``configure`` validates the parameters and builds the engine (model, backend
fallback chain, engine cache), ``activate`` subscribes and starts the worker, ``deactivate``
stops them and frees the engine's GPU memory, ``cleanup`` drops everything, ``shutdown``
ends the process (so launch can respawn it). With ``autostart:=true`` (``ros2 run``) it
configures and activates itself at start-up and exits with a clear fatal error when the model,
engine or device cannot be used; ``fusion.launch.py`` drives the transitions instead. Every
publisher and subscription takes ``qos_overrides.*`` parameters; misspelt ones are refused at
configure. SIGINT/SIGTERM at any moment (also during an engine build) end the process with
exit code 0 and no traceback.

Everything the node decides lives in ``temcoco_core`` (``node_config`` for the parameter
schema, ``worker`` for queueing and diagnostics, ``engine.factory`` for the engine,
``pipeline`` for the fusion itself) and is tested without ROS; this module only carries messages.
"""

from __future__ import annotations

import array
from collections.abc import Callable
import logging
import sys
from typing import Any

from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import message_filters
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import JumpThreshold
from rclpy.duration import Duration
from rclpy.exceptions import ParameterUninitializedException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    qos_policy_name_from_kind,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from temcoco_core.diagnostics import (
    build_diagnostic_array,
    DiagnosticLevel,
    DiagnosticTypes,
    StatusValue,
)
from temcoco_core.diagnostics.updater import with_updater_names
from temcoco_core.engine.factory import EngineBuildError, EngineHandle
from temcoco_core.frames.camera_info import (
    CameraInfoError,
    FusedCameraInfo,
    load_calibration_yaml,
    resolve_camera_info_url,
)
from temcoco_core.frames.decoder import ImageConversionError, make_decoder
from temcoco_core.frames.transport import camera_info_topic, transport_topic
from temcoco_core.node_config import (
    NODE_NAME,
    NodeConfig,
    NodeConfigError,
    parameter_specs,
    ParamSpec,
)
from temcoco_core.pipeline import FusedFrame
from temcoco_core.qos_overrides import QosOverrideError
from temcoco_core.shutdown import ShutdownRequest
from temcoco_core.worker import FusionWorker
from temcoco_ros.ros_io import (
    check_qos_overrides,
    FusedOutputs,
    incompatible_policies,
    overriding_options,
    qos_entity,
    spin_until_shutdown,
    subscribe_image,
    wall_timer,
)

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks, UnsupportedEventTypeError

__all__ = ["FusionNode", "main"]

_RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT,
                "reliable": ReliabilityPolicy.RELIABLE}
_ROS_TYPES = {"bool": Parameter.Type.BOOL, "integer": Parameter.Type.INTEGER,
              "double": Parameter.Type.DOUBLE, "string": Parameter.Type.STRING,
              "double_array": Parameter.Type.DOUBLE_ARRAY}
_DIAGNOSTIC_TYPES = DiagnosticTypes(array=DiagnosticArray, status=DiagnosticStatus,
                                    key_value=KeyValue, header=Header, time=TimeMsg,
                                    level=lambda v: bytes([v]))


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The ROS descriptor of one schema entry (description, constraints, range)."""
    d = ParameterDescriptor(name=spec.name, type=_ROS_TYPES[spec.type].value,
                            description=spec.description,
                            additional_constraints=spec.additional_constraints)
    if spec.range is not None and spec.type == "double":
        d.floating_point_range = [FloatingPointRange(
            from_value=float(spec.range[0]), to_value=float(spec.range[1]), step=0.0)]
    elif spec.range is not None and spec.type == "integer":
        d.integer_range = [IntegerRange(from_value=int(spec.range[0]),
                                        to_value=int(spec.range[1]), step=1)]
    return d


def _load_cv_bridge() -> Callable[[Image], Any]:
    """cv_bridge's ``imgmsg_to_cv2`` in passthrough, probed once.

    A cv_bridge built against NumPy 1 fails here under NumPy 2 instead of at the first frame.
    """
    from cv_bridge import CvBridge

    bridge = CvBridge()
    probe = Image(height=1, width=1, encoding="rgb8", step=3, data=[0, 0, 0])
    bridge.imgmsg_to_cv2(probe, desired_encoding="passthrough")
    return lambda msg: bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")


def _stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class _RosLogHandler(logging.Handler):
    """Forwards ``temcoco_core`` log records to the node's ROS logger."""

    def __init__(self, logger: Any) -> None:
        super().__init__()
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        msg = self.format(record)
        if record.levelno >= logging.ERROR:
            self._logger.error(msg)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(msg)
        elif record.levelno >= logging.INFO:
            self._logger.info(msg)
        else:
            self._logger.debug(msg)


class FusionNode(LifecycleNode):
    """The TemCoCo fusion lifecycle node (see the module docstring)."""

    def __init__(self, shutdown: ShutdownRequest | None = None, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._core_log = logging.getLogger("temcoco_core")
        self._log_handler = _RosLogHandler(self.get_logger())
        self._core_log.addHandler(self._log_handler)
        self._core_log.setLevel(logging.INFO)
        for spec in parameter_specs():  # every one with a typed value: `ros2 param dump` works
            default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
            self.declare_parameter(spec.name, default, _descriptor(spec))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.autostart = bool(self.get_parameter("autostart").value)
        self.shutdown_request = shutdown or ShutdownRequest(signals=())
        self._cfg: NodeConfig | None = None
        self._handle: EngineHandle | None = None
        self._worker: FusionWorker | None = None
        self._outputs: FusedOutputs | None = None
        self._camera_info: FusedCameraInfo | None = None
        self._info_topic = ""
        self._diag_pub: Any = None
        self._diag_timer: Any = None
        self._subs: list[Any] = []
        self._info_sub: Any = None
        self._input_qos: QoSProfile | None = None
        self._sync: Any = None
        self._jump_handle: Any = None
        self._frame_ids = ["", ""]
        self._qos_logged: set[tuple[int, str]] = set()
        self._input_group = MutuallyExclusiveCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()

    # ------------------------------------------------------------------ parameters
    def _parameter_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for spec in parameter_specs():
            try:
                value = self.get_parameter(spec.name).value
            except ParameterUninitializedException:
                continue  # an unset array keeps the schema default
            values[spec.name] = list(value) if isinstance(value, (array.array, tuple)) else value
        return values

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Reject values the schema refuses; accepted ones apply at the next configure."""
        # rclpy declares the (read-only) QoS override parameters while entities are created
        params = [p for p in params if not p.name.startswith("qos_overrides.")]
        if not params:
            return SetParametersResult(successful=True)
        values = self._parameter_values()
        for p in params:
            if p.type_ == Parameter.Type.NOT_SET:
                values.pop(p.name, None)
            else:
                values[p.name] = list(p.value) if isinstance(p.value, (array.array, tuple)) \
                    else p.value
        try:
            NodeConfig.from_mapping(values)
        except NodeConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        if self._cfg is not None and any(p.name != "use_sim_time" for p in params):
            self.get_logger().info("parameters changed: they apply at the next configure "
                                   "(deactivate, cleanup, configure, activate)")
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        try:
            cfg = NodeConfig.from_mapping(self._parameter_values(), source=self.get_name())
            decoder = make_decoder(cfg.image_conversion, _load_cv_bridge)
            camera_info = self._make_camera_info(cfg)
            check_qos_overrides(self, self._qos_entities(cfg))
        except (NodeConfigError, ImageConversionError, CameraInfoError, QosOverrideError,
                OSError) as exc:
            log.fatal(str(exc))
            return TransitionCallbackReturn.FAILURE
        log.info(f"image conversion: {decoder.describe()}")
        handle = EngineHandle(cfg)
        if cfg.fusion_engine == "model":
            hint = ("; a first TensorRT build can take minutes, build it ahead with `temcoco "
                    "export`" if cfg.backend in ("auto", "tensorrt") else "")
            log.info(f"building the fusion engine: preset {cfg.preset}, backend {cfg.backend}, "
                     f"{cfg.precision}, device {cfg.device}{hint}")
        try:
            handle.load()
        except EngineBuildError as exc:
            for line in exc.fallback_log:
                log.warning(f"engine fallback: {line}")
            log.fatal(f"cannot start: {exc}")
            return TransitionCallbackReturn.FAILURE
        assert handle.info is not None
        for line in handle.info.fallback_log:
            log.info(f"engine fallback: {line}")
        log.info(f"engine: {handle.info.description}")
        if self.shutdown_request.requested:  # Ctrl-C during the build: do not start anything
            return TransitionCallbackReturn.FAILURE

        topics = [self.resolve_topic_name(transport_topic(cfg.rgb_topic, cfg.rgb_transport)),
                  self.resolve_topic_name(
                      transport_topic(cfg.thermal_topic, cfg.thermal_transport))]
        self._worker = FusionWorker.from_config(
            cfg, handle.engine, handle.info, decoder=decoder, topic_names=topics,
            name=self._diagnostics_name(cfg), hardware_id=cfg.hardware_id,
            output_topic=self.resolve_topic_name(cfg.fused_topic))
        self._cfg, self._handle, self._camera_info = cfg, handle, camera_info
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.output_depth,
                             reliability=_RELIABILITY[cfg.output_reliability],
                             durability=DurabilityPolicy.VOLATILE)
        self._outputs = FusedOutputs(
            self, cfg.fused_topic, out_qos, camera_info,
            cfg.output_compressed_format if cfg.output_compressed else None,
            cfg.output_jpeg_quality)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._jump_handle = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(nanoseconds=-1),
                          on_clock_change=True),
            post_callback=self._on_clock_jump)
        outs = ", ".join(self.resolve_topic_name(t) for t in self._outputs.topics.values())
        log.info(f"configured: {topics[0]} + {topics[1]} -> {outs} ({cfg.input_reliability} "
                 f"input, {cfg.synchronizer} sync, slop {cfg.sync_slop:g} s, queue depth "
                 f"{cfg.queue_depth})")
        return TransitionCallbackReturn.SUCCESS

    def _diagnostics_name(self, cfg: NodeConfig) -> str:
        """diagnostic_updater's status name prefix.

        The node name, or with ``diagnostics_use_fqn`` the fully qualified one.
        """
        return self.get_fully_qualified_name() if cfg.diagnostics_use_fqn else self.get_name()

    def _make_camera_info(self, cfg: NodeConfig) -> FusedCameraInfo | None:
        """The output camera_info source (``camera_info_source``).

        A calibration file is read now, so a bad one fails the configure with its name.
        """
        source = cfg.camera_info_source
        if source == "none":
            return None
        if source == "url" or (source == "auto" and cfg.camera_info_url):
            if not cfg.camera_info_url:
                raise CameraInfoError("camera_info_source is url but camera_info_url is empty")
            path = resolve_camera_info_url(cfg.camera_info_url, _package_share)
            self._info_topic = ""
            return FusedCameraInfo(str(path), fixed=load_calibration_yaml(path))
        self._info_topic = self.resolve_topic_name(
            cfg.rgb_camera_info_topic or camera_info_topic(cfg.rgb_topic))
        return FusedCameraInfo(self._info_topic, required=source == "topic")

    def _qos_entities(self, cfg: NodeConfig) -> list[Any]:
        """Every publisher and subscription created with QoS overriding options."""
        outputs = [cfg.fused_topic]
        if cfg.camera_info_source != "none":
            outputs.append(camera_info_topic(cfg.fused_topic))
        if cfg.output_compressed:
            outputs.append(transport_topic(cfg.fused_topic, "compressed"))
        inputs = [transport_topic(cfg.rgb_topic, cfg.rgb_transport),
                  transport_topic(cfg.thermal_topic, cfg.thermal_transport)]
        uses_topic = cfg.camera_info_source == "topic" or (
            cfg.camera_info_source == "auto" and not cfg.camera_info_url)
        if uses_topic:
            inputs.append(cfg.rgb_camera_info_topic or camera_info_topic(cfg.rgb_topic))
        return ([qos_entity(self, t, "publisher") for t in outputs]
                + [qos_entity(self, t, "subscription") for t in inputs])

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self._cfg is not None and self._handle is not None and self._worker is not None
        cfg, worker = self._cfg, self._worker
        if not self._handle.loaded:
            try:
                worker.set_engine(self._handle.load(), self._handle.info)
            except EngineBuildError as exc:
                self.get_logger().fatal(f"cannot reload the engine: {exc}")
                return TransitionCallbackReturn.FAILURE
        ret = super().on_activate(state)  # enables the lifecycle publishers
        worker.start(self._publish)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.input_depth,
                         reliability=_RELIABILITY[cfg.input_reliability],
                         durability=DurabilityPolicy.VOLATILE)
        self._input_qos = qos
        inputs = ((cfg.rgb_topic, cfg.rgb_transport), (cfg.thermal_topic, cfg.thermal_transport))
        for index, (topic, transport) in enumerate(inputs):
            self._subs.append(self._subscribe(index, topic, transport, qos))
        if cfg.synchronizer == "core":
            for index, sub in enumerate(self._subs):
                sub.registerCallback(self._on_image, index)
        else:
            for index, sub in enumerate(self._subs):  # before the synchroniser's own callbacks
                sub.registerCallback(self._on_image_counted, index)
            self._sync = message_filters.ApproximateTimeSynchronizer(
                self._subs, cfg.sync_queue_size, cfg.sync_slop)
            self._sync.registerCallback(self._on_pair)
        if self._info_topic:
            self._info_sub = self.create_subscription(
                CameraInfo, self._info_topic, self._on_camera_info, qos,
                callback_group=self._input_group,
                qos_overriding_options=overriding_options("subscription"))
        self._diag_timer = wall_timer(self, cfg.diagnostics_period, self._publish_diagnostics,
                                      callback_group=self._timer_group)
        self.get_logger().info("active")
        return ret

    def _subscribe(self, index: int, topic: str, transport: str, qos: QoSProfile) -> Any:
        """A message_filters input over ``transport``.

        A message_filters input over ``transport`` with our QoS (its own default is depth-10
        reliable), QoS overrides, and a callback for publishers whose QoS cannot match (the silent
        failure of a reliable subscription to a best-effort camera).
        """
        common = {"callback_group": self._input_group,
                  "qos_overriding_options": overriding_options("subscription")}
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda info: self._on_incompatible_qos(index, info))
        try:
            return subscribe_image(self, topic, transport, qos, event_callbacks=events, **common)
        except UnsupportedEventTypeError:  # an RMW without QoS events: rclpy's default warning
            return subscribe_image(self, topic, transport, qos, **common)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_processing()
        self.get_logger().info("inactive")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_processing()
        self._teardown()
        self.shutdown_request.request("lifecycle shutdown")  # the process ends (respawn)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while in state {state.label}; cleaning up")
        self.stop_processing()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def stop_processing(self, worker_timeout_s: float = 30.0) -> bool:
        """Unsubscribe, stop the worker and free the engine's device memory (logs a summary).

        Returns False when the inference thread is still busy (e.g. building an engine) after
        ``worker_timeout_s``; its engine is then left to the process exit.
        """
        for sub in self._subs:
            self.destroy_subscription(sub.sub)
        self._subs, self._sync = [], None
        if self._info_sub is not None:
            self.destroy_subscription(self._info_sub)
            self._info_sub = None
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        if self._worker is not None:
            was_running = self._worker.running
            if not self._worker.stop(timeout=worker_timeout_s):
                self.get_logger().warning(f"the inference thread did not stop within "
                                          f"{worker_timeout_s:g} s")
                return False  # still inside the engine: leave it to the process exit
            self._worker.set_engine(None)
            if was_running:
                s = self._worker.summary()
                self.get_logger().info(
                    f"fused {s['pairs_processed']} of {s['pairs_enqueued']} pairs "
                    f"({s['pairs_dropped']} dropped by the latest-wins queue), "
                    f"stamp-to-publish latency p50 {s['latency_ms_p50']:.1f} ms, "
                    f"p99 {s['latency_ms_p99']:.1f} ms")
        if self._handle is not None and self._handle.loaded:
            freed = self._handle.release()
            if freed:
                self.get_logger().info(f"released the engine: {freed / 2**20:.0f} MiB of GPU "
                                       "memory freed")
        return True

    def _teardown(self) -> None:
        if self._jump_handle is not None:
            self._jump_handle.unregister()
            self._jump_handle = None
        if self._outputs is not None:
            self._outputs.destroy()
            self._outputs = None
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None
        self._worker = self._handle = self._cfg = self._camera_info = None

    def destroy_node(self) -> None:
        """Detach the core log handler and destroy the node.

        Call :meth:`stop_processing` first, while the context can still publish the log lines.
        """
        self._core_log.removeHandler(self._log_handler)
        super().destroy_node()

    def start_up(self) -> bool:
        """``autostart``: configure and activate (False, logged, when either fails)."""
        for name, trigger in (("configure", self.trigger_configure),
                              ("activate", self.trigger_activate)):
            if self.shutdown_request.requested:
                return True  # stopped during start-up: not a failure
            if trigger() != TransitionCallbackReturn.SUCCESS:
                if not self.shutdown_request.requested:
                    self.get_logger().fatal(f"{name} failed; exiting (see the errors above)")
                    return False
                return True
        return True

    # ------------------------------------------------------------------ callbacks
    def _on_image(self, msg: Any, index: int) -> None:
        """``synchronizer=core``: pair and enqueue the raw messages.

        Decoding and inference run on the worker thread. The receive time on the node's clock
        lets the pairer use it for unstamped input and re-synchronise a camera whose clock
        restarts.
        """
        self._frame_ids[index] = msg.header.frame_id
        if self._worker is not None:
            self._worker.offer(index, _stamp_ns(msg), msg, self.get_clock().now().nanoseconds)

    def _on_image_counted(self, msg: Any, index: int) -> None:
        """``synchronizer=message_filters``: count and watch for time going backwards."""
        self._frame_ids[index] = msg.header.frame_id
        if self._worker is not None and self._worker.count_input(index, _stamp_ns(msg)):
            self._clear_stock_sync()

    def _on_pair(self, rgb: Any, thermal: Any) -> None:
        """The stock synchroniser's callback (runs under its lock).

        Enqueue (decoding runs on the worker thread).
        """
        if self._worker is not None:
            self._worker.offer_pair(rgb, thermal, _stamp_ns(rgb), _stamp_ns(thermal))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        camera_info = self._camera_info
        if camera_info is not None and not camera_info.update_from_msg(msg):
            self.get_logger().warning(
                f"camera_info on {self._info_topic}: {camera_info.last_error}",
                throttle_duration_sec=30.0)

    def _clear_stock_sync(self) -> None:
        """Empty the stock synchroniser's queues.

        After a backward time jump (a looping bag) its queued future stamps would otherwise evict
        every new message forever.
        """
        sync = self._sync
        if sync is not None:
            with sync.lock:
                for q in sync.queues:
                    q.clear()

    def _on_clock_jump(self, jump: Any) -> None:
        self.get_logger().warning("ROS clock jumped back or changed source: resetting the "
                                  "temporal state")
        if self._worker is not None:
            self._worker.request_reset("clock_jump")
        self._clear_stock_sync()

    def _on_incompatible_qos(self, index: int, info: Any) -> None:
        policy = qos_policy_name_from_kind(info.last_policy_kind)
        cfg = self._cfg
        if cfg is None:
            return
        topic = self._subs[index].sub.topic_name if index < len(self._subs) else \
            (cfg.rgb_topic, cfg.thermal_topic)[index]
        if (index, policy) not in self._qos_logged:  # once per topic and policy, not per site
            self._qos_logged.add((index, policy))
            self.get_logger().error(
                f"a publisher on {topic} has QoS incompatible with this "
                f"{cfg.input_reliability} subscription ({policy}); with a best-effort camera "
                "set input_reliability:=best_effort")
        if self._worker is not None:
            self._worker.report_qos_incompatible(index, policy)

    def _publish(self, frame: FusedFrame) -> None:
        """Worker thread: fused frame → image, camera_info and compressed image."""
        outputs = self._outputs
        if outputs is None:
            return
        outputs.publish(frame)
        if self._worker is not None:
            self._worker.record_publish(frame.stamp_ns, self.get_clock().now().nanoseconds)

    def _refresh_qos_status(self) -> None:
        """A QoS mismatch clears once no publisher on the topic has an incompatible QoS."""
        worker, qos = self._worker, self._input_qos
        if worker is None or qos is None:
            return
        for index, sub in enumerate(self._subs):
            if not any(i == index for i, _ in self._qos_logged):
                continue
            if not incompatible_policies(self, sub.sub.topic_name, qos):
                worker.clear_qos_incompatible(index)
                self._qos_logged = {k for k in self._qos_logged if k[0] != index}

    def _publish_diagnostics(self) -> None:
        worker, cfg = self._worker, self._cfg
        if worker is None or self._diag_pub is None or cfg is None:
            return
        self._refresh_qos_status()
        hardware_id = cfg.hardware_id or "/".join(f for f in self._frame_ids if f) or "none"
        statuses = worker.statuses()
        if self._camera_info is not None:
            level, message, values = self._camera_info.status()
            statuses.append(StatusValue(DiagnosticLevel(level), "camera_info", message, "",
                                        values))
        statuses = with_updater_names(statuses, self._diagnostics_name(cfg), hardware_id)
        self._diag_pub.publish(build_diagnostic_array(
            statuses, self.get_clock().now().nanoseconds, _DIAGNOSTIC_TYPES))


def _package_share(package: str) -> str:
    from ament_index_python.packages import get_package_share_directory

    return get_package_share_directory(package)


def main(args: list[str] | None = None) -> int:
    """``ros2 run temcoco_ros fusion_node``.

    0 on a clean exit (SIGINT/SIGTERM at any moment included), 1 when the node cannot start.
    """
    # rclpy's own handlers shut the context down at once (and raise KeyboardInterrupt wherever
    # the main thread is); ours only ask the spin loop to stop, so the shutdown runs in order
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = ShutdownRequest().install()
    try:
        node = FusionNode(shutdown=stop)
    except Exception as exc:  # e.g. a parameter file of the wrong type: a last word, no trace
        print(f"fusion_node: {type(exc).__name__}: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        stop.restore()
        return 1
    return spin_until_shutdown(node, stop, start=node.start_up if node.autostart else None)


if __name__ == "__main__":
    sys.exit(main())
