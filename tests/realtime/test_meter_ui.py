"""Terminal meters (realtime/meter_ui.py): they fit the terminal's width.

References: issue 17 -- the meter lines were 121 and 193+ characters and scrolled
garbage in an 80-column terminal; now every line drawn on a terminal is shorter
than its width (``shutil.get_terminal_size``; the last column is left free, as a
character there wraps on some terminals), and under 100 columns the meters are
one compact line (no AI line, no cursor-up).  A log or pipe gets the full form.
"""

from __future__ import annotations

import io
import math
import re
import types

import numpy as np
import pytest

from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS
from mixpilot.realtime import meter_ui
from mixpilot.realtime.engine import SNAPSHOT_NAMES
from mixpilot.realtime.meter_ui import COMPACT_BELOW, MeterUI, ai_text, short_name, status_text

LOUD = {
    "momentary_lufs": -13.94,
    "short_term_lufs": -14.12,
    "integrated_lufs": -15.23,
    "loudness_range_lu": 4.1,
    "true_peak_dbtp": -1.02,
    "sample_peak_dbfs": -1.3,
    "comp_gr_db": 3.25,
    "limiter_gr_db": 12.5,
    "max_comp_gr_db": 4.0,
    "max_limiter_gr_db": 13.0,
    "loudness_gain_db": -12.34,
    "stream_s": 1234.5,
    "nonfinite_samples": 0.0,
}
SILENT = {**LOUD, "momentary_lufs": -math.inf, "short_term_lufs": -math.inf, "integrated_lufs": -math.inf}


@pytest.mark.parametrize("columns", [20, 40, 60, 80, 99, 100, 110, 121, 122, 200])
@pytest.mark.parametrize("m", [LOUD, SILENT], ids=["loud", "silent"])
def test_the_status_line_fits_every_width(columns, m):
    text = status_text(m, 1234.5, 12345, columns)
    assert len(text) < columns and "\n" not in text
    if columns >= 60:  # the compact form is whole from 60 columns: loudness, peak, time are all there
        assert "-15.2" in text or "-inf" in text
        assert "-1.0" in text and ("1234" in text or "1235" in text)


def test_the_full_form_when_there_is_room_or_no_terminal():
    full = status_text(LOUD, 9.9, 2, None)
    assert full.startswith("M -13.9 S -14.1 I -15.2 LUFS | TP  -1.0 dBTP | GR comp  3.2 lim 12.5 dB")
    assert status_text(LOUD, 9.9, 2, len(full) + 1) == full
    assert len(status_text(LOUD, 9.9, 2, COMPACT_BELOW)) < COMPACT_BELOW
    compact = status_text(LOUD, 9.9, 2, 80)
    assert compact == "I -15.2 S -14.1 TP -1.0 GR 3.2/12.5 -12.3dB 10% x2 1234s"


def _ai(columns, moved=()):
    names = list(AI_PARAM_NAMES)
    neutral = [PARAMS[PARAM_INDEX[n]].default for n in names]
    targets = list(neutral)
    for n, v in moved:
        targets[names.index(n)] = v
    manual = [1 if n == "stereo_width" else 0 for n in names]
    return ai_text("AI: ensemble", names, neutral, targets, neutral, manual, columns)


@pytest.mark.parametrize("columns", [100, 120, 160, 400])
def test_the_ai_line_fits_and_shows_what_moves_first(columns):
    text = _ai(columns, moved=[("tone_8khz_db", -2.0), ("input_gain_db", 3.0)])
    assert len(text) < columns
    # the moved parameters and the MIDI-held one first, in table order; the rest counted when cut
    shown = [n.removesuffix("[M]") for n in re.findall(r"(\S+) [+-]\d+\.\d\d>[+-]\d+\.\d\d", text)]
    assert shown[:3] == ["in", "t8k", "width"]
    more = re.search(r" \+(\d+) more", text)
    assert len(shown) + (int(more.group(1)) if more else 0) == len(AI_PARAM_NAMES)
    assert (more is None) == (columns >= 400)


