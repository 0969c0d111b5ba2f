"""Telling JACK's losses from ours in tests that send MIDI through a real JACK server.

JACK drops (once seen: repeats) the MIDI events of a cycle in which a client missed its deadline
(an xrun, on an overloaded machine: CI once saw 170 and 300 in one 1.2 s run of the latency test,
each run losing a few of its 200 messages).  That is not ours to fix, so each message is judged by
itself: one lost or repeated is JACK's only when jackd reported an xrun while it was in flight;
any other loss or repeat, and any reordering, is ours and fails the test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def unexplained(
    got: list[int], n: int, near: Callable[[int], int], where: Callable[[int], str] | None = None
) -> list[str]:
    """What JACK's xruns do not explain in the arrival order ``got`` of messages ``0..n-1``:
    a message lost, or repeated, with ``near(k) == 0`` (no xrun report while message k was in
    flight); one that arrived before an earlier one.  Empty when every message arrived once,
    in order.  ``where(k)``: words appended to a lost or repeated message's line (e.g. the
    nearest xrun report, :meth:`XrunClock.nearest`), so that a failure says how far off it was."""

    def at(k: int) -> str:
        return f" ({where(k)})" if where is not None else ""

    bad = []
    firsts = []
    for pos, k in enumerate(got):
        if k in got[:pos]:
            if not near(k):
                bad.append(f"message {k} repeated (arrival {pos}) with no xrun near it{at(k)}")
        else:
            firsts.append(k)
    bad += [f"out of order: {a} arrived before {b}" for a, b in zip(firsts, firsts[1:]) if a > b]
    bad += [f"message {k} lost with no xrun near it{at(k)}" for k in sorted(set(range(n)) - set(got)) if not near(k)]
    return bad


class XrunClock:
    """When jackd's xrun reports appeared (``perf_counter_ns``, CLOCK_MONOTONIC: the same clock in
    every process on Linux), read by a thread every ``every_s`` from ``count()`` (the fixture's
    incremental ``JackServer.xrun_count``).  ``between(t0, t1)``: reports first seen in [t0, t1]."""

    def __init__(self, count: Callable[[], int], every_s: float = 0.005) -> None:
        self._count = count
        self.every_s = float(every_s)
        self.stamps: list[int] = []
        self._stop = threading.Event()
        self._last = count()
        self._thread = threading.Thread(target=self._watch, name="xrun-clock", daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.every_s):
            self._read()

    def _read(self) -> None:
        now = time.perf_counter_ns()
        c = self._count()
        self.stamps += [now] * (c - self._last)
        self._last = c

    def __enter__(self) -> XrunClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._read()

    def between(self, t0_ns: int, t1_ns: int) -> int:
        return sum(1 for t in self.stamps if t0_ns <= t <= t1_ns)

    def nearest(self, t_ns: int) -> str:
        """The xrun report nearest to ``t_ns``, in ms from it, and how many reports the run had."""
        if not self.stamps:
            return "no xrun report in the run"
        d = min(self.stamps, key=lambda t: abs(t - t_ns)) - t_ns
        return f"nearest xrun report {d / 1e6:+.1f} ms from its sending, {len(self.stamps)} in the run"
