# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""rosbag2 reading and writing with the ``rosbags`` library (no ROS install needed).

* :class:`BagReader` -- sqlite3 (``.db3``) and MCAP bags, as a bag directory or a single storage
  file; lists topics, finds the RGB and thermal image topics (:func:`select_image_topics`) and
  yields deserialised messages. Every failure (missing, corrupt or truncated bag, missing topic)
  is a one-line :class:`BagError` that names the file and lists the topics the bag has.
* :class:`BagWriter` -- writes rosbag2 (format version 8 by default, readable by ``ros2 bag
  play`` from Humble on, Foxglove and rosbags) with ``sensor_msgs/Image``,
  ``sensor_msgs/CompressedImage`` and ``diagnostic_msgs/DiagnosticArray`` helpers, and copies
  source topics verbatim. Use it as a context manager (or call :meth:`BagWriter.close` in a
  ``finally``): it is *closed* even on an exception or Ctrl-C, so what was written stays a
  valid, readable bag.

Messages are those of the ROS 2 Humble typestore (the message definitions are identical for the
types used here in later distributions).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
import contextlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from temcoco_core.diagnostics import build_diagnostic_array, DiagnosticTypes, StatusValue
from temcoco_core.frames.image_msg import numpy_to_image_fields
from temcoco_core.io.outputs import check_output_path, OutputPathError, WRITER_KEY

__all__ = [
    "COMPRESSED_TYPE",
    "DIAGNOSTIC_TYPE",
    "IMAGE_TYPE",
    "STORAGE_PLUGINS",
    "BagError",
    "BagMessage",
    "BagReader",
    "BagWriter",
    "TopicInfo",
    "get_typestore",
    "make_header",
    "select_image_topics",
]

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
DIAGNOSTIC_TYPE = "diagnostic_msgs/msg/DiagnosticArray"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
STORAGE_PLUGINS = ("sqlite3", "mcap")

_THERMAL_WORDS = ("thermal", "lwir", "infrared", "flir", "boson", "therm", "/ir", "ir/", "_ir",
                  "ir_", "temperature")
_RGB_WORDS = ("rgb", "color", "colour", "visible", "vis", "/camera", "image_raw", "left", "cam")
_THERMAL_ENCODINGS = ("mono16", "16UC1", "32FC1")
_COLOUR_PREFIXES = ("rgb", "bgr", "bayer", "8UC3", "8UC4")


class BagError(ValueError):
    """A bag is missing, unreadable, corrupt or truncated, or lacks a requested topic."""


@lru_cache(maxsize=1)
def get_typestore() -> Any:
    """The rosbags typestore used for every message here (ROS 2 Humble definitions)."""
    from rosbags import typesys

    return typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)


