"""MIDI map: TOML parsing, validation errors (one line, with the line number),
the built-in map, and atomic saving that keeps the file's text.

References: the format of ../shared/INTERFACE.md; ranges from the parameter
table (dsp/params.py); line numbers counted by hand in the texts below.
"""

from __future__ import annotations

import os

import pytest

from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS
from mixpilot.realtime.midi_map import ACTIONS, MidiBinding, MidiError, MidiMap, MidiMapError, load_map

GOOD = """\
# a comment
[[cc]]
cc = 20
param = "low_gain_db"

[[cc]]
cc = 64
action = "bypass"
"""  # tables at lines 2 and 6; the next [[cc]] appended starts at line 10


def bad(table: str) -> str:
    return GOOD + "\n[[cc]]\n" + table


def error_of(text: str) -> str:
    with pytest.raises(MidiMapError) as info:
        MidiMap.from_toml_text(text, source="my.toml")
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_good_map_parses_with_lines_and_defaults():
    m = MidiMap.from_toml_text(GOOD, source="my.toml")
    a, b = m.bindings
    assert (a.cc, a.channel, a.param, a.curve, a.line) == (20, None, "low_gain_db", "linear", 2)
    p = PARAMS[PARAM_INDEX["low_gain_db"]]
    assert (a.lo, a.hi) == (p.minimum, p.maximum)  # default: the parameter's hard range
    assert (b.cc, b.action, b.line) == (64, "bypass", 6)
    assert m.find(1, 20) is a and m.find(16, 20) is a  # no channel: any channel
    assert m.find(1, 21) is None


@pytest.mark.parametrize(
    "table, needle",
    [
        ('cc = 128\nparam = "low_gain_db"\n', "cc = 128 is out of range (0-127)"),
        ('cc = -1\nparam = "low_gain_db"\n', "cc = -1 is out of range"),
        ('cc = 21\nchannel = 0\nparam = "low_gain_db"\n', "channel = 0 is out of range (1-16"),
        ('cc = 21\nchannel = 17\nparam = "low_gain_db"\n', "channel = 17 is out of range"),
        ('cc = 21\nparam = "low_gain"\n', "unknown param 'low_gain'; did you mean 'low_gain_db'"),
        ('cc = 21\nparam = "zzzz"\n', "unknown param 'zzzz'; see `mixpilot params`"),
        ('cc = 21\nparam = "low_gain_db"\nmin = 3.0\nmax = 3.0\n', "min (3) must be below max (3)"),
        ('cc = 21\nparam = "low_gain_db"\nmin = 4.0\nmax = -4.0\n', "min (4) must be below max (-4)"),
        (
            'cc = 21\nparam = "low_gain_db"\nmin = -30.0\n',
            "min = -30.0 is outside the range of low_gain_db (-18..18 dB)",
        ),
        ('cc = 21\nparam = "low_gain_db"\ncurve = "log"\n', "curve 'log' needs a range above 0"),
        ('cc = 21\nparam = "reverb_send"\ncurve = "log"\n', "includes values <= 0"),
        ('cc = 21\nparam = "low_gain_db"\ncurve = "expo"\n', "unknown curve 'expo'"),
        ('cc = 21\nparam = "low_gain_db"\naction = "bypass"\n', "both 'param' and 'action'"),
        ("cc = 21\n", "needs 'param'"),
        ('param = "low_gain_db"\n', "missing 'cc'"),
        ('cc = 21\naction = "mute"\n', "unknown action 'mute'"),
        ('cc = 21\naction = "ab"\ncurve = "log"\n', "'curve' does not apply to action 'ab'"),
        ('cc = 21\nparam = "low_gain_db"\nknob = 3\n', "unknown key 'knob'"),
        ('cc = 21\nparam = "low_gain_db"\ncc14 = "yes"\n', "cc14 = 'yes' must be true or false"),
        ('cc = 40\nparam = "low_gain_db"\ncc14 = true\n', "cc14 needs the MSB on cc 0-31"),
        ('cc = 21\nparam = "lookahead_ms"\n', "fixed when the chain is prepared"),
        ('cc = 21\nparam = "loudness_gain_db"\nrange = "ai"\n', "no AI-safe range"),
        ('cc = 21\nparam = "low_gain_db"\nmin = "a"\n', "min = 'a' must be a number"),
        ('cc = true\nparam = "low_gain_db"\n', "cc = True is out of range"),
    ],
)
def test_validation_error_names_file_line_and_problem(table, needle):
    # reference: the offending table's header is on line 10 of bad(...)
    msg = error_of(bad(table))
    assert msg.startswith("my.toml:10: [[cc]] #3: "), msg
    assert needle in msg, msg


