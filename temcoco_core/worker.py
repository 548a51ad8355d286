# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The fusion node's behaviour without ROS: latest-wins queueing, the worker step, diagnostics.

The ROS 2 node (``temcoco_ros/fusion_node.py``) only carries messages; everything it decides
lives here and is tested without ROS::

    subscription callbacks                     worker thread
    ──────────────────────                     ─────────────
    FusionWorker.offer(topic, stamp, msg)      FusionWorker.step()
      pair (ApproximatePairer: raw             apply pending resets
      messages, time policy)       ──► LatestQueue(depth) ──►  decode (FrameDecoder, size cap)
      enqueue; the oldest pair is                                FusionPipeline.fuse_frames
      dropped when full (counted)                                 (thermal gain, registration,
                                                                  engine, metrics)
                                                 publish(FusedFrame) → record_publish(latency)

The callbacks never decode and never run inference (a 10000x10000 or corrupt image cannot block
them), so a synchroniser's lock is never held during either, and a slow engine drops pairs
(counted in :attr:`LatestQueue.dropped`) instead of letting latency or memory grow. Every
frame that fails (decode error, too large, non-finite, size mismatch, inference error) is
counted by kind and named in the ``output liveness`` status
(:class:`~temcoco_core.health.LivenessMonitor`), which goes WARN within seconds when inputs
arrive but nothing is published. :meth:`FusionWorker.statuses` gives the ``/diagnostics``
values: input silence per topic, pairing counters, output liveness, output rate and latency,
queue drops, inference time, header stamp → publish latency p50/p99 and the online
temporal-consistency values with WARN/ERROR levels from thresholds.

Message decoding lives in :mod:`temcoco_core.frames.decoder`, the monitors in
:mod:`temcoco_core.diagnostics.monitors` and engine building in
:mod:`temcoco_core.engine.factory`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
import logging
import math
import threading
import time
from typing import Any, Generic, TypeVar

import torch

from temcoco_core.diagnostics import (
    DiagnosticLevel,
    LatencyStats,
    RateMeter,
    StatusValue,
)
from temcoco_core.diagnostics.monitors import (
    StampLatency,
    TemporalMonitor,
    ThreadSafeDiagnostics,
    TopicWatchdog,
)
from temcoco_core.diagnostics.updater import (
    FrequencyStatusParam,
    TimeStampStatusParam,
    TopicStatus,
)
from temcoco_core.engine.factory import EngineInfo
from temcoco_core.frames.decoder import FrameDecoder, FrameInput, pair_to_frame
from temcoco_core.frames.image_msg import check_message_size
from temcoco_core.frames.pairing import MatchedSet
from temcoco_core.frames.preprocess import FrameError
from temcoco_core.health import failure_kind, LivenessConfig, LivenessMonitor
from temcoco_core.node_config import MetricThreshold, NodeConfig
from temcoco_core.pipeline import Engine, FusedFrame, FusionPipeline, with_stamp_notes

