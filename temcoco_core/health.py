# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Liveness of the fusion output: is it publishing, and if not, why.

On a robot nobody watches the terminal: when fused output stops, ``/diagnostics`` must say so
within seconds and name the reason. This module owns that, without ROS:

* :class:`FailureCounter` -- every per-frame failure counted by kind (``too_large``,
  ``decode_error``, ``non_finite``, ``size_mismatch``, ``bad_frame``, ``inference_error``…) with
  the last message of each kind and of all;
* :class:`LivenessMonitor` -- inputs in, outputs out, failures: an output-rate/stall status that
  goes WARN ``stall_warn_s`` after inputs stopped producing output (default 0.8 s, so a 1 Hz
  diagnostics timer shows it within 2 s) and ERROR after ``stall_error_s``, a WARN when the
  output rate stays below ``min_rate_ratio`` of ``expected_rate_hz``, always with the last
  reason;
* :class:`ThrottledLog` -- logs one line per key at most every ``interval_s`` seconds and says
  how many similar lines it held back (a bad frame at 30 Hz must not flood the log);
* :func:`failure_kind` -- the counter key of an exception (``FrameError.kind`` or
  ``inference_error``).

Clocks are injectable (``clock() -> seconds``, monotonic by default) so that tests drive time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
import logging
import math
import threading
import time
from typing import Any

from temcoco_core.diagnostics import DiagnosticLevel, StatusValue

__all__ = [
    "FailureCounter",
    "LivenessConfig",
    "LivenessMonitor",
    "LivenessState",
    "ThrottledLog",
    "failure_kind",
]


def failure_kind(exc: BaseException) -> str:
    """Counter key of a per-frame failure: a :class:`~temcoco_core.frames.preprocess.

    FrameError`'s ``kind`` (``decode_error``, ``too_large``, ``non_finite``, ``size_mismatch``,
    ``bad_frame``), else ``inference_error``.
    """
    kind = getattr(exc, "kind", None)
    return kind if isinstance(kind, str) and kind else "inference_error"


@dataclass
class FailureCounter:
    """Per-frame failures by kind.

    Per-frame failures by kind; ``last`` is the most recent ``(kind, message)`` and ``last_time``
    when it happened (``clock``, seconds).
    """

    counts: dict[str, int] = field(default_factory=dict)
    last_message: dict[str, str] = field(default_factory=dict)
    last: tuple[str, str] | None = None
    last_time: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def total(self) -> int:
        return sum(self.snapshot().values())

    def snapshot(self) -> dict[str, int]:
        """A copy of the counts by kind (the worker records while a timer reads)."""
        with self._lock:
            return dict(self.counts)

    def record(self, kind: str, message: str, now: float | None = None) -> int:
        """Count one failure; returns the new count of ``kind``."""
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.last_message[kind] = message
            self.last = (kind, message)
            self.last_time = self.clock() if now is None else now
            return self.counts[kind]

    def describe_last(self) -> str:
        """``"<kind>: <message>"`` of the last failure (``""`` when none)."""
        return f"{self.last[0]}: {self.last[1]}" if self.last else ""

    def as_dict(self) -> dict[str, Any]:
        counts = self.snapshot()
        return {"total": sum(counts.values()), "by_kind": counts, "last": self.describe_last()}


