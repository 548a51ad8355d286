# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Rates, latencies, drop counters and ``diagnostic_msgs/DiagnosticStatus``-shaped values.

ROS-free: the node turns :class:`StatusValue` s into rclpy messages and the bag replay into
rosbags messages, both through :func:`build_diagnostic_array` with their own classes, so the two
publish identical ``/diagnostics`` content.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
import math
from typing import Any

__all__ = [
    "DiagnosticLevel",
    "DiagnosticTypes",
    "FusionDiagnostics",
    "LatencyStats",
    "RateMeter",
    "StatusValue",
    "build_diagnostic_array",
]


class DiagnosticLevel(IntEnum):
    """``diagnostic_msgs/DiagnosticStatus`` levels."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass
class StatusValue:
    """One ``DiagnosticStatus``: level, name, message, hardware_id and string key/values."""

    level: DiagnosticLevel
    name: str
    message: str
    hardware_id: str = ""
    values: dict[str, str] = field(default_factory=dict)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


class RateMeter:
    """Event rate over a sliding time window (stamps in nanoseconds, any clock)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_ns = int(window_s * 1e9)
        self._t: deque[int] = deque()
        self.count = 0

    def tick(self, t_ns: int) -> None:
        if self._t and t_ns < self._t[-1]:  # clock went back (looped bag): start over
            self._t.clear()
        self._t.append(int(t_ns))
        self.count += 1
        while self._t and self._t[-1] - self._t[0] > self.window_ns:
            self._t.popleft()

    def rate_hz(self) -> float:
        """Events per second within the window (``nan`` with fewer than two events)."""
        if len(self._t) < 2 or self._t[-1] == self._t[0]:
            return float("nan")
        return (len(self._t) - 1) * 1e9 / (self._t[-1] - self._t[0])

    def reset(self) -> None:
        self._t.clear()


class LatencyStats:
    """Rolling latency statistics over the last ``window`` samples, milliseconds."""

    def __init__(self, window: int = 300) -> None:
        self._v: deque[float] = deque(maxlen=window)
        self.count = 0
        self.total_ms = 0.0

    def add(self, ms: float) -> None:
        self._v.append(float(ms))
        self.count += 1
        self.total_ms += float(ms)

    def _sorted(self) -> list[float]:
        return sorted(self._v)

    @property
    def last(self) -> float:
        return self._v[-1] if self._v else float("nan")

    @property
    def mean(self) -> float:
        return sum(self._v) / len(self._v) if self._v else float("nan")

    @property
    def max(self) -> float:
        return max(self._v) if self._v else float("nan")

    def percentile(self, q: float) -> float:
        s = self._sorted()
        if not s:
            return float("nan")
        return s[min(len(s) - 1, max(0, math.ceil(q / 100.0 * len(s)) - 1))]

    def summary(self) -> dict[str, float]:
        return {"last_ms": self.last, "mean_ms": self.mean, "p95_ms": self.percentile(95),
                "max_ms": self.max}


