# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""diagnostic_updater's conventions and topic checks, in plain Python.

The node publishes ``/diagnostics`` itself (on a wall-clock timer, so a silent input is
reported while ``/clock`` is stopped) and the bag replay writes the same statuses into bags, so
neither can use ``diagnostic_updater.Updater`` directly. This module reproduces what a
diagnostic_updater user would see:

* status names ``"<node name>: <task name>"`` (:func:`status_name`; ``Updater`` prefixes every
  task with ``node.get_name()``, or the fully qualified name with ``diagnostic_updater.use_fqn``),
  the same ``hardware_id`` on every status;
* :class:`FrequencyStatus` and :class:`TimeStampStatus` with diagnostic_updater's parameters
  (``min``/``max`` frequency, ``tolerance``, ``window_size``; min/max acceptable stamp delay),
  levels, messages and key names;
* :class:`TopicStatus`: both merged into ``"<topic> topic status"``, as ``TopicDiagnostic``
  does (worst level, messages of that level joined with ``"; "``).

Each ``run()`` looks only at the recent window, so a status recovers by itself when the
condition clears. Clocks are injected (seconds as floats): the node passes a monotonic clock
for rates and its ROS clock for stamp delays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
import threading
import time

from temcoco_core.diagnostics import DiagnosticLevel, StatusValue

__all__ = [
    "FrequencyStatus",
    "FrequencyStatusParam",
    "TimeStampStatus",
    "TimeStampStatusParam",
    "TopicStatus",
    "merge_statuses",
    "status_name",
    "with_updater_names",
]


def status_name(node_name: str, task: str) -> str:
    """``"<node name>: <task>"``, diagnostic_updater's ``Updater`` naming.

    ``node_name`` is ``node.get_name()`` (``"fusion_node"``), or the fully qualified name when
    ``diagnostic_updater.use_fqn`` is set.
    """
    return f"{node_name}: {task}"


def with_updater_names(statuses: Iterable[StatusValue], node_name: str, hardware_id: str
                       ) -> list[StatusValue]:
    """Statuses renamed ``"<node_name>: <task>"`` with ``hardware_id`` set.

    As ``Updater`` publishes them; a status whose name already starts with ``"<something>: "``
    keeps only its task part.
    """
    out = []
    for s in statuses:
        task = s.name.split(": ", 1)[1] if ": " in s.name else s.name
        out.append(StatusValue(s.level, status_name(node_name, task), s.message, hardware_id,
                               dict(s.values)))
    return out


def merge_statuses(name: str, parts: Iterable[StatusValue], hardware_id: str = ""
                   ) -> StatusValue:
    """One status from several (``CompositeDiagnosticTask``).

    The worst level, the messages of that level (OK or not) joined with ``"; "``, every key/value.
    """
    level, message, values = DiagnosticLevel.OK, "", {}
    first = True
    for p in parts:
        values.update(p.values)
        if first:
            level, message, first = p.level, p.message, False
        elif (p.level > 0) == (level > 0):
            message = f"{message}; {p.message}" if message else p.message
        elif p.level > level:
            message = p.message
        level = max(level, p.level)
    return StatusValue(DiagnosticLevel(level), name, message, hardware_id, values)


@dataclass(frozen=True)
class FrequencyStatusParam:
    """diagnostic_updater's ``FrequencyStatusParam``.

    Attributes:
        min_hz: lowest acceptable rate (0: no lower bound).
        max_hz: highest acceptable rate (``None``: no upper bound).
        tolerance: bounds are ``min_hz * (1 - tolerance)`` and ``max_hz * (1 + tolerance)``.
        window_size: number of ``run()`` calls the rate is averaged over.
    """

    min_hz: float = 0.0
    max_hz: float | None = None
    tolerance: float = 0.1
    window_size: int = 5

    def __post_init__(self) -> None:
        if self.min_hz < 0 or (self.max_hz is not None and self.max_hz < self.min_hz):
            raise ValueError(f"frequency bounds need 0 <= min <= max, got {self.min_hz}, "
                             f"{self.max_hz}")
        if self.tolerance < 0 or self.window_size < 1:
            raise ValueError(f"tolerance must be >= 0 and window_size >= 1, got "
                             f"{self.tolerance}, {self.window_size}")


