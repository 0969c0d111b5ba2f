"""An unterminated SysEx over a real JACK server must not deafen the MIDI input (issue 13 item 8).

Under JACK, python-rtmidi appends every event after a SysEx that has no ``F7``
to that SysEx and queues nothing until some event ends in ``F7``: a controller
that sends ``F0 7D 01 02 03`` once made every later control change vanish.
The reference is what the test port sent: after the fragment, 128 control
changes on CC 75 (``reverb_send``, soft takeover off) with data 0..127, 3 ms
apart; they must reach the bank in order (JACK may drop a cycle's events on an
overloaded machine: at most 2 % lost, as in test_midi_jack.py) and the bank
must end on the last value sent.
"""

from __future__ import annotations

import time

import pytest

from mixpilot.dsp.params import PARAM_INDEX
from mixpilot.realtime.midi import COUNT_RECEIVED, ControlBank, MidiInput
from mixpilot.realtime.midi_map import MidiMap

rtmidi = pytest.importorskip("rtmidi")

MAP = """
[[cc]]
cc = 75
param = "reverb_send"
range = "ai"
soft_takeover = false
"""


def _wait_for(cond, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.002)
    return cond()


def _connect(client: str, bank: ControlBank):
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=client)
    names = out.get_ports()
    hits = [i for i, n in enumerate(names) if n.endswith(":mixpilot")]
    assert hits, f"no JACK MIDI input 'mixpilot' among {names}"
    out.open_port(hits[-1], name="out")
    for _ in range(20):  # the connection settles: CC 9 is unbound, counted only
        out.send_message([0xB0, 9, 0])
        if _wait_for(lambda: bank.counters[COUNT_RECEIVED] > 0, 0.1):
            break
    assert bank.counters[COUNT_RECEIVED] > 0
    time.sleep(0.05)
    return out


@pytest.mark.parametrize("dispatch", ["poll", "callback"])
def test_control_changes_after_an_unterminated_sysex_arrive(jack_server, dispatch):
    bank = ControlBank()
    m = MidiMap.from_toml_text(MAP)
    arrived: list[float] = []
    warnings: list[str] = []
    mi = MidiInput(
        "virtual",
        m,
        bank,
        dispatch=dispatch,
        on_event=lambda t, p, v, s: arrived.append(v),
        on_warning=warnings.append,
    )
    out = None
    try:
        out = _connect(f"mp_sysex_{dispatch}", bank)
        out.send_message([0xF0, 0x7D, 0x01, 0x02, 0x03])  # no F7
        sent = [m.find(1, 75).value_at(v / 127) for v in range(128)]
        for v in range(128):
            out.send_message([0xB0, 75, v])
            time.sleep(0.003)
        _wait_for(lambda: len(arrived) >= len(sent), 3.0)
        lost = len(sent) - len(arrived)
        assert lost <= len(sent) // 50, f"{lost} of {len(sent)} control changes lost: {bank.counts()}"
        assert arrived == [v for v in sent if v in arrived]  # in order, each once
        assert bank.manual_value[PARAM_INDEX["reverb_send"]] == sent[-1]
        # said once at most, not per message (only when a SysEx actually ran into later messages: the F7 mixpilot
        # sends itself every 10 ms may have ended it first)
        assert sum(1 for w in warnings if "SysEx" in w) <= 1
    finally:
        if out is not None:
            out.close_port()
            out.delete()
        mi.close()
