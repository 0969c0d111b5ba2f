"""The terminal meters of ``play``/``live``: one status line (and the AI line) from a non-audio thread.

The lines fit the terminal (``shutil.get_terminal_size``, read at every redraw,
so a resize is followed): the full status line is 121 characters and the AI
line lists 22 parameters, so a narrower terminal gets a shorter form of the
same fields (from 100 columns) or, under :data:`COMPACT_BELOW` columns, one
compact line without the AI line (integrated and short-term loudness, true
peak, gain reductions, delivery gain, load, xruns, time), every line cut
short of the last column.  A log or a pipe gets the full lines, once a second.
"""

from __future__ import annotations

import math
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from .engine import SNAPSHOT_NAMES

if TYPE_CHECKING:
    from mixpilot.inference.worker import InferenceWorker

    from .midi import ResumeWatchdog
    from .stream import _Run

_SNAP = {n: i for i, n in enumerate(SNAPSHOT_NAMES)}

__all__ = ["COMPACT_BELOW", "MeterUI", "ai_text", "short_name", "status_text"]

# --- formatting for a terminal width ------------------------------------------------------------------

COMPACT_BELOW = 100  # terminal columns under which the meters are one compact line (no AI line)

_SHORT = {
    "input_gain_db": "in",
    "comp_ratio": "ratio",
    "low_gain_db": "low",
    "mid_gain_db": "mid",
    "high_gain_db": "high",
    "presence_gain_db": "pres",
    "reverb_send": "rev",
    "delay_send": "dly",
    "stereo_width": "width",
    "width_low": "w.lo",
    "width_high": "w.hi",
    "output_gain_db": "out",
}


def short_name(name: str) -> str:
    """A parameter's name on the AI line: ``tone_1khz_db`` -> ``t1k``, ``comp_ratio`` -> ``ratio``."""
    if name in _SHORT:
        return _SHORT[name]
    if name.startswith("tone_") and name.endswith("hz_db"):
        return "t" + name[len("tone_") : -len("hz_db")]
    return name


def _num(v: float, width: int = 5) -> str:
    return f"{v:{width}.1f}" if math.isfinite(v) else f"{'-inf':>{width}}"


def _fit(text: str, columns: int | None) -> str:
    """``text`` cut to ``columns - 1`` characters (the last column would wrap on some terminals)."""
    if columns is None or len(text) < columns:
        return text
    return text[: max(columns - 2, 0)] + "…"


def status_text(m: Mapping[str, float], load_pct: float, xruns: int, columns: int | None = None) -> str:
    """The meter line for a terminal ``columns`` wide (``None``: no limit, the full form for logs).

    ``m``: the engine snapshot by name (``SNAPSHOT_NAMES``).  Full form (121
    characters) when it fits; a shorter one of the same fields from 100
    columns; under :data:`COMPACT_BELOW` the compact form (integrated and
    short-term loudness, true peak, gain reductions, delivery gain, load,
    xruns, time; about 60 characters), cut to the width when even that is
    too wide.
    """
    comp = max(m["comp_gr_db"], 0.0) + 0.0
    lim = max(m["limiter_gr_db"], 0.0) + 0.0
    full = (
        f"M {_num(m['momentary_lufs'])} S {_num(m['short_term_lufs'])} I {_num(m['integrated_lufs'])} LUFS | "
        f"TP {_num(m['true_peak_dbtp'])} dBTP | GR comp {_num(comp, 4)} lim {_num(lim, 4)} dB | "
        f"gain {m['loudness_gain_db']:+5.1f} dB | load {load_pct:4.1f}% | xruns {xruns} | {m['stream_s']:6.1f} s"
    )
    if columns is None or len(full) < columns:
        return full
    if columns >= COMPACT_BELOW:
        medium = (
            f"M {_num(m['momentary_lufs']).strip()} S {_num(m['short_term_lufs']).strip()} "
            f"I {_num(m['integrated_lufs']).strip()} LUFS | TP {_num(m['true_peak_dbtp']).strip()} | "
            f"GR {comp:.1f}/{lim:.1f} | gain {m['loudness_gain_db']:+.1f} | load {load_pct:.0f}% | "
            f"xruns {xruns} | {m['stream_s']:.1f} s"
        )
        return _fit(medium, columns)
    compact = (
        f"I {_num(m['integrated_lufs']).strip()} S {_num(m['short_term_lufs']).strip()} "
        f"TP {_num(m['true_peak_dbtp']).strip()} GR {comp:.1f}/{lim:.1f} {m['loudness_gain_db']:+.1f}dB "
        f"{load_pct:.0f}% x{xruns} {m['stream_s']:.0f}s"
    )
    return _fit(compact, columns)


def ai_text(
    status: str,
    names: Sequence[str],
    current: Sequence[float],
    targets: Sequence[float],
    neutral: Sequence[float],
    manual: Sequence[int],
    columns: int | None = None,
) -> str:
    """The AI line: the worker's status and ``name current>target`` per parameter, within ``columns``.

    Parameters whose target is off their neutral value (or under a MIDI knob,
    marked ``[M]``) come first, in table order, then the rest; what does not
    fit is counted (``+N more``).
    """
    order = [i for i in range(len(names)) if targets[i] != neutral[i] or manual[i]]
    order += [i for i in range(len(names)) if i not in set(order)]
    head = status + " | "
    tail = "  ([M] = MIDI)" if any(manual) else ""
    parts: list[str] = []
    for k, i in enumerate(order):
        part = f"{short_name(names[i])}{'[M]' if manual[i] else ''} {current[i]:+.2f}>{targets[i]:+.2f}"
        rest = len(order) - k - 1
        more = f" +{rest} more" if rest else ""
        if columns is not None and len(head) + len(" ".join([*parts, part])) + len(more) + len(tail) >= columns:
            return _fit(head + " ".join(parts) + f" +{len(order) - k} more" + tail, columns)
        parts.append(part)
    return _fit(head + " ".join(parts) + tail, columns)