class FrequencyStatus:
    """Rate of :meth:`tick` calls over the last ``window_size`` runs.

    Rate of :meth:`tick` calls over the last ``window_size`` runs (diagnostic_updater's
    ``FrequencyStatus``): ERROR "No events recorded." with no event in the window, WARN "Frequency
    too low."/"Frequency too high." outside the bounds, else OK "Desired frequency met".
    Thread-safe: ``tick`` from callbacks, ``run`` from the diagnostics timer.
    """

    def __init__(self, params: FrequencyStatusParam, name: str = "FrequencyStatus",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.params = params
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        """Forget the window (e.g. when the input is resubscribed)."""
        with self._lock:
            now = self._clock()
            self.count = 0
            self._times = [now] * self.params.window_size
            self._seq = [0] * self.params.window_size
            self._index = 0

    def tick(self) -> None:
        """One event (a message received or published)."""
        with self._lock:
            self.count += 1

    def run(self) -> StatusValue:
        """The status over the window, and the window moved on by one run."""
        p = self.params
        with self._lock:
            now = self._clock()
            events = self.count - self._seq[self._index]
            window = now - self._times[self._index]
            freq = events / window if window > 0 else 0.0
            self._seq[self._index], self._times[self._index] = self.count, now
            self._index = (self._index + 1) % p.window_size
            total = self.count
        if events == 0:
            level, msg = DiagnosticLevel.ERROR, "No events recorded."
        elif freq < p.min_hz * (1 - p.tolerance):
            level, msg = DiagnosticLevel.WARN, "Frequency too low."
        elif p.max_hz is not None and freq > p.max_hz * (1 + p.tolerance):
            level, msg = DiagnosticLevel.WARN, "Frequency too high."
        else:
            level, msg = DiagnosticLevel.OK, "Desired frequency met"
        values = {"Events in window": f"{events:d}", "Events since startup": f"{total:d}",
                  "Duration of window (s)": f"{window:f}", "Actual frequency (Hz)": f"{freq:f}"}
        if p.max_hz is not None and p.min_hz == p.max_hz:
            values["Target frequency (Hz)"] = f"{p.min_hz:f}"
        if p.min_hz > 0:
            values["Minimum acceptable frequency (Hz)"] = f"{p.min_hz * (1 - p.tolerance):f}"
        if p.max_hz is not None:
            values["Maximum acceptable frequency (Hz)"] = f"{p.max_hz * (1 + p.tolerance):f}"
        return StatusValue(level, self.name, msg, "", values)


@dataclass(frozen=True)
class TimeStampStatusParam:
    """diagnostic_updater's ``TimeStampStatusParam``.

    Acceptable ``now - stamp``, seconds (negative: a stamp in the future).
    """

    min_acceptable: float = -1.0
    max_acceptable: float = 5.0


class TimeStampStatus:
    """Delay of message stamps behind the clock since the last run.

    Delay of message stamps behind the clock since the last run (diagnostic_updater's
    ``TimeStampStatus``): WARN "No data since last update.", ERROR "Timestamps too far in future
    seen." / "Timestamps too far in past seen." / "Zero timestamp seen.", else OK "Timestamps are
    reasonable."; the counters of each error persist, the window does not.
    """

    def __init__(self, params: TimeStampStatusParam | None = None,
                 name: str = "Timestamp Status") -> None:
        self.params = params or TimeStampStatusParam()
        self.name = name
        self._lock = threading.Lock()
        self.early_count = self.late_count = self.zero_count = 0
        self._reset_window()

    def _reset_window(self) -> None:
        self._zero_seen = False
        self._valid = False
        self._min = self._max = 0.0

    def tick(self, stamp_s: float, now_s: float) -> None:
        """One message stamped ``stamp_s`` seen at ``now_s`` (same clock, seconds)."""
        with self._lock:
            if stamp_s == 0:
                self._zero_seen = True
                return
            delta = now_s - stamp_s
            if not self._valid or delta > self._max:
                self._max = delta
            if not self._valid or delta < self._min:
                self._min = delta
            self._valid = True

    def run(self) -> StatusValue:
        p = self.params
        with self._lock:
            level, msg = DiagnosticLevel.OK, "Timestamps are reasonable."
            if not self._valid:
                level, msg = DiagnosticLevel.WARN, "No data since last update."
            else:
                if self._min < p.min_acceptable:
                    level, msg = DiagnosticLevel.ERROR, "Timestamps too far in future seen."
                    self.early_count += 1
                if self._max > p.max_acceptable:
                    level, msg = DiagnosticLevel.ERROR, "Timestamps too far in past seen."
                    self.late_count += 1
            if self._zero_seen:
                level, msg = DiagnosticLevel.ERROR, "Zero timestamp seen."
                self.zero_count += 1
            values = {
                "Earliest timestamp delay:": f"{self._min:f}",
                "Latest timestamp delay:": f"{self._max:f}",
                "Earliest acceptable timestamp delay:": f"{p.min_acceptable:f}",
                "Latest acceptable timestamp delay:": f"{p.max_acceptable:f}",
                "Late diagnostic update count:": f"{self.late_count:d}",
                "Early diagnostic update count:": f"{self.early_count:d}",
                "Zero seen diagnostic update count:": f"{self.zero_count:d}",
            }
            self._reset_window()
        return StatusValue(level, self.name, msg, "", values)


class TopicStatus:
    """diagnostic_updater's ``TopicDiagnostic``.

    Frequency and (optionally) timestamp checks of one topic merged into ``"<topic> topic
    status"``.
    """

    def __init__(self, topic: str, freq: FrequencyStatusParam,
                 stamp: TimeStampStatusParam | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.topic = topic
        self.name = f"{topic} topic status"
        self.frequency = FrequencyStatus(freq, clock=clock)
        self.timestamp = TimeStampStatus(stamp) if stamp is not None else None

    def tick(self, stamp_s: float | None = None, now_s: float | None = None) -> None:
        """One message; with ``stamp_s``/``now_s`` its stamp delay is checked too."""
        self.frequency.tick()
        if self.timestamp is not None and stamp_s is not None and now_s is not None:
            self.timestamp.tick(stamp_s, now_s)

    def clear(self) -> None:
        self.frequency.clear()

    def run(self, hardware_id: str = "") -> StatusValue:
        parts = [self.frequency.run()]
        if self.timestamp is not None:
            parts.append(self.timestamp.run())
        return merge_statuses(self.name, parts, hardware_id)
