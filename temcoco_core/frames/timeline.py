# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Where each input message sits in time: stamp source, jitter tolerance, clock jumps.

Real cameras and drivers do not deliver the tidy, strictly increasing header stamps that an
approximate-time synchroniser assumes:

* hardware stamps jitter by tens of milliseconds and a message is sometimes delivered after its
  successor (one reorder);
* a camera's clock restarts (thermal camera reboot, PTP/NTP resync) while the other camera's
  clock goes on: its stamps jump by seconds to hours, and pairing by stamp never matches again;
* some drivers never set the header stamp (all zero);
* a looped bag (or a bag recorded while another one was looping) jumps back, or repeats stamps.

:class:`StampTimeline` decides, per topic and message, which stamp the message is paired by and
whether the stream's time really jumped. It is a pure object (no ROS, no threads); the pairer
(:class:`~temcoco_core.frames.pairing.ApproximatePairer`) calls :meth:`StampTimeline.place` for
every message. The policy:

``stamp_source``
    ``"header"`` (default) pairs by header stamp; a zero stamp (an unstamped driver) is replaced
    by the receive time and counted per topic, and :meth:`StampTimeline.notes` names the topic.
    ``"receive"`` pairs by receive time (drivers whose stamps are useless).
jitter and reorders
    A step back of at most ``backward_tolerance_s`` is jitter or a reordered message: the
    message is paired and fused, counted as ``reordered``, and the temporal state is kept. A
    repeated stamp is counted as ``duplicate_stamp`` and fused too (nothing is dropped).
discontinuities
    A step back of more than ``backward_tolerance_s`` (``time_backwards``) or forward by more
    than ``max_gap_s`` is a discontinuity. When the receive time is known, the step of the
    stamp is compared with the step of the receive time: if they disagree by more than
    ``resync_threshold_s`` this topic's *clock* jumped (a camera restart, a looped bag replayed
    in real time), and the topic is re-synchronised at once by a clock correction that keeps its
    ``receive - stamp`` offset where it was (the median of its recent offsets). Pairing then
    continues with the next message instead of never. Either way the caller resets its temporal
    state (engine, thermal gain): the event's ``reset`` is true.

