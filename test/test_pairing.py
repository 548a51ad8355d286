# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Approximate-time pairing (temcoco_core.frames.pairing) and diagnostics values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from temcoco_core.diagnostics import (
    build_diagnostic_array,
    DiagnosticLevel,
    DiagnosticTypes,
    FusionDiagnostics,
    LatencyStats,
    RateMeter,
)
from temcoco_core.frames.pairing import ApproximatePairer, PairingConfig

MS = 1_000_000


def _feed(p: ApproximatePairer, msgs: list[tuple[int, int]]) -> list[Any]:
    """Feed ``(topic, stamp)`` in order; payload = (topic, stamp). Returns all results."""
    return [p.add(t, s, (t, s)) for t, s in msgs]


def _balanced(p: ApproximatePairer) -> bool:
    return all(c.received == c.paired + c.dropped + c.unmatched for c in p.counters)


def test_equal_rates_with_skew_pair_everything() -> None:
    p = ApproximatePairer(2, PairingConfig(queue_size=5, slop=0.02))
    msgs = []
    for i in range(20):
        msgs += [(0, i * 100 * MS), (1, i * 100 * MS + 7 * MS)]
    pairs = [r.pair for r in _feed(p, msgs) if r.pair]
    assert len(pairs) == 20
    for i, pair in enumerate(pairs):
        assert pair.stamps_ns == (i * 100 * MS, i * 100 * MS + 7 * MS)
        assert pair.payloads == ((0, i * 100 * MS), (1, i * 100 * MS + 7 * MS))
        assert pair.stamp_ns == i * 100 * MS and pair.skew_ns == 7 * MS
    p.flush()
    assert _balanced(p) and p.counters[0].paired == 20 and p.counters[1].unmatched == 0


def test_closest_candidate_wins() -> None:
    p = ApproximatePairer(2, PairingConfig(slop=0.05))
    _feed(p, [(1, 970 * MS), (1, 1010 * MS)])
    res = p.add(0, 1000 * MS, "rgb")
    assert res.pair is not None and res.pair.stamps_ns == (1000 * MS, 1010 * MS)
    # the older thermal message stays queued, as in message_filters
    assert p.counters[1].queued == 1


def test_slop_too_tight_pairs_nothing_and_counts_drops() -> None:
    p = ApproximatePairer(2, PairingConfig(queue_size=3, slop=0.001))
    msgs = []
    for i in range(10):
        msgs += [(0, i * 100 * MS), (1, i * 100 * MS + 20 * MS)]
    assert not any(r.pair for r in _feed(p, msgs))
    assert p.counters[0].dropped == 7 and p.counters[1].dropped == 7
    assert p.flush() == 6
    assert _balanced(p) and p.counters[0].unmatched == 3


def test_spread_must_be_strictly_below_slop() -> None:
    p = ApproximatePairer(2, PairingConfig(slop=0.01))
    _feed(p, [(0, 0)])
    assert p.add(1, 10 * MS, None).pair is None  # |dt| == slop: rejected like message_filters
    assert p.add(1, 20 * MS + 1, None).pair is None
    assert p.add(0, 29 * MS, None).pair is not None


def test_random_streams_invariants() -> None:
    rng = np.random.default_rng(3)
    p = ApproximatePairer(2, PairingConfig(queue_size=4, slop=0.015, max_gap_s=None))
    msgs = [(0, int(t)) for t in np.cumsum(rng.uniform(20, 45, 200)) * MS]
    msgs += [(1, int(t)) for t in np.cumsum(rng.uniform(25, 40, 200)) * MS]
    msgs.sort(key=lambda m: (m[1], m[0]))
    used: set[tuple[int, int]] = set()
    n_pairs = 0
    for r in _feed(p, msgs):
        if r.pair:
            n_pairs += 1
            assert r.pair.skew_ns < 15 * MS
            for payload in r.pair.payloads:
                assert payload not in used
                used.add(payload)
    p.flush()
    assert n_pairs > 50 and p.pairs == n_pairs and _balanced(p)


def test_time_backwards_resets_and_pairing_resumes() -> None:
    p = ApproximatePairer(2, PairingConfig(slop=0.02))
    loop = []
    for i in range(5):
        loop += [(0, 1000 * MS + i * 100 * MS), (1, 1000 * MS + i * 100 * MS + 5 * MS)]
    results = _feed(p, loop + [(0, 1000 * MS + 450 * MS)] + loop)  # stray RGB, then loop again
    events = [e for r in results for e in r.events]
    assert [e.kind for e in events] == ["time_backwards"]
    ev = events[0]
    assert ev.reset and ev.topic_index == 0 and ev.previous_ns == 1450 * MS
    assert sum(1 for r in results if r.pair) == 10
    assert p.counters[0].time_backwards == 1 and p.counters[0].unmatched == 1  # stray discarded
    reset_result = next(r for r in results if r.events)
    assert reset_result.reset


