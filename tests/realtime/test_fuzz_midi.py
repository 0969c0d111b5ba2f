"""Fuzz: random MIDI byte streams into the parser, the controller mapper and the engine (issue 13).

Two layers, both seeded (``derandomize``) with a budget that fits CI:

* :func:`realtime.midi_parse.split_stream` against its reference, the
  messages a stream was built from: channel messages with and without running
  status, SysEx terminated by ``F7`` or cut short by the next status byte
  (MIDI 1.0 Detailed Specification, "System Exclusive"), system common
  messages (which cancel running status), real-time bytes inserted anywhere,
  even inside another message.  Every message must come back, in order, with
  no fragment.  And any bytes at all: no exception, nothing invented.
* The whole control path: random packets (CCs on every bound control, 14-bit
  pairs in both orders, button presses, SysEx fragments, running-status runs,
  garbage) through :class:`realtime.midi.ControlMapper` into an
  :class:`realtime.engine.Engine` between blocks of random size, over hostile
  signals (silence, DC, full-scale square, +20 dBFS noise, NaN/Inf bursts), with
  a knob on ``limiter_ceiling_dbtp`` that asks above the run's ceiling.  Every
  run must give: finite output, no sample above the ceiling, a true peak
  measured independently (``scipy.signal.resample_poly`` 4x, ITU-R BS.1770-4
  Annex 2) at most 0.1 dB over it, finite engine state, the counters adding up
  (received = mapped + ignored + dropped), and it must end (a bounded loop;
  hypothesis would report a hang as a timeout of the suite).
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpilot.realtime.engine import Engine
from mixpilot.realtime.midi import (
    COUNT_DROPPED,
    COUNT_IGNORED,
    COUNT_MAPPED,
    COUNT_RECEIVED,
    ControlBank,
    ControlMapper,
)
from mixpilot.realtime.midi_map import MidiMap
from mixpilot.realtime.midi_parse import split_stream
from mixpilot.tests.dsp.test_fuzz_chain import independent_true_peak_db, make_signal

PARSE = settings(max_examples=400, derandomize=True, deadline=None, database=None)
ENGINE = settings(
    max_examples=100, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# --- the parser against the messages a stream was built from ----------------------------------

data = st.integers(0, 127)
channel_msg = st.one_of(
    st.tuples(st.integers(0x80, 0xBF).filter(lambda s: True), data, data),
    st.tuples(st.integers(0xC0, 0xDF), data),
    st.tuples(st.integers(0xE0, 0xEF), data, data),
)
sysex = st.tuples(st.lists(data, max_size=12), st.booleans()).map(
    lambda t: ("sysex", tuple(t[0]), t[1])  # body, terminated by F7 (else the next status byte ends it)
)
common = st.sampled_from([(0xF1, 5), (0xF2, 1, 2), (0xF3, 3), (0xF6,)])
items = st.lists(st.one_of(channel_msg, channel_msg, sysex, common), max_size=30)


def build(msgs, use_running, realtime_at):
    """The byte stream of ``msgs`` and the messages a correct parser returns (real-time bytes apart)."""
    stream: list[int] = []
    expect: list[tuple[int, ...]] = []
    running = 0
    for k, m in enumerate(msgs):
        if m[0] == "sysex":
            _, body, terminated = m
            nxt = msgs[k + 1] if k + 1 < len(msgs) else None
            if not terminated and (nxt is None or nxt[0] == "sysex"):
                terminated = True  # only a following status byte may end it early; keep the reference exact
            stream += [0xF0, *body] + ([0xF7] if terminated else [])
            expect.append((0xF0, *body, 0xF7) if terminated else (0xF0, *body))
            running = 0
        elif m[0] >= 0xF0:
            stream += list(m)
            expect.append(tuple(m))
            running = 0
        else:
            if use_running and m[0] == running:
                stream += list(m[1:])  # running status: the status byte left out
            else:
                stream += list(m)
            expect.append(tuple(m))
            running = m[0]
    for pos, rt in sorted(realtime_at, reverse=True):  # real-time bytes anywhere, even mid-message
        stream.insert(min(pos, len(stream)), rt)
    return stream, expect


@PARSE
@given(
    msgs=items,
    use_running=st.booleans(),
    realtime_at=st.lists(st.tuples(st.integers(0, 400), st.sampled_from([0xF8, 0xFA, 0xFC, 0xFE, 0xFF])), max_size=6),
)
def test_split_stream_returns_the_messages_the_stream_was_built_from(msgs, use_running, realtime_at):
    stream, expect = build(msgs, use_running, realtime_at)
    got, fragments = split_stream(bytes(stream))
    assert fragments == 0
    assert [m for m in got if m[0] < 0xF8] == expect
    assert [m[0] for m in got if m[0] >= 0xF8] == [b for b in stream if b >= 0xF8]  # each where it was put


@PARSE
@given(raw=st.binary(max_size=200))
def test_split_stream_takes_any_bytes(raw):
    got, fragments = split_stream(raw)
    assert fragments >= 0
    # nothing invented: each message's bytes are in the stream, but for one status byte running status implies
    assert sum(len(m) - 1 for m in got) + fragments <= len(raw)
    for m in got:
        if m[0] < 0xF0:
            assert len(m) == (2 if 0xC0 <= m[0] <= 0xDF else 3) and all(b < 0x80 for b in m[1:])


# --- the control path into the engine ------------------------------------------------------------

FUZZ_MAP = """
[[cc]]
cc = 70
param = "low_gain_db"
soft_takeover = false
[[cc]]
cc = 74
param = "comp_ratio"
curve = "log"
[[cc]]
cc = 1
param = "input_gain_db"
cc14 = true
soft_takeover = false
[[cc]]
cc = 2
param = "limiter_ceiling_dbtp"
cc14 = true
soft_takeover = false
[[cc]]
cc = 79
param = "output_gain_db"
[[cc]]
cc = 75
param = "reverb_send"
[[cc]]
cc = 102
action = "bypass"
[[cc]]
cc = 103
action = "ab"
[[cc]]
cc = 104
action = "ai"
[[cc]]
cc = 105
action = "release"
"""
BOUND = [70, 74, 1, 33, 2, 34, 79, 75, 102, 103, 104, 105]
SR = 48000

cc_msg = st.tuples(st.integers(0xB0, 0xBF), st.sampled_from(BOUND + [7, 64, 120]), data).map(list)
pair14 = st.tuples(st.integers(0, 15), st.sampled_from([1, 2]), data, data, st.booleans()).map(
    lambda t: [0xB0 | t[0], t[1], t[2], 0xB0 | t[0], t[1] + 32, t[3]] if t[4] else [0xB0 | t[0], t[1] + 32, t[3]]
)
running_run = st.tuples(st.sampled_from(BOUND), st.lists(data, min_size=1, max_size=6)).map(
    lambda t: [0xB0, t[0], t[1][0]] + [b for v in t[1][1:] for b in (t[0], v)]
)
sysex_frag = st.lists(data, max_size=8).map(lambda body: [0xF0, *body])  # no F7: unterminated
garbage = st.binary(max_size=12).map(list)
packet_bytes = st.one_of(cc_msg, cc_msg, pair14, running_run, sysex_frag, garbage, st.just([0xF7]))
#: a packet as rtmidi hands it over: one event, or several events run together (rtmidi's SysEx blob)
packet = st.lists(packet_bytes, min_size=1, max_size=3).map(lambda parts: [b for p in parts for b in p])


@ENGINE
@given(
    kind=st.sampled_from(("silence", "dc", "square", "noise20", "nanburst", "music")),
    ceiling=st.sampled_from([-1.0, -0.3, -6.0]),
    blocks=st.lists(st.one_of(st.sampled_from([1, 64, 128, 512]), st.integers(1, 2048)), min_size=1, max_size=4),
    schedule=st.lists(st.tuples(st.integers(0, SR // 4), packet), max_size=40),  # (frame, packet)
    seed=st.integers(0, 2**32 - 1),
)
def test_random_midi_streams_never_break_the_ceiling(kind, ceiling, blocks, schedule, seed):
    n = SR // 4
    eng = Engine(SR, 2, max_block_size=2048, target_lufs=-6.0, ceiling_dbtp=ceiling, meters=False)
    bank = ControlBank()
    mapper = ControlMapper(MidiMap.from_toml_text(FUZZ_MAP), bank)
    eng.attach_controls(bank)
    x = np.concatenate([make_signal(kind, n, SR, seed), np.zeros((eng.latency_samples + 128, 2), np.float32)])
    y = np.zeros_like(x)
    todo = sorted(schedule, key=lambda e: e[0])
    i = k = 0
    while i < len(x):  # bounded: every block advances by at least one frame
        while todo and todo[0][0] <= i:  # the packets that arrived before this block starts
            mapper.handle(todo.pop(0)[1], 0)
        b = min(blocks[k % len(blocks)], len(x) - i)
        eng.process_block(x[i : i + b], y[i : i + b])
        i += b
        k += 1
    c = bank.counters
    assert c[COUNT_RECEIVED] == c[COUNT_MAPPED] + c[COUNT_IGNORED] + c[COUNT_DROPPED]
    assert c[COUNT_RECEIVED] >= len(schedule)
    assert np.all(np.isfinite(y))
    assert float(np.max(np.abs(y.astype(np.float64)))) <= 10 ** (ceiling / 20)  # every sample
    assert independent_true_peak_db(y, cut=64) <= ceiling
    assert all(np.all(np.isfinite(a)) for a in eng.chain.state_arrays().values())
    assert np.all(np.isfinite(eng.chain.current_values)) and np.all(np.isfinite(bank.manual_value))


def test_a_sysex_run_gives_back_the_messages_inside():
    # What rtmidi delivers under JACK after F0 7D 01 02 03 without F7 and two CCs (then an F7 ends it):
    # reference, the MIDI 1.0 rule that any status byte but real-time ends a SysEx.
    bank = ControlBank()
    m = MidiMap.from_toml_text('[[cc]]\ncc = 75\nparam = "reverb_send"\nsoft_takeover = false\n')
    mapper = ControlMapper(m, bank)
    run = [0xF0, 0x7D, 1, 2, 3, 0xB0, 75, 16, 0xF8, 0xB0, 75, 32, 0x4B, 64, 0xF7]  # the last CC in running status
    assert mapper.handle(run, 0) == COUNT_MAPPED
    c = bank.counters
    # the SysEx (ignored), three CCs (applied); the clock byte is not counted (rtmidi filters it everywhere else),
    # nor the packet's final F7 (it only made rtmidi hand the packet over)
    assert (c[COUNT_RECEIVED], c[COUNT_MAPPED], c[COUNT_IGNORED], c[COUNT_DROPPED]) == (4, 3, 1, 0)
    assert bank.manual_value[m.find(1, 75).param_index] == m.find(1, 75).value_at(64 / 127)
    assert mapper.sysex_runs == 1
