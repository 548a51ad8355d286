# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Terminal Ctrl-C and ``ros2 launch`` shutdown as an event, never an exception.

A node started by ``ros2 launch`` in a terminal gets SIGINT twice (the terminal's process group,
then launch's own SIGINT to the child) and SIGTERM if it is still alive after launch's
``sigterm_timeout``. With Python's default handler each SIGINT raises ``KeyboardInterrupt``
wherever the main thread happens to be -- inside ``destroy_node()``, a thread join or an
engine build -- which is how tracebacks, aborts and "context already shut down" errors happen.
:class:`ShutdownRequest` replaces the handlers with one that only sets an event: the main
thread notices it at its next loop turn and shuts down in order (stop the worker, destroy the
node while the context can still publish logs, shut the context down). Later signals only
count.

Example::

    stop = ShutdownRequest().install()
    try:
        while not stop.wait(0.1):
            ...                  # spin
    finally:
        stop.restore()
"""

from __future__ import annotations

from collections.abc import Iterable
import signal
import threading
from types import FrameType

__all__ = ["ShutdownRequest"]


class ShutdownRequest:
    """A latch set by SIGINT/SIGTERM (or :meth:`request`) instead of an exception.

    Attributes:
        count: signals received so far.
        reason: what requested the shutdown first (``"SIGINT"``, ``"SIGTERM"`` or the text
            given to :meth:`request`); ``""`` while none has.
    """

    def __init__(self, signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self._signals = tuple(signals)
        self._event = threading.Event()
        self._previous: dict[int, object] = {}
        self.count = 0
        self.reason = ""

    def install(self) -> ShutdownRequest:
        """Install the handlers (main thread only); returns ``self``."""
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def restore(self) -> None:
        """Put the previous handlers back."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if not self.reason:
            self.reason = signal.Signals(signum).name
        self._event.set()

    def request(self, reason: str) -> None:
        """Ask for shutdown from code (e.g. a failed start-up), thread-safe."""
        if not self.reason:
            self.reason = reason
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until shutdown is requested or ``timeout`` passes; returns :attr:`requested`."""
        return self._event.wait(timeout)