def test_duplicate_cc_and_channel():
    msg = error_of(bad('cc = 20\nparam = "mid_gain_db"\n'))
    assert msg.startswith("my.toml:10: [[cc]] #3: duplicate cc 20 on any channel"), msg
    assert "already bound at line 2" in msg
    # same cc, one table per channel: fine; a one-channel table beats an any-channel one
    m = MidiMap.from_toml_text(GOOD + '\n[[cc]]\ncc = 20\nchannel = 3\nparam = "mid_gain_db"\n')
    assert m.find(3, 20).param == "mid_gain_db" and m.find(4, 20).param == "low_gain_db"
    two = '[[cc]]\ncc = 5\nchannel = 2\nparam = "low_gain_db"\n[[cc]]\ncc = 5\nchannel = 2\nparam = "mid_gain_db"\n'
    assert error_of(two).startswith("my.toml:5: [[cc]] #2: duplicate cc 5 on channel 2")


def test_14bit_lsb_collides_with_a_7bit_binding():
    text = '[[cc]]\ncc = 1\nparam = "low_gain_db"\ncc14 = true\n[[cc]]\ncc = 33\nparam = "mid_gain_db"\n'
    msg = error_of(text)
    assert msg.startswith("my.toml:5: [[cc]] #2: duplicate cc 33"), msg
    assert "14-bit" in msg


def test_toml_syntax_errors_keep_line_and_column():
    msg = error_of("[[cc]]\ncc = 20\nparam = low_gain_db\n")
    assert msg.startswith("my.toml: invalid TOML: ") and "(at line 3, column 9)" in msg, msg


def test_unknown_top_level_key_and_wrong_shape():
    assert error_of('# x\nname = "mine"\n[[cc]]\ncc = 1\naction = "ab"\n').startswith(
        "my.toml:2: unknown top-level key 'name'"
    )
    assert "'cc' must be [[cc]] tables" in error_of("cc = 3\n")


def test_inline_array_still_validates():
    m = MidiMap.from_toml_text('cc = [{cc = 3, action = "ai"}]\n')
    assert m.bindings[0].action == "ai"
    assert error_of('cc = [{cc = 300, action = "ai"}]\n').startswith("my.toml:1: [[cc]] #1: cc = 300")


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(MidiMapError, match="no such MIDI map file"):
        MidiMap.load(tmp_path / "nope.toml")
    p = tmp_path / "latin1.toml"
    p.write_bytes(b"# ok\n# caf\xe9\n")
    with pytest.raises(MidiMapError, match=r"latin1.toml:2: not UTF-8"):
        MidiMap.load(p)
    assert issubclass(MidiMapError, MidiError)


