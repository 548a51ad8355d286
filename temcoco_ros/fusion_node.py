"""ROS 2 node ``fusion_node``: thermal + RGB in, TemCoCo-fused image and diagnostics out.

::

    <rgb_topic>      ─┐   message_filters.Subscriber ×2 (input QoS: best effort by default)
    <thermal_topic>  ─┘          │  callbacks only pair (ApproximateTimeSynchronizer policy),
                                 ▼  convert and enqueue: no inference under any lock
                     latest-wins queue (queue_depth, drops counted)
                                 │
                     worker thread: thermal gain → registration → engine → metrics
                                 │
    <fused_topic>   ◄────────────┘  sensor_msgs/Image, RGB message's header
    /diagnostics    ◄── timer: rates, drops, sync misses, latency p50/p99, backend, temporal
                        consistency with WARN/ERROR levels, silent topics

A lifecycle node: ``configure`` validates the parameters and builds the engine (model, backend
fallback chain, engine cache), ``activate`` subscribes and starts the worker, ``deactivate``
stops them and frees the engine's GPU memory, ``cleanup`` drops everything. With
``autostart:=true`` (default) it configures and activates itself at start-up and exits with a
clear fatal error when the model, engine or device cannot be used.

Everything the node decides lives in ``temcoco_core`` (``node_config`` for the parameter
schema, ``worker`` for queueing and diagnostics, ``engine.factory`` for the engine,
``pipeline`` for the fusion itself) and is tested without ROS; this module only carries messages.
"""

from __future__ import annotations

import array
import logging
import sys
from collections.abc import Callable
from typing import Any

import message_filters
import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import JumpThreshold
from rclpy.duration import Duration
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_policy_name_from_kind,
)
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from temcoco_core.diagnostics import DiagnosticTypes, build_diagnostic_array
from temcoco_core.engine.factory import EngineBuildError, EngineHandle
from temcoco_core.frames.decoder import ImageConversionError, make_decoder
from temcoco_core.frames.image_msg import numpy_to_image_fields
from temcoco_core.node_config import NodeConfig, NodeConfigError, ParamSpec, parameter_specs
from temcoco_core.pipeline import FusedFrame
from temcoco_core.worker import FusionWorker

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks, UnsupportedEventTypeError

__all__ = ["FusionNode", "main"]

