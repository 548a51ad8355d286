# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""SIGINT/SIGTERM become an event, never a KeyboardInterrupt (temcoco_core.shutdown)."""

import os
import signal
import time

from temcoco_core.shutdown import ShutdownRequest


def test_signals_set_the_event_and_count() -> None:
    before = signal.getsignal(signal.SIGINT)
    stop = ShutdownRequest().install()
    try:
        assert not stop.requested and not stop.wait(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt by default
        deadline = time.monotonic() + 5
        while not stop.requested and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert stop.wait(0) and stop.reason == "SIGINT" and stop.count == 3
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGINT) is before


def test_request_from_code_keeps_the_first_reason() -> None:
    stop = ShutdownRequest(signals=())
    stop.request("configure failed")
    stop.request("later")
    assert stop.requested and stop.reason == "configure failed" and stop.count == 0