def test_default_map_covers_the_ai_parameters_on_their_ai_ranges():
    # reference: AI_PARAM_NAMES and the AI-safe ranges of dsp/params.py
    m = MidiMap.default()
    params = {b.param: b for b in m.bindings if b.param}
    # ten knobs: the first ten AI parameters (the tone bands and band widths that joined the AI set
    # later are for a map of your own: `mixpilot midi-learn`)
    assert set(params) <= set(AI_PARAM_NAMES) and len(params) == 10
    assert sorted(b.cc for b in params.values()) == list(range(70, 80))
    for name, b in params.items():
        p = PARAMS[PARAM_INDEX[name]]
        assert (b.lo, b.hi) == (p.ai_minimum, p.ai_maximum), name
        assert b.curve == ("log" if p.glide == "geometric" else "linear"), name
        assert b.channel is None and b.soft_takeover
    assert sorted(b.action for b in m.bindings if b.action) == sorted(ACTIONS)
    assert [b.cc for b in m.bindings if b.action] == [102, 103, 104, 105]
    assert load_map(None).bindings == m.bindings


def test_save_round_trip_keeps_comments_and_replaces_tables(tmp_path):
    path = tmp_path / "map.toml"
    path.write_text(GOOD, encoding="utf-8")
    m = MidiMap.load(path)
    removed = m.assign(MidiBinding(cc=20, channel=2, param="mid_gain_db", curve="linear", min=-6.0, max=6.0))
    assert [r.param for r in removed] == ["low_gain_db"]  # an any-channel table on that cc
    m.assign(MidiBinding(cc=3, param="comp_ratio", curve="log", range="ai", cc14=True))
    m.save(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# a comment\n") and "low_gain_db" not in text
    assert [f for f in os.listdir(tmp_path) if f != "map.toml"] == []  # no temp file left
    again = MidiMap.load(path)
    assert [(b.cc, b.param or b.action) for b in again.bindings] == [
        (64, "bypass"),
        (20, "mid_gain_db"),
        (3, "comp_ratio"),
    ]
    b20 = again.find(2, 20)
    assert (b20.lo, b20.hi, b20.channel) == (-6.0, 6.0, 2)
    b3 = again.find(1, 35)
    assert b3.param == "comp_ratio" and b3.cc14 and (b3.lo, b3.hi) == (1.0, 4.0)
    # and the saved map keeps extending
    again.assign(MidiBinding(cc=9, action="release"))
    again.save(path)
    assert [b.cc for b in MidiMap.load(path).bindings] == [64, 20, 3, 9]


def test_save_new_file(tmp_path):
    m = MidiMap([], source="x")
    m.assign(MidiBinding(cc=7, param="output_gain_db"))
    m.save(tmp_path / "new.toml")
    back = MidiMap.load(tmp_path / "new.toml")
    assert back.bindings[0].param == "output_gain_db" and back.bindings[0].line is not None
    # a new file gets the mode open(2) would give it (0o666 masked by the umask),
    # not mkstemp's private 0o600; a saved-over file keeps its own mode
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "new.toml").st_mode & 0o777 == 0o666 & ~umask
    os.chmod(tmp_path / "new.toml", 0o640)
    back.save(tmp_path / "new.toml")
    assert os.stat(tmp_path / "new.toml").st_mode & 0o777 == 0o640


def test_curves_closed_form():
    # reference: linear min + x (max - min); log min (max/min)^x
    lin = MidiBinding(cc=1, param="low_gain_db", min=-6.0, max=6.0)
    log = MidiBinding(cc=1, param="low_freq_hz", curve="log", min=50.0, max=800.0)
    for x in (0.0, 0.25, 64 / 127, 1.0):
        assert lin.value_at(x) == pytest.approx(-6.0 + 12.0 * x, abs=1e-12)
        assert log.value_at(x) == pytest.approx(50.0 * 16.0**x, rel=1e-12)
        assert lin.position_of(lin.value_at(x)) == pytest.approx(x, abs=1e-12)
        assert log.position_of(log.value_at(x)) == pytest.approx(x, abs=1e-12)
    assert log.value_at(0.5) == pytest.approx(200.0)  # the geometric middle of 50..800
    assert lin.position_of(100.0) == 1.0 and lin.position_of(-100.0) == 0.0
    assert lin.position_of(float("nan")) == 0.0