class MeterUI:
    """Terminal meters from a non-audio thread: one status line, 10 times a second on a terminal."""

    def __init__(
        self,
        run: _Run,
        samplerate: int,
        blocksize: int,
        stream: TextIO,
        enabled: bool = True,
        worker: InferenceWorker | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.run = run
        self.worker = worker
        #: says what the AI changes and why, once each time it changes course (``worker.reasons_seq``);
        #: on a terminal the meters are cleared for the line and drawn again under it
        self.note = note
        self._reasons_seen = 0
        self.watchdog: ResumeWatchdog | None = None  # --ai-resume-s without a live MIDI input
        self.snap = run.engine.snapshot
        self.budget_us = 1e6 * blocksize / samplerate
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mixpilot-ui", daemon=True)
        self.lines = 0
        self._two_lines = False  # the last drawing had the AI line under the status line

    def start(self) -> None:
        self._thread.start()

    def _load_pct(self) -> float:
        k = int(self.run.counts[0])
        recent = self.run.durations[max(0, k - 375) : k] if k <= self.run.durations.shape[0] else self.run.durations
        return 100.0 * float(recent.max()) / 1000.0 / self.budget_us if recent.size else 0.0

    def line(self, columns: int | None = None) -> str:
        """The status line for ``columns`` (None: the full form)."""
        m = {name: float(self.snap[i]) for name, i in _SNAP.items()}
        return status_text(m, self._load_pct(), int(self.run.counts[1]), columns)

    def ai_line(self, columns: int | None = None) -> str:
        """Each AI parameter: current value -> target, and the worker's status ("" without the AI)."""
        if self.worker is None:
            return ""
        from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS

        idx = [PARAM_INDEX[n] for n in AI_PARAM_NAMES]
        eng = self.run.engine
        state = " OFF" if not eng.ai_on else ""
        return ai_text(
            f"{self.worker.status}{state}",
            AI_PARAM_NAMES,
            [float(eng.chain.current_values[i]) for i in idx],
            [float(eng.chain.targets[i]) for i in idx],
            [PARAMS[i].default for i in idx],
            [int(eng.manual_active[i]) for i in idx],
            columns,
        )

    def draw(self) -> None:
        """Write the meters once: redrawn in place on a terminal (its width now), a new line on a log."""
        if self.tty:
            columns = shutil.get_terminal_size((80, 24)).columns
            text = self.line(columns)
            ai = self.ai_line(columns) if columns >= COMPACT_BELOW else ""
            up = "\x1b[1A" if self._two_lines else ""  # back to the status line of a two-line drawing
            clear = "\n\x1b[K\x1b[1A" if (self._two_lines and not ai) else ""  # the form shrank: clear the AI line
            self.stream.write(up + "\r" + text + "\x1b[K" + clear + (("\n" + ai + "\x1b[K") if ai else ""))
            self._two_lines = bool(ai)
        else:
            text, ai = self.line(), self.ai_line()
            self.stream.write(text + "\n" + ((ai + "\n") if ai else ""))
        self.stream.flush()
        self.lines += 1

    def ai_reasons(self) -> str | None:
        """The AI's words when they changed since the last call ("AI (target) at 6.5 s: low mids +2.6 dB
        toward the target; ..."), else None (:attr:`inference.worker.InferenceWorker.reasons`)."""
        w = self.worker
        seq = int(getattr(w, "reasons_seq", 0)) if w is not None else 0
        if seq == self._reasons_seen:
            return None
        self._reasons_seen = seq
        reasons = tuple(getattr(w, "reasons", ()))
        name = getattr(getattr(w, "estimator", None), "name", "AI")
        what = "; ".join(reasons) if reasons else "nothing to move toward the target now"
        return f"AI ({name}) at {float(getattr(w, 'reasons_t_s', 0.0)):.1f} s: {what}"

    def say_reasons(self) -> None:
        """Print :meth:`ai_reasons` when there is news, through ``note``, above the meters."""
        text = self.ai_reasons()
        if text is None or self.note is None:
            return
        if self.enabled and self.tty and self.lines:  # clear the drawing; the note takes its place
            self.stream.write(
                ("\x1b[1A" if self._two_lines else "") + "\r\x1b[K" + ("\n\x1b[K\x1b[1A" if self._two_lines else "")
            )
            self.stream.flush()
            self._two_lines = False
        self.note(text)

    def _loop(self) -> None:
        every = 1 if self.tty else 10  # a pipe or a log gets a line a second
        i = 0
        while not self._stop.wait(0.1):
            if self.watchdog is not None:
                self.watchdog.check(time.perf_counter_ns())
            if int(self.run.counts[0]) == 0:
                continue  # the UI starts before the stream (realtime.rtsys boosts it first): no meters before audio
            self.say_reasons()
            i += 1
            if self.enabled and i % every == 0:
                self.draw()
            else:  # computed even when not drawn: the thread's cost is part of every run
                self.line()
                self.ai_line()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # never started when the run failed before its stream
            self._thread.join(2)
        if self.enabled and self.tty and self.lines:
            self.stream.write("\n")
            self.stream.flush()