def make_header(stamp_ns: int, frame_id: str = "") -> Any:
    """``std_msgs/Header`` (rosbags class) for a stamp in nanoseconds."""
    ts = get_typestore()
    time_cls = ts.types["builtin_interfaces/msg/Time"]
    header_cls = ts.types["std_msgs/msg/Header"]
    stamp_ns = int(stamp_ns)
    return header_cls(stamp=time_cls(sec=stamp_ns // 1_000_000_000,
                                     nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` → nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@dataclass
class TopicInfo:
    """A topic in a bag: name, message type.

    Message count and (for images) the first message's encoding or compressed format.
    """

    name: str
    msgtype: str
    count: int
    encoding: str | None = None

    def describe(self) -> str:
        enc = f", {self.encoding}" if self.encoding else ""
        return f"{self.name} ({self.msgtype}{enc}, {self.count} msgs)"


@dataclass
class BagMessage:
    """One deserialised message: topic, log time (ns), message object, its connection.

    ``error`` is set (and ``msg`` is ``None``) for a message that does not deserialise, when
    :meth:`BagReader.messages` was asked to yield those (``bad_messages="yield"``).
    """

    topic: str
    log_time_ns: int
    msg: Any
    connection: Any
    raw: bytes | memoryview
    error: str = ""


def _describe_topics(topics: Iterable[TopicInfo]) -> str:
    items = [t.describe() for t in topics]
    return "; ".join(items) if items else "no topics"


class BagReader:
    """Read a rosbag2 bag (directory with ``metadata.yaml``, or a ``.db3``/``.mcap`` file).

    Raises:
        BagError: the bag does not exist or cannot be opened (names the path).
    """

    def __init__(self, path: str | Path) -> None:
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag (file or directory)")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # rosbags raises several types for bad bags
            hint = ""
            text = str(exc).lower()
            if "magic" in text or "malformed" in text or "truncat" in text:
                hint = (" (truncated or corrupt; an MCAP cut short by a killed recorder can be "
                        "repaired with `mcap recover`)")
            raise BagError(f"{self.path}: cannot open bag: {_one_line(exc)}{hint}") from exc
        self._topics: dict[str, TopicInfo] | None = None

    # context manager -------------------------------------------------------------------------
    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_reader", None) is not None and self._reader.is_open:
            with contextlib.suppress(Exception):  # closing a corrupt bag may fail
                self._reader.close()

    # topics -----------------------------------------------------------------------------------
    @property
    def topics(self) -> dict[str, TopicInfo]:
        """Topics with type, count and (images) first encoding, in name order."""
        if self._topics is None:
            topics: dict[str, TopicInfo] = {}
            for conn in self._reader.connections:
                info = topics.get(conn.topic)
                if info is None:
                    topics[conn.topic] = TopicInfo(conn.topic, conn.msgtype, conn.msgcount)
                else:
                    info.count += conn.msgcount
            for info in topics.values():
                if info.msgtype in IMAGE_TYPES and info.count:
                    info.encoding = self._peek_encoding(info.name)
            self._topics = dict(sorted(topics.items()))
        return self._topics

    def describe_topics(self) -> str:
        return _describe_topics(self.topics.values())

    def _peek_encoding(self, topic: str) -> str | None:
        conns = [c for c in self._reader.connections if c.topic == topic]
        try:
            for conn, _, raw in self._reader.messages(connections=conns):
                msg = get_typestore().deserialize_cdr(raw, conn.msgtype)
                return str(getattr(msg, "encoding", None) or getattr(msg, "format", "") or "")
        except Exception:  # a corrupt first message: detection just lacks the hint
            return None
        return None

    def require_topic(self, topic: str) -> TopicInfo:
        """The topic's info, or a :class:`BagError` that lists the bag's topics."""
        if topic not in self.topics:
            raise BagError(f"{self.path}: topic {topic!r} not in bag; it has: "
                           f"{self.describe_topics()}")
        return self.topics[topic]

    @property
    def duration_s(self) -> float:
        """Time between the first and the last message (log time), seconds; 0 if unknown."""
        try:
            return max(0.0, (self._reader.end_time - self._reader.start_time) * 1e-9)
        except Exception:  # metadata without times
            return 0.0

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics.values())

    @property
    def connections(self) -> list[Any]:
        return list(self._reader.connections)

    # messages ---------------------------------------------------------------------------------
    def messages(self, topics: Sequence[str] | None = None, *, deserialize: Iterable[str] | None
                 = None, bad_messages: str = "raise") -> Iterator[BagMessage]:
        """Messages of ``topics`` (all when ``None``) in log-time order.

        Args:
            topics: topic names to read (each must exist).
            deserialize: topics whose messages are deserialised (default: all read topics);
                the others come with ``msg=None`` and only ``raw``.
            bad_messages: a message that does not deserialise: ``"raise"`` a
                :class:`BagError`, or ``"yield"`` it with ``msg=None`` and ``error`` set (the
                caller skips and counts it; reading goes on).

        Raises:
            BagError: a topic is missing, the bag is corrupt/truncated at some message (after
                the messages before it were yielded), or (``bad_messages="raise"``) a message
                does not deserialise.
        """
        if bad_messages not in ("raise", "yield"):
            raise ValueError(f"bad_messages must be 'raise' or 'yield', got {bad_messages!r}")
        if topics is not None:
            for t in topics:
                self.require_topic(t)
            conns = [c for c in self._reader.connections if c.topic in set(topics)]
        else:
            conns = list(self._reader.connections)
        want = set(deserialize) if deserialize is not None else {c.topic for c in conns}
        ts = get_typestore()
        n = 0
        it = iter(self._reader.messages(connections=conns))
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except Exception as exc:  # sqlite3.DatabaseError, mcap decode errors, EOFError …
                raise BagError(f"{self.path}: bag is corrupt or truncated after {n} messages "
                               f"({_one_line(exc)}); it has: {self.describe_topics()}") from exc
            conn, t_ns, raw = item
            msg = None
            error = ""
            if conn.topic in want:
                try:
                    msg = ts.deserialize_cdr(raw, conn.msgtype)
                except Exception as exc:
                    error = (f"message {n} on {conn.topic} does not deserialise as "
                             f"{conn.msgtype} ({_one_line(exc)})")
                    if bad_messages == "raise":
                        raise BagError(f"{self.path}: {error}") from exc
            n += 1
            yield BagMessage(conn.topic, int(t_ns), msg, conn, raw, error)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _word_score(name: str, words: Sequence[str]) -> int:
    lower = name.lower()
    return sum(1 for w in words if w in lower)


def select_image_topics(topics: dict[str, TopicInfo], rgb_topic: str | None = None,
                        thermal_topic: str | None = None, *, source: str = "bag"
                        ) -> tuple[str, str]:
    """Choose the RGB and the thermal image topics.

    Explicit names win (and must exist). Otherwise image topics (``sensor_msgs/Image`` or
    ``CompressedImage``, not depth or already fused) are scored by encoding (``mono16``,
    ``16UC1``, ``32FC1`` are thermal; colour encodings and JPEG are RGB) and by name
    (``thermal``, ``lwir``, ``ir`` … vs ``rgb``, ``color``, ``image_raw`` …).

    Args:
        topics: from :attr:`BagReader.topics`.
        source: the bag's name for error messages.

    Returns:
        ``(rgb_topic, thermal_topic)``.

    Raises:
        BagError: a named topic is missing or is not an image topic, or no plausible pair
            exists; the message lists the bag's topics.
    """
    listing = _describe_topics(topics.values())
    for label, t in (("RGB", rgb_topic), ("thermal", thermal_topic)):
        if t is None:
            continue
        if t not in topics:
            raise BagError(f"{source}: {label} topic {t!r} not in bag; it has: {listing}")
        if topics[t].msgtype not in IMAGE_TYPES:
            raise BagError(f"{source}: {label} topic {t!r} is {topics[t].msgtype}, not an image "
                           f"topic; it has: {listing}")
    candidates = [t for t in topics.values() if t.msgtype in IMAGE_TYPES and t.count
                  and "depth" not in t.name.lower() and "fused" not in t.name.lower()]

    def thermal_score(t: TopicInfo) -> int:
        s = 3 * _word_score(t.name, _THERMAL_WORDS)
        enc = t.encoding or ""
        if enc in _THERMAL_ENCODINGS or "16" in enc and "mono" in enc:
            s += 4
        elif enc in ("mono8", "8UC1"):
            s += 1
        elif enc.startswith(_COLOUR_PREFIXES) or "jpeg" in enc.lower():
            s -= 4
        return s

    def rgb_score(t: TopicInfo) -> int:
        s = 2 * _word_score(t.name, _RGB_WORDS) - 3 * _word_score(t.name, _THERMAL_WORDS)
        enc = t.encoding or ""
        if enc.startswith(_COLOUR_PREFIXES) or "jpeg" in enc.lower():
            s += 4
        elif enc in _THERMAL_ENCODINGS:
            s -= 4
        return s

    thermal = thermal_topic
    if thermal is None:
        pool = [t for t in candidates if t.name != rgb_topic]
        ranked = sorted(pool, key=lambda t: (-thermal_score(t), t.name))
        if not ranked or thermal_score(ranked[0]) <= 0:
            raise BagError(f"{source}: no thermal image topic found (give --thermal-topic); "
                           f"it has: {listing}")
        thermal = ranked[0].name
    rgb = rgb_topic
    if rgb is None:
        pool = [t for t in candidates if t.name != thermal]
        ranked = sorted(pool, key=lambda t: (-rgb_score(t), t.name))
        if not ranked:
            raise BagError(f"{source}: no RGB image topic found besides {thermal!r} (give "
                           f"--rgb-topic); it has: {listing}")
        rgb = ranked[0].name
    if rgb == thermal:
        raise BagError(f"{source}: RGB and thermal topic are both {rgb!r}")
    return rgb, thermal


class BagWriter:
    """Write a rosbag2 bag; always leaves a readable bag behind once opened.

    Args:
        path: bag directory to create.
        storage: ``"sqlite3"`` or ``"mcap"``.
        overwrite: replace an existing bag at ``path`` -- only a bag written by temcoco that
            holds nothing else (see :mod:`temcoco_core.io.outputs`); anything else is an error.
        version: rosbag2 format version (8 or 9); 8 stores QoS as in Humble.
        inputs: paths the output must not be, contain or sit inside (the input bag).

    The bag's ``metadata.yaml`` is marked as written by temcoco (``custom_data``), which is
    what ``overwrite`` checks.

    Raises:
        BagError: bad storage name, ``path`` exists (and is not ours to overwrite), is an
            input, or cannot be created (one line naming the problem).
    """

    def __init__(self, path: str | Path, storage: str = "sqlite3", *, overwrite: bool = False,
                 version: int = 8, inputs: Sequence[str | Path] = ()) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.rosbag2.errors import WriterError

        if storage not in STORAGE_PLUGINS:
            raise BagError(f"unknown bag storage {storage!r}; use one of {STORAGE_PLUGINS}")
        self.path = Path(path)
        try:
            check_output_path(self.path, inputs=inputs, overwrite=overwrite, bag=True)
        except OutputPathError as exc:
            raise BagError(str(exc)) from None
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=version, storage_plugin=plugin)
        try:
            self._writer.open()
        except (WriterError, OSError) as exc:
            why = _one_line(exc)
            raise BagError(f"{self.path}: cannot create the output bag: {why}") from None
        if version >= 6:
            from temcoco_core import __version__

            self._writer.set_custom_data(WRITER_KEY, f"temcoco_core {__version__}")
        self._open = True
        self._conns: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        ts = get_typestore()
        self._diag_types = DiagnosticTypes(
            array=ts.types[DIAGNOSTIC_TYPE],
            status=ts.types["diagnostic_msgs/msg/DiagnosticStatus"],
            key_value=ts.types["diagnostic_msgs/msg/KeyValue"],
            header=ts.types["std_msgs/msg/Header"],
            time=ts.types["builtin_interfaces/msg/Time"],
        )

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Write the index and ``metadata.yaml``; safe to call twice."""
        if self._open:
            self._open = False
            self._writer.close()

    # connections --------------------------------------------------------------------------
    def add_topic(self, topic: str, msgtype: str) -> Any:
        """Register a topic of a typestore type (idempotent)."""
        if topic not in self._conns:
            self._conns[topic] = self._writer.add_connection(topic, msgtype,
                                                             typestore=get_typestore())
            self.counts[topic] = 0
        return self._conns[topic]

    def copy_topic(self, connection: Any) -> Any:
        """Register a topic with the definition of a reader's connection (for raw copies)."""
        if connection.topic not in self._conns:
            self._conns[connection.topic] = self._writer.add_connection(
                connection.topic, connection.msgtype, msgdef=connection.msgdef.data,
                rihs01=connection.digest,
                offered_qos_profiles=getattr(connection.ext, "offered_qos_profiles", ()) or ())
            self.counts[connection.topic] = 0
        return self._conns[connection.topic]

    # writing ------------------------------------------------------------------------------
    def write_raw(self, topic: str, log_time_ns: int, raw: bytes | memoryview) -> None:
        """Write already serialised CDR bytes to a registered topic."""
        self._writer.write(self._conns[topic], int(log_time_ns), raw)
        self.counts[topic] += 1

    def write(self, topic: str, msg: Any, log_time_ns: int) -> None:
        """Serialise and write a typestore message (topic registered on first use)."""
        conn = self.add_topic(topic, msg.__msgtype__)
        raw = get_typestore().serialize_cdr(msg, conn.msgtype)
        self._writer.write(conn, int(log_time_ns), raw)
        self.counts[topic] += 1

    def write_image(self, topic: str, image: np.ndarray, encoding: str, stamp_ns: int,
                    frame_id: str = "", log_time_ns: int | None = None) -> None:
        """Write a ``sensor_msgs/Image``.

        ``sensor_msgs/Image`` from an array in ``encoding``'s layout (see
        :func:`~temcoco_core.frames.image_msg.numpy_to_image_fields`).
        """
        f = numpy_to_image_fields(image, encoding)
        msg = get_typestore().types[IMAGE_TYPE](
            header=make_header(stamp_ns, frame_id), height=f.height, width=f.width,
            encoding=f.encoding, is_bigendian=f.is_bigendian, step=f.step, data=f.data)
        self.write(topic, msg, stamp_ns if log_time_ns is None else log_time_ns)

    def write_image_fields(self, topic: str, *, height: int, width: int, encoding: str,
                           is_bigendian: int, step: int, data: np.ndarray, stamp_ns: int,
                           frame_id: str = "", log_time_ns: int | None = None) -> None:
        """``sensor_msgs/Image`` from raw fields, for tests and unusual cameras.

        Any encoding string, padded rows and big endian data are allowed.
        """
        msg = get_typestore().types[IMAGE_TYPE](
            header=make_header(stamp_ns, frame_id), height=height, width=width,
            encoding=encoding, is_bigendian=is_bigendian, step=step,
            data=np.asarray(data, dtype=np.uint8).reshape(-1))
        self.write(topic, msg, stamp_ns if log_time_ns is None else log_time_ns)

    def write_compressed(self, topic: str, data: np.ndarray, fmt: str, stamp_ns: int,
                         frame_id: str = "", log_time_ns: int | None = None) -> None:
        """Write a ``sensor_msgs/CompressedImage``.

        ``sensor_msgs/CompressedImage`` (see
        :func:`~temcoco_core.frames.image_msg.encode_compressed`).
        """
        msg = get_typestore().types[COMPRESSED_TYPE](
            header=make_header(stamp_ns, frame_id), format=fmt,
            data=np.asarray(data, dtype=np.uint8).reshape(-1))
        self.write(topic, msg, stamp_ns if log_time_ns is None else log_time_ns)

    def write_diagnostics(self, statuses: Iterable[StatusValue], stamp_ns: int,
                          topic: str = "/diagnostics", log_time_ns: int | None = None) -> None:
        """``diagnostic_msgs/DiagnosticArray`` from status values."""
        msg = build_diagnostic_array(statuses, stamp_ns, self._diag_types)
        self.write(topic, msg, stamp_ns if log_time_ns is None else log_time_ns)
