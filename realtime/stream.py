"""Real-time runs: ``mixpilot play`` and ``mixpilot live`` over PortAudio (sounddevice).

:func:`run` validates everything, prepares the :class:`realtime.engine.Engine`,
warms up its kernels (the first callback is never a compile), opens the
stream and waits until it ends: ``--seconds`` elapsed, end of file (plus the
limiter latency, so the recording holds the whole processed file), Ctrl-C,
or the device / JACK server going away.  However it ends, the recording is
finalised and ``--stats-json`` is written.

The callback (:meth:`_Run.callback`) does, per block: read the status flags
into counters, take the input (a slice of the preloaded file, or the
interface's input), ``Engine.process_block`` into PortAudio's output buffer,
append the output to the recorder's ring, and store its own duration into a
preallocated array.  No allocation of audio buffers, no locks, no I/O, no
logging; other threads read the counters and rings.

Threads beside the callback, and the GIL
----------------------------------------
The callback runs on PortAudio's (here JACK's real-time) thread and needs the
GIL for its few Python statements; everything per sample is inside one Numba
call that keeps the GIL (``realtime.engine._engine_kernel``).  Measured with
``python -m mixpilot.benchmarks.gil_switch --seconds 10`` on the JACK dummy server
(48 kHz, 128 frames: a 2667 us period; 2-core AMD EPYC VM, 2026-11-21), with
a thread spinning pure-Python bytecode beside the callback:

====================  =====  ==========  ==========  ===================
case                  xruns  cb p50 us   cb p99 us   start-gap p99 us
====================  =====  ==========  ==========  ===================
busy, switch 5 ms      1783        30         159                 7848
busy, switch 1 ms         4        78         162                 2862
busy, switch 0.5 ms       0        77         180                 2865
nogil calls, 5 ms       787     10346       10652                16000
nogil calls, 0.5 ms       4       647         826                 2840
====================  =====  ==========  ==========  ===================

* The cost is not inside the callback but at its door: PortAudio's cffi
  callback must take the GIL from the busy thread, which lets go only when
  its switch interval (``sys.getswitchinterval()``, 5 ms by default) expires:
  callbacks start up to ~5 ms late, twice the budget, and JACK counts an
  xrun in most periods.
* Numba ``nogil=True`` calls inside the callback (the chain, then a meter,
  each called separately) make it much worse: each call gives the GIL away
  and must win it back, so the callback itself takes 10 ms at 5 ms and
  still 0.6 ms at 0.5 ms.  Hence one GIL-holding kernel per block.
* With the switch interval at 0.5 ms the busy thread yields within a fifth
  of the budget, and the measured run had no xruns.  :func:`run` sets
  :data:`SWITCH_INTERVAL_S` for the duration of a real-time run and restores
  it afterwards.
* Helper threads are written to spend their time in C (numpy, onnxruntime,
  soundfile, ``Event.wait``), which releases the GIL: the UI thread wakes
  10 times a second, the recorder drains its ring every 50 ms, the AI worker
  sleeps until its hop is in the ring, the MIDI thread polls every 1 ms.
  One C call that keeps the GIL is as bad as a busy thread: soxr held it for
  1.7 ms per 3 s window, so the AI worker now feeds it in chunks
  (bit-identical output, ~50 us each).  With the AI every 0.25 s the callback
  p99 rose 5.7 % (197.0 us on vs 186.3 us off, 1 xrun each in 20 s;
  ``python -m mixpilot.benchmarks.gil_switch --ai``).

What still ran against the callback, and what changed (issue 16)
----------------------------------------------------------------
Measured on a loaded 2-core VM (load average 6-14 from other work, other
JACK servers running at the same real-time priorities), JACK dummy server:

* ``make demo`` on main: 28 xruns in 30 s, callback max 6.8 ms, callback
  *starts* up to 59.8 ms apart, the first cluster at 1.7-5.1 s around the
  first AI windows; a bare callback (``outdata.fill(0)``) on the same
  server settings right after: 32 xruns, starts up to 31.7 ms apart.  So
  most xruns on that machine are the machine's; what was ours is the
  difference, and the long callbacks.
* ``ps -eLo tid,cls,rtprio``: the callback thread is ``SCHED_FIFO 5``
  (libjack), every other thread ordinary.  An ordinary thread holding the
  GIL can be preempted by another process; the real-time callback then
  waits for it (a priority inversion through the GIL).  The AI thread held
  the GIL for ~12-50 ms of feature code per hop, the MIDI thread took it
  1000 times a second, the main thread through all of start-up.
* Cures, each measured side by side (tables in :mod:`realtime.rtsys` and
  :mod:`realtime.aiproc`): the AI in its own process reading the ring from
  shared memory (:mod:`realtime.aiproc`); every remaining helper thread
  (main, meter UI, recorder, AI bridge) ``SCHED_FIFO 1`` *before* the first
  callback, memory locked, buffers pre-touched, the collector frozen after
  start-up and off in the stream (:mod:`realtime.rtsys`); MIDI read by the
  callback itself from rtmidi's queue (``MidiInput(dispatch="engine")``,
  ``Engine.midi_poll``; ``get_message`` keeps the GIL, ~40 us per block
  with a 200 CC/s flood), so no thread wakes every millisecond.  Soak
  (AI 0.25 s, 200 CC/s, UI) callback max went from 107.5 / 29.6 ms (main)
  to 14.2 / 7.9 ms; xruns from 86 / 77 (bare 31 / 27) to 40 / 77 (bare
  38 / 37).  The JACK client mode (:mod:`realtime.jackclient`) reads MIDI
  from a port on the audio client, in the cycle it arrives in.
* The meter UI computes one line from preallocated arrays 10 times a
  second, the recorder writes 50 ms of audio per wake-up through
  soundfile (cffi: the GIL is released during the write); both run at
  ``SCHED_FIFO 1`` and go back to sleep in C.
* Ablation under load (2026-12-03, main 3ede75d, ``python -m
  mixpilot.benchmarks.soak --seconds 60 --busy 2`` with and without
  ``--no-ui`` / ``--model none``, the three alternating in 3 rounds of 60 s
  each, load average 2.0-2.5, the 200 CC/s MIDI flood in all): xruns all on
  60, without the meter UI 62, without the AI 45, the bare callback 41 (per
  round 28/19/30/8, 14/17/5/9, 18/26/10/24).  The meter UI costs nothing
  measurable; without the AI the engine is within 10 % of the bare callback;
  the AI process (``SCHED_OTHER``, its own process) accounts for the rest,
  although it never holds this process's GIL.  The callback's own maximum
  passed the 2667 us budget in every round of every configuration (2.5-22
  ms, p99.9 0.6-1.0 ms): the callback thread itself was held up, which on
  this 2-vCPU VM points at the host or the kernel rather than the GIL (the
  duration is measured after the GIL is taken).
* The platform's floor (2026-12-03 evening, this VM, nothing of ours
  running): ``cyclictest -m -t 2 -a -p 80 -i 1000 -D 60 -h 20000``
  (rt-tests: a C thread per CPU, ``SCHED_FIFO 80`` -- above jackd and the
  callback --, memory locked, waking every 1 ms) saw 17 and 13 wake-ups
  more than 2667 us late in 60 s on the quiet machine (load 0.1), the latest
  11.3 and 7.7 ms; over 300 s beside a niced training job (load 1.1), 113 and
  105 wake-ups more than 2667 us late and 6 and 7 more than 21.3 ms late,
  the latest 34.1 and 46.6 ms.  A real-time thread on this VM is held up
  beyond a 128-frame period 11-15 times a minute per CPU and beyond a
  1024-frame one about once a minute, whatever it runs: the kernel or the
  host (``vmstat`` showed 0-2 % steal) hold the thread, which nothing in a
  guest process can prevent.  Zero xruns
  over minutes is therefore out of reach here at any usual period; what is
  ours is the excess over a bare callback measured beside it.  ``make demo``
  plays a file, which keeps no latency budget, so it runs at jackd's own
  default period, 1024 frames (``DEMO_BLOCKSIZE``); ``play``/``live`` keep
  128 by default.  At 1024 frames on the quiet machine the ten-minute soak
  (``python -m mixpilot.benchmarks.soak --seconds 600 --blocksize 1024``,
  AI every 0.25 s, 200 CC/s, meter UI) had 8 xruns -- the platform's floor
  over 600 s is about 13 --, callback p99.9 2114 us (9.9 % of the 21.3 ms
  budget), RSS growth 0.12 MB; with 2 busy processes beside it (``--busy 2
  --rounds 4``, 240 s each, load 2.9-3.4) 1 xrun against the bare
  callback's 4, p99.9 1824 us.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from mixpilot.dsp.params import validate_value
from mixpilot.dsp.settings import validate as validate_setting
from mixpilot.fileio import write_text_atomic

from .audio_io import AudioFileError, read_audio
from .devices import (
    StreamError,
    StreamUsageError,
    _close_stream,
    _device_settings,
    _is_jack,
    _rescan,  # noqa: F401 - tests and benchmarks take it from here
    _sd,
    ensure_backend,
    list_devices,
    portaudio_ready,
    release_portaudio,
    resolve_device,
)
from .engine import SNAPSHOT_NAMES, Engine
from .interrupts import SignalGuard, signal_name
from .jackserver import JackError, JackServer, jackd_path, server_running
from .meter_ui import MeterUI
from .recorder import Recorder
from .session import Session, build_session, load_controls

if TYPE_CHECKING:
    from mixpilot.inference.worker import Estimator

    from .aiproc import AISpec

__all__ = [
    "MeterUI",
    "Recorder",
    "StreamError",
    "StreamUsageError",
    "RunOptions",
    "RunResult",
    "run",
    "list_devices",
    "resolve_device",
    "SWITCH_INTERVAL_S",
    "STATUS_FLAGS",
    "ensure_backend",
    "release_portaudio",
]

SWITCH_INTERVAL_S = 0.0005  # see the module docstring
STATUS_FLAGS = ("input_underflow", "input_overflow", "output_underflow", "output_overflow")
_TIMING_CAPACITY = 1 << 20  # callback durations kept (at 375 blocks/s: 46 minutes; older ones are overwritten)
_STALL_S = 2.0  # no callback for this long (while the stream claims to run) = the device is gone
_SNAP = {n: i for i, n in enumerate(SNAPSHOT_NAMES)}


# --- options and results ---------------------------------------------------------------


@dataclass
class RunOptions:
    """What ``mixpilot play`` / ``live`` was asked to do (validated by :func:`run`)."""

    mode: str  # "play" or "live"
    file: str | None = None
    input_device: str | None = None
    output_device: str | None = None
    samplerate: int | None = None
    blocksize: int = 128
    seconds: float | None = None
    record: str | None = None
    stats_json: str | None = None
    params_out: str | None = None
    params: dict = field(default_factory=dict)
    target_lufs: float | None = -14.0  # None: the reference's / target's integrated loudness, else -14
    ceiling_dbtp: float | None = -1.0
    ui: bool = True
    overwrite: bool = False
    switch_interval_s: float = SWITCH_INTERVAL_S  # sys.setswitchinterval during the run (module docstring)
    model: str | None = "default"  # "none" = static parameters
    ai_amount: float = 1.0
    amounts: dict = field(default_factory=dict)  # per-aspect AI amounts (--amount tone=0.5,...)
    ai_hop_s: float = 0.5
    crossfade_s: float = 2.0
    midi_in: str | None = None  # port index / name substring / "jack" / "virtual"
    midi_map: str | None = None  # TOML; None = the built-in map
    midi_file: str | None = None  # CC automation played in time with the audio
    ai_resume_s: float | None = None
    reference: tuple[str, ...] | None = None  # --reference FILE|DIR ...: the analytic matcher aims at them
    target: str | None = None  # --target NAME|PATH: a shipped profile or a profile JSON
    jack: bool = False  # a JACK client with named ports (realtime.jackclient); implied by connect_in/out
    connect_in: str | None = None  # regex of JACK output ports to feed mixpilot's inputs
    connect_out: str | None = None  # regex of JACK input ports mixpilot's outputs feed
    client_name: str = "mixpilot"
    midi_dispatch: str | None = "engine"  # MidiInput dispatch: "engine" = read in the callback (JACK)
    ai_process: bool = True  # the AI in its own process (realtime.aiproc); False = a thread here
    realtime_sys: bool = True  # real-time priority, locked memory, frozen collector (realtime.rtsys)
    cpu_awake: bool = True  # with realtime_sys: CPUs held out of idle states (rtsys.CpuWakeLatency)
    on_ai: Callable | None = None  # called with the AI worker/process once it exists (tests)


@dataclass
class RunResult:
    stats: dict | None  # None when the run stopped before the engine existed
    reason: str  # "seconds", "end of file", "interrupted", "device error"
    error: str | None = None  # one line when the run died
    record_path: str | None = None
    notes: list[str] = field(default_factory=list)
    signal: int | None = None  # the signal that ended an "interrupted" run (SIGINT, SIGTERM, SIGHUP)


# --- the run ---------------------------------------------------------------------------


class _Run:
    """State shared by the callback and the threads around it (all preallocated before start)."""

    def __init__(
        self, engine: Engine, src: np.ndarray | None, end_frames: int | None, recorder: Recorder | None, blocksize: int
    ) -> None:
        self.engine = engine
        ch = engine.spec.num_channels
        self.src = src if src is not None else np.zeros((0, ch), dtype=np.float32)  # live: never read
        self.end_frames = end_frames  # play: stop after this many output frames
        self.recorder = recorder
        self.scratch = np.zeros((engine.spec.max_block_size, ch), dtype=np.float32)
        self.durations = np.zeros(_TIMING_CAPACITY, dtype=np.int64)
        self.entries = np.zeros(_TIMING_CAPACITY, dtype=np.int64)
        self.flags = np.zeros(len(STATUS_FLAGS), dtype=np.int64)
        self.counts = np.zeros(3, dtype=np.int64)  # blocks, xruns, frames
        self.last_ns = np.zeros(1, dtype=np.int64)
        self.thread_id = np.zeros(1, dtype=np.int64)  # the callback thread's native id (first callback)
        self.xrun_frames = np.zeros(64, dtype=np.int64)  # stream position of the last 64 xruns
        self.finished = threading.Event()
        self.callback_error: str | None = None
        self.stop_reason: str | None = None
        self.end_reason = "end of file"  # what reaching end_frames means: "end of file" or "seconds"
        self.switch_interval_s = SWITCH_INTERVAL_S

    # The audio callback.  Everything here is O(1) Python around one Numba call.
    def callback(self, *args: Any) -> None:
        t0 = time.perf_counter_ns()
        if len(args) == 4:  # OutputStream: (outdata, frames, time, status)
            outdata, frames, _t, status = args
            indata = None
        else:  # Stream: (indata, outdata, frames, time, status)
            indata, outdata, frames, _t, status = args
        try:
            if status:
                bad = False
                if status.input_underflow:
                    self.flags[0] += 1
                    bad = True
                if status.input_overflow:
                    self.flags[1] += 1
                    bad = True
                if status.output_underflow:
                    self.flags[2] += 1
                    bad = True
                if status.output_overflow:
                    self.flags[3] += 1
                    bad = True
                if bad:
                    x = self.counts[1]
                    self.xrun_frames[x & 63] = self.counts[2]
                    self.counts[1] = x + 1
            k = self.counts[0]
            done = self.counts[2]
            if k == 0:
                self.thread_id[0] = threading.get_native_id()
            if indata is None:
                src = self.src
                left = src.shape[0] - done
                if left >= frames:
                    inp = src[done : done + frames]
                else:
                    inp = self.scratch[:frames]
                    if left > 0:
                        inp[:left] = src[done:]
                        inp[left:] = 0.0
                    else:
                        inp[:] = 0.0
            else:
                inp = self.scratch[:frames]
                inp[:] = indata[:, : inp.shape[1]]
            if outdata.shape[1] == inp.shape[1]:
                self.engine.process_block(inp, outdata)
            else:  # mono engine on a stereo device
                y = self.scratch[:frames]
                self.engine.process_block(inp, y)
                outdata[:, 0] = y[:, 0]
                outdata[:, 1] = y[:, 0]
            if self.recorder is not None:
                self.recorder.put(outdata if outdata.shape[1] == inp.shape[1] else self.scratch[:frames])
            self.counts[2] = done + frames
            self.counts[0] = k + 1
            i = k & (_TIMING_CAPACITY - 1)
            self.entries[i] = t0
            t1 = time.perf_counter_ns()
            self.durations[i] = t1 - t0
            self.last_ns[0] = t1
            if self.end_frames is not None and done + frames >= self.end_frames:
                self.stop_reason = self.end_reason
                raise _sd().CallbackStop
        except _sd().CallbackStop:
            raise
        except Exception as exc:  # never let the audio thread die silently
            outdata.fill(0)
            self.callback_error = f"{type(exc).__name__}: {exc}"
            raise _sd().CallbackAbort from None

    # -- numbers ----------------------------------------------------------------------
    def intervals_us(self, samplerate: int, blocksize: int) -> dict:
        """Time between callback starts: the period plus the lateness of the start (GIL, scheduler)."""
        n = int(min(self.counts[0], _TIMING_CAPACITY))
        if n < 3:
            return {}
        e = self.entries[:n]
        if self.counts[0] > _TIMING_CAPACITY:  # the ring wrapped: put it back in time order
            k = int(self.counts[0]) & (_TIMING_CAPACITY - 1)
            e = np.concatenate([e[k:], e[:k]])
        d = np.diff(e)[1:] / 1000.0
        return {
            "period": round(1e6 * blocksize / samplerate, 1),
            "p99": round(float(np.percentile(d, 99)), 1),
            "p999": round(float(np.percentile(d, 99.9)), 1),
            "max": round(float(d.max()), 1),
        }

    def timings_us(self) -> np.ndarray:
        n = int(min(self.counts[0], _TIMING_CAPACITY))
        return self.durations[:n] / 1000.0

    def stats(self, samplerate: int, blocksize: int) -> dict:
        d = self.timings_us()

        def pct(q):
            return round(float(np.percentile(d, q)), 1) if d.size else None

        budget = 1e6 * blocksize / samplerate
        return {
            "samplerate": samplerate,
            "blocksize": blocksize,
            "blocks": int(self.counts[0]),
            "budget_us": round(budget, 1),
            "callback_us": {
                "p50": pct(50),
                "p99": pct(99),
                "p999": pct(99.9),
                "max": round(float(d.max()), 1) if d.size else None,
            },
            "xruns": int(self.counts[1]),
            "xrun_at_s": [round(int(f) / samplerate, 3) for f in self.xrun_frames[: min(int(self.counts[1]), 64)]],
            "status_flags": {n: int(v) for n, v in zip(STATUS_FLAGS, self.flags)},
            "inference": {"runs": 0, "p50_ms": None, "p99_ms": None},
            "midi": {"messages": 0, "applied": 0},
            "seconds": round(int(self.counts[2]) / samplerate, 3),
            "latency_samples": self.engine.latency_samples,
            "switch_interval_s": self.switch_interval_s,
            "callback_interval_us": self.intervals_us(samplerate, blocksize),
        }


def _check_out_path(path: str, what: str, protect: list[str], overwrite: bool) -> str:
    from .render import RenderError, RenderUsageError, _check_writable_target

    try:
        return _check_writable_target(path, what, overwrite=overwrite, protect=tuple(protect))
    except RenderUsageError as exc:
        raise StreamUsageError(str(exc)) from None
    except RenderError as exc:
        raise StreamError(str(exc)) from None


def run(
    opts: RunOptions,
    *,
    note: Callable[[str], None] | None = None,
    ui_stream: TextIO | None = None,
    on_started: Callable[[_Run], None] | None = None,
    guard: SignalGuard | None = None,
) -> RunResult:
    """Run ``play``/``live`` until it ends; returns the stats (raises StreamError before the stream opens).

    However it ends -- the end of the file, ``--seconds``, a device that dies,
    SIGINT, SIGTERM or SIGHUP at any moment (:class:`realtime.interrupts.SignalGuard`:
    the first one ends the run, later ones never cut its clean-up short) --
    the recording is moved into place (an empty one when the run was stopped
    before its stream), ``--stats-json`` and ``--params-out`` are written, and a
    JACK server the run started is stopped.  A file that cannot be written is
    the run's error (one line naming it).

    ``guard``: a :class:`SignalGuard` the caller has already entered and keeps past the return (the
    CLI does, and leaves with ``os._exit`` inside it: a signal landing after the run, while the
    interpreter shuts down, would otherwise meet the default handlers and kill the process with
    -N instead of exit code 128 + N).  Without one the run enters its own for its duration.
    """
    if guard is not None:
        return _run(opts, guard, note=note, ui_stream=ui_stream, on_started=on_started)
    with SignalGuard() as own:
        return _run(opts, own, note=note, ui_stream=ui_stream, on_started=on_started)


def _run(
    opts: RunOptions,
    guard: SignalGuard,
    *,
    note: Callable[[str], None] | None,
    ui_stream: TextIO | None,
    on_started: Callable[[_Run], None] | None,
) -> RunResult:
    notes: list[str] = []

    def say(text: str) -> None:
        notes.append(text)
        if note is not None:
            note(text)

    # 1. arguments, before anything opens
    if opts.mode not in ("play", "live"):
        raise StreamUsageError(f"mode must be play or live, not {opts.mode!r}")
    from .references import delivery_for, resolve_target

    profile = resolve_target(opts.reference, opts.target)  # ProfileError / AudioFileError: one line
    target_lufs, ceiling_dbtp, delivery_notes = delivery_for(
        profile,
        opts.target_lufs,
        opts.ceiling_dbtp if opts.ceiling_dbtp is not None else opts.params.get("limiter_ceiling_dbtp"),
        what="reference's" if opts.reference else "target's",
    )
    opts.target_lufs = -14.0 if target_lufs is None else target_lufs
    if opts.ceiling_dbtp is None and ceiling_dbtp is not None and "limiter_ceiling_dbtp" not in opts.params:
        opts.ceiling_dbtp = ceiling_dbtp
    for n in delivery_notes:
        say(n)
    for name, value in (
        ("seconds", opts.seconds),
        ("blocksize", opts.blocksize),
        ("sample_rate", opts.samplerate),
        ("target_lufs", opts.target_lufs),
        ("ceiling_dbtp", opts.ceiling_dbtp),
        ("ai_amount", opts.ai_amount),
        ("ai_hop_s", opts.ai_hop_s),
        ("crossfade_s", opts.crossfade_s),
        ("ai_resume_s", opts.ai_resume_s),
    ):
        if value is not None:
            validate_setting(name, value, error=StreamUsageError)
    for aspect, value in opts.amounts.items():
        validate_setting("aspect_amount", value, flag=f"--amount {aspect}", error=StreamUsageError)
    opts.params = {k: validate_value(k, v) for k, v in opts.params.items()}
    for flag, pattern in (("--connect-in", opts.connect_in), ("--connect-out", opts.connect_out)):
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise StreamUsageError(f"{flag} {pattern!r}: not a regular expression ({exc})") from None
    protect = [opts.file] if opts.file else []
    record_abs = stats_abs = params_out_abs = None
    if opts.record:
        if not opts.record.lower().endswith(".wav"):
            raise StreamUsageError(f"--record {opts.record}: the recording is a .wav file")
        record_abs = _check_out_path(opts.record, "--record file", protect, opts.overwrite)
    if opts.stats_json:
        stats_abs = _check_out_path(opts.stats_json, "--stats-json file", protect, opts.overwrite)
    if opts.params_out:
        params_out_abs = _check_out_path(opts.params_out, "--params-out file", protect, opts.overwrite)

    if opts.mode == "play" and not opts.file:
        raise StreamUsageError("play needs a FILE")
    ceiling = opts.ceiling_dbtp
    if ceiling is None:  # the run's ceiling all the same: --params' value, else the table's -1
        from mixpilot.dsp.params import PARAM_INDEX, PARAMS

        ceiling = opts.params.get("limiter_ceiling_dbtp", PARAMS[PARAM_INDEX["limiter_ceiling_dbtp"]].default)

    src = None
    file_sr = None
    want_sr = opts.samplerate or 48000
    jack_mode = opts.jack or opts.connect_in is not None or opts.connect_out is not None
    jstream: Any = None
    old_switch = sys.getswitchinterval()
    server: JackServer | None = None
    recorder = None
    stream = None
    ui = None
    runner = None
    session: Session | None = None
    worker = None
    midi = None
    collector: Any = None
    rt_report: Any = None
    boosted: list[int] = []
    locked = False
    cpu_wake: Any = None  # rtsys.CpuWakeLatency while the stream runs
    reason = "device error"
    error = None
    signum = None
    try:
        if opts.mode == "play":
            src, file_sr, info = read_audio(str(opts.file))  # AudioFileError: one line naming the file
            for n in info.notes:
                say(n)
            if src.shape[0] == 0:
                raise AudioFileError(f"{opts.file}: has no audio frames")

        from .midi import ControlMapper, MidiInput, ResumeWatchdog

        midi_map, automation = load_controls(
            opts.midi_map,
            opts.midi_file,
            need_map=opts.midi_in is not None,
            ceiling_dbtp=ceiling,
            note=say,
        )
        model = str(opts.model).strip().lower() if opts.model is not None else None
        ai_wanted = model != "none"
        # what the estimator needs to be built the same way here or in the AI process (realtime.aiproc):
        # the profile of --reference/--target (the analytic matcher aims at it) and the delivery it configures
        from .aiproc import AISpec

        ai_spec = AISpec(
            model=opts.model,
            profile=profile.to_dict() if profile is not None and ai_wanted else None,
            configure={
                "delivery_lufs": opts.target_lufs,
                "ceiling_dbtp": -1.0 if opts.ceiling_dbtp is None else opts.ceiling_dbtp,
                "crossover_hz": opts.params.get("width_crossover_hz"),
                # play FILE: one piece of material, the estimate is everything heard (as render's whole-file
                # analysis); live: the input may change songs, the estimate follows a change of material
                "follow_changes": opts.mode == "live",
            },
        )
        estimator: Estimator | None = None  # with the AI process (realtime.aiproc) the model is loaded there
        if ai_wanted and not opts.ai_process:
            estimator = ai_spec.build(lambda t: say("warning: " + t))

        # 2. the device (or a headless JACK server)
        sd = portaudio_ready()  # an earlier run in this process may have released it
        want_sr = opts.samplerate or file_sr or 48000
        if jack_mode:
            server = _ensure_jack_server(int(want_sr), opts.blocksize, say)
        else:
            server = ensure_backend(opts.mode == "live", int(want_sr), opts.blocksize, say)
        if jack_mode:
            from .jackclient import JackStream

            jstream = JackStream(
                _no_callback,
                inputs=2 if opts.mode == "live" else 0,
                outputs=2,
                client_name=opts.client_name,
                connect_in=opts.connect_in,
                connect_out=opts.connect_out,
                warn=lambda t: say("warning: " + t),
                max_block=4096,
                stop_exceptions=(sd.CallbackStop, sd.CallbackAbort),
                midi_port="mixpilot" if _jack_midi(opts.midi_in) else None,
            )
            sr = jstream.samplerate  # the server's rate and period, not --samplerate / --blocksize
            opts.blocksize = jstream.blocksize
            channels = 2 if opts.mode == "live" else (src.shape[1] if src is not None else 2)
            out_channels = 2
            out_dev = in_dev = None
        else:
            sr, channels, out_channels, out_dev, in_dev = _portaudio_devices(sd, opts, src, want_sr)
        if src is not None and file_sr != sr:
            import soxr

            say(f"resampling {opts.file} from {file_sr} Hz to the device's {sr} Hz (soxr, VHQ)")
            src = np.ascontiguousarray(soxr.resample(src, file_sr, sr, quality="VHQ"), dtype=np.float32)

        # 3. the session render builds too (realtime.session), warmed up before the stream exists
        session = build_session(
            sr,
            channels,
            max_block_size=max(opts.blocksize, 4096),
            params=opts.params,
            target_lufs=opts.target_lufs,
            ceiling_dbtp=ceiling,  # also the bound a MIDI knob cannot lift (MixChain.limit; said above)
            estimator=estimator,
            ai_amount=opts.ai_amount,
            amounts=opts.amounts,
            ai_hop_s=opts.ai_hop_s,
            crossfade_s=opts.crossfade_s,
            midi_map=midi_map,
            automation=automation,
            keep_log=params_out_abs is not None,  # a long session keeps nothing it will not write
        )
        engine, worker, bank = session.engine, session.worker, session.bank
        if ai_wanted and opts.ai_process:
            from .aiproc import SharedAnalysisRing
            from .session import AI_APPLY_DELAY_S

            engine.ring = SharedAnalysisRing(engine.ring.capacity, channels)  # the AI process reads it
            hop_frames = max(1, int(round(opts.ai_hop_s * sr)))
            engine.ai_delay_frames = min(hop_frames, int(round(AI_APPLY_DELAY_S * sr)))  # as build_session does
        engine.warm_up()
        end_frames = None
        end_reason = "end of file"
        if src is not None:  # play
            end_frames = src.shape[0] + engine.latency_samples
        if opts.seconds is not None:
            limit = int(round(opts.seconds * sr))
            if end_frames is None or limit < end_frames:
                end_frames, end_reason = limit, "seconds"
        if record_abs:
            recorder = Recorder(record_abs, sr, channels)
        runner = _Run(engine, src, end_frames, recorder, opts.blocksize)
        runner.end_reason = end_reason
        runner.switch_interval_s = opts.switch_interval_s
        _warm_callback(runner, opts.mode, out_channels, channels, opts.blocksize)
        if worker is not None:
            worker.compute(0)  # load the session, the filterbank and soxr now, not at the first hop
        elif ai_wanted and opts.ai_process:
            worker = _start_ai_process(engine, sr, opts, ai_spec, say)
        if worker is not None and opts.on_ai is not None:
            opts.on_ai(worker)
        ui = MeterUI(runner, sr, opts.blocksize, ui_stream or sys.stderr, enabled=opts.ui, worker=worker, note=say)
        t_start_ns = [time.perf_counter_ns()]
        if opts.midi_in is not None and midi_map is not None and bank is not None:
            the_session = session

            def midi_logged(t_ns: int, param: str, value: float, source: str) -> None:  # MIDI side
                the_session.midi_event((t_ns - t_start_ns[0]) / 1e9, param, value)

            if jstream is not None and jstream.midi_in is not None:
                jstream.midi_handler = ControlMapper(midi_map, bank, on_event=midi_logged).handle
                say(f"MIDI in: JACK port {jstream.midi_in.name!r} on the audio client (read in the process callback)")
                if opts.ai_resume_s is not None:
                    ui.watchdog = ResumeWatchdog(bank, opts.ai_resume_s)
            else:
                midi = MidiInput(
                    opts.midi_in,
                    midi_map,
                    bank,
                    on_event=midi_logged,
                    on_warning=lambda t: say("warning: " + t),
                    ai_resume_s=opts.ai_resume_s,
                    dispatch=opts.midi_dispatch,
                )
                if midi.dispatch == "engine":
                    engine.midi_poll = midi.poll
                say(midi.describe())
        elif opts.ai_resume_s is not None and bank is not None:
            ui.watchdog = ResumeWatchdog(bank, opts.ai_resume_s)

        # 4. run
        if opts.realtime_sys:
            from . import rtsys

            rt_report = rtsys.RtReport()
            locked, rt_report.memory_note = rtsys.lock_memory()
            rt_report.memory_locked = locked
            rtsys.pretouch(
                runner.durations,
                runner.entries,
                runner.scratch,
                engine.ring.buf,
                *([recorder.buf] if recorder is not None else []),
            )
            collector = rtsys.QuietCollector()
            rt_report.gc_frozen = collector.start()
            if opts.cpu_awake:
                cpu_wake = rtsys.CpuWakeLatency()
                rt_report.cpu_awake, rt_report.cpu_note = cpu_wake.hold()
            else:
                rt_report.cpu_note = "switched off"
        sys.setswitchinterval(opts.switch_interval_s)
        kw = dict(
            samplerate=sr,
            blocksize=opts.blocksize,
            dtype="float32",
            callback=runner.callback,
            finished_callback=runner.finished.set,
            latency="low",
        )
        if jstream is not None:
            jstream.callback = runner.callback
            jstream.finished_callback = runner.finished.set
            stream = jstream
        elif opts.mode == "play":
            stream = sd.OutputStream(device=out_dev, channels=out_channels, **kw)
        else:
            stream = sd.Stream(device=(in_dev, out_dev), channels=(channels, out_channels), **kw)
        if worker is not None:
            worker.start()  # the AI waits for its first whole window in the ring
        ui.start()
        if rt_report is not None:  # every thread that can hold the GIL: real-time before the first callback
            boosted = _boost_helpers(rt_report, exclude=())
        t_start_ns[0] = time.perf_counter_ns()
        stream.start()
        if jstream is not None:
            say(jstream.describe())
        if on_started is not None:
            on_started(runner)
        if rt_report is not None:
            boosted += _realtime_callback(runner, rt_report)
            say(rt_report.line())
        reason, error = _wait(runner, stream, server, collector)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP through the SignalGuard (an Interrupted)
        reason = "interrupted"
        signum = getattr(exc, "signum", int(signal.SIGINT))
    finally:
        guard.shield()  # from here no signal cuts the clean-up short
        dead = error is not None
        stats = None
        try:
            stats, write_errors = _wind_down(
                opts, say, session, worker, midi, ui, stream, recorder, runner,
                old_switch=old_switch, dead=dead, reason=reason, signum=signum,
                record_abs=record_abs, stats_abs=stats_abs, params_out_abs=params_out_abs,
                sample_rate=int(want_sr), channels=src.shape[1] if src is not None else 2,
                jstream=jstream, collector=collector, boosted=boosted, locked=locked, rt_report=rt_report,
                cpu_wake=cpu_wake,
            )  # fmt: skip
            if write_errors and error is None:
                error = "; ".join(write_errors)
        finally:
            if server is not None:
                if not dead:
                    release_portaudio()
                server.stop()  # also after a device error: its /dev/shm entries go with it
    return RunResult(stats=stats, reason=reason, error=error, record_path=record_abs, notes=notes, signal=signum)


def _wind_down(
    opts: RunOptions,
    say: Callable[[str], None],
    session: Session | None,
    worker: Any,
    midi: Any,
    ui: MeterUI | None,
    stream: Any,
    recorder: Recorder | None,
    runner: _Run | None,
    *,
    old_switch: float,
    dead: bool,
    reason: str,
    signum: int | None,
    record_abs: str | None,
    stats_abs: str | None,
    params_out_abs: str | None,
    sample_rate: int,
    channels: int,
    jstream: Any = None,
    collector: Any = None,
    boosted: list[int] | None = None,
    locked: bool = False,
    cpu_wake: Any = None,
    rt_report: Any = None,
) -> tuple[dict | None, list[str]]:
    """The end of every run: threads stopped, stream closed, the files written.  Returns the stats and
    one line per file that could not be written (each step runs whatever the one before did)."""
    errors: list[str] = []

    def step(what: Callable[[], object]) -> None:
        try:
            what()
        except Exception as exc:  # one failing step must not skip the others
            errors.append(f"{type(exc).__name__}: {' '.join(str(exc).split())}")

    if boosted:
        # helper threads (this one too) ordinary first: the clean-up needs no real time, and SCHED_FIFO
        # threads busy with it on a loaded 2-core machine can starve jackd's ordinary request thread.  (The
        # SIGABRT once blamed on that, in test_run_faults' shutdown-signal runs under load, had another
        # cause, found with a core dump: a second signal interrupting libjack's read in Pa_Terminate with
        # EINTR; the shielded SignalGuard now ignores signals: realtime.interrupts.)
        from .rtsys import unboost_threads

        step(lambda: unboost_threads(boosted))
    if worker is not None:
        step(worker.stop)  # the AI process or thread (session.stop() stops a thread worker too: idempotent)
    if session is not None:
        step(session.stop)
    if jstream is not None:
        # first: an rtmidi port closing below holds the GIL inside libjack, and JACK then waits for
        # this client's (Python) notification callbacks, which need the GIL: a deadlock
        step(lambda: _close_stream(stream, dead) if stream is not None else jstream.close())
    if midi is not None:
        step(midi.close)
    sys.setswitchinterval(old_switch)
    if ui is not None:
        step(ui.stop)
        step(ui.say_reasons)  # the AI's last change of course, if the UI thread had no tick left to say it
    if stream is not None and jstream is None:
        step(lambda: _close_stream(stream, dead))
    # the collector back on and memory unlocked once the stream is closed (realtime.rtsys): a full
    # collection while it still runs (a signal ends the run mid-stream) holds the GIL from the callback
    if collector is not None:
        step(collector.stop)
    if locked:
        from .rtsys import unlock_memory

        step(unlock_memory)
    if cpu_wake is not None:  # the CPUs may idle again once the stream is closed
        step(cpu_wake.release)
    if recorder is not None:
        step(recorder.close)
        if recorder.error:
            errors.append(recorder.error)
        if recorder.dropped:
            say(f"the recording lost {recorder.dropped} frames (the disk was too slow)")
    elif record_abs and reason == "interrupted":  # stopped before the stream: a recording of nothing played
        from .audio_io import write_audio_atomic

        try:
            write_audio_atomic(record_abs, np.zeros((0, channels), np.float32), sample_rate, "FLOAT")
        except OSError as exc:
            errors.append(f"--record {record_abs}: cannot write ({exc.strerror or exc})")
    if runner is not None:
        stats = runner.stats(runner.engine.sample_rate, opts.blocksize)
    elif reason == "interrupted":
        stats = _idle_stats(sample_rate, opts.blocksize)
    else:
        return None, errors
    stats["end"] = reason
    if signum is not None:
        stats["signal"] = signal_name(signum)
    if runner is not None:
        if worker is not None:
            stats["inference"] = worker.stats()
            # AI updates that arrived after their stream position (a render would differ there)
            stats["inference"]["late"] = runner.engine.ai_late
            stats["model"] = getattr(worker.estimator, "name", "model")
        if rt_report is not None and collector is not None:
            stats["realtime"] = {**rt_report.as_dict(), **collector.as_dict()}
        bank = runner.engine.controls
        if bank is not None:
            c = bank.counts()
            stats["midi"] = {
                "messages": c["received"],
                "applied": c["mapped"],
                "ignored": c["ignored"],
                "dropped": c["dropped"],
                "latency": runner.engine.midi_latency_ms(),
            }
    outputs = []
    if stats_abs:
        outputs.append(("--stats-json", stats_abs, json.dumps(stats, indent=1) + "\n"))
    if params_out_abs and session is not None:
        outputs.append(("--params-out", params_out_abs, session.params_out_text()))
    for flag, path, text in outputs:
        try:
            write_text_atomic(path, text)
        except OSError as exc:  # a full disk: say which file, and go on (the server must still stop)
            errors.append(f"{flag} {path}: cannot write ({exc.strerror or exc})")
    return stats, errors


def _idle_stats(sample_rate: int, blocksize: int) -> dict:
    """``--stats-json`` of a run stopped before its stream: nothing played (the keys of :meth:`_Run.stats`)."""
    return {
        "samplerate": int(sample_rate),
        "blocksize": int(blocksize),
        "blocks": 0,
        "budget_us": round(1e6 * blocksize / sample_rate, 1),
        "callback_us": {"p50": None, "p99": None, "p999": None, "max": None},
        "xruns": 0,
        "xrun_at_s": [],
        "status_flags": {n: 0 for n in STATUS_FLAGS},
        "inference": {"runs": 0, "p50_ms": None, "p99_ms": None},
        "midi": {"messages": 0, "applied": 0},
        "seconds": 0.0,
    }


def _no_callback(*args: Any) -> None:  # the JACK client's callback until the run sets runner.callback
    pass


def _start_ai_process(engine: Engine, sr: int, opts: RunOptions, spec: AISpec, say: Callable[[str], None]) -> Any:
    """The AI in its own process (realtime.aiproc), built there from ``spec``, with the analytic
    fallback (the matcher aiming at the run's profile) warmed here."""
    from mixpilot.inference.worker import InferenceWorker

    from .aiproc import AIProcess, SharedAnalysisRing

    assert isinstance(engine.ring, SharedAnalysisRing)  # run() shares it before the warm-up
    kw: dict[str, Any] = dict(hop_s=opts.ai_hop_s, crossfade_s=opts.crossfade_s)
    fallback = InferenceWorker(spec.fallback(), engine.ring, sr, engine.publish_ai, **kw)
    fallback.compute(0)  # warm: it must be ready to take over without loading anything
    try:
        return AIProcess(
            engine.ring,
            sr,
            engine.publish_ai,
            spec=spec,
            warn=say,
            fallback=fallback,
            on_thread=_boost_me if opts.realtime_sys else None,
            **kw,
        )
    except Exception as exc:  # the child could not start: the same AI in a thread here
        say(f"warning: {' '.join(str(exc).split())}; the AI runs in this process instead")
        est = spec.build(lambda t: say("warning: " + t))
        assert est is not None
        worker = InferenceWorker(est, engine.ring, sr, engine.publish_ai, **kw)
        worker.compute(0)
        return worker


def _boost_me() -> None:
    """A helper thread started during the stream makes itself SCHED_FIFO (realtime.rtsys)."""
    from .rtsys import HELPER_PRIORITY, _set_fifo

    _set_fifo(threading.get_native_id(), HELPER_PRIORITY)


def _boost_helpers(report: Any, exclude: tuple[int, ...]) -> list[int]:
    """Every Python thread of this process (the main thread too) SCHED_FIFO 1; returns their ids."""
    from . import rtsys

    before = {t.native_id for t in threading.enumerate() if t.native_id is not None} - set(exclude)
    n, why = rtsys.boost_threads(exclude=exclude)
    report.helpers_boosted += n
    if why:
        report.helpers_note = f"helper threads not real-time: {why}"
    return sorted(before)


def _realtime_callback(runner: _Run, report: Any) -> list[int]:
    """The callback thread's policy (made real-time if it was not); threads started since: SCHED_FIFO 1."""
    from . import rtsys

    deadline = time.monotonic() + 1.0
    while runner.thread_id[0] == 0 and time.monotonic() < deadline and not runner.finished.is_set():
        time.sleep(0.005)
    cb = int(runner.thread_id[0])
    report.callback_policy = rtsys.boost_callback_thread(cb) if cb else "unknown (no callback yet)"
    return _boost_helpers(report, exclude=(cb,) if cb else ())


def _portaudio_devices(
    sd: Any, opts: RunOptions, src: np.ndarray | None, want_sr: float
) -> tuple[int, int, int, int | None, int | None]:
    """PortAudio: the devices, channels and rate for this run; (sr, channels, out_channels, out_dev, in_dev)."""
    out_dev = resolve_device(opts.output_device, "output")
    in_dev = resolve_device(opts.input_device, "input") if opts.mode == "live" else None
    out_info = sd.query_devices(out_dev if out_dev is not None else sd.default.device[1], "output")
    if opts.mode == "live":
        in_info = sd.query_devices(in_dev if in_dev is not None else sd.default.device[0], "input")
        channels = 2 if in_info["max_input_channels"] >= 2 else 1
    else:
        assert src is not None  # play reads a file
        channels = src.shape[1]
    out_channels = channels if out_info["max_output_channels"] >= channels else 1
    if channels == 2 and out_channels == 1:
        raise StreamUsageError(f"output device {out_info['name']!r} has 1 channel; this needs 2")
    if channels == 1 and out_info["max_output_channels"] >= 2:
        out_channels = 2  # mono is played on both sides
    sr = int(want_sr)
    why = _device_settings(sd, "output", out_dev, out_channels, sr)
    if why is not None and opts.samplerate is None and opts.mode == "play":
        dev_sr = int(out_info["default_samplerate"])
        if _device_settings(sd, "output", out_dev, out_channels, dev_sr) is None:
            sr, why = dev_sr, None
    if why is not None:
        raise StreamUsageError(why)
    if opts.mode == "live":
        why = _device_settings(sd, "input", in_dev, channels, sr)
        if why is not None:
            raise StreamUsageError(why)
    return sr, channels, out_channels, out_dev, in_dev


def _jack_midi(spec: object) -> bool:
    """``--midi-in jack`` / ``virtual`` in JACK client mode: a MIDI port on mixpilot's own JACK client."""
    return spec is not None and str(spec).strip().lower() in ("jack", "virtual")


def _ensure_jack_server(sample_rate: int, period: int, note: Callable[[str], None]) -> JackServer | None:
    """JACK client mode: the running server, or a dummy one started here (returned; stop it after)."""
    if server_running(timeout_s=0.0):
        return None
    if jackd_path() is None:
        raise StreamError("--jack: no JACK server is running and jackd is not installed (sudo apt install jackd2)")
    server = JackServer(sample_rate=sample_rate, period=period)
    try:
        server.start()
    except JackError as exc:
        raise StreamError(f"--jack: no JACK server is running, and a dummy one failed: {exc}") from None
    try:
        note(
            f"no JACK server running: started a JACK dummy server (jackd -n {server.name} -d dummy "
            f"-r {sample_rate} -p {period}); nothing is audible"
        )
    except BaseException:  # a signal before the caller holds the server: stop it here
        server.stop()
        raise
    return server


def _warm_callback(runner: _Run, mode: str, out_channels: int, channels: int, blocksize: int) -> None:
    """Call the callback once on scratch buffers of the stream's exact types, then reset the engine."""
    out = np.zeros((blocksize, out_channels), dtype=np.float32)
    saved = runner.recorder, runner.end_frames
    runner.recorder = None
    runner.end_frames = None
    if mode == "play":
        runner.callback(out, blocksize, None, None)
    else:
        runner.callback(np.zeros((blocksize, channels), dtype=np.float32), out, blocksize, None, None)
    runner.recorder, runner.end_frames = saved
    if runner.recorder is not None:  # compile/load the recorder's ring kernel now, not in the first callback
        runner.recorder.put(out[:0] if out.shape[1] == channels else runner.scratch[:0])
    runner.counts[:] = 0
    runner.durations[:1] = 0
    runner.thread_id[0] = 0  # the warm-up ran on this thread; the stream's first callback sets it
    runner.engine.reset()


def _wait(runner: _Run, stream: Any, server: JackServer | None, collector: Any = None) -> tuple[str, str | None]:
    """Block until the run ends; returns (reason, error line or None)."""
    started = time.perf_counter_ns()
    while True:
        if collector is not None:
            collector.collect_young()  # here, never inside the callback (realtime.rtsys)
        if runner.finished.wait(0.05):
            if runner.callback_error:
                return "device error", f"the audio callback failed: {runner.callback_error}"
            return runner.stop_reason or "end of file", None
        now = time.perf_counter_ns()
        last = int(runner.last_ns[0]) or started
        if runner.stop_reason is not None and not runner.callback_error:
            # the callback ended the run (--seconds, end of file); PortAudio reports the stream
            # inactive a moment before it calls finished_callback (a race a loaded machine widens)
            return runner.stop_reason, None
        if server is not None and not server.alive():
            return "device error", "the JACK server stopped; the run ended early (recording and stats are kept)"
        if not stream.active or now - last > _STALL_S * 1e9:
            if getattr(stream, "error", None):
                return (
                    "device error",
                    f"{stream.error} after {runner.counts[2] / runner.engine.sample_rate:.1f} s; "
                    + ("the run ended early (recording and stats are kept)"),
                )
            gone = (
                "the JACK server went away"
                if getattr(stream, "is_jack", False) or os.environ.get("JACK_DEFAULT_SERVER") or _is_jack(stream)
                else "the audio device stopped"
            )
            return (
                "device error",
                f"{gone} after {runner.counts[2] / runner.engine.sample_rate:.1f} s; "
                f"the run ended early (recording and stats are kept)",
            )
