# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The fusion node's behaviour without ROS (temcoco_core.worker).

Latest-wins queueing with counted drops, bounded latency under a slow engine, conversion, resets
and diagnostics.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch

from temcoco_core.diagnostics import DiagnosticLevel
from temcoco_core.diagnostics.monitors import (
    StampLatency,
    TemporalMonitor,
    ThreadSafeDiagnostics,
    TopicWatchdog,
)
from temcoco_core.engine.factory import (
    build_engine,
    DelayEngine,
    EngineBuildError,
    EngineHandle,
    EngineInfo,
    resolve_device,
)
from temcoco_core.frames.decoder import FrameDecoder, ImageConversionError, make_decoder
from temcoco_core.frames.pairing import MatchedSet
from temcoco_core.frames.preprocess import FrameError
from temcoco_core.node_config import MetricThreshold, NodeConfig
from temcoco_core.pipeline import AverageEngine, FusionPipeline, PipelineConfig
from temcoco_core.worker import FusionWorker, LatestQueue

H, W = 24, 32
T0 = 1_700_000_000_000_000_000
DT = 33_000_000
GUARD_S = 20.0  # hang guard for thread hand-offs, never a timing assertion


def image_msg(stamp_ns: int, arr: np.ndarray, encoding: str, frame_id: str = "rgb_optical"):
    """A duck-typed sensor_msgs/Image."""
    arr = np.ascontiguousarray(arr)
    return NS(header=NS(stamp=NS(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                        frame_id=frame_id),
              encoding=encoding, height=arr.shape[0], width=arr.shape[1], step=arr.strides[0],
              is_bigendian=0, data=arr.tobytes())


def rgb_msg(i: int, h: int = H, w: int = W):
    rng = np.random.default_rng(i)
    return image_msg(T0 + i * DT, rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "rgb8")


def thermal_msg(i: int, encoding: str = "mono16", h: int = H, w: int = W,
                skew_ns: int = 2_000_000):
    rng = np.random.default_rng(1000 + i)
    base = rng.integers(29000, 31000, (h, w))
    arr = {"mono16": base.astype(np.uint16), "16UC1": base.astype(np.uint16),
           "mono8": (base // 256).astype(np.uint8),
           "32FC1": (base / 100.0 - 273.15).astype(np.float32)}[encoding]
    return image_msg(T0 + i * DT + skew_ns, arr, encoding, "thermal_optical")


def offer_pair(worker: FusionWorker, i: int, encoding: str = "mono16") -> bool:
    worker.offer(0, T0 + i * DT, rgb_msg(i))
    return worker.offer(1, T0 + i * DT + 2_000_000, thermal_msg(i, encoding))


def make_worker(engine=None, queue_depth: int = 1, **kwargs) -> FusionWorker:
    pipeline = FusionPipeline(engine or AverageEngine(), PipelineConfig(metrics=False))
    return FusionWorker(pipeline, queue_depth=queue_depth, **kwargs)


def status(worker: FusionWorker, suffix: str):
    return next(s for s in worker.statuses() if s.name.endswith(suffix))


# ---------------------------------------------------------------------------------- queue


def test_latest_queue_keeps_the_newest_and_counts_drops():
    q: LatestQueue[int] = LatestQueue(2)
    evicted = [q.put(i) for i in range(5)]
    assert evicted == [None, None, 0, 1, 2]
    assert len(q) == 2 and q.high_water == 2
    assert (q.put_count, q.dropped) == (5, 3)
    assert q.get() == 3 and q.get() == 4
    assert q.get(timeout=0.0) is None
    q.put(9)
    assert q.clear() == 1 and q.discarded == 1
    assert q.put_count == q.taken + q.dropped + q.discarded + len(q)


def test_latest_queue_close_wakes_a_waiting_consumer():
    q: LatestQueue[int] = LatestQueue(1)
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=GUARD_S)))
    t.start()
    q.close()
    t.join(GUARD_S)
    assert not t.is_alive() and got == [None] and q.closed


def test_latest_queue_rejects_depth_zero():
    with pytest.raises(ValueError, match="depth must be >= 1"):
        LatestQueue(0)


# ---------------------------------------------------------------------------------- conversion


@pytest.mark.parametrize("encoding, dtype", [("mono16", np.uint16), ("16UC1", np.uint16),
                                             ("32FC1", np.float32), ("mono8", np.uint8)])
