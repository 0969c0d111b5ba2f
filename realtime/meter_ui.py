"""The terminal meters of ``play``/``live``: one status line (and the AI line) from a non-audio thread."""

from __future__ import annotations

import math
import threading
import time
from typing import TYPE_CHECKING, TextIO

from .engine import SNAPSHOT_NAMES

if TYPE_CHECKING:
    from mixpilot.inference.worker import InferenceWorker

    from .midi import ResumeWatchdog
    from .stream import _Run

_SNAP = {n: i for i, n in enumerate(SNAPSHOT_NAMES)}

__all__ = ["MeterUI"]


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
    ) -> None:
        self.run = run
        self.worker = worker
        self.watchdog: ResumeWatchdog | None = None  # --ai-resume-s without a live MIDI input
        self.snap = run.engine.snapshot
        self.budget_us = 1e6 * blocksize / samplerate
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mixpilot-ui", daemon=True)
        self.lines = 0

    def start(self) -> None:
        self._thread.start()

    def line(self) -> str:
        s = self.snap

        def f(v, w=5):
            return f"{v:{w}.1f}" if math.isfinite(v) else f"{'-inf':>{w}}"

        k = int(self.run.counts[0])
        recent = self.run.durations[max(0, k - 375) : k] if k <= self.run.durations.shape[0] else self.run.durations
        load = 100.0 * float(recent.max()) / 1000.0 / self.budget_us if recent.size else 0.0
        return (
            f"M {f(s[_SNAP['momentary_lufs']])} S {f(s[_SNAP['short_term_lufs']])} "
            f"I {f(s[_SNAP['integrated_lufs']])} LUFS | TP {f(s[_SNAP['true_peak_dbtp']])} dBTP | "
            f"GR comp {f(max(s[_SNAP['comp_gr_db']], 0.0) + 0.0, 4)} "
            f"lim {f(max(s[_SNAP['limiter_gr_db']], 0.0) + 0.0, 4)} dB | "
            f"gain {s[_SNAP['loudness_gain_db']]:+5.1f} dB | load {load:4.1f}% | xruns {int(self.run.counts[1])} | "
            f"{s[_SNAP['stream_s']]:6.1f} s"
        )

    def ai_line(self) -> str:
        """Each AI parameter: current value -> target, and the worker's status."""
        if self.worker is None:
            return ""
        from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX

        cur = self.run.engine.chain.current_values
        tgt = self.run.engine.chain.targets
        short = {
            "input_gain_db": "in",
            "comp_ratio": "ratio",
            "low_gain_db": "low",
            "mid_gain_db": "mid",
            "high_gain_db": "high",
            "presence_gain_db": "pres",
            "reverb_send": "rev",
            "delay_send": "dly",
            "stereo_width": "width",
            "output_gain_db": "out",
        }
        manual = self.run.engine.manual_active
        parts = [
            f"{short.get(n, n)}{'[M]' if manual[PARAM_INDEX[n]] else ''} "
            f"{cur[PARAM_INDEX[n]]:+.2f}>{tgt[PARAM_INDEX[n]]:+.2f}"
            for n in AI_PARAM_NAMES
        ]
        state = " OFF" if not self.run.engine.ai_on else ""
        return f"{self.worker.status}{state} | " + " ".join(parts) + "  ([M] = MIDI)"

    def _loop(self) -> None:
        every = 1 if self.tty else 10  # a pipe or a log gets a line a second
        i = 0
        while not self._stop.wait(0.1):
            if self.watchdog is not None:
                self.watchdog.check(time.perf_counter_ns())
            if int(self.run.counts[0]) == 0:
                continue  # the UI starts before the stream (realtime.rtsys boosts it first): no meters before audio
            text = self.line()  # computed even without a terminal: the thread's cost is part of every run
            ai = self.ai_line()
            i += 1
            if self.enabled and i % every == 0:
                if self.tty:
                    up = "\x1b[1A" if (ai and self.lines) else ""
                    self.stream.write(up + "\r" + text + "\x1b[K" + (("\n" + ai + "\x1b[K") if ai else ""))
                else:
                    self.stream.write(text + "\n" + ((ai + "\n") if ai else ""))
                self.stream.flush()
                self.lines += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # never started when the run failed before its stream
            self._thread.join(2)
        if self.enabled and self.tty and self.lines:
            self.stream.write("\n")
            self.stream.flush()
