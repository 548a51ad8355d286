"""Approximate-time pairing (temcoco_core.frames.pairing) and diagnostics values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from temcoco_core.diagnostics import (
    DiagnosticLevel,
    DiagnosticTypes,
    FusionDiagnostics,
    LatencyStats,
    RateMeter,
    build_diagnostic_array,
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


def test_duplicate_stamp_is_dropped_and_reported() -> None:
    p = ApproximatePairer(2, PairingConfig(slop=0.02))
    results = _feed(p, [(0, 0), (1, 2 * MS), (0, 0), (1, 2 * MS), (0, 100 * MS),
                        (1, 101 * MS)])
    kinds = [e.kind for r in results for e in r.events]
    assert kinds == ["duplicate_stamp", "duplicate_stamp"]
    assert not any(e.reset for r in results for e in r.events)
    assert sum(1 for r in results if r.pair) == 2
    assert p.counters[0].duplicates == 1 and p.counters[0].dropped == 1


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