Every stamp the timeline hands out comes in two forms: ``source_ns`` (the stamp the message is
known by -- the header stamp, or the receive time that replaced it; outputs carry it) and
``aligned_ns`` (``source_ns`` plus the topic's clock correction; pairing and gap checks use it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
import math
import statistics
from typing import Literal

__all__ = ["STAMP_SOURCES", "StampPlacement", "StampTimeline", "TimelineConfig",
           "TimelineTopicStats", "smoothing_weight"]

STAMP_SOURCES = ("header", "receive")


def smoothing_weight(stamp_ns: int | None, previous_ns: int | None, time_constant_s: float,
                     nominal_fps: float) -> float:
    """Weight ``alpha = 1 − exp(−dt / τ)`` of a new sample in a stamp-aware moving average.

    ``dt`` is the gap between the two header stamps, or ``1 / nominal_fps`` when either is
    missing or time did not move forward; ``τ = 0`` gives 1 (no averaging).
    """
    if time_constant_s <= 0:
        return 1.0
    dt_s = 1.0 / nominal_fps
    if stamp_ns is not None and previous_ns is not None and stamp_ns > previous_ns:
        dt_s = (stamp_ns - previous_ns) * 1e-9
    return 1.0 - math.exp(-dt_s / time_constant_s)


PlacementKind = Literal["ok", "first", "reordered", "duplicate_stamp", "time_backwards", "gap"]


@dataclass
class TimelineConfig:
    """How message stamps are read and when time counts as jumping.

    Attributes:
        stamp_source: ``"header"`` (zero stamps fall back to the receive time, counted) or
            ``"receive"``.
        backward_tolerance_s: a stamp up to this much older than the newest one of its topic is
            jitter or a reorder (fused, no reset); further back is a discontinuity.
        max_gap_s: a forward step larger than this is a gap (reset); ``None`` disables.
        resync_threshold_s: a discontinuity whose stamp step differs from its receive-time step
            by more than this is a clock jump of that topic, re-synchronised by a correction.
        offset_window: messages whose ``receive - stamp`` offsets give the topic's baseline.
    """

    stamp_source: str = "header"
    backward_tolerance_s: float = 0.1
    max_gap_s: float | None = 1.0
    resync_threshold_s: float = 0.5
    offset_window: int = 16

    def __post_init__(self) -> None:
        if self.stamp_source not in STAMP_SOURCES:
            raise ValueError(f"stamp_source must be one of {STAMP_SOURCES}, got "
                             f"{self.stamp_source!r}")
        if self.backward_tolerance_s < 0:
            raise ValueError(f"backward_tolerance_s must be >= 0, got "
                             f"{self.backward_tolerance_s}")
        if self.max_gap_s is not None and not self.max_gap_s > 0:
            raise ValueError(f"max_gap_s must be > 0 or None, got {self.max_gap_s}")
        if not self.resync_threshold_s > 0:
            raise ValueError(f"resync_threshold_s must be > 0, got {self.resync_threshold_s}")
        if self.offset_window < 1:
            raise ValueError(f"offset_window must be >= 1, got {self.offset_window}")


@dataclass
class TimelineTopicStats:
    """Per-topic time accounting (plain counters, reported in summaries and diagnostics)."""

    unstamped: int = 0
    reordered: int = 0
    duplicates: int = 0
    time_backwards: int = 0
    clock_jumps: int = 0
    correction_ns: int = 0


@dataclass(frozen=True)
class StampPlacement:
    """Where one message sits in time.

    Attributes:
        source_ns: header stamp, or the receive time that replaced it.
        aligned_ns: ``source_ns`` + the topic's clock correction (pairing uses it).
        kind: ``"first"``, ``"ok"``, ``"reordered"``, ``"duplicate_stamp"`` (fused, no reset),
            ``"time_backwards"`` or ``"gap"`` (discontinuities; a forward jump of one topic is
            only reported here when its clock jumped -- a pause of the whole stream is the
            pairer's pair-level gap check).
        previous_ns: the newest earlier ``source_ns`` of the topic (``None`` for the first).
        resynced: a clock correction was applied (the topic's other messages stay pairable).
    """

    source_ns: int
    aligned_ns: int
    kind: PlacementKind
    previous_ns: int | None = None
    resynced: bool = False

    @property
    def discontinuity(self) -> bool:
        return self.kind in ("time_backwards", "gap")


@dataclass
class _TopicState:
    newest_ns: int | None = None
    correction_ns: int = 0
    offsets: deque[int] = field(default_factory=deque)


class StampTimeline:
    """Per-topic stamp policy (see the module docstring). Not thread-safe.

    Args:
        n_topics: number of inputs.
        cfg: the policy.
        topic_names: names used in :meth:`notes`.
    """

    def __init__(self, n_topics: int, cfg: TimelineConfig | None = None,
                 topic_names: Sequence[str] | None = None) -> None:
        self.cfg = cfg or TimelineConfig()
        self.n_topics = n_topics
        default_names = [f"topic{i}" for i in range(n_topics)]
        self.topic_names = list(topic_names) if topic_names else default_names
        self._tol_ns = round(self.cfg.backward_tolerance_s * 1e9)
        self._gap_ns = None if self.cfg.max_gap_s is None else round(self.cfg.max_gap_s * 1e9)
        self._resync_ns = round(self.cfg.resync_threshold_s * 1e9)
        self._state = [_TopicState(offsets=deque(maxlen=self.cfg.offset_window))
                       for _ in range(n_topics)]
        self.stats = [TimelineTopicStats() for _ in range(n_topics)]

    def reset(self, keep: int | None = None) -> None:
        """Forget the stamp history (newest stamps, offsets) of every topic but ``keep``.

        Corrections and counters stay (a correction describes a camera's clock, not the stream's
        content).
        """
        for i, st in enumerate(self._state):
            if i != keep:
                st.newest_ns = None
                st.offsets.clear()

    def newest_aligned(self, topic_index: int) -> int | None:
        """The newest stamp of a topic on the common timeline (``None``: none yet)."""
        st = self._state[topic_index]
        return None if st.newest_ns is None else st.newest_ns + st.correction_ns

    def source_stamp(self, topic_index: int, header_ns: int, receive_ns: int | None) -> int:
        """The stamp a message is known by under ``stamp_source`` (counts unstamped input)."""
        if self.cfg.stamp_source == "receive" and receive_ns is not None:
            return int(receive_ns)
        if header_ns == 0:
            self.stats[topic_index].unstamped += 1
            if receive_ns is not None:
                return int(receive_ns)
        return int(header_ns)

    def place(self, topic_index: int, header_ns: int,
              receive_ns: int | None = None) -> StampPlacement:
        """Place one message of ``topic_index``.

        Args:
            topic_index: which topic (0: RGB, 1: thermal).
            header_ns: header stamp, ns (0: unstamped).
            receive_ns: arrival time on a clock in the same domain as the header stamps (the
                node's clock; a bag's log time); ``None``: unknown (no re-synchronisation,
                unstamped input keeps its zero stamp).
        """
        st = self._state[topic_index]
        stats = self.stats[topic_index]
        src = self.source_stamp(topic_index, int(header_ns), receive_ns)
        prev = st.newest_ns
        kind: PlacementKind = "ok"
        resynced = False
        if prev is None:
            kind = "first"
        else:
            step = src - prev
            if step == 0:
                kind = "duplicate_stamp"
                stats.duplicates += 1
            elif -self._tol_ns <= step < 0:
                kind = "reordered"
                stats.reordered += 1
            elif step < -self._tol_ns:
                kind = "time_backwards"
                stats.time_backwards += 1
            elif self._gap_ns is not None and step > self._gap_ns and receive_ns is not None \
                    and st.offsets:
                # a forward gap: a real pause (receive time moved as much) or a clock jump
                kind = "gap" if self._offset_jump(st, src, receive_ns) else "ok"
            if kind in ("time_backwards", "gap") and receive_ns is not None and st.offsets:
                resynced = self._resync(st, src, receive_ns)
                if resynced:
                    stats.clock_jumps += 1
                stats.correction_ns = st.correction_ns
        if kind in ("time_backwards", "gap") and not resynced:
            st.offsets.clear()
        if kind not in ("reordered", "duplicate_stamp"):
            st.newest_ns = src
        if receive_ns is not None:
            st.offsets.append(int(receive_ns) - (src + st.correction_ns))
        return StampPlacement(src, src + st.correction_ns, kind, prev, resynced)

    def _offset_jump(self, st: _TopicState, src: int, receive_ns: int) -> bool:
        base = statistics.median(st.offsets)
        return abs((receive_ns - (src + st.correction_ns)) - base) > self._resync_ns

    def _resync(self, st: _TopicState, src: int, receive_ns: int) -> bool:
        """Correct the topic's clock so its ``receive - aligned`` offset stays at the baseline.

        Returns whether a correction was needed.
        """
        base = statistics.median(st.offsets)
        d = (receive_ns - (src + st.correction_ns)) - base
        if abs(d) <= self._resync_ns:
            return False
        st.correction_ns += round(d)
        st.offsets.clear()
        return True

    def notes(self) -> list[str]:
        """Standing problems with the inputs' stamps, for a diagnostics WARN (unstamped input).

        Clock jumps are events, counted in :meth:`summary`.
        """
        out = []
        for name, s in zip(self.topic_names, self.stats):
            if s.unstamped and self.cfg.stamp_source == "header":
                out.append(f"{name} publishes unstamped messages (header stamp 0, {s.unstamped} "
                           "so far): paired by receive time; set stamp_source to 'receive' "
                           "(or fix the driver's stamps)")
        return out

    def summary(self) -> dict[str, dict[str, int]]:
        """Per-topic counters as plain data."""
        return {name: {"unstamped": s.unstamped, "reordered": s.reordered,
                       "duplicates": s.duplicates, "time_backwards": s.time_backwards,
                       "clock_jumps": s.clock_jumps, "correction_ns": s.correction_ns}
                for name, s in zip(self.topic_names, self.stats)}