@dataclass
class FusionDiagnostics:
    """Everything the fusion pipeline reports, turned into :class:`StatusValue` s.

    Attributes:
        name: prefix of the status names (``"<name>: pairing"`` …).
        hardware_id: ``DiagnosticStatus.hardware_id``.
        min_rate_hz: output rate below which the output status warns (``None``: no check).
        max_drop_ratio: share of dropped input messages above which pairing warns.
    """

    name: str = "temcoco_fusion"
    hardware_id: str = ""
    min_rate_hz: float | None = None
    max_drop_ratio: float = 0.2
    input_rates: dict[str, RateMeter] = field(default_factory=dict)
    output_rate: RateMeter = field(default_factory=RateMeter)
    latency: LatencyStats = field(default_factory=LatencyStats)
    resets: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    last_error: str = ""
    #: an error happened after the last good output (the output status WARNs until one comes)
    error_active: bool = False
    metrics: dict[str, float] = field(default_factory=dict)

    def input(self, topic: str, stamp_ns: int) -> None:
        self.input_rates.setdefault(topic, RateMeter()).tick(stamp_ns)

    def output(self, stamp_ns: int, latency_ms: float) -> None:
        self.output_rate.tick(stamp_ns)
        self.latency.add(latency_ms)
        self.error_active = False

    def reset_event(self, reason: str) -> None:
        self.resets[reason] = self.resets.get(reason, 0) + 1

    def error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        self.error_active = True

    def statuses(self, pairing: Mapping[str, Any] | None = None,
                 extra: Mapping[str, Any] | None = None) -> list[StatusValue]:
        """Current statuses: ``pairing`` (from ``ApproximatePairer.summary()``).

        ``output`` (rate, latency, resets, errors) and ``temporal`` (last per-frame metrics).

        Args:
            pairing: pairing counters; omitted when ``None``.
            extra: more key/values appended to the output status (engine name, backend…).
        """
        out: list[StatusValue] = []
        if pairing is not None:
            vals: dict[str, str] = {"pairs": _fmt(pairing.get("pairs", 0))}
            level, msg = DiagnosticLevel.OK, "pairing"
            received = dropped = 0
            for topic, c in pairing.get("topics", {}).items():
                for k, v in c.items():
                    vals[f"{topic} {k}"] = _fmt(v)
                received += c.get("received", 0)
                dropped += c.get("dropped", 0) + c.get("unmatched", 0)
                if topic in self.input_rates:
                    vals[f"{topic} rate_hz"] = _fmt(self.input_rates[topic].rate_hz())
            for k, v in pairing.get("events", {}).items():
                vals[f"events {k}"] = _fmt(v)
            if received and dropped / received > self.max_drop_ratio:
                level = DiagnosticLevel.WARN
                msg = (f"{dropped} of {received} input messages not paired; check slop and "
                       "queue_size")
            elif received and not pairing.get("pairs", 0):
                level, msg = DiagnosticLevel.WARN, "no pairs yet"
            out.append(StatusValue(level, f"{self.name}: pairing", msg, self.hardware_id, vals))

        rate = self.output_rate.rate_hz()
        vals = {"frames": _fmt(self.output_rate.count), "rate_hz": _fmt(rate)}
        vals.update({k: _fmt(v) for k, v in self.latency.summary().items()})
        vals.update({f"resets {k}": _fmt(v) for k, v in self.resets.items()})
        vals["errors"] = _fmt(self.errors)
        if self.last_error:
            vals["last error"] = self.last_error
        if extra:
            vals.update({k: _fmt(v) for k, v in extra.items()})
        level, msg = DiagnosticLevel.OK, "fusing"
        if self.error_active and self.last_error:  # until the next good frame
            level, msg = DiagnosticLevel.WARN, f"last error: {self.last_error}"
        if self.min_rate_hz is not None and not (rate >= self.min_rate_hz):
            level = max(level, DiagnosticLevel.WARN)
            msg = f"output rate {_fmt(rate)} Hz below {self.min_rate_hz} Hz"
        if self.output_rate.count == 0:
            level, msg = DiagnosticLevel.STALE, "no fused frame yet"
        out.append(StatusValue(level, f"{self.name}: output", msg, self.hardware_id, vals))

        if self.metrics:
            out.append(StatusValue(DiagnosticLevel.OK, f"{self.name}: temporal consistency",
                                   "per-frame values", self.hardware_id,
                                   {k: _fmt(v) for k, v in self.metrics.items()}))
        return out


@dataclass
class DiagnosticTypes:
    """Message classes to build ``diagnostic_msgs/DiagnosticArray`` with (rclpy or rosbags).

    Each is called with keyword arguments named like the message fields. ``level`` converts
    the integer level to the field's Python type: ``int`` for rosbags, ``lambda v: bytes([v])``
    for rclpy (whose ``byte`` fields are ``bytes``).
    """

    array: Callable[..., Any]
    status: Callable[..., Any]
    key_value: Callable[..., Any]
    header: Callable[..., Any]
    time: Callable[..., Any]
    level: Callable[[int], Any] = int


def build_diagnostic_array(statuses: Iterable[StatusValue], stamp_ns: int,
                           types: DiagnosticTypes, frame_id: str = "") -> Any:
    """``diagnostic_msgs/DiagnosticArray`` from status values, built with the caller's classes."""
    stamp = types.time(sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))
    header = types.header(stamp=stamp, frame_id=frame_id)
    status = [
        types.status(
            level=types.level(int(s.level)),
            name=s.name,
            message=s.message,
            hardware_id=s.hardware_id,
            values=[types.key_value(key=k, value=v) for k, v in s.values.items()],
        )
        for s in statuses
    ]
    return types.array(header=header, status=status)