__all__ = [
    "FusionWorker",
    "LatestQueue",
    "StepResult",
    "WorkItem",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


# ---------------------------------------------------------------------------------- queue


class LatestQueue(Generic[T]):
    """Bounded, thread-safe FIFO where the newest item always gets in (latest wins).

    ``put`` on a full queue evicts the oldest item and counts it in :attr:`dropped`; items are
    never refused and the queue never holds more than ``depth``. With ``depth=1`` the consumer
    always gets the freshest item (Isaac ROS' and ``camera_calibration``'s policy).

    Counters: ``put_count`` (items offered), ``taken`` (items returned by :meth:`get`),
    ``dropped`` (evicted by newer items), ``discarded`` (removed by :meth:`clear`) and
    ``high_water`` (largest length seen). ``put_count == taken + dropped + discarded + len``.
    """

    def __init__(self, depth: int = 1) -> None:
        if depth < 1:
            raise ValueError(f"LatestQueue depth must be >= 1, got {depth}")
        self.depth = depth
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.put_count = 0
        self.taken = 0
        self.dropped = 0
        self.discarded = 0
        self.high_water = 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> T | None:
        """Append ``item``; returns the evicted oldest item when the queue was full."""
        with self._cond:
            self.put_count += 1
            evicted = None
            if len(self._items) >= self.depth:
                evicted = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify()
            return evicted

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, waiting up to ``timeout`` seconds.

        With ``timeout=None`` it waits until one arrives or the queue is closed. Returns ``None``
        on timeout or when closed and empty.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if not self._items:
                return None
            self.taken += 1
            return self._items.popleft()

    def clear(self) -> int:
        """Remove everything (counted in :attr:`discarded`); returns how many items."""
        with self._cond:
            n = len(self._items)
            self._items.clear()
            self.discarded += n
            return n

    def close(self) -> None:
        """Wake every waiting :meth:`get`; later gets return what is left, then ``None``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False


class _DetachedEngine:
    """Stands in for a released engine (lifecycle inactive)."""

    def push(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor | None:
        raise RuntimeError("the fusion engine is released (node inactive)")

    def reset(self) -> None:
        pass


# ---------------------------------------------------------------------------------- worker


@dataclass
class WorkItem:
    """One matched pair of raw messages waiting for the worker (decoded there).

    ``seq`` numbers pairs in arrival order.
    """

    seq: int
    pair: MatchedSet


@dataclass
class StepResult:
    """What one :meth:`FusionWorker.step` did.

    Attributes:
        outputs: fused frames that became ready (0 while a clip fills, else 1).
        seq: arrival number of the processed pair.
        waited: pairs that arrived after this one before its processing ended (the latency of
            this pair counted in frames; bounded by ``queue_depth`` plus the pairs that arrive
            during one inference).
        inference_ms: time in the pipeline (thermal, engine, metrics).
        error: the frame's error message, or ``""``.
    """

    outputs: list[FusedFrame]
    seq: int
    waited: int
    inference_ms: float
    error: str = ""


class FusionWorker:
    """Pairs, decodes, queues (latest wins) and fuses, with the node's diagnostics.

    Thread model: :meth:`offer` / :meth:`offer_pair` / :meth:`count_input` from the
    subscription callbacks (serialised by the caller or by this object's lock), :meth:`step`
    from one worker thread (:meth:`start`), :meth:`statuses` from a timer, and
    :meth:`request_reset` from anywhere (clock jump callbacks).

    Args:
        pipeline: the core pipeline (its diagnostics are made thread-safe).
        queue_depth: latest-wins queue depth between callbacks and worker.
        decoder: message conversion (default: core only).
        topic_names: display names of the RGB and thermal inputs (resolved topic names).
        topic_timeout_s: silence after which the inputs status WARNs.
        thresholds, metrics_window: online metric levels (:class:`TemporalMonitor`).
        latency_warn_ms, latency_error_ms: p99 header → publish levels (0 disables).
        info: constant key/values for the worker status (backend, precision, conversion…).
        synchronizer: ``"core"`` (:meth:`offer`) or ``"message_filters"`` (:meth:`offer_pair`).
        clock: monotonic clock for silence and stall detection.
        liveness: expected output rate and stall thresholds of the ``output liveness``
            status.
    """

    def __init__(self, pipeline: FusionPipeline, *, queue_depth: int = 1,
                 decoder: FrameDecoder | None = None,
                 topic_names: Sequence[str] | None = None, topic_timeout_s: float = 2.0,
                 thresholds: Sequence[MetricThreshold] = (), metrics_window: int = 30,
                 latency_warn_ms: float = 0.0, latency_error_ms: float = 0.0,
                 info: Mapping[str, str] | None = None, synchronizer: str = "core",
                 clock: Callable[[], float] = time.monotonic,
                 liveness: LivenessConfig | None = None) -> None:
        if synchronizer not in ("core", "message_filters"):
            raise ValueError(f"synchronizer must be core or message_filters, got "
                             f"{synchronizer!r}")
        self.pipeline = pipeline
        pipeline.diagnostics = ThreadSafeDiagnostics.wrap(pipeline.diagnostics)
        self.diagnostics: ThreadSafeDiagnostics = pipeline.diagnostics  # type: ignore[assignment]
        self.queue: LatestQueue[WorkItem] = LatestQueue(queue_depth)
        self.decoder = decoder or FrameDecoder(None, "")
        self.topic_names = list(topic_names or pipeline.topic_names)
        if len(self.topic_names) != 2:
            raise ValueError(f"need two topic names (RGB, thermal), got {self.topic_names}")
        self.watchdog = TopicWatchdog(self.topic_names, topic_timeout_s, clock)
        self.liveness = LivenessMonitor(liveness, clock, failures=pipeline.failures)
        self.monitor = TemporalMonitor(thresholds, metrics_window) if thresholds else None
        self.latency = StampLatency()
        self.latency_warn_ms = latency_warn_ms
        self.latency_error_ms = latency_error_ms
        self.info = dict(info or {})
        #: the engine's description, backend, precision and device (read at every status)
        self.engine_info: EngineInfo | None = None
        self.synchronizer = synchronizer
        self.inference = LatencyStats()
        self.waited = LatencyStats()
        self.pair_rate = RateMeter()
        self._lock = threading.RLock()
        self._pending_resets: list[str] = []
        self._seq = 0
        self._mf_counts = [[0, 0] for _ in range(2)]  # message_filters: [received, paired]
        self._mf_last: list[int | None] = [None, None]
        self._mf_events: dict[str, int] = {}
        self._qos_incompatible: dict[tuple[str, str], int] = {}
        #: frequency and stamp checks of the published output (``from_config(output_topic=)``)
        self.output_status: TopicStatus | None = None
        self.processed = 0
        self.decode_failures = 0
        self.frame_failures = 0
        self.engine_errors = 0
        self.publish_errors = 0
        self.last_error = ""
        self._last_step_failed = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def from_config(cls, cfg: NodeConfig, engine: Engine, info: EngineInfo | None = None, *,
                    decoder: FrameDecoder | None = None,
                    topic_names: Sequence[str] | None = None, name: str = "temcoco_fusion",
                    hardware_id: str = "", clock: Callable[[], float] = time.monotonic,
                    output_topic: str | None = None) -> FusionWorker:
        """The worker the node runs for ``cfg`` (pipeline, metrics, thresholds, diagnostics).

        ``name`` prefixes the status names (``"<name>: <task>"``, diagnostic_updater's
        convention); with ``output_topic`` the statuses include that topic's frequency and
        timestamp checks (``"<name>: <topic> topic status"``, bounds from ``min_rate_hz``,
        ``max_rate_hz``, ``rate_tolerance``, ``rate_window``, ``max_stamp_delay``).
        """
        diag = ThreadSafeDiagnostics(name=name, hardware_id=hardware_id,
                                     min_rate_hz=cfg.min_rate_hz or None,
                                     max_drop_ratio=cfg.drop_warn_ratio)
        info = info or EngineInfo("custom")
        pipeline = FusionPipeline.from_settings(cfg, engine, topic_names, diag, info)
        names = pipeline.topic_names
        dec = decoder or FrameDecoder(None, "")
        worker = cls(pipeline, queue_depth=cfg.queue_depth, decoder=dec, topic_names=names,
                     topic_timeout_s=cfg.topic_timeout, thresholds=cfg.metric_thresholds(),
                     metrics_window=cfg.metrics_window, latency_warn_ms=cfg.latency_warn_ms,
                     latency_error_ms=cfg.latency_error_ms,
                     info={"synchronizer": cfg.synchronizer}, synchronizer=cfg.synchronizer,
                     clock=clock, liveness=cfg.liveness_config())
        worker.engine_info = info
        if output_topic is not None:
            worker.output_status = TopicStatus(
                output_topic,
                FrequencyStatusParam(min_hz=cfg.min_rate_hz, max_hz=cfg.max_rate_hz or None,
                                     tolerance=cfg.rate_tolerance, window_size=cfg.rate_window),
                TimeStampStatusParam(max_acceptable=cfg.max_stamp_delay), clock=clock)
        return worker

    # ------------------------------------------------------------------ callbacks side
    def offer(self, topic_index: int, stamp_ns: int, msg: Any,
              receive_ns: int | None = None) -> bool:
        """One input message (``synchronizer=core``).

        Pair it and enqueue a completed pair of raw messages. Cheap: no decoding, no inference.
        Returns whether a pair was enqueued.

        ``receive_ns``: arrival time on the node's clock (the header stamps' domain): pairs
        unstamped input by receive time and re-synchronises a camera whose clock restarts.
        """
        with self._lock:
            self.watchdog.seen(self.topic_names[topic_index])
            self.liveness.input()
            res = self.pipeline.offer(topic_index, stamp_ns, msg, receive_ns)
            resets = [e.kind for e in res.events if e.reset]
            if resets:
                self._reset_locked(resets)
            if res.pair is None:
                return False
            return self._enqueue_locked(res.pair)

    def count_input(self, topic_index: int, stamp_ns: int) -> bool:
        """One input message seen by a ``message_filters`` synchroniser.

        Rates, silence, and time-jump detection. Returns ``True`` when this topic's stamp went
        backwards: the temporal state is being reset and the caller must clear its synchroniser's
        queues.
        """
        with self._lock:
            topic = self.topic_names[topic_index]
            self.watchdog.seen(topic)
            self.liveness.input()
            self.diagnostics.input(topic, stamp_ns)
            self._mf_counts[topic_index][0] += 1
            last = self._mf_last[topic_index]
            tolerance = round(self.pipeline.cfg.pairing.backward_tolerance_s * 1e9)
            if last is not None and stamp_ns >= last - tolerance:  # jitter, one reorder
                self._mf_last[topic_index] = max(last, stamp_ns)
                return False
            self._mf_last[topic_index] = stamp_ns
            if last is not None:
                self._mf_events["time_backwards"] = self._mf_events.get("time_backwards", 0) + 1
                self._mf_last = [None, None]
                self._reset_locked(["time_backwards"])
                return True
            return False

    def offer_pair(self, rgb_msg: Any, thermal_msg: Any, rgb_stamp_ns: int,
                   thermal_stamp_ns: int) -> bool:
        """A pair matched by an external synchroniser (``synchronizer=message_filters``)."""
        t = time.perf_counter()
        pair = MatchedSet((int(rgb_stamp_ns), int(thermal_stamp_ns)),
                          ((rgb_msg, t), (thermal_msg, t)))
        with self._lock:
            for c in self._mf_counts:
                c[1] += 1
            return self._enqueue_locked(pair)

    def set_engine(self, engine: Engine | None, info: EngineInfo | str | None = None) -> None:
        """Swap the engine (lifecycle activate after a release).

        ``None`` detaches it so that its memory can be freed. ``info`` describes the new engine.
        Call only while the worker thread is stopped. The temporal state restarts with the next
        frame.
        """
        self.pipeline.engine = engine if engine is not None else _DetachedEngine()
        if isinstance(info, EngineInfo):
            self.engine_info = info
        if info:
            self.pipeline.engine_description = info
        self.request_reset("engine_changed")

    def report_qos_incompatible(self, topic_index: int, policy: str) -> None:
        """Count a publisher whose QoS this input cannot match.

        A publisher on this input has a QoS the subscription cannot match (the input status WARNs,
        naming the topic and the policy).
        """
        with self._lock:
            key = (self.topic_names[topic_index], policy)
            self._qos_incompatible[key] = self._qos_incompatible.get(key, 0) + 1

    def clear_qos_incompatible(self, topic_index: int) -> None:
        """No publisher with an incompatible QoS is left on this input: its WARN clears."""
        with self._lock:
            topic = self.topic_names[topic_index]
            for key in [k for k in self._qos_incompatible if k[0] == topic]:
                del self._qos_incompatible[key]

    def request_reset(self, reason: str) -> None:
        """Reset the temporal state before the next frame (e.g. the ROS clock jumped back).

        Queued pairs and half-paired messages are discarded.
        """
        with self._lock:
            self.pipeline.pairer.reset()
            self._reset_locked([reason])

    def _reset_locked(self, reasons: Iterable[str]) -> None:
        self.queue.clear()
        self._pending_resets.extend(reasons)

    def _enqueue_locked(self, pair: MatchedSet) -> bool:
        self.pair_rate.tick(pair.stamps_ns[0])
        self.queue.put(WorkItem(self._seq, pair))
        self._seq += 1
        return True

    def _decode(self, pair: MatchedSet) -> FrameInput:
        """The worker-side decoding of a pair, size cap first (also for cv_bridge)."""
        cap = self.pipeline.cfg.max_input_pixels
        check = self.pipeline.name_errors(pair, lambda msg: check_message_size(msg, cap))
        for msg, _t in pair.payloads:
            check(msg)
        return pair_to_frame(pair, self.pipeline.name_errors(pair, self.decoder.decode))

    # ------------------------------------------------------------------ worker side
    def _apply_resets(self) -> None:
        with self._lock:
            resets, self._pending_resets = self._pending_resets, []
        for reason in resets:
            self.pipeline.reset(reason)
            if self.monitor is not None:
                self.monitor.reset()

    def step(self, timeout: float | None = 0.0) -> StepResult | None:
        """Take the oldest queued pair (waiting up to ``timeout`` s) and fuse it.

        Pending resets are applied first. A frame that fails (bad size, NaN…) is counted and
        skipped; an engine failure (e.g. out of memory) is counted too, and the worker goes
        on with the next pair. Returns ``None`` when nothing was queued.
        """
        self._apply_resets()
        item = self.queue.get(timeout)
        if item is None:
            return None
        self._apply_resets()
        t0 = time.perf_counter()
        error = ""
        try:
            frame = self._decode(item.pair)
        except FrameError as exc:
            self.pipeline.record_failure(exc)
            outputs, error = [], f"{failure_kind(exc)}: {exc}"
            with self._lock:
                self.decode_failures += 1
        else:
            try:
                outputs = self.pipeline.fuse_frames(frame)
            except FrameError as exc:  # counted and logged by the pipeline
                outputs, error = [], f"{failure_kind(exc)}: {exc}"
                self.frame_failures += 1
            except Exception as exc:  # the worker must survive engine failures
                outputs, error = [], f"{type(exc).__name__}: {exc}"
                self.engine_errors += 1
                self.pipeline.record_failure(exc)
            for _ in outputs:
                self.liveness.output()
        ms = (time.perf_counter() - t0) * 1e3
        with self._lock:
            waited = self._seq - 1 - item.seq
            self.processed += 1
            self.inference.add(ms)
            self.waited.add(waited)
            self._last_step_failed = bool(error)
            if error:
                self.last_error = error
        if self.monitor is not None:
            for out in outputs:
                self.monitor.update(out.metrics)
        return StepResult(outputs, item.seq, waited, ms, error)

    def run(self, publish: Callable[[FusedFrame], None], poll_s: float = 0.1) -> None:
        """Step until :meth:`stop`; every output goes to ``publish``.

        Errors of ``publish`` are counted, never raised.
        """
        while not self._stop.is_set():
            res = self.step(timeout=poll_s)
            if res is None:
                continue
            for out in res.outputs:
                if self._stop.is_set():
                    return
                try:
                    publish(out)
                except Exception as exc:  # e.g. context shut down on Ctrl-C
                    self.publish_errors += 1
                    if not self._stop.is_set():
                        log.warning("publishing a fused frame failed: %s", exc)

    def start(self, publish: Callable[[FusedFrame], None]) -> None:
        """Run :meth:`run` in a daemon thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self.queue.reopen()
        self.watchdog.restart()
        self._thread = threading.Thread(target=self.run, args=(publish,),
                                        name="temcoco-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Stop the worker thread after its current frame; queued pairs are discarded.

        Returns ``False`` if the thread did not end within ``timeout``.
        """
        self._stop.set()
        self.queue.close()
        self.queue.clear()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def record_publish(self, stamp_ns: int, now_ns: int) -> float | None:
        """Header stamp → publish latency of one published frame (node clock)."""
        if self.output_status is not None:
            self.output_status.tick(stamp_ns / 1e9, now_ns / 1e9)
        with self._lock:
            return self.latency.add(stamp_ns, now_ns)

    # ------------------------------------------------------------------ diagnostics
    def pairing_summary(self) -> dict[str, Any]:
        """Pairing counters in :meth:`ApproximatePairer.summary`'s format (either synchroniser)."""
        with self._lock:
            if self.synchronizer == "core":
                return self.pipeline.pairer.summary()
            pairs = self._mf_counts[0][1]
            return {"pairs": pairs, "events": dict(self._mf_events), "topics": {
                name: {"received": r, "paired": p, "dropped": 0, "unmatched": r - p}
                for name, (r, p) in zip(self.topic_names, self._mf_counts)}}

    def statuses(self) -> list[StatusValue]:
        """Everything ``/diagnostics`` reports (see the module docstring)."""
        name, hw = self.diagnostics.name, self.diagnostics.hardware_id
        extra = {"frames_failed": self.frame_failures + self.decode_failures,
                 "thermal_gain_jumps": self.pipeline.thermal.stats.gain_jumps}
        building = getattr(self.pipeline.engine, "building", None)
        with self._lock:
            notes = self.pipeline.pairer.notes() if self.synchronizer == "core" else []
            self.liveness.note(f"preparing the engine for {building[1]}x{building[0]} frames"
                               if building is not None else self._pairing_note())
        out = [s for s in with_stamp_notes(
            self.diagnostics.statuses(self.pairing_summary(), extra), notes)
            if not s.name.endswith("temporal consistency")]
        out.insert(0, self._inputs_status(name, hw))
        live = self.liveness.status(f"{name}: output liveness", hw)
        if building is not None:  # expected silence: WARN (the worker status says why)
            live.level = min(live.level, DiagnosticLevel.WARN)
        out.append(live)
        out.append(self._worker_status(name, hw))
        if self.monitor is not None:
            out.append(self.monitor.status(f"{name}: temporal consistency", hw))
        if self.pipeline.alignment is not None:
            out.append(self.pipeline.alignment.status(name, hw))
        if self.output_status is not None:
            topic = self.output_status.run(hw)
            out.append(StatusValue(topic.level, f"{name}: {topic.name}", topic.message, hw,
                                   topic.values))
        return out

    def _pairing_note(self) -> str:
        """Why inputs may not pair (for the liveness status), from the newest stamps."""
        if self.synchronizer != "core":
            return ""
        pairer = self.pipeline.pairer
        newest = [pairer.timeline.newest_aligned(i) for i in range(2)]
        if None in newest:
            missing = [n for n, t in zip(self.topic_names, newest) if t is None]
            return f"waiting for {', '.join(missing)}"
        skew = (newest[1] - newest[0]) / 1e9
        slop = pairer.cfg.slop
        if abs(skew) >= slop:
            return (f"no pair matched: {self.topic_names[1]} stamps are {skew:+.3f} s from "
                    f"{self.topic_names[0]}'s (slop {slop:g} s); check the cameras' clocks, "
                    "sync_slop or stamp_source")
        return ""

    def _inputs_status(self, name: str, hw: str) -> StatusValue:
        values = {}
        with self._lock:
            ages = self.watchdog.ages()
            silent = self.watchdog.silent()
            qos = dict(self._qos_incompatible)
        for topic, age in ages.items():
            values[f"{topic} last message age_s"] = "never" if age is None else f"{age:.3g}"
        parts = [f"{t} silent for {s:.1f} s" if seen else f"no message on {t} yet ({s:.1f} s)"
                 for t, s, seen in silent]
        for (topic, policy), n in qos.items():
            values[f"{topic} incompatible QoS ({policy})"] = str(n)
            parts.append(f"a publisher on {topic} has incompatible QoS ({policy}); "
                         "check input_reliability")
        if not parts:
            return StatusValue(DiagnosticLevel.OK, f"{name}: inputs", "receiving", hw, values)
        return StatusValue(DiagnosticLevel.WARN, f"{name}: inputs", "; ".join(parts), hw, values)

    def _worker_status(self, name: str, hw: str) -> StatusValue:
        with self._lock:
            q = self.queue
            lat = self.latency.stats
            p50, p99 = lat.percentile(50), lat.percentile(99)
            values = {
                "queue depth": str(q.depth),
                "queued": str(len(q)),
                "pairs enqueued": str(q.put_count),
                "pairs processed": str(self.processed),
                "pairs dropped (latest wins)": str(q.dropped),
                "pairs discarded on reset": str(q.discarded),
                "pair rate_hz": _fmt(self.pair_rate.rate_hz()),
                "frames waited p50": _fmt(self.waited.percentile(50)),
                "frames waited max": _fmt(self.waited.max),
                "inference_ms p50": _fmt(self.inference.percentile(50)),
                "inference_ms p99": _fmt(self.inference.percentile(99)),
                "latency_ms p50 (stamp to publish)": _fmt(p50),
                "latency_ms p99 (stamp to publish)": _fmt(p99),
                "stamp clock mismatches": str(self.latency.mismatches),
                "decode failures": str(self.decode_failures),
                "engine errors": str(self.engine_errors),
                "publish errors": str(self.publish_errors),
            }
            if self.engine_info is not None:
                values.update(self.engine_info.as_values())
            values.update(self.info)
            values["image conversion"] = self.decoder.describe()
            level, message = DiagnosticLevel.OK, "running"
            if self._last_step_failed and self.engine_errors:
                level, message = DiagnosticLevel.ERROR, f"inference failed: {self.last_error}"
            elif (building := getattr(self.pipeline.engine, "building", None)) is not None:
                level = DiagnosticLevel.WARN
                message = (f"preparing the {values.get('backend', '')} engine for "
                           f"{building[1]}x{building[0]} frames (first frame of this size; a "
                           "TensorRT build can take minutes, `temcoco export` builds it "
                           "ahead); outputs start when it is ready")
            elif self.latency_error_ms > 0 and p99 > self.latency_error_ms:
                level = DiagnosticLevel.ERROR
                message = f"latency p99 {p99:.0f} ms > {self.latency_error_ms:g} ms"
            elif self.latency_warn_ms > 0 and p99 > self.latency_warn_ms:
                level = DiagnosticLevel.WARN
                message = f"latency p99 {p99:.0f} ms > {self.latency_warn_ms:g} ms"
            elif self.latency.mismatches and not lat.count:
                level = DiagnosticLevel.WARN
                message = (f"header stamps are {self.latency.last_offset_s:.3g} s from the node "
                           "clock: latency not measured (replaying a bag? use ros2 bag play "
                           "--clock and use_sim_time:=true)")
            elif q.put_count and q.dropped:
                message = f"running; {q.dropped} of {q.put_count} pairs dropped (inference " \
                          "slower than the inputs)"
        return StatusValue(level, f"{name}: worker", message, hw, values)

    def summary(self) -> dict[str, Any]:
        """Counters as plain data (logged at shutdown)."""
        with self._lock:
            return {
                "pairs_enqueued": self.queue.put_count,
                "pairs_processed": self.processed,
                "pairs_dropped": self.queue.dropped,
                "pairs_discarded": self.queue.discarded,
                "queue_high_water": self.queue.high_water,
                "waited_max": self.waited.max,
                "decode_failures": self.decode_failures,
                "liveness": self.liveness.summary(),
                "frame_failures": self.frame_failures,
                "engine_errors": self.engine_errors,
                "publish_errors": self.publish_errors,
                "latency_ms_p50": self.latency.stats.percentile(50),
                "latency_ms_p99": self.latency.stats.percentile(99),
                "pipeline": {**self.pipeline.summary(), "pairing": self.pairing_summary()},
            }


def _fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"