def test_core_conversion_keeps_thermal_depth(encoding, dtype):
    arr, enc = FrameDecoder().decode(thermal_msg(0, encoding))
    assert enc == encoding and arr.dtype == dtype and arr.shape == (H, W)


def test_bridge_is_used_only_for_8bit_encodings():
    calls: list[str] = []

    def bridge(msg):
        calls.append(msg.encoding)
        return np.zeros((msg.height, msg.width, 3), np.uint8)

    dec = FrameDecoder(bridge)
    dec.decode(rgb_msg(0))
    for enc in ("mono16", "16UC1", "32FC1"):
        arr, _ = dec.decode(thermal_msg(0, enc))
        assert arr.dtype != np.uint8  # cv_bridge's mono16 pitfall never applies
    assert calls == ["rgb8"]
    assert (dec.bridge_frames, dec.core_frames) == (1, 3)
    assert dec.describe().startswith("cv_bridge for")


def test_a_failing_bridge_falls_back_to_core_for_good():
    def broken(msg):
        raise AttributeError("_ARRAY_API not found")

    dec = FrameDecoder(broken)
    arr, enc = dec.decode(rgb_msg(0))
    assert enc == "rgb8" and arr.shape == (H, W, 3)
    dec.decode(rgb_msg(1))
    assert dec.bridge_failures == 1 and dec.bridge is None and dec.core_frames == 2
    assert "_ARRAY_API" in dec.describe()


def test_make_decoder_modes():
    def fails():
        raise ImportError("cv_bridge: numpy.core.multiarray failed to import")

    assert make_decoder("core", fails).bridge is None
    auto = make_decoder("auto", fails)
    assert auto.bridge is None and "cv_bridge unavailable" in auto.describe()
    with pytest.raises(ImageConversionError, match="NumPy 2"):
        make_decoder("cv_bridge", fails)
    assert make_decoder("auto", lambda: (lambda m: m)).bridge is not None
    with pytest.raises(ValueError, match="image_conversion"):
        make_decoder("opencv", fails)


def test_decode_pair_carries_the_rgb_stamp_and_frame_id():
    pair = MatchedSet((T0, T0 + 5), ((rgb_msg(0), 1.0), (thermal_msg(0), 2.0)))
    frame = FrameDecoder().decode_pair(pair)
    assert (frame.stamp_ns, frame.infrared_stamp_ns) == (T0, T0 + 5)
    assert frame.frame_id == "rgb_optical" and frame.t_received == 2.0
    assert frame.visible.shape == (H, W, 3) and frame.infrared.dtype == np.uint16


# ---------------------------------------------------------------------------------- worker


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1", "mono8"])
def test_a_pair_becomes_one_output_with_the_rgb_stamp_and_size(encoding):
    w = make_worker()
    assert not w.offer(0, T0, rgb_msg(0))  # half a pair: nothing queued
    assert w.offer(1, T0 + 2_000_000, thermal_msg(0, encoding))  # completes the pair
    res = w.step()
    assert res is not None and res.error == "" and res.waited == 0
    (out,) = res.outputs
    assert out.stamp_ns == T0 and out.frame_id == "rgb_optical"
    assert out.image.shape == (H, W, 3) and out.image.dtype == np.uint8
    assert w.step() is None  # nothing left


def test_slow_engine_single_thread_latest_wins_vs_fifo():
    """Latest-wins keeps latency bounded where a FIFO does not.

    K pairs arrive per inference: with depth 1 every processed pair is the newest (waited 0 at
    dequeue) and K - 1 of every K are dropped; a deep FIFO processes everything but the backlog,
    and with it the latency in frames, grows without bound.
    """
    k, steps = 4, 12
    latest, fifo = make_worker(queue_depth=1), make_worker(queue_depth=1000)
    waited: dict[int, list[int]] = {}
    for w in (latest, fifo):
        n = 0
        waited[w.queue.depth] = []
        for _ in range(steps):
            for _ in range(k):
                offer_pair(w, n)
                n += 1
            assert len(w.queue) <= w.queue.depth
            waited[w.queue.depth].append(w.step().waited)
    assert latest.queue.high_water == 1
    assert latest.queue.dropped == steps * k - steps
    assert waited[1] == [0] * steps and latest.waited.max == 0
    assert fifo.queue.dropped == 0
    # the FIFO's backlog grows by k - 1 pairs per inference
    assert waited[1000] == [(k - 1) * (i + 1) for i in range(steps)]


