"""MIDI message handling without a port: curves, ranges, channels, 14-bit pairs,
soft takeover, buttons, bad input, coalescing, the resume watchdog, MIDI-file
automation and midi-learn with scripted input.

References: curve formulas and the 14-bit convention of MIDI 1.0
((msb << 7 | lsb) / 16383) as documented in realtime/midi_map.py; MIDI-file
timing against seconds computed by hand from ticks, ticks per beat and the
tempo map (mido's own tick2second is not used as the reference).
"""

from __future__ import annotations

import collections
import time

import mido
import numpy as np
import pytest

from mixpilot.dsp.params import N_PARAMS, PARAM_INDEX, PARAMS
from mixpilot.realtime.midi import (
    ACTION_AB,
    ACTION_AI,
    ACTION_BYPASS,
    ACTION_RELEASE,
    COUNT_DROPPED,
    COUNT_IGNORED,
    COUNT_MAPPED,
    COUNT_RECEIVED,
    ControlBank,
    ControlMapper,
    MidiError,
    MidiFileAutomation,
    ResumeWatchdog,
    choose_api,
    learn,
)
from mixpilot.realtime.midi_map import MidiMap

LOW, MID, REV, RATIO = (PARAM_INDEX[n] for n in ("low_gain_db", "mid_gain_db", "reverb_send", "comp_ratio"))


def cc(ch: int, num: int, val: int) -> list[int]:
    """A control change on channel ``ch`` (1..16)."""
    return [0xB0 | (ch - 1), num, val]


def mapper_for(text: str, bank: ControlBank | None = None, **kw) -> ControlMapper:
    return ControlMapper(MidiMap.from_toml_text(text), bank or ControlBank(), **kw)


NO_TAKEOVER = """
[[cc]]
cc = 10
param = "low_gain_db"
min = -6.0
max = 6.0
soft_takeover = false
[[cc]]
cc = 11
param = "comp_ratio"
curve = "log"
soft_takeover = false
[[cc]]
cc = 12
channel = 2
param = "mid_gain_db"
soft_takeover = false
[[cc]]
cc = 1
param = "low_freq_hz"
curve = "log"
min = 50.0
max = 800.0
cc14 = true
soft_takeover = false
"""


def test_bank_layout_matches_the_contract():
    bank = ControlBank()
    for name, dtype, shape in [
        ("manual_value", np.float64, (N_PARAMS,)),
        ("manual_seq", np.int64, (N_PARAMS,)),
        ("release_seq", np.int64, (N_PARAMS,)),
        ("action_seq", np.int64, (4,)),
        ("current", np.float64, (N_PARAMS,)),
        ("msg_time_ns", np.int64, (N_PARAMS,)),
        ("counters", np.int64, (4,)),
    ]:
        a = getattr(bank, name)
        assert a.dtype == dtype and a.shape == shape, name
    assert (ACTION_BYPASS, ACTION_AB, ACTION_AI, ACTION_RELEASE) == (0, 1, 2, 3)
    assert bank.current.tolist() == [p.default for p in PARAMS]


def test_linear_log_and_custom_range_closed_form():
    m = mapper_for(NO_TAKEOVER)
    bank = m.bank
    for v in (0, 1, 63, 64, 100, 127):
        m.handle(cc(1, 10, v))
        assert bank.manual_value[LOW] == pytest.approx(-6.0 + 12.0 * v / 127, abs=1e-12)  # min=-6, max=6
        m.handle(cc(5, 11, v))
        assert bank.manual_value[RATIO] == pytest.approx(20.0 ** (v / 127), rel=1e-12)  # 1..20, hard range
    assert bank.manual_seq[LOW] == 6 and bank.manual_seq[RATIO] == 6


def test_channel_filtering():
    m = mapper_for(NO_TAKEOVER)
    bank = m.bank
    assert m.handle(cc(1, 12, 127)) == COUNT_IGNORED  # cc 12 is bound on channel 2 only
    assert m.handle(cc(16, 12, 127)) == COUNT_IGNORED
    assert bank.manual_seq[MID] == 0
    assert m.handle(cc(2, 12, 127)) == COUNT_MAPPED
    assert bank.manual_value[MID] == 18.0  # top of the hard range -18..18
    assert m.handle(cc(16, 10, 127)) == COUNT_MAPPED  # no channel in the map: any channel


