"""realtime.rtsys.CpuWakeLatency: the PM QoS request for 0 µs CPU wake-up latency, held and released.

Reference: the kernel's PM QoS interface (Documentation/power/pm_qos_interface.rst): a process that
writes a 32-bit value to /dev/cpu_dma_latency holds that request until it closes the file, and
reading the file returns the value in force for the whole system (the smallest held request).
"""

from __future__ import annotations

import os

import pytest

from mixpilot.realtime.rtsys import CpuWakeLatency, RtReport


def _usable() -> str | None:
    path = CpuWakeLatency.PATH
    if not os.path.exists(path):
        return f"no {path} on this machine"
    if not os.access(path, os.W_OK):
        return f"{path} is not writable here"
    return None


def test_a_missing_device_is_one_reason_and_nothing_held(tmp_path):
    wake = CpuWakeLatency(str(tmp_path / "no-such-device"))
    done, why = wake.hold()
    assert (done, wake.held) == (False, False)
    assert why == f"no {tmp_path / 'no-such-device'}"
    wake.release()  # idempotent, nothing to close
    assert wake.current_us() is None
    r = RtReport()
    r.cpu_note = why
    assert f"CPU idle states NOT held off ({why})" in r.line() and r.as_dict()["cpu_awake"] is False


def test_the_request_holds_while_open_and_ends_on_release():
    why = _usable()
    if why:
        pytest.skip(why)
    probe = CpuWakeLatency()
    before = probe.current_us()
    if before == 0:
        pytest.skip("another process already holds a 0 µs request: a release would not show here")
    wake = CpuWakeLatency()
    assert wake.hold() == (True, "") and wake.held
    try:
        assert probe.current_us() == 0  # the system-wide value in force
        # not passed on to a child process started with inherited descriptors (PEP 446)
        assert os.get_inheritable(wake._fd) is False  # type: ignore[arg-type]
    finally:
        wake.release()
    assert not wake.held and probe.current_us() == before
    wake.release()  # idempotent
