"""realtime.interrupts.SignalGuard: the first SIGINT/SIGTERM/SIGHUP interrupts, the rest never do.

Real signals sent to this process with ``os.kill`` (POSIX delivers them to the
main thread's Python handler before the next bytecode after the call returns).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from mixpilot.realtime.interrupts import Interrupted, SignalGuard, exit_code_for


def _wait_for_delivery() -> None:
    time.sleep(0.01)  # the handler runs at the latest at the next bytecode boundary


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_first_signal_interrupts_later_ones_are_recorded(sig):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with SignalGuard() as guard:
        with pytest.raises(KeyboardInterrupt) as info:  # every 'except KeyboardInterrupt' handles it
            os.kill(os.getpid(), sig)
            _wait_for_delivery()
        assert isinstance(info.value, Interrupted) and info.value.signum == sig and info.value.name == sig.name
        os.kill(os.getpid(), signal.SIGINT)  # a second one (double Ctrl-C): recorded, not raised
        os.kill(os.getpid(), signal.SIGTERM)
        _wait_for_delivery()
        assert guard.received == [sig, signal.SIGINT, signal.SIGTERM] and guard.first == sig
    assert {s: signal.getsignal(s) for s in before} == before  # the old handlers are back


def test_shielded_clean_up_is_never_interrupted():
    with SignalGuard() as guard:
        guard.shield()
        os.kill(os.getpid(), signal.SIGTERM)  # Python's default would have ended the process here
        _wait_for_delivery()
        assert guard.received == [signal.SIGTERM]


def test_exit_codes_follow_the_shell():
    # POSIX shells report a process ended by signal N as 128 + N (bash(1), "EXIT STATUS")
    assert (exit_code_for(signal.SIGINT), exit_code_for(signal.SIGTERM), exit_code_for(signal.SIGHUP)) == (
        130,
        143,
        129,
    )