def test_short_names():
    assert [short_name(n) for n in ("tone_31hz_db", "tone_1khz_db", "tone_16khz_db", "comp_ratio")] == [
        "t31", "t1k", "t16k", "ratio",
    ]  # fmt: skip


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fake_run(ai_on=True):
    snap = np.array([LOUD[n] for n in SNAPSHOT_NAMES])
    n = len(PARAMS)
    chain = types.SimpleNamespace(
        current_values=np.array([p.default for p in PARAMS]), targets=np.array([p.default for p in PARAMS])
    )
    engine = types.SimpleNamespace(snapshot=snap, chain=chain, manual_active=np.zeros(n, np.int64), ai_on=ai_on)
    return types.SimpleNamespace(engine=engine, counts=np.array([100, 3, 0]), durations=np.full(4096, 500))


@pytest.mark.parametrize("columns", [60, 80, 99, 100, 140])
def test_what_a_terminal_of_that_width_receives(columns, monkeypatch):
    # the drawing loop itself, on a fake terminal of `columns`: every drawn line is shorter than the width;
    # under 100 columns one line redrawn in place (no cursor-up, no second line)
    monkeypatch.setattr(
        meter_ui.shutil, "get_terminal_size", lambda fallback=(80, 24): __import__("os").terminal_size((columns, 24))
    )
    out = _Tty()
    worker = types.SimpleNamespace(status="AI: ensemble")
    ui = MeterUI(_fake_run(), 48000, 128, out, enabled=True, worker=worker)
    ui.draw()
    ui.draw()
    ui.stop()
    text = out.getvalue()
    visible = re.sub(r"\x1b\[[0-9]*[A-Za-z]", "", text)
    lines = [seg for part in visible.split("\n") for seg in part.split("\r") if seg]
    assert lines and all(len(line) < columns for line in lines), [len(x) for x in lines]
    if columns < COMPACT_BELOW:
        assert "\x1b[1A" not in text and "AI" not in visible.replace("AI: ", "")
        assert text.count("\n") == 1  # the final newline when the meters stop
    else:
        assert "\x1b[1A" in text and "AI: ensemble" in visible


def _screen(text: str) -> list[str]:
    """What a VT100 shows after ``text``: \\r, \\n, cursor up (ESC[1A) and erase to the end of line (ESC[K)."""
    rows, r, c = [""], 0, 0
    for tok in re.findall(r"\x1b\[1A|\x1b\[K|\r|\n|[^\x1b\r\n]", text):
        if tok == "\n":
            r, c = r + 1, 0
            rows += [""] * (r + 1 - len(rows))
        elif tok == "\r":
            c = 0
        elif tok == "\x1b[1A":
            r = max(0, r - 1)
        elif tok == "\x1b[K":
            rows[r] = rows[r][:c]
        else:
            rows[r] = rows[r][:c].ljust(c) + tok + rows[r][c + 1 :]
            c += 1
    return rows


@pytest.mark.parametrize("columns", [80, 140])
def test_the_ai_says_what_it_changes_once_per_change_above_the_meters(columns, monkeypatch):
    # the words of inference.worker (reasons, reasons_t_s, reasons_seq) become one note per change; on a
    # terminal the meters are cleared for it and drawn again under it (checked on an emulated screen)
    monkeypatch.setattr(
        meter_ui.shutil, "get_terminal_size", lambda fallback=(80, 24): __import__("os").terminal_size((columns, 24))
    )
    out = _Tty()
    worker = types.SimpleNamespace(
        status="AI: target", estimator=types.SimpleNamespace(name="target"), reasons=(), reasons_t_s=0.0, reasons_seq=0
    )
    ui = MeterUI(_fake_run(), 48000, 128, out, enabled=True, worker=worker, note=lambda t: out.write(f"note: {t}\n"))
    ui.draw()
    ui.say_reasons()  # nothing said yet
    worker.reasons, worker.reasons_t_s, worker.reasons_seq = ("low mids +2.6 dB toward the target",), 3.0, 1
    ui.say_reasons()
    ui.say_reasons()  # the same words: said once
    ui.draw()
    screen = [row for row in _screen(out.getvalue()) if row]
    notes = [row for row in screen if row.startswith("note: ")]
    assert notes == ["note: AI (target) at 3.0 s: low mids +2.6 dB toward the target"], screen
    assert screen[0] == notes[0]  # the meters drawn before it were cleared, not left above it
    assert "TP" in screen[1] and (len(screen) == 3) == (columns >= COMPACT_BELOW), screen  # the meters under it