def test_14bit_pairs():
    m = mapper_for(NO_TAKEOVER)
    bank = m.bank
    i = PARAM_INDEX["low_freq_hz"]

    def expect(msb, lsb):  # reference: MIDI 1.0 14-bit value, then the log curve 50..800
        return 50.0 * 16.0 ** (((msb << 7) | lsb) / 16383)

    assert m.handle(cc(1, 33, 5)) == COUNT_IGNORED  # an LSB before any MSB: no position
    m.handle(cc(1, 1, 64))
    assert bank.manual_value[i] == pytest.approx(expect(64, 0), rel=1e-12)
    m.handle(cc(1, 33, 77))
    assert bank.manual_value[i] == pytest.approx(expect(64, 77), rel=1e-12)
    m.handle(cc(1, 1, 100))  # a new MSB resets the LSB
    assert bank.manual_value[i] == pytest.approx(expect(100, 0), rel=1e-12)
    m.handle(cc(1, 33, 127))
    assert bank.manual_value[i] == pytest.approx(expect(100, 127), rel=1e-12)
    m.handle(cc(1, 1, 127))
    m.handle(cc(1, 33, 127))
    assert bank.manual_value[i] == pytest.approx(800.0, rel=1e-12)
    assert bank.manual_seq[i] == 6


def test_soft_takeover_crossing_from_below():
    m = ControlMapper(MidiMap.default(), ControlBank())
    bank = m.bank
    bank.current[LOW] = 0.0  # knob position 0.5 on -3..3 dB (between data 63 and 64)
    for v in (10, 20, 40, 62):  # 63 would be within half a step of 63.5: picked up at once
        assert m.handle(cc(1, 70, v)) == COUNT_IGNORED
    assert bank.manual_seq[LOW] == 0 and bank.manual_value[LOW] == 0.0
    assert m.handle(cc(1, 70, 66)) == COUNT_MAPPED  # 62 -> 66 passes through 63.5
    assert bank.manual_value[LOW] == pytest.approx(-3.0 + 6.0 * 66 / 127)
    assert m.handle(cc(1, 70, 10)) == COUNT_MAPPED  # picked up: follows, also jumps
    assert bank.manual_value[LOW] == pytest.approx(-3.0 + 6.0 * 10 / 127)
    assert m.picked_up(0)


def test_soft_takeover_crossing_from_above_and_within_half_a_step():
    m = ControlMapper(MidiMap.default(), ControlBank())
    bank = m.bank
    bank.current[LOW] = 1.5  # position 0.75 = data 95.25
    for v in (127, 120, 100):
        assert m.handle(cc(1, 70, v)) == COUNT_IGNORED
    assert m.handle(cc(1, 70, 90)) == COUNT_MAPPED
    # the first message lands within half a step of the current value: picked up at once
    bank.current[REV] = 0.3 * 40 / 127
    assert m.handle(cc(1, 75, 40)) == COUNT_MAPPED
    # log curve: comp_ratio 1..4, current 2 = position 0.5
    bank.current[RATIO] = 2.0
    assert m.handle(cc(1, 74, 120)) == COUNT_IGNORED
    assert m.handle(cc(1, 74, 60)) == COUNT_MAPPED
    assert bank.manual_value[RATIO] == pytest.approx(4.0 ** (60 / 127))


def test_soft_takeover_again_after_release_and_after_another_writer():
    m = ControlMapper(MidiMap.default(), ControlBank())
    bank = m.bank
    bank.current[LOW] = 0.0
    m.handle(cc(1, 70, 60))
    m.handle(cc(1, 70, 70))
    assert bank.manual_seq[LOW] == 1
    # release button: every parameter back to the AI, which moves the value to +2 dB
    assert m.handle(cc(1, 105, 127)) == COUNT_MAPPED and bank.action_seq[ACTION_RELEASE] == 1
    bank.current[LOW] = 2.0  # position 5/6 = data 105.8
    for v in (72, 80, 100):
        assert m.handle(cc(1, 70, v)) == COUNT_IGNORED
    assert m.handle(cc(1, 70, 110)) == COUNT_MAPPED
    # a per-parameter hand-back (release_seq) has the same effect
    bank.release_seq[LOW] += 1
    bank.current[LOW] = -2.0  # data 21.2
    assert m.handle(cc(1, 70, 100)) == COUNT_IGNORED
    assert m.handle(cc(1, 70, 20)) == COUNT_MAPPED
    # another writer (a MIDI file, a second control) bumps manual_seq: pick up again
    bank.manual_value[LOW] = 3.0
    bank.manual_seq[LOW] += 1
    bank.current[LOW] = 3.0
    assert m.handle(cc(1, 70, 30)) == COUNT_IGNORED
    assert m.handle(cc(1, 70, 127)) == COUNT_MAPPED


