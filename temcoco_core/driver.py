# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Source → pipeline → sinks: the one loop of every offline front end.

``temcoco replay`` (bag messages), ``temcoco fuse`` (video frame pairs), ``temcoco demo`` and the
pipeline benchmark (in-memory messages) all run :func:`run_pipeline`; only their source and
sinks differ::

    source items ──► FusionPipeline ──► sinks(frame, time_ns)
    (MessageItem:     add_message        (bag writer, video writer, preview, PNG frames,
     pairing+decode;  / fuse_frames       metric means …)
     FrameInput:
     decoded pair)

A bad item -- a message that does not deserialise or decode, a non-finite or absurd frame, a
frame pair that does not fit -- is counted by kind, logged (throttled) and skipped, and the run
goes on (``on_error="skip"``, the default); :attr:`RunStats.skipped_by_kind` and
:attr:`RunStats.errors` say what was skipped and why. ``on_error="stop"`` raises the first
such error instead, naming the input. At the end of the source the pipeline is finished (a clip
engine hands over the frames it still owes) unless ``max_frames`` stopped the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
import logging
import math
import time
from typing import Any

from temcoco_core.frames.decoder import FrameInput
from temcoco_core.frames.preprocess import CorruptMessageError, FrameError
from temcoco_core.pipeline import FusedFrame, FusionPipeline

__all__ = ["ON_ERROR", "MessageItem", "MetricMeans", "RunStats", "Sink", "run_pipeline"]

#: What a bad item does to a run: ``"skip"`` (count, log, go on) or ``"stop"`` (raise).
ON_ERROR = ("skip", "stop")

log = logging.getLogger(__name__)

#: ``sink(frame, time_ns)``: ``time_ns`` is the source time of the item that completed the frame
#: (a bag's log time; a video's frame time).
Sink = Callable[[FusedFrame, int], None]


@dataclass
class MessageItem:
    """One image message of input ``topic_index`` (0: RGB, 1: thermal).

    Attributes:
        stamp_ns: header stamp.
        time_ns: source time (a bag's log time) handed to the sinks.
        label: names the input in error messages (e.g. the topic).
        error: the message could not be deserialised (``msg`` is ``None``): why.
        receive_ns: arrival time on the header stamps' clock (a bag's log time) for the time
            policy (unstamped input, clock re-synchronisation); ``None``: unknown.
    """

    topic_index: int
    stamp_ns: int
    msg: Any
    time_ns: int = 0
    label: str = ""
    error: str = ""
    receive_ns: int | None = None


class MetricMeans:
    """Running means of the per-frame metric values (NaNs skipped); usable as a sink."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def __call__(self, frame: FusedFrame, time_ns: int = 0) -> None:
        self.add(frame.metrics)

    def add(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            if v is not None and not math.isnan(v):
                self.sums[k] = self.sums.get(k, 0.0) + float(v)
                self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in sorted(self.sums)}


@dataclass
class RunStats:
    """What :func:`run_pipeline` did."""

    items: int = 0
    frames: int = 0
    skipped: int = 0
    stopped: bool = False
    last_time_ns: int = 0
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    skipped_by_kind: dict[str, int] = field(default_factory=dict)

    def skip_summary(self) -> dict[str, Any]:
        """What was skipped and why: ``{"total", "by_kind", "first_errors"}``."""
        return {"total": self.skipped, "by_kind": dict(self.skipped_by_kind),
                "first_errors": self.errors[:5]}


def run_pipeline(pipeline: FusionPipeline, source: Iterable[MessageItem | FrameInput],
                 sinks: Sequence[Sink], *, max_frames: int | None = None,
                 on_item: Callable[[MessageItem | FrameInput, RunStats], None] | None = None,
                 where: str = "", on_error: str = "skip") -> RunStats:
    """Feed every item of ``source`` through ``pipeline`` and every fused frame to ``sinks``.

    Args:
        source: :class:`MessageItem` s (paired and decoded by the pipeline) or
            :class:`~temcoco_core.frames.decoder.FrameInput` s (decoded pairs; their
            ``stamp_ns`` is the sinks' time).
        sinks: called in order with ``(frame, time_ns)``.
        max_frames: stop after this many fused frames (the pipeline is then not finished).
        on_item: called after each item (progress bars).
        where: names the source in error messages.
        on_error: ``"skip"`` bad items (counted) or ``"stop"`` at the first one.

    Returns:
        Counters; ``stats.wall_s`` excludes nothing (source reading included).

    Raises:
        FrameError: ``on_error="stop"`` and an item is unusable.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    stats = RunStats()
    t0 = time.perf_counter()

    def emit(frames: list[FusedFrame], time_ns: int) -> None:
        for frame in frames:
            for sink in sinks:
                sink(frame, time_ns)
            stats.frames += 1

    try:
        for item in source:
            stats.items += 1
            if isinstance(item, MessageItem):
                stats.last_time_ns = item.time_ns
                try:
                    if item.error:  # names the topic and the record
                        exc = CorruptMessageError(item.error)
                        pipeline.record_failure(exc)
                        raise exc
                    outs = pipeline.add_message(item.topic_index, item.stamp_ns, item.msg,
                                                item.receive_ns)
                except FrameError as exc:  # the errors name the topic
                    outs = _skip(stats, exc, where, "", on_error)
            else:
                stats.last_time_ns = item.stamp_ns
                try:
                    outs = pipeline.fuse_frames(item)
                except FrameError as exc:
                    outs = _skip(stats, exc, where, "frame pair", on_error)
            emit(outs, stats.last_time_ns)
            if on_item is not None:
                on_item(item, stats)
            if max_frames is not None and stats.frames >= max_frames:
                stats.stopped = True
                break
        if not stats.stopped:
            emit(pipeline.finish(), stats.last_time_ns)
    finally:
        stats.wall_s = time.perf_counter() - t0
    return stats


def _skip(stats: RunStats, exc: FrameError, where: str, label: str,
          on_error: str) -> list[FusedFrame]:
    """Count a bad item (the pipeline has counted and logged it) or raise it (``stop``)."""
    prefix = ": ".join(p for p in (where, label) if p)
    text = f"{prefix}: {exc}" if prefix else str(exc)
    if on_error == "stop":
        raise type(exc)(text) from exc
    stats.skipped += 1
    kind = getattr(exc, "kind", "bad_frame")
    stats.skipped_by_kind[kind] = stats.skipped_by_kind.get(kind, 0) + 1
    if len(stats.errors) < 100:
        stats.errors.append(text)
    return []
