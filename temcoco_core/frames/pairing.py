# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Approximate-time pairing of the RGB and thermal streams, with counters and time-jump events.

:class:`ApproximatePairer` reproduces the policy of ROS 2 ``message_filters``' Python
``ApproximateTimeSynchronizer`` (``queue_size``, ``slop``, header stamps) as a pure object, so the
node and the bag replay pair frames identically and the behaviour is testable without ROS:

* every topic keeps a queue of at most ``queue_size`` messages keyed by stamp; when it overflows
  the oldest stamp is evicted (counted as *dropped*);
* each new message looks, in every *other* queue, for messages whose stamp lies within ``slop``
  of its own, tries the candidate combinations closest-first, and emits the first whose stamps
  span less than ``slop``; the emitted messages leave their queues. At most one set is emitted
  per message, and older unmatched messages stay queued until evicted (as in
  ``message_filters``).

What ``message_filters`` lacks and this class adds (field pain points: silent drops, bag
loops, jittery hardware stamps and camera clocks that restart):

* per-topic counters: received, paired, dropped (evicted by queue overflow), unmatched (still
  queued when :meth:`flush`/:meth:`reset` discards them), and the time accounting of
  :class:`~temcoco_core.frames.timeline.StampTimeline` (unstamped, reordered, duplicates,
  clock jumps);
* a time policy (:mod:`temcoco_core.frames.timeline`): stamp jitter and single reorders are
  paired as usual, repeated stamps are paired and fused (counted, never dropped), unstamped
  (zero) messages are paired by receive time, and one camera's clock jumping is re-synchronised
  at once when receive times are given (``add(..., receive_ns=...)``);
