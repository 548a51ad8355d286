# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The fusion node's ROS plumbing that does not depend on its lifecycle.

* QoS overriding options for every publisher and subscription, and ``qos_overrides.*``
  parameters checked against them before rclpy silently ignores a misspelt one;
* image inputs over image_transport's ``raw`` or ``compressed`` topic;
* :class:`FusedOutputs`: ``<fused_topic>`` (sensor_msgs/Image), ``<fused_topic>/compressed``
  (optional) and the ``camera_info`` beside it, all with the RGB message's header;
* :func:`wall_timer`: a timer on the steady clock (diagnostics keep coming while ``/clock`` is
  stopped);
* :func:`spin_until_shutdown`: Ctrl-C / SIGTERM as an event, and the shutdown order that ends
  with exit 0 and without "Failed to publish log message to rosout".

The decisions (camera model arithmetic, codecs, override validation, signal handling) live in
``temcoco_core``; this module only builds and moves messages.
"""

from __future__ import annotations

import array
from collections.abc import Callable, Iterable
import os
import sys
import threading
from typing import Any

import message_filters
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from temcoco_core.frames.camera_info import FusedCameraInfo
from temcoco_core.frames.image_msg import encode_compressed, numpy_to_image_fields
from temcoco_core.frames.transport import camera_info_topic, compressed_topic, transport_topic
from temcoco_core.qos_overrides import POLICIES, QosEntity, validate_qos_overrides
from temcoco_core.shutdown import ShutdownRequest

__all__ = [
    "FusedOutputs",
    "check_qos_overrides",
    "incompatible_policies",
    "overriding_options",
    "qos_entity",
    "spin_until_shutdown",
    "subscribe_image",
    "wall_timer",
]

_KINDS = {name: getattr(QoSPolicyKind, name.upper()) for name in POLICIES}
#: overridable policies: all of rclpy's for publishers, all but lifespan for subscriptions
PUBLISHER_POLICIES = POLICIES
SUBSCRIPTION_POLICIES = tuple(p for p in POLICIES if p != "lifespan")


def overriding_options(kind: str, entity_id: str | None = None) -> QoSOverridingOptions:
    """``QoSOverridingOptions`` declaring every policy rclpy can override.

    ``QoSOverridingOptions`` declaring every policy rclpy can override for ``kind``
    (``"publisher"`` or ``"subscription"``), under ``entity_id`` when topics repeat.
    """
    policies = PUBLISHER_POLICIES if kind == "publisher" else SUBSCRIPTION_POLICIES
    return QoSOverridingOptions([_KINDS[p] for p in policies], entity_id=entity_id)


def qos_entity(node: Any, topic: str, kind: str, entity_id: str | None = None) -> QosEntity:
    """The :class:`QosEntity` of an entity created with :func:`overriding_options`."""
    return QosEntity(node.resolve_topic_name(topic), kind, entity_id,
                     PUBLISHER_POLICIES if kind == "publisher" else SUBSCRIPTION_POLICIES)


def _enum_values() -> dict[str, tuple[str, ...]]:
    """The values this rclpy accepts for each enum policy (Humble has no best_available)."""
    out = {}
    for name, enum in (("history", HistoryPolicy), ("reliability", ReliabilityPolicy),
                       ("durability", DurabilityPolicy), ("liveliness", LivelinessPolicy)):
        out[name] = tuple(m.name.lower() for m in enum if m.name != "UNKNOWN")
    return out


def check_qos_overrides(node: Any, entities: Iterable[QosEntity]) -> None:
    """Refuse ``qos_overrides.*`` parameters that would not take effect.

    rclpy declares (and so applies) only the override parameters of the entities and policies
    given ``QoSOverridingOptions``; any other ``qos_overrides.*`` key of the node's parameter
    files is ignored without a word. Those keys are only visible in the node's parameter
    overrides.

    Raises:
        temcoco_core.qos_overrides.QosOverrideError: every problem, with the overridable
            entities listed.
    """
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    values = {name: p.value for name, p in overrides.items()}
    validate_qos_overrides(values, list(entities), _enum_values())


def incompatible_policies(node: Any, topic: str, qos: QoSProfile) -> list[str]:
    """The policies in which a publisher now on ``topic`` cannot serve a subscription with ``qos``.

    Policy names (``RELIABILITY``, ``DURABILITY``, ...) by ROS 2's request-vs-offered rules; empty
    once the offending publisher has gone or changed.
    """
    out = set()
    for info in node.get_publishers_info_by_topic(node.resolve_topic_name(topic)):
        offered = info.qos_profile
        if qos.reliability == ReliabilityPolicy.RELIABLE \
                and offered.reliability == ReliabilityPolicy.BEST_EFFORT:
            out.add("RELIABILITY")
        if qos.durability == DurabilityPolicy.TRANSIENT_LOCAL \
                and offered.durability == DurabilityPolicy.VOLATILE:
            out.add("DURABILITY")
        if qos.liveliness == LivelinessPolicy.MANUAL_BY_TOPIC \
                and offered.liveliness == LivelinessPolicy.AUTOMATIC:
            out.add("LIVELINESS")
    return sorted(out)


def subscribe_image(node: Any, topic: str, transport: str, qos: QoSProfile, **kwargs: Any
                    ) -> Any:
    """A ``message_filters.Subscriber`` for an image over ``transport``.

    ``raw``: ``sensor_msgs/Image`` on ``topic``; ``compressed``: ``sensor_msgs/CompressedImage``
    on ``<topic>/compressed`` (JPEG or PNG; 16-bit PNG thermal keeps its depth). Keyword
    arguments go to ``create_subscription`` (callback group, event callbacks, QoS overriding
    options).
    """
    msg_type = Image if transport == "raw" else CompressedImage
    return message_filters.Subscriber(node, msg_type, transport_topic(topic, transport),
                                      qos_profile=qos, **kwargs)


def wall_timer(node: Any, period_s: float, callback: Callable[[], None], **kwargs: Any) -> Any:
    """A timer on the steady clock.

    A timer on the steady clock: it fires with ``use_sim_time`` before ``/clock`` starts and after
    a bag ends, exactly when a silent topic must be reported.
    """
    return node.create_timer(period_s, callback, clock=Clock(clock_type=ClockType.STEADY_TIME),
                             **kwargs)


class FusedOutputs:
    """The fused image, its camera_info and (optionally) its compressed transport.

    Args:
        node: the lifecycle node (publishers are lifecycle publishers: silent while inactive).
        fused_topic: base topic of the fused image.
        qos: profile of the three publishers (before overrides).
        camera_info: the output camera model, or ``None`` to publish no camera_info.
        compressed_format: ``"jpeg"`` / ``"png"`` to publish ``<fused_topic>/compressed``, or
            ``None``.
        jpeg_quality: JPEG quality of the compressed output.
    """

    def __init__(self, node: Any, fused_topic: str, qos: QoSProfile,
                 camera_info: FusedCameraInfo | None = None,
                 compressed_format: str | None = None, jpeg_quality: int = 90) -> None:
        self._node = node
        self.camera_info = camera_info
        self.compressed_format = compressed_format
        self.jpeg_quality = jpeg_quality
        self.topics = {"image": fused_topic}
        self.image = node.create_lifecycle_publisher(
            Image, fused_topic, qos, qos_overriding_options=overriding_options("publisher"))
        self.info = self.compressed = None
        if camera_info is not None:
            self.topics["camera_info"] = camera_info_topic(fused_topic)
            self.info = node.create_lifecycle_publisher(
                CameraInfo, self.topics["camera_info"], qos,
                qos_overriding_options=overriding_options("publisher"))
        if compressed_format is not None:
            self.topics["compressed"] = compressed_topic(fused_topic)
            self.compressed = node.create_lifecycle_publisher(
                CompressedImage, self.topics["compressed"], qos,
                qos_overriding_options=overriding_options("publisher"))

    def entities(self) -> list[QosEntity]:
        """The overridable publishers (for :func:`check_qos_overrides`)."""
        return [qos_entity(self._node, t, "publisher") for t in self.topics.values()]

    def publish(self, frame: Any) -> None:
        """Publish one ``temcoco_core.pipeline.FusedFrame`` on every output (worker thread)."""
        fields = numpy_to_image_fields(frame.image, frame.encoding)
        msg = Image()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(frame.stamp_ns, 1_000_000_000)
        msg.header.frame_id = frame.frame_id
        msg.height, msg.width = fields.height, fields.width
        msg.encoding, msg.is_bigendian = fields.encoding, fields.is_bigendian
        msg.step = fields.step
        msg.data = array.array("B", fields.data.tobytes())
        if self.info is not None and self.camera_info is not None:
            info = self.camera_info.for_output((fields.width, fields.height),
                                               getattr(frame, "input_size", None))
            if info is not None:
                out = CameraInfo()
                out.header = msg.header  # image_transport pairs them by exact stamp
                self.info.publish(info.fill_msg(out))
        self.image.publish(msg)
        if self.compressed is not None and self.compressed.get_subscription_count() > 0:
            data, fmt = encode_compressed(frame.image, frame.encoding, self.compressed_format,
                                          quality=self.jpeg_quality)
            self.compressed.publish(CompressedImage(header=msg.header, format=fmt,
                                                    data=array.array("B", data.tobytes())))

    def destroy(self) -> None:
        for pub in (self.image, self.info, self.compressed):
            if pub is not None:
                self._node.destroy_lifecycle_publisher(pub)
        self.image = self.info = self.compressed = None


def spin_until_shutdown(node: Any, stop: ShutdownRequest, *, threads: int = 3,
                        start: Callable[[], bool] | None = None,
                        grace_s: float = 3.0) -> int:
    """Spin ``node`` until SIGINT/SIGTERM (or ``stop.request``), then shut down in order.

    Args:
        node: the node; it must offer ``stop_processing(worker_timeout_s)`` (stop the worker,
            log a summary; False when the worker is still busy).
        stop: the installed :class:`ShutdownRequest` (rclpy initialised with
            ``SignalHandlerOptions.NO``, so the context stays usable until the end).
        threads: executor threads.
        start: run in a thread while spinning (the autostart configure + activate, which may
            build an engine for minutes); returns False when the node cannot start.
        grace_s: how long to wait for the worker and running callbacks (an engine build) once
            stopping; below launch's 5 s ``sigterm_timeout``.

    Returns:
        The exit code: 0 on a requested shutdown, 1 when ``start`` failed.

    The order matters: stop the worker and log while the context can still publish to
    ``/rosout``, destroy the node, then shut the context down. A callback that is still busy
    (an engine build cannot be interrupted) is not waited for: the process exits at once, after
    everything else is down, instead of being killed by launch's SIGTERM/SIGKILL.
    """
    executor = MultiThreadedExecutor(num_threads=threads)
    executor.add_node(node)
    code = 0
    failed = threading.Event()
    starter = None
    if start is not None:
        def run_start() -> None:
            if not start():
                failed.set()
                stop.request("start-up failed")

        starter = threading.Thread(target=run_start, name="autostart", daemon=True)
        starter.start()
    try:
        while not stop.requested and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    if failed.is_set():
        code = 1
    busy = starter is not None and starter.is_alive()
    logger = node.get_logger()
    if stop.reason.startswith("SIG"):
        logger.info(f"{stop.reason}: shutting down")
    try:
        if node.stop_processing(worker_timeout_s=grace_s) is False:
            busy = True
    except Exception as exc:  # a last word, never a traceback
        logger.error(f"while stopping: {type(exc).__name__}: {exc}")
    if not executor.shutdown(timeout_sec=grace_s):
        busy = True
    if busy:  # an engine build cannot be interrupted or joined: leave without it
        logger.warning("a callback (engine build?) is still running; exiting without it")
        rclpy.try_shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    node.destroy_node()
    rclpy.try_shutdown()
    stop.restore()
    return code