def test_buttons_toggle_on_press_only():
    events = []
    m = ControlMapper(MidiMap.default(), ControlBank(), on_action=lambda t, a, p: events.append((a, p)))
    bank = m.bank
    for num, a in ((102, ACTION_BYPASS), (103, ACTION_AB), (104, ACTION_AI), (105, ACTION_RELEASE)):
        assert m.handle(cc(3, num, 127)) == COUNT_MAPPED
        assert m.handle(cc(3, num, 0)) == COUNT_IGNORED  # the release of the button
        assert m.handle(cc(3, num, 64)) == COUNT_MAPPED
        assert m.handle(cc(3, num, 63)) == COUNT_IGNORED
        assert bank.action_seq[a] == 2
    assert events == [(a, None) for a in ("bypass", "bypass", "ab", "ab", "ai", "ai", "release", "release")]


def test_malformed_sysex_unknown_and_out_of_range_are_counted_not_applied():
    m = mapper_for(NO_TAKEOVER)
    bank = m.bank
    before = bank.manual_value.copy()
    dropped = [
        [],
        [0x40, 1, 2],
        [0xB0, 10],
        [0xB0, 10, 1, 2],
        [0xB0, 10, 200],
        [0xB0, 200, 1],
        [0x90, 60, 128],
        [0xC0],
        [300, 1, 2],
        ["x", 1, 2],
        None,
    ]
    ignored = [
        [0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7],
        [0xF8],
        [0xFE],
        [0x90, 60, 100],
        [0x80, 60, 0],
        [0xC0, 5],
        [0xE0, 0, 64],
        [0xB0, 50, 10],
        [0xB3, 12, 1],
    ]
    for msg in dropped:
        assert m.handle(msg) == COUNT_DROPPED, msg
    for msg in ignored:
        assert m.handle(msg) == COUNT_IGNORED, msg
    assert np.array_equal(bank.manual_value, before) and not bank.manual_seq.any()
    assert m.handle(bytes([0xB0, 10, 127])) == COUNT_MAPPED  # bytes work like lists
    c = bank.counters
    assert (c[COUNT_RECEIVED], c[COUNT_MAPPED], c[COUNT_IGNORED], c[COUNT_DROPPED]) == (
        len(dropped) + len(ignored) + 1,
        1,
        len(ignored),
        len(dropped),
    )
    assert bank.counts() == {"received": 21, "mapped": 1, "ignored": 9, "dropped": 11}


def test_coalescing_last_value_wins_and_every_message_bumps_the_seq():
    events = []
    m = mapper_for(NO_TAKEOVER, on_event=lambda t, p, v, s: events.append((t, p, v, s)))
    bank = m.bank
    rng = np.random.default_rng(7)
    seen_seq = bank.manual_seq.copy()  # what a reader saw at the last block
    last = {}
    for k in range(600):  # one "block" worth of messages
        num = (10, 11, 12)[k % 3]
        v = int(rng.integers(0, 128))
        m.handle(cc(2, num, v), t_ns=1000 + k)
        last[num] = v
    # the reader applies manual_value where the seq moved: the last value of each
    moved = np.flatnonzero(bank.manual_seq != seen_seq)
    assert sorted(moved.tolist()) == sorted([LOW, RATIO, MID])
    assert bank.manual_value[LOW] == pytest.approx(-6.0 + 12.0 * last[10] / 127)
    assert bank.manual_value[RATIO] == pytest.approx(20.0 ** (last[11] / 127))
    assert bank.manual_value[MID] == pytest.approx(-18.0 + 36.0 * last[12] / 127)
    assert bank.manual_seq[LOW] == bank.manual_seq[RATIO] == bank.manual_seq[MID] == 200
    assert bank.msg_time_ns[MID] == 1000 + 599
    assert len(events) == 600 and events[-1][1:] == ("mid_gain_db", bank.manual_value[MID], "midi")