def test_duplicate_stamp_is_fused_and_reported() -> None:
    """Issue 11 case 6: a repeated stamp is paired and fused (counted), never dropped."""
    p = ApproximatePairer(2, PairingConfig(slop=0.02))
    results = _feed(p, [(0, 5 * MS), (1, 7 * MS), (0, 5 * MS), (1, 7 * MS), (0, 100 * MS),
                        (1, 101 * MS)])
    kinds = [e.kind for r in results for e in r.events]
    assert kinds == ["duplicate_stamp", "duplicate_stamp"]
    assert not any(e.reset for r in results for e in r.events)
    pairs = [r.pair for r in results if r.pair]
    assert len(pairs) == 3 and pairs[1].payloads == ((0, 5 * MS), (1, 7 * MS))
    assert p.counters[0].duplicates == 1 and p.counters[0].dropped == 0


def test_gap_event_resets() -> None:
    p = ApproximatePairer(2, PairingConfig(slop=0.02, max_gap_s=0.5))
    results = _feed(p, [(0, 0), (1, MS), (0, 100 * MS), (1, 101 * MS), (0, 2000 * MS),
                        (1, 2001 * MS)])
    gaps = [e for r in results for e in r.events if e.kind == "gap"]
    assert len(gaps) == 1 and gaps[0].reset and gaps[0].previous_ns == 100 * MS
    assert p.events["gap"] == 1


def test_three_topics_and_validation() -> None:
    p = ApproximatePairer(3, PairingConfig(slop=0.02), ["a", "b", "c"])
    assert p.add(0, 0, "a").pair is None
    assert p.add(1, 3 * MS, "b").pair is None
    res = p.add(2, 6 * MS, "c")
    assert res.pair is not None and res.pair.payloads == ("a", "b", "c")
    assert set(p.summary()["topics"]) == {"a", "b", "c"}
    with pytest.raises(ValueError):
        PairingConfig(queue_size=0)
    with pytest.raises(ValueError):
        PairingConfig(slop=0.0)
    with pytest.raises(IndexError):
        p.add(3, 0, None)
    with pytest.raises(ValueError):
        ApproximatePairer(1)


# ------------------------------------------------------------------------------ diagnostics
def test_rate_meter_and_latency_stats() -> None:
    r = RateMeter(window_s=10.0)
    assert np.isnan(r.rate_hz())
    for i in range(11):
        r.tick(i * 100 * MS)
    assert r.rate_hz() == pytest.approx(10.0)
    r.tick(0)  # clock went back
    assert np.isnan(r.rate_hz()) and r.count == 12
    lat = LatencyStats(window=4)
    for v in (1.0, 2.0, 3.0, 4.0, 100.0):
        lat.add(v)
    assert lat.max == 100.0 and lat.mean == pytest.approx(27.25) and lat.last == 100.0
    assert lat.percentile(50) == 3.0 and lat.count == 5


def test_fusion_diagnostics_levels() -> None:
    d = FusionDiagnostics(min_rate_hz=5.0)
    p = ApproximatePairer(2, PairingConfig(queue_size=2, slop=0.001), ["/rgb", "/ir"])
    for i in range(10):
        p.add(0, i * 100 * MS, None)
        p.add(1, i * 100 * MS + 50 * MS, None)
    st = {s.name.split(": ")[1]: s for s in d.statuses(p.summary())}
    assert st["pairing"].level == DiagnosticLevel.WARN and "slop" in st["pairing"].message
    assert st["pairing"].values["/rgb dropped"] == "8"
    assert st["output"].level == DiagnosticLevel.STALE
    for i in range(5):
        d.output(i * 1000 * MS, 3.0)  # 1 Hz < 5 Hz
    d.metrics = {"flicker": 0.5}
    st = {s.name.split(": ")[1]: s for s in d.statuses(None, {"engine": "avg"})}
    assert st["output"].level == DiagnosticLevel.WARN and "below" in st["output"].message
    assert st["output"].values["engine"] == "avg" and st["output"].values["mean_ms"] == "3"
    assert st["temporal consistency"].values["flicker"] == "0.5"
    assert "pairing" not in st


def _factory(name: str) -> Any:
    def make(**kw: Any) -> dict[str, Any]:
        return {"type": name, **kw}
    return make


def test_build_diagnostic_array_with_caller_classes() -> None:
    d = FusionDiagnostics(name="fusion", hardware_id="cam0")
    d.output(5, 1.0)
    types = DiagnosticTypes(array=_factory("array"), status=_factory("status"),
                            key_value=_factory("kv"), header=_factory("header"),
                            time=_factory("time"), level=lambda v: bytes([v]))
    arr = build_diagnostic_array(d.statuses(), 3_000_000_123, types)
    assert arr["header"]["stamp"] == {"type": "time", "sec": 3, "nanosec": 123}
    status = arr["status"][0]
    assert status["level"] == b"\x00" and status["hardware_id"] == "cam0"
    assert {"type": "kv", "key": "frames", "value": "1"} in status["values"]


