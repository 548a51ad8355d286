# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Output liveness, failure counters and throttled logging (temcoco_core.health), issue 11."""

from __future__ import annotations

import logging

import pytest

from temcoco_core.diagnostics import DiagnosticLevel
from temcoco_core.frames.image_msg import EncodingError
from temcoco_core.frames.preprocess import FrameSizeMismatchError, FrameTooLargeError
from temcoco_core.health import (
    failure_kind,
    LivenessConfig,
    LivenessMonitor,
    ThrottledLog,
)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _run(mon: LivenessMonitor, clock: FakeClock, seconds: float, rate_hz: float,
         publish: bool) -> None:
    for _ in range(round(seconds * rate_hz)):
        clock.t += 1.0 / rate_hz
        mon.input()
        if publish:
            mon.output()


def test_stall_goes_warn_within_two_seconds_then_error_and_names_the_reason() -> None:
    """Issue 11 cases 1 and 4: output stops while inputs arrive -> WARN within 2 s, ERROR later.

    With the last reason (before: ~31 s, or 'no fused frame yet' forever).
    """
    clock = FakeClock()
    mon = LivenessMonitor(LivenessConfig(expected_rate_hz=30, stall_error_s=4.0), clock)
    _run(mon, clock, 6.0, 30, publish=True)
    assert mon.state().level == DiagnosticLevel.OK
    t_stop = clock.t
    warn_at = error_at = None
    for _ in range(30 * 6):
        clock.t += 1 / 30
        mon.input()
        if clock.t - t_stop > 0.5:
            mon.failure("size_mismatch", "infrared size 640x512 differs from visible 1280x720")
        level = mon.state().level
        if warn_at is None and level >= DiagnosticLevel.WARN:
            warn_at = clock.t - t_stop
        if error_at is None and level == DiagnosticLevel.ERROR:
            error_at = clock.t - t_stop
    assert warn_at is not None and warn_at <= 2.0
    assert error_at is not None and 4.0 <= error_at <= 4.2
    st = mon.state()
    assert "size_mismatch" in st.message and "640x512" in st.message
    assert st.values["failed size_mismatch"] == str(mon.failures.counts["size_mismatch"])
    mon.output()
    assert mon.state().level == DiagnosticLevel.WARN  # no stall, but the rate is still low
    _run(mon, clock, 6.0, 30, publish=True)
    assert mon.state().level == DiagnosticLevel.OK


def test_stall_before_the_first_output_is_reported_with_the_decode_error() -> None:
    clock = FakeClock()
    mon = LivenessMonitor(LivenessConfig(), clock)
    mon.failure(failure_kind(EncodingError("unsupported image encoding 'yuv422'")),
                "unsupported image encoding 'yuv422'")
    _run(mon, clock, 1.5, 30, publish=False)
    st = mon.state()
    assert st.level == DiagnosticLevel.WARN and "no fused output yet" in st.message
    assert "decode_error" in st.message and "yuv422" in st.message


def test_no_failure_names_the_note_and_silence_is_not_a_stall() -> None:
    clock = FakeClock()
    mon = LivenessMonitor(LivenessConfig(), clock)
    assert mon.state().level == DiagnosticLevel.OK  # nothing arrives: the input watchdog's job
    mon.note("no pair matched: thermal stamps are 3600 s from RGB")
    _run(mon, clock, 2.0, 10, publish=False)
    assert "3600 s" in mon.state().message
    clock.t += 10.0  # inputs stopped: not an output stall
    assert mon.state().level == DiagnosticLevel.OK


def test_low_output_rate_warns() -> None:
    clock = FakeClock()
    mon = LivenessMonitor(LivenessConfig(expected_rate_hz=30), clock)
    for i in range(30 * 8):
        clock.t += 1 / 30
        mon.input()
        if i % 4 == 0:
            mon.output()
    st = mon.state()
    assert st.level == DiagnosticLevel.WARN and "expected 30 Hz" in st.message
    assert 6.0 < st.rate_hz < 9.0


def test_failure_kinds() -> None:
    assert failure_kind(FrameTooLargeError("x")) == "too_large"
    assert failure_kind(FrameSizeMismatchError("x")) == "size_mismatch"
    assert failure_kind(EncodingError("x")) == "decode_error"
    assert failure_kind(RuntimeError("CUDA out of memory")) == "inference_error"
    with pytest.raises(ValueError):
        LivenessConfig(stall_warn_s=3, stall_error_s=2)


def test_throttled_log(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    log = ThrottledLog(logging.getLogger("t"), 5.0, clock)
    with caplog.at_level(logging.WARNING):
        written = []
        for _ in range(100):
            clock.t += 0.1
            written.append(log.log(logging.WARNING, "decode", "bad frame"))
    assert sum(written) == 2
    assert "more like this" in caplog.records[-1].getMessage()
