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

Shielded, the signals are *ignored* (``SIG_IGN``), not caught by a handler
that does nothing: a caught signal still interrupts whatever system call a C
library is blocked in.  Found with a core dump of a run that ended in SIGABRT
(exit -6, about 1 in 10 shutdown runs under load): a second SIGTERM landed
while ``Pa_Terminate`` closed the JACK client, libjack's socket ``read`` in
``jack_client_close`` failed with ``EINTR``, and PortAudio's
``assert(err == 0)`` (pa_jack.c) aborted the process, its output hidden by
the clean-up's quieted stderr.  An ignored signal is discarded by the kernel
and interrupts nothing (``tests/realtime/test_interrupts.py`` shows the
difference on a blocking ``read``).  A shielded guard therefore records no
further signals; the clean-up spawns no child that would inherit the ignore.

:func:`deferred` marks a few lines that must not be cut in two (``subprocess.Popen``
of the JACK server and keeping its handle: a signal raised inside ``Popen`` after
the ``exec`` would lose the handle of a running server).  A first signal landing
there is held and raised when the block ends.  This is the Python-level twin of
``pthread_sigmask``: a blocked C mask would be inherited by the child (a jackd
that ignores SIGTERM) and by every later subprocess.

A signal's exception raised while the main thread runs a ``__del__`` (or a weakref callback)
cannot propagate: Python prints it as "Exception ignored in ..." and carries on.  Seen in CI:
Ctrl-C during a batch render landed in llvmlite's ``ObjectRef.__del__`` while Numba compiled,
a traceback reached the terminal and the render went on; under a :class:`SignalGuard` the
run would go on with its one interruption spent.  :func:`redeliver_swallowed` (entered by
every guard, and by the batch workers for good) catches that case in ``sys.unraisablehook``
and delivers the same signal again (``_thread.interrupt_main`` from a thread, 2 ms later,
once the hook has returned), to be raised at the next line the main thread runs; a guard
raises it as the first signal it still is.
"""

from __future__ import annotations

import _thread
import functools
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["HANDLED_SIGNALS", "Interrupted", "SignalGuard", "deferred", "exit_code_for", "redeliver_swallowed"]

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
        self._defer = 0  # > 0 inside deferred(): the first signal is held, not raised
        self._pending: int | None = None
        self._outer: SignalGuard | None = None
        self._old_hook: Any = sys.unraisablehook

    def __enter__(self) -> SignalGuard:
        global _active
        if threading.current_thread() is threading.main_thread():
            for s in HANDLED_SIGNALS:
                self._old[s] = signal.signal(s, self._handler)
            self._armed = True
            self._outer, _active = _active, self
            self._old_hook = redeliver_swallowed()
        return self

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        global _redelivering
        if _redelivering == signum:  # our own Interrupted again, after a __del__ swallowed it
            _redelivering = None
            raise Interrupted(signum)
        self.received.append(signum)
        if self._armed:
            self._armed = False  # once: a second signal must not cut the clean-up short
            if self._defer:
                self._pending = signum  # raised when deferred() ends
                return
            raise Interrupted(signum)

    def shield(self) -> None:
        """From here on (the clean-up) the handled signals are ignored: never raised, never an ``EINTR``.

        Off the main thread (no handlers installed) it only disarms.  Leaving the context restores
        the handlers that were there before it.
        """
        self._armed = False
        if self._old and threading.current_thread() is threading.main_thread():
            for s in self._old:
                signal.signal(s, signal.SIG_IGN)

    @property
    def first(self) -> int | None:
        return self.received[0] if self.received else None

    def __exit__(self, *exc: object) -> None:
        global _active
        self._armed = False
        if _active is self:
            _active, self._outer = self._outer, None
        for s, old in self._old.items():
            try:
                signal.signal(s, old)
            except (TypeError, ValueError):  # a handler installed from C: leave ours (it only records)
                pass
        if self._old:
            sys.unraisablehook = self._old_hook
        self._old = {}


_active: SignalGuard | None = None  # the innermost entered guard (main thread)
_redelivering: int | None = None  # a signal delivered again by _unraisable, not yet handled
REDELIVER_AFTER_S = 0.002
_requests: queue.SimpleQueue[int] = queue.SimpleQueue()  # signals to deliver again (put from the hook)
_redeliverer: threading.Thread | None = None


def _redeliver_loop() -> None:
    while True:
        signum = _requests.get()
        time.sleep(REDELIVER_AFTER_S)  # the hook has returned by then
        _thread.interrupt_main(signal.Signals(signum))


def _unraisable(previous: Any, unraisable: Any) -> None:
    """The hook: a swallowed KeyboardInterrupt of the main thread is queued for delivery again.

    Not delivered from here (its handler would run inside this hook, where its exception is lost
    again); should an earlier delivery land in here all the same, it is caught and queued once more.
    """
    global _redelivering
    exc = unraisable.exc_value
    while True:
        try:
            if not isinstance(exc, KeyboardInterrupt) or threading.current_thread() is not threading.main_thread():
                previous(unraisable)
                return
            signum = int(getattr(exc, "signum", signal.SIGINT))
            _redelivering = signum
            _requests.put(signum)
            return
        except KeyboardInterrupt as again:
            exc = again


def redeliver_swallowed() -> Any:
    """Install the ``sys.unraisablehook`` that delivers a signal's swallowed exception again.

    A ``KeyboardInterrupt`` (an :class:`Interrupted` carries its ``signum``; a plain one is SIGINT)
    that a ``__del__`` in the main thread could not propagate is not printed: the same signal is
    delivered again 2 ms later, from a thread that sleeps on a queue otherwise, so that its handler
    raises it where it can propagate (should it land in a ``__del__`` again, this repeats).
    Everything else goes to the hook that was there.  Returns that previous hook (to restore).
    """
    global _redeliverer
    if _redeliverer is None:
        _redeliverer = threading.Thread(target=_redeliver_loop, name="mixpilot-redeliver", daemon=True)
        _redeliverer.start()
    previous = sys.unraisablehook
    sys.unraisablehook = functools.partial(_unraisable, previous)  # C: no line of ours before the hook runs
    return previous


@contextmanager
def deferred() -> Iterator[None]:
    """A block a first SIGINT/SIGTERM/SIGHUP must not cut in two: its :class:`Interrupted` comes at the end.

    Without an active :class:`SignalGuard` (or off the main thread) it changes nothing.
    """
    guard = _active if threading.current_thread() is threading.main_thread() else None
    if guard is None:
        yield
        return
    guard._defer += 1
    try:
        yield
    finally:
        guard._defer -= 1
    if guard._defer == 0 and guard._pending is not None:
        signum, guard._pending = guard._pending, None
        raise Interrupted(signum)
