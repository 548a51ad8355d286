# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Monitors of the live node: topic silence, stamp latency, windowed temporal metrics.

ROS-free and thread-safe; :class:`~temcoco_core.worker.FusionWorker` feeds them and turns them
into ``/diagnostics`` values.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
import math
import threading
import time
from typing import Any, TYPE_CHECKING

from temcoco_core.diagnostics import (
    DiagnosticLevel,
    FusionDiagnostics,
    LatencyStats,
    StatusValue,
)

if TYPE_CHECKING:
    from temcoco_core.node_config import MetricThreshold

__all__ = ["StampLatency", "TemporalMonitor", "ThreadSafeDiagnostics", "TopicWatchdog"]


@dataclass
class ThreadSafeDiagnostics(FusionDiagnostics):
    """:class:`FusionDiagnostics` whose updates and reads hold one lock.

    The callbacks, the worker and the diagnostics timer run in different threads.
    """

    _lock: Any = field(default_factory=threading.RLock, repr=False, compare=False)

    @classmethod
    def wrap(cls, diag: FusionDiagnostics) -> ThreadSafeDiagnostics:
        if isinstance(diag, cls):
            return diag
        return cls(**{f.name: getattr(diag, f.name) for f in fields(FusionDiagnostics)})

    def input(self, topic: str, stamp_ns: int) -> None:
        with self._lock:
            super().input(topic, stamp_ns)

    def output(self, stamp_ns: int, latency_ms: float) -> None:
        with self._lock:
            super().output(stamp_ns, latency_ms)

    def reset_event(self, reason: str) -> None:
        with self._lock:
            super().reset_event(reason)

    def error(self, message: str) -> None:
        with self._lock:
            super().error(message)

    def statuses(self, pairing: Mapping[str, Any] | None = None,
                 extra: Mapping[str, Any] | None = None) -> list[StatusValue]:
        with self._lock:
            return super().statuses(pairing, extra)


class TopicWatchdog:
    """Which inputs have been silent for longer than ``timeout_s`` (monotonic wall clock).

    A paused bag *is* silence.
    """

    def __init__(self, topics: Sequence[str], timeout_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.topics = list(topics)
        self.timeout_s = float(timeout_s)
        self._clock = clock
        self._started = clock()
        self._last: dict[str, float] = {}

    def restart(self) -> None:
        """Start counting silence from now (activation)."""
        self._started = self._clock()
        self._last.clear()

    def seen(self, topic: str) -> None:
        self._last[topic] = self._clock()

    def ages(self) -> dict[str, float | None]:
        """Seconds since each topic's last message (``None``: never)."""
        now = self._clock()
        return {t: (now - self._last[t]) if t in self._last else None for t in self.topics}

    def silent(self) -> list[tuple[str, float, bool]]:
        """``(topic, seconds silent, ever_seen)`` for every topic past the timeout."""
        now = self._clock()
        out = []
        for t in self.topics:
            ref = self._last.get(t, self._started)
            if now - ref > self.timeout_s:
                out.append((t, now - ref, t in self._last))
        return out


class StampLatency:
    """Header stamp → publish latency on the node's clock (sim time during bag replay).

    A stamp more than ``max_plausible_s`` away from the clock (a camera stamping with its own
    clock, a bag replayed without ``use_sim_time``) cannot be subtracted: it is counted in
    ``mismatches`` and left out of the statistics instead of reporting nonsense.
    """

    def __init__(self, window: int = 300, max_plausible_s: float = 60.0,
                 max_future_s: float = 1.0) -> None:
        self.stats = LatencyStats(window)
        self.max_plausible_ns = int(max_plausible_s * 1e9)
        self.max_future_ns = int(max_future_s * 1e9)
        self.mismatches = 0
        self.last_offset_s = float("nan")

    def add(self, stamp_ns: int, now_ns: int) -> float | None:
        """Record one publish; returns the latency in ms.

        Or ``None`` when implausible (a stamp more than ``max_future_s`` ahead of the clock or
        ``max_plausible_s`` behind).
        """
        delta = int(now_ns) - int(stamp_ns)
        self.last_offset_s = delta / 1e9
        if delta < -self.max_future_ns or delta > self.max_plausible_ns:
            self.mismatches += 1
            return None
        ms = max(delta, 0) / 1e6
        self.stats.add(ms)
        return ms


class TemporalMonitor:
    """Windowed means of the online temporal metrics, levelled by :class:`MetricThreshold`.

    Each metric's mean over its last ``window`` finite values (first frames after a reset are
    NaN and skipped) is compared with its ERROR then WARN threshold.
    """

    def __init__(self, thresholds: Sequence[MetricThreshold], window: int = 30) -> None:
        self.thresholds = list(thresholds)
        self.window = int(window)
        self._values: dict[str, deque[float]] = {
            t.key: deque(maxlen=self.window) for t in self.thresholds}
        self._bvar: deque[float] = deque(maxlen=self.window)
        self._offset: deque[float] = deque(maxlen=self.window)
        self._lock = threading.Lock()

    def update(self, values: Mapping[str, float]) -> None:
        with self._lock:
            for key, q in self._values.items():
                v = values.get(key)
                if v is not None and math.isfinite(v):
                    q.append(float(v))
            b = values.get("brightness_delta")
            if b is not None and math.isfinite(b):
                self._bvar.append(abs(float(b)))
            bf, bv = values.get("brightness"), values.get("brightness_visible")
            if bf is not None and bv is not None and math.isfinite(bf - bv):
                self._offset.append(float(bf) - float(bv))

    def reset(self) -> None:
        with self._lock:
            for q in self._values.values():
                q.clear()
            self._bvar.clear()
            self._offset.clear()

    def means(self) -> dict[str, float]:
        with self._lock:
            return {k: (sum(q) / len(q) if q else float("nan")) for k, q in self._values.items()}

    def status(self, name: str, hardware_id: str = "") -> StatusValue:
        """``DiagnosticStatus`` values: each mean, its thresholds and the worst level."""
        means = self.means()
        with self._lock:
            bvar = sum(self._bvar) / len(self._bvar) if self._bvar else float("nan")
            offset = sum(self._offset) / len(self._offset) if self._offset else float("nan")
        level, problems = DiagnosticLevel.OK, []
        values: dict[str, str] = {"window_frames": str(self.window)}
        for t in self.thresholds:
            m = means[t.key]
            values[f"{t.key} mean"] = "nan" if math.isnan(m) else f"{m:.4g}"
            values[f"{t.key} warn/error"] = f"{t.warn:g}/{t.error:g}"
            if math.isnan(m):
                continue
            if t.error > 0 and m > t.error:
                level = max(level, DiagnosticLevel.ERROR)
                problems.append(f"{t.key} {m:.3g} > {t.error:g}")
            elif t.warn > 0 and m > t.warn:
                level = max(level, DiagnosticLevel.WARN)
                problems.append(f"{t.key} {m:.3g} > {t.warn:g}")
        values["brightness variation mean"] = "nan" if math.isnan(bvar) else f"{bvar:.4g}"
        # informational: how much brighter (> 0) the fused image is than the RGB one
        values["brightness offset mean"] = "nan" if math.isnan(offset) else f"{offset:.4g}"
        if problems:
            message = "temporally inconsistent: " + ", ".join(problems)
        elif all(math.isnan(m) for m in means.values()):
            message = "no values yet"
        else:
            message = "temporally consistent"
        return StatusValue(level, name, message, hardware_id, values)