class _Camera:
    """Publishes one pair per tick, in its own thread (the subscription callbacks)."""

    def __init__(self, worker: FusionWorker) -> None:
        self.worker = worker
        self.ticks = threading.Semaphore(0)
        self.acks = threading.Semaphore(0)
        self.n = 0
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def offer(self) -> None:
        offer_pair(self.worker, self.n)
        self.n += 1

    def _run(self) -> None:
        while self.ticks.acquire(timeout=GUARD_S) and not self.done:
            self.offer()
            self.acks.release()


class _LockstepEngine(AverageEngine):
    """A slow engine: while it "computes" one frame the camera delivers exactly ``k`` pairs."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.camera: _Camera | None = None

    def push(self, visible, infrared):
        assert self.camera is not None
        for _ in range(self.k):
            self.camera.ticks.release()
        for _ in range(self.k):
            assert self.camera.acks.acquire(timeout=GUARD_S), "camera thread stalled"
        return super().push(visible, infrared)


@pytest.mark.parametrize("depth", [1, 2])
def test_slow_engine_threads_bounded_queue_counted_drops_bounded_wait(depth):
    """Inference K times slower than the cameras, with the camera in another thread.

    The queue never exceeds its depth, every pair is accounted for, and each processed pair waited
    exactly K frames (the ones that arrived during its own inference) -- not a growing backlog.
    """
    k, steps = 5, 10
    engine = _LockstepEngine(k)
    w = make_worker(engine, queue_depth=depth)
    cam = engine.camera = _Camera(w)
    cam.thread.start()
    cam.offer()  # the first pair
    waited = []
    for _ in range(steps):
        res = w.step(timeout=GUARD_S)
        assert res is not None and res.error == "" and len(res.outputs) == 1
        waited.append(res.waited)
        assert len(w.queue) <= depth
    cam.done = True
    cam.ticks.release()
    cam.thread.join(GUARD_S)
    q = w.queue
    assert q.high_water <= depth
    assert q.put_count == cam.n == 1 + k * steps
    assert q.put_count == w.processed + q.dropped + q.discarded + len(q)
    assert q.dropped == q.put_count - steps - len(q) > 0
    # the first pair waits k; later ones are the oldest of `depth` queued pairs
    assert waited[0] == k and max(waited) <= k + depth - 1
    summary = w.summary()
    assert summary["pairs_dropped"] == q.dropped and summary["queue_high_water"] <= depth


def test_worker_thread_publishes_and_stops_cleanly():
    w = make_worker(DelayEngine(AverageEngine(), 0.002), queue_depth=1)
    published: list[int] = []
    done = threading.Event()

    def publish(frame):
        published.append(frame.stamp_ns)
        if frame.stamp_ns == T0 + 29 * DT:
            done.set()

    w.start(publish)
    assert w.running
    for i in range(30):
        offer_pair(w, i)
    # the last pair is never dropped: latest wins
    assert done.wait(GUARD_S)
    assert w.stop(GUARD_S) and not w.running
    q = w.queue
    assert q.put_count == 30 == w.processed + q.dropped + q.discarded + len(q)
    assert len(published) == w.processed and published == sorted(published)


def test_publish_errors_are_counted_not_raised():
    w = make_worker()
    seen = threading.Event()

    def publish(frame):
        seen.set()
        raise RuntimeError("context is shut down")

    w.start(publish)
    offer_pair(w, 0)
    assert seen.wait(GUARD_S)
    assert w.stop(GUARD_S)
    assert w.publish_errors == 1


# ---------------------------------------------------------------------------------- failures


def test_decode_failures_are_counted_on_the_worker_not_in_the_callback():
    """Issue 11 case 5: decoding runs on the worker thread, never in the subscription callback.

    A failure is counted by kind with the encoding named.
    """
    w = make_worker()
    w.offer(0, T0, rgb_msg(0))
    bad = thermal_msg(0)
    bad.encoding = "yuv422_yuy2"
    assert w.offer(1, T0 + 2_000_000, bad)  # queued raw: the callback does not decode
    assert w.decode_failures == 0
    res = w.step()
    assert res.outputs == [] and "decode_error" in res.error and "yuv422_yuy2" in res.error
    assert w.decode_failures == 1 and "yuv422_yuy2" in w.last_error
    assert w.pipeline.failures.counts == {"decode_error": 1}


def test_frame_errors_are_counted_and_the_worker_goes_on():
    w = make_worker()
    w.offer(0, T0, rgb_msg(0))
    bad = thermal_msg(0, "32FC1")
    bad.data = np.full(H * W, np.nan, np.float32).view(np.uint8)
    w.offer(1, T0, bad)
    res = w.step()
    assert res.outputs == [] and "non_finite" in res.error and "NaN" in res.error
    assert w.frame_failures == 1
    offer_pair(w, 1)
    assert len(w.step().outputs) == 1


def test_thermal_of_another_size_fuses_by_default():
    """Issue 11 case 4: 640x512-like thermal with 1280x720-like RGB gave zero output."""
    w = make_worker()
    w.offer(0, T0, rgb_msg(0))
    w.offer(1, T0, thermal_msg(0, h=H // 2, w=W // 2 + 3))
    res = w.step()
    assert res.error == "" and res.outputs[0].image.shape == (H, W, 3)


class _FailingEngine(AverageEngine):
    def __init__(self) -> None:
        self.fail = True

    def push(self, visible, infrared):
        if self.fail:
            raise RuntimeError("CUDA out of memory")
        return super().push(visible, infrared)


def test_engine_failure_is_an_error_status_until_it_recovers():
    engine = _FailingEngine()
    w = make_worker(engine)
    offer_pair(w, 0)
    res = w.step()
    assert "CUDA out of memory" in res.error and w.engine_errors == 1
    st = status(w, ": worker")
    assert st.level == DiagnosticLevel.ERROR and "out of memory" in st.message
    engine.fail = False
    offer_pair(w, 1)
    assert len(w.step().outputs) == 1
    assert status(w, ": worker").level == DiagnosticLevel.OK


# ---------------------------------------------------------------------------------- resets


def test_time_going_backwards_discards_the_queue_and_resets_before_the_next_frame():
    w = make_worker(queue_depth=4)
    for i in range(3):
        offer_pair(w, i)
    assert len(w.queue) == 3
    # a looping bag: stamps start over (further back than jitter or a reorder)
    w.offer(0, T0 - 20 * DT, rgb_msg(0))
    assert len(w.queue) == 0 and w.queue.discarded == 3
    w.offer(1, T0 - 20 * DT + 2_000_000, thermal_msg(0))
    res = w.step()
    assert len(res.outputs) == 1 and res.outputs[0].stamp_ns == T0 - 20 * DT
    assert w.pipeline.diagnostics.resets.get("time_backwards") == 1


def test_request_reset_from_a_clock_jump():
    w = make_worker()
    w.offer(0, T0, rgb_msg(0))  # half-paired message
    w.request_reset("clock_jump")
    w.step()
    assert w.pipeline.diagnostics.resets == {"clock_jump": 1}
    assert w.pipeline.pairer.summary()["topics"]["rgb"]["unmatched"] == 1


def test_message_filters_mode_counts_and_detects_loops():
    w = make_worker(synchronizer="message_filters")
    for i in range(3):
        assert not w.count_input(0, T0 + i * DT)
        w.count_input(1, T0 + i * DT)
    assert w.offer_pair(rgb_msg(0), thermal_msg(0), T0, T0 + 2_000_000)
    summary = w.pairing_summary()
    assert summary["pairs"] == 1
    assert summary["topics"]["rgb"] == {"received": 3, "paired": 1, "dropped": 0,
                                        "unmatched": 2}
    assert not w.count_input(0, T0 + DT)  # one reordered message: no reset
    assert w.count_input(0, T0 - 10 * DT)  # went back: the caller clears its synchroniser
    w.step()
    assert w.pipeline.diagnostics.resets == {"time_backwards": 1}
    with pytest.raises(ValueError, match="synchronizer"):
        make_worker(synchronizer="exact")


def test_set_engine_detaches_and_swaps():
    w = make_worker()
    w.set_engine(None)
    offer_pair(w, 0)
    assert "released" in w.step().error
    w.set_engine(AverageEngine(), "average again")
    offer_pair(w, 1)
    assert len(w.step().outputs) == 1 and w.pipeline.engine_description == "average again"
    assert w.pipeline.diagnostics.resets.get("engine_changed") == 2


# ---------------------------------------------------------------------------------- diagnostics


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_silent_topic_warns_naming_it():
    clock = _Clock()
    w = make_worker(topic_names=["/cam/rgb", "/cam/thermal"], topic_timeout_s=2.0, clock=clock)
    assert status(w, ": inputs").level == DiagnosticLevel.OK
    clock.t += 3.0
    st = status(w, ": inputs")
    assert st.level == DiagnosticLevel.WARN
    assert "no message on /cam/rgb yet" in st.message and "/cam/thermal" in st.message
    w.offer(0, T0, rgb_msg(0))
    w.offer(1, T0, thermal_msg(0))
    clock.t += 1.0
    assert status(w, ": inputs").level == DiagnosticLevel.OK
    clock.t += 1.5
    w.offer(0, T0 + DT, rgb_msg(1))
    st = status(w, ": inputs")
    assert st.level == DiagnosticLevel.WARN and st.message == "/cam/thermal silent for 2.5 s"


def test_incompatible_qos_is_reported_on_the_inputs_status():
    w = make_worker(topic_names=["/rgb", "/thermal"])
    w.report_qos_incompatible(1, "RELIABILITY")
    st = status(w, ": inputs")
    assert st.level == DiagnosticLevel.WARN and "/thermal has incompatible QoS" in st.message
    assert st.values["/thermal incompatible QoS (RELIABILITY)"] == "1"


def test_statuses_cover_what_the_issue_lists():
    cfg = NodeConfig(fusion_engine="average", metrics="flicker,dirc", queue_depth=1)
    engine, info = build_engine(cfg)
    w = FusionWorker.from_config(cfg, engine, info, topic_names=["/rgb", "/thermal"],
                                 name="/fusion_node", hardware_id="/fusion_node")
    for i in range(4):
        offer_pair(w, i)
        for out in w.step().outputs:
            w.record_publish(out.stamp_ns, out.stamp_ns + 20_000_000)
    sts = {s.name: s for s in w.statuses()}
    assert set(sts) == {f"/fusion_node: {n}" for n in (
        "inputs", "pairing", "output", "output liveness", "worker", "temporal consistency",
        "registration")}
    assert "alignment_score" in sts["/fusion_node: registration"].values
    pairing = sts["/fusion_node: pairing"].values
    assert pairing["/rgb rate_hz"] != "nan" and pairing["/thermal dropped"] == "0"
    worker = sts["/fusion_node: worker"].values
    assert worker["latency_ms p50 (stamp to publish)"] == "20"
    assert worker["latency_ms p99 (stamp to publish)"] == "20"
    assert float(worker["inference_ms p99"]) >= 0
    assert worker["pairs dropped (latest wins)"] == "0"
    assert worker["backend"] == "none" and worker["precision"] == "fp32"
    assert worker["image conversion"] == "temcoco_core for all encodings"
    temporal = sts["/fusion_node: temporal consistency"].values
    assert {"flicker mean", "dirC mean", "brightness variation mean",
            "brightness offset mean"} <= set(temporal)
    assert all(s.hardware_id == "/fusion_node" for s in sts.values())


def test_latency_levels_and_clock_mismatch():
    w = make_worker(latency_warn_ms=100.0, latency_error_ms=500.0)
    assert w.record_publish(T0, T0 - 5 * 10**9) is None  # stamp in the future: other clock
    st = status(w, ": worker")
    assert st.level == DiagnosticLevel.WARN and "use_sim_time" in st.message
    w.record_publish(T0, T0 + 50_000_000)
    assert status(w, ": worker").level == DiagnosticLevel.OK
    w.record_publish(T0, T0 + 200_000_000)
    assert status(w, ": worker").level == DiagnosticLevel.WARN
    w.record_publish(T0, T0 + 900_000_000)
    w.record_publish(T0, T0 + 900_000_000)
    assert status(w, ": worker").level == DiagnosticLevel.ERROR


def test_stamp_latency_leaves_out_implausible_stamps():
    sl = StampLatency(max_plausible_s=60.0, max_future_s=1.0)
    assert sl.add(T0, T0 + 2_000_000) == 2.0
    assert sl.add(T0, T0 - 500_000_000) == 0.0  # slightly ahead: clock skew, clamped
    assert sl.add(T0, T0 + 3600 * 10**9) is None  # an old bag without use_sim_time
    assert sl.add(T0, T0 - 2 * 10**9) is None
    assert sl.mismatches == 2 and sl.stats.count == 2


def test_temporal_monitor_levels_follow_the_window_mean():
    mon = TemporalMonitor([MetricThreshold("flicker", "flicker", 1.0, 3.0),
                           MetricThreshold("dirc", "dirC", 0.0, 2.0)], window=4)
    assert mon.status("t").message == "no values yet"
    for v in (float("nan"), 0.5, 0.5, 0.5, 0.5):
        mon.update({"flicker": v, "dirC": 1.9, "brightness_delta": -2.0, "brightness": 110.0,
                    "brightness_visible": 100.0})
    st = mon.status("t")
    assert st.level == DiagnosticLevel.OK and st.values["brightness variation mean"] == "2"
    assert st.values["brightness offset mean"] == "10"  # fused 10 levels above the RGB
    for _ in range(2):
        mon.update({"flicker": 3.5, "dirC": 1.9})
    st = mon.status("t")  # window mean (0.5 + 0.5 + 3.5 + 3.5) / 4 = 2
    assert st.level == DiagnosticLevel.WARN and "flicker 2 > 1" in st.message
    for _ in range(4):
        mon.update({"flicker": 0.1, "dirC": 2.5})
    st = mon.status("t")
    assert st.level == DiagnosticLevel.ERROR and "dirC 2.5 > 2" in st.message
    mon.reset()
    assert mon.status("t").message == "no values yet"


def test_watchdog_restart():
    clock = _Clock()
    wd = TopicWatchdog(["a"], 1.0, clock)
    clock.t += 5
    assert wd.silent() == [("a", 5.0, False)]
    wd.restart()
    assert wd.silent() == []


def test_thread_safe_diagnostics_wraps_an_existing_one():
    pipeline = FusionPipeline(AverageEngine(), PipelineConfig(metrics=False))
    pipeline.diagnostics.name = "custom"
    w = FusionWorker(pipeline)
    assert isinstance(pipeline.diagnostics, ThreadSafeDiagnostics)
    assert w.diagnostics is pipeline.diagnostics
    assert pipeline.diagnostics.name == "custom"


# ---------------------------------------------------------------------------------- engines


def test_from_config_sets_up_metrics():
    cfg = NodeConfig(fusion_engine="average", metrics="flowd")
    w = FusionWorker.from_config(cfg, *build_engine(cfg))
    assert w.pipeline.metrics is not None and w.pipeline.metrics.compute_flow
    off = NodeConfig(fusion_engine="average", metrics="")
    w = FusionWorker.from_config(off, *build_engine(off))
    assert w.pipeline.metrics is None and w.monitor is None


def test_simulated_inference_delay_wraps_the_engine():
    engine, info = build_engine(NodeConfig(fusion_engine="average", simulate_inference_ms=5.0))
    assert isinstance(engine, DelayEngine) and engine.delay_s == 0.005
    assert "+5 ms simulated" in info.mode and info.description == "average (model-free)"


def test_unusable_device_and_weights_are_clear_errors(tmp_path):
    if not torch.cuda.is_available():
        with pytest.raises(EngineBuildError, match="CUDA is not available"):
            resolve_device("cuda:0")
    assert resolve_device("cpu") == "cpu"
    missing = tmp_path / "missing.pth"
    with pytest.raises(EngineBuildError, match="missing.pth") as err:
        build_engine(NodeConfig(weights=str(missing), backend="eager", device="cpu"))
    assert isinstance(err.value, ValueError)


def test_network_engine_builds_from_weights_and_fuses(tmp_path):
    """The real path: edge preset, weights from a file, eager backend, streaming engine."""
    safetensors = pytest.importorskip("safetensors.torch")
    from temcoco_core.model import build_model

    path = tmp_path / "edge.safetensors"
    safetensors.save_file({k: v.contiguous() for k, v in build_model("edge").state_dict().items()},
                          str(path))
    cfg = NodeConfig(weights=str(path), backend="eager", device="cpu", metrics="")
    engine, info = build_engine(cfg)
    assert (info.kind, info.backend, info.precision, info.mode) == ("model", "eager", "fp32",
                                                                    "stream")
    w = FusionWorker.from_config(cfg, engine, info)
    offer_pair(w, 0)
    (out,) = w.step().outputs
    assert out.image.shape == (H, W, 3) and out.stamp_ns == T0


def test_engine_handle_releases_and_reloads():
    built: list[int] = []

    def factory(cfg):
        built.append(1)
        return AverageEngine(), EngineInfo("average")

    handle = EngineHandle(NodeConfig(fusion_engine="average"), factory)
    assert not handle.loaded
    first = handle.load()
    assert handle.load() is first and len(built) == 1
    assert handle.release() == 0 and not handle.loaded
    assert handle.load() is not first and handle.loads == 2
    handle.release()
    assert handle.release() == 0


def test_frame_error_is_the_value_error_family():
    assert issubclass(FrameError, ValueError) and issubclass(EngineBuildError, ValueError)
    assert issubclass(ImageConversionError, ValueError)