def test_resume_watchdog_hands_back_untouched_parameters():
    bank = ControlBank()
    m = mapper_for(NO_TAKEOVER, bank)
    w = ResumeWatchdog(bank, 1.0)
    assert w.check(10**12) == []  # nothing held
    m.handle(cc(1, 10, 100), t_ns=0)
    m.handle(cc(1, 11, 100), t_ns=600_000_000)
    assert w.check(999_999_999) == []
    assert w.check(1_000_000_000) == [LOW] and bank.release_seq[LOW] == 1
    assert w.check(1_500_000_000) == []
    assert w.check(1_600_000_000) == [RATIO]
    assert w.check(10**12) == []  # released once, not again
    m.handle(cc(1, 10, 5), t_ns=2 * 10**12)  # touched again: held again
    assert w.check(2 * 10**12 + 10**9) == [LOW] and bank.release_seq[LOW] == 2
    m.handle(cc(1, 10, 6), t_ns=3 * 10**12)
    bank.action_seq[ACTION_RELEASE] += 1  # release-all already handed it back
    assert w.check(4 * 10**12) == []
    with pytest.raises(ValueError):
        ResumeWatchdog(bank, 0.0)


def tempo_file(path, events):
    """Type-1 file, 480 ticks per beat: tempo 120 bpm at tick 0, 240 bpm at 960, 60 bpm at 1920."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    tempo = mido.MidiTrack()
    last = 0
    for tick, us in ((0, 500_000), (960, 250_000), (1920, 1_000_000)):
        tempo.append(mido.MetaMessage("set_tempo", tempo=us, time=tick - last))
        last = tick
    ccs = mido.MidiTrack()
    last = 0
    for tick, msg in events:
        ccs.append(msg.copy(time=tick - last))
        last = tick
    mid.tracks += [tempo, ccs]
    mid.save(path)


def seconds(tick: int) -> float:
    """Reference: seconds = sum of ticks * tempo / (ticks_per_beat * 1e6) per tempo segment."""
    segs = ((0, 960, 500_000), (960, 1920, 250_000), (1920, 10**9, 1_000_000))
    return sum(max(0, min(tick, b) - a) * us / (480 * 1e6) for a, b, us in segs)


def test_midi_file_automation_follows_the_tempo_map(tmp_path):
    path = tmp_path / "auto.mid"
    ticks = [0, 480, 960, 1440, 1920, 2400]
    ev = [(t, mido.Message("control_change", channel=0, control=70, value=20 * k)) for k, t in enumerate(ticks)]
    ev.insert(3, (1000, mido.Message("note_on", note=60, velocity=90)))  # not a CC
    ev.insert(4, (1100, mido.Message("control_change", control=102, value=127)))  # bypass press
    ev.append((2500, mido.Message("control_change", control=9, value=1)))  # unmapped CC
    tempo_file(path, ev)
    auto = MidiFileAutomation.load(path, MidiMap.default())
    assert [round(seconds(t), 9) for t in ticks] == [0.0, 0.5, 1.0, 1.25, 1.5, 2.5]
    got = [(round(t, 9), name, v) for t, name, v in auto.events]
    want = [
        (round(seconds(t), 9), "low_gain_db", pytest.approx(-3.0 + 6.0 * 20 * k / 127)) for k, t in enumerate(ticks)
    ]
    want.insert(3, (round(seconds(1100), 9), "bypass", None))
    assert got == want
    assert auto.ignored == 2
    # applied at block positions (127 frames at 48 kHz: no event on a block edge), no soft
    # takeover: automation
    bank = ControlBank()
    bank.current[LOW] = -3.0
    applied_at = []
    block = 127 / 48000
    for n in range(int(3.0 / block)):
        t = n * block
        seq = bank.manual_seq[LOW]
        k = auto.apply_until(t, bank)
        if bank.manual_seq[LOW] != seq:
            applied_at.append((t, bank.manual_value[LOW]))
        assert k >= 0
    assert [t for t, _ in applied_at] == [pytest.approx(np.ceil(seconds(tk) / block) * block) for tk in ticks]
    assert bank.manual_value[LOW] == pytest.approx(-3.0 + 6.0 * 100 / 127)
    assert bank.manual_seq[LOW] == 6 and bank.action_seq[ACTION_BYPASS] == 1
    assert auto.pending() == 0 and auto.apply_until(99.0, bank) == 0
    auto.rewind()
    assert auto.apply_until(0.6, bank) == 2 and auto.pending() == 5


def test_midi_file_errors_are_one_line(tmp_path):
    with pytest.raises(MidiError, match=r"nope\.mid: no such MIDI file"):
        MidiFileAutomation.load(tmp_path / "nope.mid", MidiMap.default())
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"RIFF not a midi file at all")
    with pytest.raises(MidiError, match=r"junk\.mid: not a readable MIDI file") as info:
        MidiFileAutomation.load(junk, MidiMap.default())
    assert "\n" not in str(info.value)
    cut = tmp_path / "cut.mid"
    tempo_file(cut, [(0, mido.Message("control_change", control=70, value=1))])
    cut.write_bytes(cut.read_bytes()[:-6])
    with pytest.raises(MidiError, match="not a readable MIDI file"):
        MidiFileAutomation.load(cut, MidiMap.default())


class Script:
    """Scripted controller for learn(): round k's messages become available after
    the k-th answer; a drain (timeout 0) finds nothing left over."""

    def __init__(self, rounds, answers):
        self.rounds = collections.deque(rounds)
        self.answers = collections.deque(answers)
        self.now = collections.deque(self.rounds.popleft())
        self.prompts = []
        self.empty_calls = 0

    def receive(self, timeout):
        if timeout > 0 and self.now:
            self.empty_calls = 0
            return self.now.popleft()
        if timeout > 0:
            self.empty_calls += 1
            if self.empty_calls > 300:  # idle for a while: the user pressed Ctrl-C
                raise KeyboardInterrupt
            time.sleep(min(timeout, 0.001))
        return None

    def choose(self, prompt):
        self.prompts.append(prompt)
        answer = self.answers.popleft()
        if answer not in ("?", "bogus") and self.rounds:
            self.now = collections.deque(self.rounds.popleft())
        return answer


def test_learn_with_scripted_controller_extends_an_existing_map(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text('# my controller\n[[cc]]\ncc = 70\nchannel = 1\nparam = "mid_gain_db"\n', encoding="utf-8")
    script = Script(
        rounds=[
            [cc(1, 70, 10), cc(1, 70, 11)],  # knob on CC 70: remap it
            [cc(2, 3, 64), cc(2, 35, 10), cc(2, 3, 65)],  # a 14-bit pair on CC 3/35
            [cc(1, 20, 127), cc(1, 20, 0)],  # a button
            [cc(1, 21, 1)],
        ],
        answers=["reverb_send", "?", "bogus", "3", "ab", ""],
    )
    lines = []
    m = learn(None, path, choose=script.choose, out=lines.append, receive=script.receive, settle_s=0.01)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# my controller\n")
    back = MidiMap.load(path)
    assert [(b.cc, b.channel, b.param or b.action, b.cc14) for b in back.bindings] == [
        (70, 1, "reverb_send", False),
        (3, 2, "comp_ratio", True),
        (20, 1, "ab", False),
    ]
    rev = back.find(1, 70)
    assert (rev.lo, rev.hi, rev.curve) == (0.0, 0.3, "linear")  # an AI parameter: AI range
    ratio = back.find(2, 35)
    assert ratio.curve == "log" and (ratio.lo, ratio.hi) == (1.0, 4.0)
    assert [b.cc for b in m.bindings] == [70, 3, 20]
    assert any("got CC 3/35 (14-bit pair) on channel 2" in ln for ln in lines)
    assert any("replaced: CC 70 on channel 1 -> mid_gain_db" in ln for ln in lines)
    assert any("not a parameter or button: 'bogus'" in ln for ln in lines)


def test_learn_new_file_quit_and_interrupt(tmp_path):
    path = tmp_path / "new.toml"
    script = Script(rounds=[[cc(5, 7, 1)], [cc(5, 8, 1)]], answers=["output_gain_db", "q"])
    learn(None, path, choose=script.choose, out=lambda s: None, receive=script.receive, settle_s=0.01)
    (b,) = MidiMap.load(path).bindings
    assert (b.cc, b.channel, b.param, b.lo, b.hi) == (7, 5, "output_gain_db", -1.0, 1.0)
    # Ctrl-C while waiting for a control keeps what was saved (the script raises it when idle)
    script = Script(rounds=[[cc(1, 9, 1)]], answers=["delay_ms"])
    lines = []
    m = learn(None, path, choose=script.choose, out=lines.append, receive=script.receive, settle_s=0.01)
    assert (
        [b.param for b in MidiMap.load(path).bindings]
        == ["output_gain_db", "delay_ms"]
        == [b.param for b in m.bindings]
    )
    assert "stopped" in lines[-1]


def test_choose_api():
    assert choose_api("jack") == "jack"
    assert choose_api(0, api="ALSA") == "alsa"
    with pytest.raises(MidiError):
        choose_api(0, api="coreaudio")