NODE_NAME = "fusion_node"
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
    """cv_bridge's ``imgmsg_to_cv2`` in passthrough, probed once: a cv_bridge built against
    NumPy 1 fails here under NumPy 2 instead of at the first frame."""
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

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._core_log = logging.getLogger("temcoco_core")
        self._log_handler = _RosLogHandler(self.get_logger())
        self._core_log.addHandler(self._log_handler)
        self._core_log.setLevel(logging.INFO)
        for spec in parameter_specs():
            if spec.type == "double_array" and not spec.default:
                # "unset" arrays: ROS cannot type an empty list, so declare the type only
                self.declare_parameter(spec.name, Parameter.Type.DOUBLE_ARRAY, _descriptor(spec))
            else:
                default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
                self.declare_parameter(spec.name, default, _descriptor(spec))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.autostart = bool(self.get_parameter("autostart").value)
        self._cfg: NodeConfig | None = None
        self._handle: EngineHandle | None = None
        self._worker: FusionWorker | None = None
        self._image_pub: Any = None
        self._diag_pub: Any = None
        self._diag_timer: Any = None
        self._subs: list[Any] = []
        self._sync: Any = None
        self._jump_handle: Any = None
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
        except (NodeConfigError, ImageConversionError) as exc:
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

        topics = [self.resolve_topic_name(cfg.rgb_topic),
                  self.resolve_topic_name(cfg.thermal_topic)]
        name = self.get_fully_qualified_name()
        self._worker = FusionWorker.from_config(cfg, handle.engine, handle.info, decoder=decoder,
                                                topic_names=topics, name=name, hardware_id=name)
        self._cfg, self._handle = cfg, handle
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.output_depth,
                             reliability=_RELIABILITY[cfg.output_reliability],
                             durability=DurabilityPolicy.VOLATILE)
        self._image_pub = self.create_lifecycle_publisher(Image, cfg.fused_topic, out_qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._jump_handle = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(nanoseconds=-1),
                          on_clock_change=True),
            post_callback=self._on_clock_jump)
        log.info(f"configured: {topics[0]} + {topics[1]} -> "
                 f"{self.resolve_topic_name(cfg.fused_topic)} ({cfg.input_reliability} input, "
                 f"{cfg.synchronizer} sync, slop {cfg.sync_slop:g} s, queue depth "
                 f"{cfg.queue_depth})")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self._cfg is not None and self._handle is not None and self._worker is not None
        cfg, worker = self._cfg, self._worker
        if not self._handle.loaded:
            try:
                worker.set_engine(self._handle.load(), self._handle.info)
            except EngineBuildError as exc:
                self.get_logger().fatal(f"cannot reload the engine: {exc}")
                return TransitionCallbackReturn.FAILURE
        ret = super().on_activate(state)  # enables the lifecycle publisher
        worker.start(self._publish)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.input_depth,
                         reliability=_RELIABILITY[cfg.input_reliability],
                         durability=DurabilityPolicy.VOLATILE)
        for index, topic in enumerate((cfg.rgb_topic, cfg.thermal_topic)):
            self._subs.append(self._subscribe(index, topic, qos))
        if cfg.synchronizer == "core":
            for index, sub in enumerate(self._subs):
                sub.registerCallback(self._on_image, index)
        else:
            for index, sub in enumerate(self._subs):  # before the synchroniser's own callbacks
                sub.registerCallback(self._on_image_counted, index)
            self._sync = message_filters.ApproximateTimeSynchronizer(
                self._subs, cfg.sync_queue_size, cfg.sync_slop)
            self._sync.registerCallback(self._on_pair)
        self._diag_timer = self.create_timer(cfg.diagnostics_period, self._publish_diagnostics,
                                             callback_group=self._timer_group)
        self.get_logger().info("active")
        return ret

    def _subscribe(self, index: int, topic: str, qos: QoSProfile) -> Any:
        """A message_filters input with our QoS (its own default is depth-10 reliable) and a
        callback for publishers whose QoS cannot match (the silent failure of a reliable
        subscription to a best-effort camera)."""
        events = SubscriptionEventCallbacks(
            incompatible_qos=lambda info: self._on_incompatible_qos(index, info))
        try:
            return message_filters.Subscriber(self, Image, topic, qos_profile=qos,
                                              callback_group=self._input_group,
                                              event_callbacks=events)
        except UnsupportedEventTypeError:  # an RMW without QoS events: rclpy's default warning
            return message_filters.Subscriber(self, Image, topic, qos_profile=qos,
                                              callback_group=self._input_group)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self.get_logger().info("inactive")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error while in state {state.label}; cleaning up")
        self._stop_processing()
        self._teardown()
        return TransitionCallbackReturn.SUCCESS

    def _stop_processing(self) -> None:
        """Unsubscribe, stop the worker and free the engine's device memory."""
        for sub in self._subs:
            self.destroy_subscription(sub.sub)
        self._subs, self._sync = [], None
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        if self._worker is not None:
            was_running = self._worker.running
            if not self._worker.stop(timeout=30.0):
                self.get_logger().warning("the inference thread did not stop within 30 s")
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

    def _teardown(self) -> None:
        if self._jump_handle is not None:
            self._jump_handle.unregister()
            self._jump_handle = None
        if self._image_pub is not None:
            self.destroy_lifecycle_publisher(self._image_pub)
            self._image_pub = None
        if self._diag_pub is not None:
            self.destroy_publisher(self._diag_pub)
            self._diag_pub = None
        self._worker = self._handle = self._cfg = None

    def destroy_node(self) -> None:
        try:  # also after Ctrl-C, when the context may already be shut down
            self._stop_processing()
        except Exception as exc:
            self.get_logger().debug(f"stopping after shutdown: {exc}")
        self._core_log.removeHandler(self._log_handler)
        super().destroy_node()

    # ------------------------------------------------------------------ callbacks
    def _on_image(self, msg: Image, index: int) -> None:
        """``synchronizer=core``: pair, convert, enqueue (no inference here)."""
        if self._worker is not None:
            self._worker.offer(index, _stamp_ns(msg), msg)

    def _on_image_counted(self, msg: Image, index: int) -> None:
        """``synchronizer=message_filters``: count and watch for time going backwards."""
        if self._worker is not None and self._worker.count_input(index, _stamp_ns(msg)):
            self._clear_stock_sync()

    def _on_pair(self, rgb: Image, thermal: Image) -> None:
        """The stock synchroniser's callback (runs under its lock): convert and enqueue."""
        if self._worker is not None:
            self._worker.offer_pair(rgb, thermal, _stamp_ns(rgb), _stamp_ns(thermal))

    def _clear_stock_sync(self) -> None:
        """Empty the stock synchroniser's queues: after a backward time jump (a looping bag)
        its queued future stamps would otherwise evict every new message forever."""
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
        assert self._cfg is not None
        topic = (self._cfg.rgb_topic, self._cfg.thermal_topic)[index]
        self.get_logger().error(
            f"a publisher on {self.resolve_topic_name(topic)} has QoS incompatible with this "
            f"{self._cfg.input_reliability} subscription ({policy}); with a best-effort camera "
            "set input_reliability:=best_effort", throttle_duration_sec=10.0)
        if self._worker is not None:
            self._worker.report_qos_incompatible(index, policy)

    def _publish(self, frame: FusedFrame) -> None:
        """Worker thread: fused frame → sensor_msgs/Image with the RGB header."""
        fields = numpy_to_image_fields(frame.image, frame.encoding)
        msg = Image()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(frame.stamp_ns, 1_000_000_000)
        msg.header.frame_id = frame.frame_id
        msg.height, msg.width = fields.height, fields.width
        msg.encoding, msg.is_bigendian, msg.step = fields.encoding, fields.is_bigendian, fields.step
        msg.data = array.array("B", fields.data.tobytes())
        self._image_pub.publish(msg)
        if self._worker is not None:
            self._worker.record_publish(frame.stamp_ns, self.get_clock().now().nanoseconds)

    def _publish_diagnostics(self) -> None:
        if self._worker is None or self._diag_pub is None:
            return
        self._diag_pub.publish(build_diagnostic_array(
            self._worker.statuses(), self.get_clock().now().nanoseconds, _DIAGNOSTIC_TYPES))


def main(args: list[str] | None = None) -> int:
    """``ros2 run temcoco_ros fusion_node``: 0 on a clean exit (Ctrl-C included), 1 when the
    node cannot start."""
    rclpy.init(args=args)
    node: FusionNode | None = None
    code = 0
    try:
        node = FusionNode()
        if node.autostart:
            for name, trigger in (("configure", node.trigger_configure),
                                  ("activate", node.trigger_activate)):
                if trigger() != TransitionCallbackReturn.SUCCESS:
                    node.get_logger().fatal(f"{name} failed; exiting (see the errors above)")
                    return 1
        executor = MultiThreadedExecutor(num_threads=3)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:  # a last word instead of a traceback
        if node is not None:
            node.get_logger().fatal(f"{type(exc).__name__}: {exc}")
        else:
            print(f"fusion_node: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