* :class:`TimeEvent` s: ``"time_backwards"`` (a real discontinuity: the caller resets its
  temporal state; without a re-synchronisation the queues are cleared, since a message from
  before the jump must never pair with one after it), ``"gap"`` (two consecutive pairs more
  than ``max_gap_s`` apart, or one topic's clock jumping forward: reset), and the
  informational ``"duplicate_stamp"`` and ``"reordered"`` (no reset). Events whose ``reset``
  is true tell the caller to reset its temporal state (engine, thermal gain); the
  discontinuities of several topics that belong to one jump (a looped bag) are reported as one
  reset, with the first pair after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import itertools
from typing import Any, Literal

from temcoco_core.frames.timeline import STAMP_SOURCES, StampTimeline, TimelineConfig

__all__ = [
    "AddResult",
    "ApproximatePairer",
    "MatchedSet",
    "PairingConfig",
    "TimeEvent",
    "TopicCounters",
]

TimeEventKind = Literal["time_backwards", "duplicate_stamp", "reordered", "gap"]


@dataclass
class PairingConfig:
    """Approximate-time pairing parameters (``message_filters`` names).

    Attributes:
        queue_size: messages kept per topic while waiting for partners.
        slop: largest stamp spread of a matched set, seconds.
        max_gap_s: consecutive pairs further apart than this raise a ``"gap"`` event that
            resets temporal state; ``None`` disables.
        stamp_source: ``"header"`` (zero stamps use the receive time, counted) or
            ``"receive"`` (see :class:`~temcoco_core.frames.timeline.TimelineConfig`).
        backward_tolerance_s: stamps going back by at most this are jitter/reorders (no
            reset); further back is a discontinuity.
        resync_threshold_s: a jump whose stamp step disagrees with its receive-time step by
            more than this is one camera's clock jumping: re-synchronised.
    """

    queue_size: int = 10
    slop: float = 0.05
    max_gap_s: float | None = 1.0
    stamp_source: str = "header"
    backward_tolerance_s: float = 0.1
    resync_threshold_s: float = 0.5

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError(f"PairingConfig.queue_size must be >= 1, got {self.queue_size}")
        if not self.slop > 0:
            raise ValueError(f"PairingConfig.slop must be > 0 seconds, got {self.slop}")
        if self.max_gap_s is not None and not self.max_gap_s > 0:
            raise ValueError(f"PairingConfig.max_gap_s must be > 0 or None, got {self.max_gap_s}")
        if self.stamp_source not in STAMP_SOURCES:
            raise ValueError(f"PairingConfig.stamp_source must be one of {STAMP_SOURCES}, got "
                             f"{self.stamp_source!r}")
        self.timeline_config()

    def timeline_config(self) -> TimelineConfig:
        """The time policy part of this configuration."""
        return TimelineConfig(stamp_source=self.stamp_source,
                              backward_tolerance_s=self.backward_tolerance_s,
                              max_gap_s=self.max_gap_s,
                              resync_threshold_s=self.resync_threshold_s)


@dataclass
class TopicCounters:
    """Per-topic message accounting.

    After :meth:`ApproximatePairer.flush`, ``received == paired + dropped + unmatched``.
    """

    received: int = 0
    paired: int = 0
    dropped: int = 0
    unmatched: int = 0
    duplicates: int = 0
    time_backwards: int = 0
    reordered: int = 0

    @property
    def queued(self) -> int:
        return self.received - self.paired - self.dropped - self.unmatched


@dataclass(frozen=True)
class MatchedSet:
    """One synchronised set, in topic order.

    Attributes:
        stamps_ns: each topic's message stamp (header stamp, or the receive time that replaced
            an unstamped one): the output carries the first.
        payloads: each topic's payload as given to :meth:`ApproximatePairer.add`.
        aligned_ns: the stamps on the common timeline (after clock corrections); ``None``:
            the same as ``stamps_ns``.
    """

    stamps_ns: tuple[int, ...]
    payloads: tuple[Any, ...]
    aligned_ns: tuple[int, ...] | None = None

    @property
    def stamp_ns(self) -> int:
        """The stamp of the first topic's message (the reference, e.g. RGB)."""
        return self.stamps_ns[0]

    @property
    def skew_ns(self) -> int:
        return max(self.stamps_ns) - min(self.stamps_ns)


@dataclass(frozen=True)
class TimeEvent:
    """A discontinuity in the stream's time.

    Attributes:
        kind: ``"time_backwards"``, ``"gap"`` (discontinuities, ``reset`` true),
            ``"duplicate_stamp"`` or ``"reordered"`` (informational).
        topic_index: topic that showed it (``-1`` for ``"gap"``, a property of the pairs).
        stamp_ns: the new stamp.
        previous_ns: the stamp it is compared with.
        reset: the caller must reset temporal state (engine, thermal gain).
    """

    kind: TimeEventKind
    topic_index: int
    stamp_ns: int
    previous_ns: int
    reset: bool


@dataclass
class AddResult:
    """What one :meth:`ApproximatePairer.add` produced: events come before the pair in time."""

    pair: MatchedSet | None = None
    events: list[TimeEvent] = field(default_factory=list)

    @property
    def reset(self) -> bool:
        return any(e.reset for e in self.events)


class ApproximatePairer:
    """``message_filters.ApproximateTimeSynchronizer`` as a pure, counted state machine.

    Not thread-safe: the caller serialises :meth:`add` (the node calls it under its lock).

    Args:
        n_topics: number of synchronised inputs (2: RGB, thermal).
        cfg: queue size, slop, gap threshold.
        topic_names: names for messages and diagnostics.
    """

    def __init__(self, n_topics: int = 2, cfg: PairingConfig | None = None,
                 topic_names: Sequence[str] | None = None) -> None:
        if n_topics < 2:
            raise ValueError(f"ApproximatePairer needs at least 2 topics, got {n_topics}")
        self.cfg = cfg or PairingConfig()
        self.n_topics = n_topics
        default_names = [f"topic{i}" for i in range(n_topics)]
        self.topic_names = list(topic_names) if topic_names else default_names
        if len(self.topic_names) != n_topics:
            raise ValueError(f"{len(self.topic_names)} topic names for {n_topics} topics")
        self._slop_ns = round(self.cfg.slop * 1e9)
        self.timeline = StampTimeline(n_topics, self.cfg.timeline_config(), self.topic_names)
        # per topic: (aligned stamp, arrival sequence) -> (source stamp, payload)
        self._queues: list[dict[tuple[int, int], tuple[int, Any]]] = [
            {} for _ in range(n_topics)]
        self._seq = 0
        self._last_pair_ns: int | None = None
        self._pending: TimeEvent | None = None
        self.counters = [TopicCounters() for _ in range(n_topics)]
        self.pairs = 0
        self.events: dict[str, int] = {"time_backwards": 0, "gap": 0, "duplicate_stamp": 0,
                                       "reordered": 0}

    # ------------------------------------------------------------------ public API
    def add(self, topic_index: int, stamp_ns: int, payload: Any,
            receive_ns: int | None = None) -> AddResult:
        """Offer one message.

        Args:
            topic_index: ``0 <= topic_index < n_topics``.
            stamp_ns: header stamp in nanoseconds (0: unstamped).
            payload: anything (message, decoded frame); returned inside the pair.
            receive_ns: arrival time on a clock of the header stamps' domain (node clock, bag
                log time); enables receive-time stamps and clock re-synchronisation.

        Returns:
            :class:`AddResult` with the emitted pair (or ``None``) and the time events.
        """
        if not 0 <= topic_index < self.n_topics:
            raise IndexError(f"topic_index {topic_index} out of range (n_topics={self.n_topics})")
        res = AddResult()
        cnt = self.counters[topic_index]
        cnt.received += 1
        place = self.timeline.place(topic_index, int(stamp_ns), receive_ns)
        prev = place.previous_ns if place.previous_ns is not None else place.source_ns
        if place.kind in ("duplicate_stamp", "reordered"):
            if place.kind == "duplicate_stamp":
                cnt.duplicates += 1
            else:
                cnt.reordered += 1
            self.events[place.kind] += 1
            res.events.append(TimeEvent(place.kind, topic_index, place.source_ns, prev, False))
        elif place.discontinuity:
            if place.kind == "time_backwards":
                cnt.time_backwards += 1
            event = TimeEvent(place.kind, topic_index, place.source_ns, prev, True)
            if place.resynced:
                # re-synchronised: the queues stay pairable; one reset with the next pair
                if self._pending is None:
                    self._pending = event
                    self.events[place.kind] += 1
            else:
                self.events[place.kind] += 1
                res.events.append(event)
                self._discard_queues()
                self.timeline.reset(keep=topic_index)
                self._last_pair_ns = None
                self._pending = None

        queue = self._queues[topic_index]
        key = (place.aligned_ns, self._seq)
        queue[key] = (place.source_ns, payload)
        self._seq += 1
        while len(queue) > self.cfg.queue_size:
            del queue[min(queue)]
            cnt.dropped += 1

        pair = self._match(topic_index, key) if key in queue else None
        if pair is not None:
            self.pairs += 1
            assert pair.aligned_ns is not None
            ref = pair.aligned_ns[0]
            gap = self.cfg.max_gap_s
            if self._pending is not None:
                res.events.append(self._pending)
                self._pending = None
            elif (gap is not None and self._last_pair_ns is not None
                    and ref - self._last_pair_ns > gap * 1e9):
                self.events["gap"] += 1
                res.events.append(TimeEvent("gap", -1, pair.stamp_ns, self._last_pair_ns, True))
            if self._last_pair_ns is None or ref > self._last_pair_ns:
                self._last_pair_ns = ref
            res.pair = pair
        return res

    def flush(self) -> int:
        """End of stream: count what is still queued as unmatched, clear, return the count."""
        return self._discard_queues()

    def reset(self) -> None:
        """Clear queues (queued messages count as unmatched) and time history.

        Keep counters (and clock corrections).
        """
        self._discard_queues()
        self.timeline.reset()
        self._last_pair_ns = None
        self._pending = None

    def notes(self) -> list[str]:
        """Problems with the inputs' stamps, for diagnostics (unstamped input, clock jumps)."""
        return self.timeline.notes()

    def summary(self) -> dict[str, Any]:
        """Counters as plain data: ``{"pairs", "events", "topics": {name: {...}}, "notes"}``."""
        time_stats = self.timeline.summary()
        return {
            "pairs": self.pairs,
            "events": dict(self.events),
            "topics": {
                name: {
                    "received": c.received,
                    "paired": c.paired,
                    "dropped": c.dropped,
                    "unmatched": c.unmatched,
                    "queued": c.queued,
                    "duplicates": c.duplicates,
                    "time_backwards": c.time_backwards,
                    "reordered": c.reordered,
                    "unstamped": time_stats[name]["unstamped"],
                    "clock_jumps": time_stats[name]["clock_jumps"],
                }
                for name, c in zip(self.topic_names, self.counters)
            },
            "notes": self.notes(),
        }

    # ------------------------------------------------------------------ internals
    def _discard_queues(self) -> int:
        n = 0
        for q, c in zip(self._queues, self.counters):
            c.unmatched += len(q)
            n += len(q)
            q.clear()
        return n

    def _match(self, my_index: int, mine: tuple[int, int]) -> MatchedSet | None:
        slop = self._slop_ns
        aligned_ns = mine[0]
        candidates: list[list[tuple[int, int]]] = []
        for i, q in enumerate(self._queues):
            if i == my_index:
                continue
            near = sorted((abs(k[0] - aligned_ns), k) for k in q if abs(k[0] - aligned_ns) <= slop)
            if not near:
                return None
            candidates.append([k for _, k in near])
        for combo in itertools.product(*candidates):
            keys = list(combo)
            keys.insert(my_index, mine)
            aligned = [k[0] for k in keys]
            if max(aligned) - min(aligned) < slop:
                entries = [q.pop(k) for q, k in zip(self._queues, keys)]
                for c in self.counters:
                    c.paired += 1
                return MatchedSet(tuple(e[0] for e in entries), tuple(e[1] for e in entries),
                                  tuple(aligned))
        return None
