# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""diagnostic_updater conventions in plain Python (temcoco_core.diagnostics.updater)."""

import pytest

from temcoco_core.diagnostics import DiagnosticLevel as L
from temcoco_core.diagnostics import StatusValue
from temcoco_core.diagnostics.updater import (
    FrequencyStatus,
    FrequencyStatusParam,
    merge_statuses,
    status_name,
    TimeStampStatus,
    TimeStampStatusParam,
    TopicStatus,
    with_updater_names,
)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _run_at(status: FrequencyStatus, clock: Clock, rate_hz: float, seconds: float) -> StatusValue:
    """Tick at rate_hz for `seconds`, running the status once per second."""
    out = None
    for _ in range(int(seconds)):
        for _ in range(int(rate_hz)):
            status.tick()
        clock.t += 1.0
        out = status.run()
    return out


def test_frequency_bounds_tolerance_and_recovery() -> None:
    clock = Clock()
    f = FrequencyStatus(FrequencyStatusParam(min_hz=10, max_hz=30, tolerance=0.1,
                                             window_size=5), clock=clock)
    s = _run_at(f, clock, 20, 6)
    assert (s.level, s.message) == (L.OK, "Desired frequency met")
    assert float(s.values["Actual frequency (Hz)"]) == pytest.approx(20.0)
    assert s.values["Minimum acceptable frequency (Hz)"] == "9.000000"
    assert s.values["Maximum acceptable frequency (Hz)"] == "33.000000"
    assert (s := _run_at(f, clock, 9, 6)).level == L.OK  # within the 10 % tolerance
    assert (s := _run_at(f, clock, 5, 6)).level == L.WARN and s.message == "Frequency too low."
    assert _run_at(f, clock, 40, 6).message == "Frequency too high."
    s = _run_at(f, clock, 0, 6)
    assert (s.level, s.message) == (L.ERROR, "No events recorded.")
    assert _run_at(f, clock, 20, 6).level == L.OK  # recovers once the window is clean
    assert int(s.values["Events since startup"]) == f.count - 20 * 6


def test_frequency_without_max_and_target() -> None:
    clock = Clock()
    f = FrequencyStatus(FrequencyStatusParam(min_hz=5, max_hz=5), clock=clock)
    s = _run_at(f, clock, 5, 3)
    assert s.values["Target frequency (Hz)"] == "5.000000" and s.level == L.OK
    g = FrequencyStatus(FrequencyStatusParam(), clock=clock)
    s = _run_at(g, clock, 1000, 2)
    assert s.level == L.OK and "Maximum acceptable frequency (Hz)" not in s.values
    with pytest.raises(ValueError):
        FrequencyStatusParam(min_hz=10, max_hz=5)


def test_timestamp_status_window_and_counters() -> None:
    ts = TimeStampStatus(TimeStampStatusParam(min_acceptable=-1.0, max_acceptable=0.5))
    s = ts.run()
    assert (s.level, s.message) == (L.WARN, "No data since last update.")
    ts.tick(10.0, 10.1)
    ts.tick(10.0, 10.3)
    s = ts.run()
    assert (s.level, s.message) == (L.OK, "Timestamps are reasonable.")
    assert s.values["Latest timestamp delay:"] == "0.300000"
    ts.tick(10.0, 11.0)
    assert ts.run().message == "Timestamps too far in past seen."
    ts.tick(20.0, 10.0)
    assert ts.run().message == "Timestamps too far in future seen."
    ts.tick(0.0, 10.0)
    s = ts.run()
    assert s.message == "Zero timestamp seen." and s.level == L.ERROR
    assert s.values["Late diagnostic update count:"] == "1"
    assert s.values["Early diagnostic update count:"] == "1"
    ts.tick(10.0, 10.1)
    assert ts.run().level == L.OK  # recovers


def test_topic_status_merges_like_composite_task() -> None:
    clock = Clock()
    topic = TopicStatus("/fused/image", FrequencyStatusParam(min_hz=5), TimeStampStatusParam(),
                        clock=clock)
    for _ in range(10):
        topic.tick(50.0, 50.2)
    clock.t += 1.0
    s = topic.run("thermal-rgb-rig")
    assert s.name == "/fused/image topic status" and s.hardware_id == "thermal-rgb-rig"
    assert s.level == L.OK
    assert s.message == "Desired frequency met; Timestamps are reasonable."
    assert "Actual frequency (Hz)" in s.values and "Latest timestamp delay:" in s.values
    clock.t += 1.0
    s = topic.run()
    assert s.level == L.WARN  # frequency 10/2 s = 5 Hz OK, but no stamps since the last run
    assert s.message == "No data since last update."


def test_names_and_merge() -> None:
    assert status_name("fusion_node", "output") == "fusion_node: output"
    core = [StatusValue(L.WARN, "/ns/fusion_node: pairing", "x", "", {"a": "1"}),
            StatusValue(L.OK, "inputs", "ok")]
    named = with_updater_names(core, "fusion_node", "rig-1")
    assert [s.name for s in named] == ["fusion_node: pairing", "fusion_node: inputs"]
    assert {s.hardware_id for s in named} == {"rig-1"} and named[0].values == {"a": "1"}
    m = merge_statuses("t", [StatusValue(L.OK, "a", "fine"), StatusValue(L.WARN, "b", "low"),
                             StatusValue(L.WARN, "c", "late"), StatusValue(L.OK, "d", "x")])
    assert (m.level, m.message) == (L.WARN, "low; late")