# ------------------------------------------------------------------ issue 11: time policy
def _jittery_streams(n: int, jitter_ms: float, seed: int, reorder_every: int = 0
                     ) -> list[tuple[int, int, int]]:
    """``(topic, stamp, receive)`` for two 30 Hz cameras with +-jitter hardware stamps.

    In arrival order (a message occasionally swapped with its successor).
    """
    rng = np.random.default_rng(seed)
    period = 33 * MS
    msgs = []
    for i in range(n):
        for topic in (0, 1):
            t = i * period + topic * 5 * MS
            stamp = 10**12 + t + int(rng.uniform(-jitter_ms, jitter_ms) * MS)
            msgs.append((topic, stamp, 10**12 + t + 20 * MS))
    msgs.sort(key=lambda m: m[2])
    if reorder_every:
        for k in range(3, len(msgs) - 2, reorder_every):
            msgs[k], msgs[k + 2] = msgs[k + 2], msgs[k]  # one message of a topic is late
    return msgs


@pytest.mark.parametrize("with_receive", [True, False])
def test_jitter_and_single_reorders_never_reset(with_receive: bool) -> None:
    p = ApproximatePairer(2, PairingConfig(slop=0.05))
    resets = pairs = 0
    for topic, stamp, recv in _jittery_streams(300, 20.0, 1, reorder_every=37):
        r = p.add(topic, stamp, None, recv if with_receive else None)
        resets += r.reset
        pairs += r.pair is not None
    assert resets == 0
    assert pairs >= 285  # a few cross-camera skews exceed the slop: unpaired, not reset
    assert p.summary()["events"]["reordered"] > 0


def test_one_camera_clock_restart_resynchronises_at_once() -> None:
    """Issue 11 case 1: thermal's clock restarts at 0 while RGB's goes on."""
    p = ApproximatePairer(2, PairingConfig(slop=0.02))
    period, base = 33 * MS, 5_000 * 10**9
    first_after = None
    resets = 0
    for i in range(200):
        recv = base + i * period + 10 * MS
        th_stamp = base + i * period + 3 * MS if i < 100 else (i - 100) * period + 7 * MS
        r0 = p.add(0, base + i * period, ("rgb", i), recv)
        r1 = p.add(1, th_stamp, ("th", i), recv + MS)
        resets += r0.reset + r1.reset
        if i >= 100 and first_after is None and (r0.pair or r1.pair):
            first_after = i
            pair = r0.pair or r1.pair
            assert pair.payloads == (("rgb", i), ("th", i))
            assert pair.stamps_ns == (base + i * period, 7 * MS)  # the thermal's own stamp
    assert first_after == 100
    assert resets == 1
    assert p.pairs == 200
    assert p.summary()["topics"]["topic1"]["clock_jumps"] == 1
    assert p.timeline.summary()["topic1"]["correction_ns"] == base + 100 * period - 4 * MS


def test_forward_clock_jump_of_one_camera_resynchronises() -> None:
    p = ApproximatePairer(2, PairingConfig(slop=0.02))
    period = 33 * MS
    for i in range(60):
        jump = 3600 * 10**9 if i >= 30 else 0
        p.add(0, i * period, i, i * period)
        p.add(1, i * period + 2 * MS + jump, i, i * period + MS)
    assert p.pairs == 60 and p.events["gap"] == 1
    assert p.summary()["topics"]["topic1"]["clock_jumps"] == 1


def test_looped_bag_with_log_times_is_one_reset() -> None:
    p = ApproximatePairer(2, PairingConfig(slop=0.02))
    resets = []
    for loop in range(2):
        for i in range(20):
            log_t = loop * 10**9 + i * 33 * MS
            for topic in (0, 1):
                r = p.add(topic, (i + 1) * 33 * MS + topic * MS, None, log_t + topic)
                resets += [e.kind for e in r.events if e.reset]
    assert resets == ["time_backwards"] and p.pairs == 40


def test_unstamped_input_pairs_by_receive_time_and_is_named() -> None:
    """Issue 11 case 3: a driver that never sets stamps."""
    p = ApproximatePairer(2, PairingConfig(slop=0.02), topic_names=("rgb", "thermal"))
    for i in range(50):
        p.add(0, 10**12 + i * 33 * MS, i, 10**12 + i * 33 * MS + 5 * MS)
        p.add(1, 0, i, 10**12 + i * 33 * MS + 8 * MS)
    assert p.pairs == 50
    s = p.summary()
    assert s["topics"]["thermal"]["unstamped"] == 50 and s["topics"]["rgb"]["unstamped"] == 0
    assert any("thermal publishes unstamped" in n for n in p.notes())


def test_stamp_source_receive() -> None:
    p = ApproximatePairer(2, PairingConfig(slop=0.02, stamp_source="receive"))
    for i in range(10):  # header stamps far apart and garbage; receive times close
        p.add(0, 7 + i, i, i * 100 * MS)
        p.add(1, 10**15 - i * 10**9, i, i * 100 * MS + MS)
    assert p.pairs == 10
    with pytest.raises(ValueError, match="stamp_source"):
        PairingConfig(stamp_source="bag")
