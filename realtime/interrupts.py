"""Signals during a real-time run: SIGINT, SIGTERM and SIGHUP end it one way, once, and never its clean-up.

``mixpilot play``/``live`` keep their promises however they end: the recording
moved into place, ``--stats-json`` written, the JACK server they started
stopped, no temporary file left (README, issue 13 item 3).  Python's defaults
break that for every signal but SIGINT: SIGTERM and SIGHUP end the process at
once (a hidden ``.mixpilot-rec-*.wav`` stays, the server keeps running), and a
second Ctrl-C lands in the middle of the clean-up.

:class:`SignalGuard` (a context manager, main thread only) makes the *first* of
SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (a ``KeyboardInterrupt``,
so every ``except KeyboardInterrupt`` already in place handles it) in the main
thread, and every later one a no-op that is only recorded.  :meth:`shield`
disarms it for the clean-up, so that a signal sent while the run is already
ending (a double Ctrl-C, a service manager's SIGTERM after SIGINT) cannot cut
the clean-up short.  Leaving the context restores the previous handlers.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["HANDLED_SIGNALS", "Interrupted", "SignalGuard", "exit_code_for", "signal_name"]

HANDLED_SIGNALS: tuple[int, ...] = tuple(
    s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None
)


def exit_code_for(signum: int) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number (SIGINT 130, SIGTERM 143)."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop by a signal (``signum``); a ``KeyboardInterrupt`` for every handler."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = int(signum)
        super().__init__(signal_name(self.signum))

    @property
    def name(self) -> str:
        return signal_name(self.signum)


class SignalGuard:
    """First SIGINT/SIGTERM/SIGHUP -> :class:`Interrupted` in the main thread; the rest recorded only.

    Off the main thread (where Python cannot install handlers) it does nothing.
    ``received`` lists every signal number that arrived, in order.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._armed = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for s in HANDLED_SIGNALS:
                self._old[s] = signal.signal(s, self._handler)
            self._armed = True
        return self

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if self._armed:
            self._armed = False  # once: a second signal must not cut the clean-up short
            raise Interrupted(signum)

    def shield(self) -> None:
        """From here on (the clean-up) signals are recorded, never raised."""
        self._armed = False

    @property
    def first(self) -> int | None:
        return self.received[0] if self.received else None

    def __exit__(self, *exc: object) -> None:
        self._armed = False
        for s, old in self._old.items():
            try:
                signal.signal(s, old)
            except (TypeError, ValueError):  # a handler installed from C: leave ours (it only records)
                pass
        self._old = {}
