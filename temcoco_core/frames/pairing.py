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

What ``message_filters`` lacks and this class adds (field pain points: silent drops and bag
loops stalling the synchroniser):

* per-topic counters: received, paired, dropped (evicted by overflow or a repeated stamp),
  unmatched (still queued when :meth:`flush`/:meth:`reset` discards them);
* :class:`TimeEvent` s: ``"time_backwards"`` (a topic's stamp went back, e.g. a looped bag:
  queues are cleared, since a message from before the jump must never pair with one after it),
  ``"duplicate_stamp"`` (a topic repeated a stamp: the repeat is dropped, as the dict in
  ``message_filters`` would overwrite it) and ``"gap"`` (two consecutive emitted pairs more than
  ``max_gap_s`` apart). Events whose ``reset`` is true tell the caller to reset its temporal
  state (engine, thermal gain).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AddResult",
    "ApproximatePairer",
    "MatchedSet",
    "PairingConfig",
    "TimeEvent",
    "TopicCounters",
]

TimeEventKind = Literal["time_backwards", "duplicate_stamp", "gap"]


@dataclass
class PairingConfig:
    """Approximate-time pairing parameters (``message_filters`` names).

    Attributes:
        queue_size: messages kept per topic while waiting for partners.
        slop: largest stamp spread of a matched set, seconds.
        max_gap_s: consecutive pairs further apart than this raise a ``"gap"`` event that
            resets temporal state; ``None`` disables.
    """

    queue_size: int = 10
    slop: float = 0.05
    max_gap_s: float | None = 1.0

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError(f"PairingConfig.queue_size must be >= 1, got {self.queue_size}")
        if not self.slop > 0:
            raise ValueError(f"PairingConfig.slop must be > 0 seconds, got {self.slop}")
        if self.max_gap_s is not None and not self.max_gap_s > 0:
            raise ValueError(f"PairingConfig.max_gap_s must be > 0 or None, got {self.max_gap_s}")


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

    @property
    def queued(self) -> int:
        return self.received - self.paired - self.dropped - self.unmatched


@dataclass(frozen=True)
class MatchedSet:
    """One synchronised set, in topic order.

    Attributes:
        stamps_ns: header stamp of each topic's message.
        payloads: each topic's payload as given to :meth:`ApproximatePairer.add`.
    """

    stamps_ns: tuple[int, ...]
    payloads: tuple[Any, ...]

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
        kind: ``"time_backwards"``, ``"duplicate_stamp"`` or ``"gap"``.
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
        self.topic_names = list(topic_names) if topic_names else [f"topic{i}"
                                                                   for i in range(n_topics)]
        if len(self.topic_names) != n_topics:
            raise ValueError(f"{len(self.topic_names)} topic names for {n_topics} topics")
        self._slop_ns = round(self.cfg.slop * 1e9)
        self._queues: list[dict[int, Any]] = [{} for _ in range(n_topics)]
        self._last_stamp: list[int | None] = [None] * n_topics
        self._last_pair_ns: int | None = None
        self.counters = [TopicCounters() for _ in range(n_topics)]
        self.pairs = 0
        self.events: dict[str, int] = {"time_backwards": 0, "duplicate_stamp": 0, "gap": 0}

    # ------------------------------------------------------------------ public API
    def add(self, topic_index: int, stamp_ns: int, payload: Any) -> AddResult:
        """Offer one message.

        Args:
            topic_index: ``0 <= topic_index < n_topics``.
            stamp_ns: header stamp in nanoseconds.
            payload: anything (message, decoded frame); returned inside the pair.

        Returns:
            :class:`AddResult` with the emitted pair (or ``None``) and the time events.
        """
        if not 0 <= topic_index < self.n_topics:
            raise IndexError(f"topic_index {topic_index} out of range (n_topics={self.n_topics})")
        stamp_ns = int(stamp_ns)
        res = AddResult()
        cnt = self.counters[topic_index]
        cnt.received += 1
        last = self._last_stamp[topic_index]
        if last is not None and stamp_ns == last:
            cnt.duplicates += 1
            cnt.dropped += 1
            self.events["duplicate_stamp"] += 1
            res.events.append(TimeEvent("duplicate_stamp", topic_index, stamp_ns, last, False))
            return res
        if last is not None and stamp_ns < last:
            cnt.time_backwards += 1
            self.events["time_backwards"] += 1
            res.events.append(TimeEvent("time_backwards", topic_index, stamp_ns, last, True))
            self._discard_queues()
            self._last_stamp = [None] * self.n_topics
            self._last_pair_ns = None
        self._last_stamp[topic_index] = stamp_ns

        queue = self._queues[topic_index]
        queue[stamp_ns] = payload
        while len(queue) > self.cfg.queue_size:
            del queue[min(queue)]
            cnt.dropped += 1

        pair = self._match(topic_index, stamp_ns)
        if pair is not None:
            self.pairs += 1
            ref = pair.stamp_ns
            gap = self.cfg.max_gap_s
            if (gap is not None and self._last_pair_ns is not None
                    and ref - self._last_pair_ns > gap * 1e9):
                self.events["gap"] += 1
                res.events.append(TimeEvent("gap", -1, ref, self._last_pair_ns, True))
            self._last_pair_ns = ref
            res.pair = pair
        return res

    def flush(self) -> int:
        """End of stream: count what is still queued as unmatched and clear; returns that
        number."""
        return self._discard_queues()

    def reset(self) -> None:
        """Clear queues (queued messages count as unmatched) and time history; keep counters."""
        self._discard_queues()
        self._last_stamp = [None] * self.n_topics
        self._last_pair_ns = None

    def summary(self) -> dict[str, Any]:
        """Counters as plain data: ``{"pairs", "events", "topics": {name: {...}}}``."""
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
                }
                for name, c in zip(self.topic_names, self.counters)
            },
        }

    # ------------------------------------------------------------------ internals
    def _discard_queues(self) -> int:
        n = 0
        for q, c in zip(self._queues, self.counters):
            c.unmatched += len(q)
            n += len(q)
            q.clear()
        return n

    def _match(self, my_index: int, stamp_ns: int) -> MatchedSet | None:
        slop = self._slop_ns
        candidates: list[list[int]] = []
        for i, q in enumerate(self._queues):
            if i == my_index:
                continue
            near = sorted((abs(s - stamp_ns), s) for s in q if abs(s - stamp_ns) <= slop)
            if not near:
                return None
            candidates.append([s for _, s in near])
        for combo in itertools.product(*candidates):
            stamps = list(combo)
            stamps.insert(my_index, stamp_ns)
            if max(stamps) - min(stamps) < slop:
                payloads = tuple(q.pop(s) for q, s in zip(self._queues, stamps))
                for c in self.counters:
                    c.paired += 1
                return MatchedSet(tuple(stamps), payloads)
        return None
