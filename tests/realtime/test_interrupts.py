"""realtime.interrupts.SignalGuard: the first SIGINT/SIGTERM/SIGHUP interrupts, the rest never do.

Real signals sent to this process with ``os.kill`` (POSIX delivers them to the
main thread's Python handler before the next bytecode after the call returns).
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import sys
import threading
import time

import pytest

from mixpilot.realtime.interrupts import Interrupted, SignalGuard, deferred, exit_code_for, redeliver_swallowed


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
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with SignalGuard() as guard:
        guard.shield()
        assert all(signal.getsignal(s) == signal.SIG_IGN for s in before)  # ignored, not caught
        os.kill(os.getpid(), signal.SIGTERM)  # Python's default would have ended the process here
        _wait_for_delivery()
        assert guard.received == []  # discarded by the kernel: no handler ran
    assert {s: signal.getsignal(s) for s in before} == before  # the old handlers are back


def _read_one_byte_while_signalled(guard: SignalGuard, *, shield: bool) -> tuple[int, int]:
    """A C library blocked in read(2) (as libjack in jack_client_close) while SIGTERM arrives.

    The signal is sent to the main thread itself (pthread_kill: another thread of the test process,
    a JACK or ONNX one, must not take it), the one blocked in read; a byte is written 0.3 s later.
    Returns (read's result, errno).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    r, w = os.pipe()
    main = threading.main_thread().ident
    assert main is not None and threading.get_ident() == main

    def poke() -> None:
        time.sleep(0.2)
        signal.pthread_kill(main, signal.SIGTERM)
        time.sleep(0.3)
        os.write(w, b"x")

    if shield:
        guard.shield()
    t = threading.Thread(target=poke)
    t.start()
    buf = ctypes.create_string_buffer(1)
    n = libc.read(r, buf, 1)
    err = ctypes.get_errno()
    t.join()
    os.close(r)
    os.close(w)
    return n, err


def test_a_shielded_signal_interrupts_no_system_call():
    # The SIGABRT of issue 12: a second signal during the clean-up made libjack's read fail with EINTR
    # inside Pa_Terminate and PortAudio asserted.  POSIX (signal(7), "Interruption of system calls"):
    # a caught signal without SA_RESTART -- CPython's handlers -- makes a blocked read fail with EINTR;
    # an ignored one is discarded and the read goes on.
    with SignalGuard() as guard:
        assert _read_one_byte_while_signalled(guard, shield=True) == (1, 0)
        assert guard.received == []
    with SignalGuard() as guard:  # the same read under the unshielded guard, after a first signal
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGINT)
            _wait_for_delivery()
        assert _read_one_byte_while_signalled(guard, shield=False) == (-1, errno.EINTR)
        assert guard.received == [signal.SIGINT, signal.SIGTERM]


def test_a_signal_inside_a_deferred_block_comes_at_its_end():
    # JackServer.start keeps the Popen of jackd and its handle together this way: before, a signal that
    # landed inside Popen after the exec lost the handle and left the server running.
    done = []
    with SignalGuard() as guard:
        with pytest.raises(Interrupted) as info:
            with deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                _wait_for_delivery()
                done.append("held")  # not cut short by the signal
            done.append("after")  # never reached: the held signal is raised when the block ends
        assert done == ["held"] and info.value.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGINT)  # later ones are still only recorded
        _wait_for_delivery()
        assert guard.received == [signal.SIGTERM, signal.SIGINT]
    with deferred():  # no guard: a plain block
        done.append("plain")
    assert done[-1] == "plain"


class _SignalsInDel:
    """Sends ``sig`` to this process from its ``__del__`` and waits there for the handler: the
    handler's exception is raised inside ``__del__``, where Python cannot propagate it (it calls
    ``sys.unraisablehook`` and carries on; the data model's note on ``__del__``)."""

    def __init__(self, sig: int) -> None:
        self.sig = sig

    def __del__(self) -> None:
        os.kill(os.getpid(), self.sig)
        _wait_for_delivery()


def test_a_signal_raised_inside_a_del_is_swallowed_by_python():
    """The premise, with Python's own SIGINT handler and no redelivery: the KeyboardInterrupt goes to
    the unraisable hook and the code after the ``del`` runs on (seen in CI: Ctrl-C in llvmlite's
    ``__del__`` while Numba compiled a batch worker's kernels)."""
    seen = []
    old_hook, old_int = sys.unraisablehook, signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.unraisablehook = lambda u: seen.append(type(u.exc_value))
    try:
        obj = _SignalsInDel(signal.SIGINT)
        del obj
        _wait_for_delivery()
        went_on = True
    finally:
        sys.unraisablehook = old_hook
        signal.signal(signal.SIGINT, old_int)
    assert went_on and seen == [KeyboardInterrupt]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_guarded_signal_swallowed_by_a_del_is_raised_right_after(sig):
    old_hook = sys.unraisablehook
    with SignalGuard() as guard:
        with pytest.raises(Interrupted) as info:
            obj = _SignalsInDel(sig)
            del obj
            time.sleep(1.0)  # delivered again (2 ms later): raised here, where it propagates
        assert info.value.signum == sig and guard.received == [sig]  # the first signal, counted once
        os.kill(os.getpid(), signal.SIGINT)  # a real second one: recorded, not raised
        _wait_for_delivery()
        assert guard.received == [sig, signal.SIGINT]
    assert sys.unraisablehook is old_hook


def test_redelivery_with_a_plain_handler_and_other_unraisables_untouched():
    """``redeliver_swallowed`` alone (the batch workers, Python's SIGINT handler in the batch's main
    process): the KeyboardInterrupt comes right after the ``del``; any other exception in a ``__del__``
    still reaches the hook that was there."""

    class _Fails:
        def __del__(self) -> None:
            raise ValueError("not ours")

    seen = []
    old_hook, old_int = sys.unraisablehook, signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.unraisablehook = lambda u: seen.append(type(u.exc_value))
    try:
        previous = redeliver_swallowed()
        with pytest.raises(KeyboardInterrupt):
            obj = _SignalsInDel(signal.SIGINT)
            del obj
            time.sleep(1.0)
        other = _Fails()
        del other
    finally:
        sys.unraisablehook = old_hook
        signal.signal(signal.SIGINT, old_int)
    assert previous is not None and seen == [ValueError]


def test_exit_codes_follow_the_shell():
    # POSIX shells report a process ended by signal N as 128 + N (bash(1), "EXIT STATUS")
    assert (exit_code_for(signal.SIGINT), exit_code_for(signal.SIGTERM), exit_code_for(signal.SIGHUP)) == (
        130,
        143,
        129,
    )