class ThrottledLog:
    """At most one log line per key every ``interval_s`` seconds.

    Args:
        logger: where lines go.
        interval_s: smallest time between two lines of one key.
        clock: seconds, monotonic.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval_s = float(interval_s)
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, level: int, key: str, message: str) -> bool:
        """Log ``message`` unless ``key`` was logged less than ``interval_s`` ago.

        Log ``message`` unless ``key`` was logged less than ``interval_s`` ago (then it is counted
        and the next line of the key says how many were held back). Returns whether a line was
        written.
        """
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        held = self._held.pop(key, 0)
        suffix = f" ({held} more like this in the last {now - last:.0f} s)" if held and \
            last is not None else ""
        self._last[key] = now
        self.logger.log(level, "%s%s", message, suffix)
        return True


@dataclass
class LivenessConfig:
    """When the output counts as stalled or slow.

    Attributes:
        expected_rate_hz: the output rate the user expects (the cameras' rate); 0: unknown,
            no rate check.
        stall_warn_s: inputs arriving but no output for this long -> WARN.
        stall_error_s: ... for this long -> ERROR.
        min_rate_ratio: output below ``min_rate_ratio * expected_rate_hz`` (over
            ``rate_window_s``) -> WARN.
        input_window_s: inputs count as arriving when one came within this time.
        rate_window_s: window of the output-rate estimate.
    """

    expected_rate_hz: float = 0.0
    stall_warn_s: float = 0.8
    stall_error_s: float = 5.0
    min_rate_ratio: float = 0.5
    input_window_s: float = 2.0
    rate_window_s: float = 5.0

    def __post_init__(self) -> None:
        if self.expected_rate_hz < 0:
            raise ValueError(f"expected_rate_hz must be >= 0, got {self.expected_rate_hz}")
        if not 0 < self.stall_warn_s <= self.stall_error_s:
            raise ValueError(f"need 0 < stall_warn_s <= stall_error_s, got "
                             f"{self.stall_warn_s}, {self.stall_error_s}")
        if not 0 < self.min_rate_ratio <= 1:
            raise ValueError(f"min_rate_ratio must be in (0, 1], got {self.min_rate_ratio}")
        if not (self.input_window_s > 0 and self.rate_window_s > 0):
            raise ValueError("input_window_s and rate_window_s must be > 0")


@dataclass(frozen=True)
class LivenessState:
    """The output's health now: level, one-line message, key/values, the last reason."""

    level: DiagnosticLevel
    message: str
    values: dict[str, str]
    reason: str
    stalled_s: float
    rate_hz: float


class LivenessMonitor:
    """Output liveness from three events: :meth:`input`, :meth:`output`, :meth:`failure`.

    Thread-safe enough for its use: every method does a few attribute updates (the callers
    hold their own lock around a multi-step update).

    Args:
        cfg: thresholds.
        clock: seconds, monotonic (injectable for tests).
        failures: share this counter (e.g. the pipeline's, which records every failed frame);
            its clock becomes ``clock``.
    """

    def __init__(self, cfg: LivenessConfig | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 failures: FailureCounter | None = None) -> None:
        self.cfg = cfg or LivenessConfig()
        self._clock = clock
        self.failures = failures if failures is not None else FailureCounter()
        self.failures.clock = clock
        self.inputs = 0
        self.outputs = 0
        self._note = ""
        self._outs: deque[float] = deque()
        self.restart()

    def restart(self) -> None:
        """Start watching from now (node activation); counters are kept."""
        self._started = self._clock()
        self._last_input: float | None = None
        self._last_output: float | None = None
        self._unserved_since: float | None = None
        self._outs.clear()

    # ------------------------------------------------------------------ events
    def input(self) -> None:
        """An input message (or pair) arrived."""
        now = self._clock()
        self.inputs += 1
        self._last_input = now
        if self._unserved_since is None:
            self._unserved_since = now

    def output(self) -> None:
        """A fused frame was published."""
        now = self._clock()
        self.outputs += 1
        self._last_output = now
        self._unserved_since = None
        self._outs.append(now)
        self._trim(now)

    def failure(self, kind: str, message: str) -> int:
        """A frame failed (``kind`` from :func:`failure_kind`); returns the kind's count."""
        return self.failures.record(kind, message, self._clock())

    def note(self, reason: str) -> None:
        """Why inputs may not become outputs without a frame failing.

        For example: no pair matched (stamps apart). Shown when no failure explains a stall. ``""``
        clears it.
        """
        self._note = reason

    # ------------------------------------------------------------------ state
    def _trim(self, now: float) -> None:
        while self._outs and now - self._outs[0] > self.cfg.rate_window_s:
            self._outs.popleft()

    def rate_hz(self) -> float:
        """Outputs per second over the last ``rate_window_s`` (or since the start, if shorter)."""
        now = self._clock()
        self._trim(now)
        span = min(self.cfg.rate_window_s, now - self._started)
        return len(self._outs) / span if span > 0 else float("nan")

    def reason(self) -> str:
        """The last reason output may be missing.

        The newest frame failure since the last output, else the note, else ``""``.
        """
        f = self.failures
        if f.last is not None and (self._last_output is None or
                                   (f.last_time or 0.0) >= self._last_output):
            return f.describe_last()
        return self._note

    def state(self) -> LivenessState:
        """Level and message now (see the module docstring)."""
        cfg = self.cfg
        now = self._clock()
        rate = self.rate_hz()
        arriving = self._last_input is not None and now - self._last_input <= cfg.input_window_s
        stalled = (now - self._unserved_since) if (arriving and self._unserved_since
                                                   is not None) else 0.0
        reason = self.reason()
        why = f": {reason}" if reason else ": no frame failed (inputs not paired?)"
        values = {
            "output rate_hz": _fmt(rate),
            "expected rate_hz": _fmt(cfg.expected_rate_hz) if cfg.expected_rate_hz else "unset",
            "stalled_s": _fmt(stalled),
            "inputs": str(self.inputs),
            "outputs": str(self.outputs),
            "frames failed": str(self.failures.total),
            "last reason": reason or "none",
        }
        values.update({f"failed {k}": str(v) for k, v in sorted(self.failures.snapshot().items())})
        what = "no fused output yet" if self._last_output is None else "no fused output"
        if stalled > cfg.stall_warn_s:  # stall_warn_s <= stall_error_s
            level = DiagnosticLevel.ERROR if stalled > cfg.stall_error_s else DiagnosticLevel.WARN
            msg = f"{what} for {stalled:.1f} s while inputs arrive{why}"
        elif (cfg.expected_rate_hz > 0 and arriving and now - self._started >= cfg.rate_window_s
              and rate < cfg.min_rate_ratio * cfg.expected_rate_hz):
            level = DiagnosticLevel.WARN
            msg = (f"output {rate:.1f} Hz, expected {cfg.expected_rate_hz:g} Hz"
                   + (f"; last reason: {reason}" if reason else ""))
        elif self._last_output is None:
            level, msg = DiagnosticLevel.OK, "waiting for input" if not arriving else \
                "starting"
        else:
            level, msg = DiagnosticLevel.OK, f"publishing at {rate:.1f} Hz"
        return LivenessState(level, msg, values, reason, stalled, rate)

    def status(self, name: str, hardware_id: str = "") -> StatusValue:
        """The state as a ``DiagnosticStatus`` named ``name``."""
        st = self.state()
        return StatusValue(st.level, name, st.message, hardware_id, st.values)

    def summary(self) -> dict[str, Any]:
        """Plain data for replay summaries."""
        return {"inputs": self.inputs, "outputs": self.outputs,
                "failures": self.failures.as_dict()}


def _fmt(v: float) -> str:
    return "nan" if isinstance(v, float) and math.isnan(v) else f"{v:.3g}"
