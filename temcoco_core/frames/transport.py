# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""image_transport conventions without ROS: topic names and per-input transports.

image_transport publishes one image on a *base topic* (``/cam/image_raw``, the raw
``sensor_msgs/Image``) and one topic per plugin under it (``/cam/image_raw/compressed``, a
``sensor_msgs/CompressedImage``), and pairs each image with the ``camera_info`` topic beside it
(``/cam/camera_info``). The node subscribes to either transport per input and can publish the
compressed plugin's topic as well; the codecs are
:func:`temcoco_core.frames.image_msg.compressed_to_numpy` and
:func:`temcoco_core.frames.image_msg.encode_compressed`.
"""

from __future__ import annotations

__all__ = [
    "COMPRESSED_SUFFIX",
    "TRANSPORTS",
    "TransportError",
    "camera_info_topic",
    "compressed_topic",
    "transport_topic",
]

#: Input transports the node subscribes with: ``raw`` (``sensor_msgs/Image`` on the base topic)
#: and ``compressed`` (``sensor_msgs/CompressedImage`` on ``<base>/compressed``, JPEG or PNG).
TRANSPORTS = ("raw", "compressed")
COMPRESSED_SUFFIX = "compressed"


class TransportError(ValueError):
    """An unknown transport, or a topic name that contradicts the transport."""


def _strip(topic: str) -> str:
    text = topic.strip()
    if not text or text == "/":
        raise TransportError(f"empty topic name {topic!r}")
    return text.rstrip("/")


def compressed_topic(base_topic: str) -> str:
    """``<base>/compressed``: where compressed_image_transport publishes ``base_topic``."""
    return f"{_strip(base_topic)}/{COMPRESSED_SUFFIX}"


def transport_topic(base_topic: str, transport: str) -> str:
    """The topic to subscribe to for ``base_topic`` over ``transport`` (``raw``/``compressed``).

    Raises:
        TransportError: unknown transport, or a base topic that already names a transport
            (``.../compressed`` given as base: set the transport instead).
    """
    if transport not in TRANSPORTS:
        raise TransportError(f"unknown image transport {transport!r}; supported: "
                             f"{', '.join(TRANSPORTS)}")
    base = _strip(base_topic)
    if base.rsplit("/", 1)[-1] == COMPRESSED_SUFFIX:
        raise TransportError(
            f"{base_topic!r} is a compressed transport topic; give the base topic "
            f"{base.rsplit('/', 1)[0] or '/'!r} and transport 'compressed'")
    return base if transport == "raw" else compressed_topic(base)


def camera_info_topic(image_topic: str) -> str:
    """The ``camera_info`` topic paired with an image base topic.

    The ``camera_info`` topic paired with an image base topic (image_transport's
    ``getCameraInfoTopic``: the last name token replaced by ``camera_info``).

    ``/cam/image_raw`` → ``/cam/camera_info``; ``rgb/image_raw`` → ``rgb/camera_info``
    (relative names stay relative and resolve in the node's namespace); ``image`` →
    ``camera_info``.
    """
    base = _strip(image_topic)
    head, sep, _ = base.rpartition("/")
    if not sep:
        return "camera_info"
    return f"{head}/camera_info"
