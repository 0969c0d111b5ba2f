"""Real-time soak: the real engine for SECONDS with the AI every 0.25 s and a MIDI flood of 200 CC/s.

``mixpilot bench --soak 600`` (or ``python -m mixpilot.benchmarks.soak --seconds 600 [--json PATH]``) runs
:func:`realtime.stream.run` exactly as ``mixpilot play`` does (``RunOptions(mode="play", file=...,
seconds=S, model="default", ai_hop_s=0.25, ui=False)``, 128 frames or ``--blocksize``), on the default output device
or, when there is none, on a JACK dummy server that :func:`realtime.stream.run` starts
(``ensure_backend``).  The file is the synthesised demo song (:func:`mixpilot.demo.synth_demo`,
30 s, seed 1) looped to SECONDS + 2 s and written to a temporary 16-bit WAV.

Beside the stream, started from ``run``'s ``on_started`` hook:

* **MIDI flood**: a separate process (``python benchmarks/soak.py --flood``, so that its sending
  does not compete for this interpreter's GIL, as a real controller would not) opens a
  python-rtmidi output on the API the engine's input uses (JACK MIDI when a JACK server runs,
  else ALSA), connects to mixpilot's virtual input port ``mixpilot`` and sends 200 control
  changes a second on channel 1, cycling CC 70..79 (the built-in map's ten knobs) with values
  sweeping 0..127..0 so soft takeover picks each knob up.  Needs ``RunOptions.midi_in``; where
  the engine has none, nothing is sent and the result says so.
* **RSS**: a thread samples ``psutil.Process().memory_info().rss`` once a second.  Growth is the
  last sample minus the first sample at or after the warm-up (10 s, or 30 % of a shorter soak):
  the warm-up covers the lazy first allocations (the estimator's first windows, MIDI buffers).

Result (the ``soak`` object of ``mixpilot bench --json``): ``seconds`` (stream time played),
``xruns``, ``callback_p999_us``, ``rss_growth_mb`` (MiB) as INTERFACE.md names them, plus the
callback percentiles, the budget, inference runs / p99, MIDI sent / received, the RSS samples'
summary, how the run ended and any error.

This module's top level imports only the standard library: the flood process runs it as a
script without the project's dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

__all__ = ["FLOOD_CCS", "busy_processes", "combine_rounds", "flood", "format_rounds", "main", "run_bare", "run_soak"]

FLOOD_CCS = tuple(range(70, 80))  # the built-in map's knobs (realtime/default_midi_map.toml)
PORT_NAME = "mixpilot"  # realtime.midi.VIRTUAL_PORT_NAME
FLOOD_CLIENT = "mixpilot-flood"


# --- the flood process -----------------------------------------------------------------


def _find_port(names: list[str], port: str) -> int | None:
    """Index of mixpilot's virtual input among rtmidi output destinations (JACK or ALSA naming)."""
    for i, n in enumerate(names):  # JACK: "mixpilot:mixpilot"
        if n == f"{port}:{port}":
            return i
    for i, n in enumerate(names):  # ALSA: "mixpilot:mixpilot 128:0"
        if n.startswith(f"{port}:{port} "):
            return i
    for i, n in enumerate(names):
        if n.endswith(f":{port}") and not n.startswith(FLOOD_CLIENT):
            return i
    return None


def flood(
    rate_hz: float, seconds: float, api: str, port: str = PORT_NAME, connect_s: float = 10.0, out=sys.stdout
) -> dict:
    """Send ``rate_hz`` CCs a second to ``port`` for ``seconds`` (or until SIGTERM); returns the counts.

    Prints ``ready <port name>`` once connected, and the counts as one JSON line to ``out`` as soon as
    sending ends (before the port closes).  The schedule is absolute (message ``k`` at
    ``t0 + k / rate``), so a late wake-up sends the missed messages at once, like a busy controller.
    """
    import rtmidi

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    mo = rtmidi.MidiOut(rtmidi.API_UNIX_JACK if api == "jack" else rtmidi.API_LINUX_ALSA, name=FLOOD_CLIENT)
    deadline = time.monotonic() + connect_s
    names: list[str] = []
    while True:
        names = mo.get_ports()
        i = _find_port(names, port)
        if i is not None or time.monotonic() > deadline or stop.is_set():
            break
        time.sleep(0.05)
    if i is None:
        mo.delete()
        res = {"sent": 0, "error": f"no MIDI input port {port!r} to connect to (ports: {names})"}
        print(json.dumps(res), file=out, flush=True)
        return res
    mo.open_port(i, name="out")
    print(f"ready {names[i]}", file=out, flush=True)
    period = 1.0 / rate_hz
    t0 = time.monotonic()
    end = t0 + seconds
    k = 0
    while not stop.is_set():
        now = time.monotonic()
        if now >= end:
            break
        due = t0 + k * period
        if due > now:
            stop.wait(due - now)
            continue
        cc = FLOOD_CCS[k % len(FLOOD_CCS)]
        phase = (3 * (k // len(FLOOD_CCS))) % 254
        mo.send_message([0xB0, cc, phase if phase <= 127 else 254 - phase])
        k += 1
    elapsed = time.monotonic() - t0
    # The counts go out before the port closes: closing is a round trip to the JACK server, which on a
    # loaded machine can outlast the soak's wait for this process (it was killed with nothing printed).
    res = {"sent": k, "seconds": elapsed, "port": names[i]}
    print(json.dumps(res), file=out, flush=True)
    mo.close_port()
    mo.delete()
    return res


# --- the floor: a bare callback, and busy neighbours -------------------------------------


def busy_processes(n: int) -> list[subprocess.Popen]:
    """``n`` processes spinning pure Python at normal priority (a loaded machine, for the comparison)."""
    code = "while True:\n    pass\n"
    return [
        subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        for _ in range(max(0, int(n)))
    ]


def end_processes(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def run_bare(
    seconds: float,
    *,
    blocksize: int = 128,
    sample_rate: int = 48000,
    note: Callable[[str], None] | None = None,
    cpu_awake: bool = True,
) -> dict:
    """The floor: a PortAudio stream whose callback only zero-fills, on the backend the soak used.

    Same device choice as :func:`realtime.stream.run` (the default output, or a JACK dummy server
    started here with the same rate and period), same block size, ``latency="low"``, stereo
    float32.  The callback counts the status flags (that is what an xrun is to PortAudio), stores
    its start time in a preallocated array and calls ``outdata.fill(0)``; nothing else.  Returns
    ``xruns``, ``blocks``, ``seconds`` and the start-interval percentiles in µs.  ``cpu_awake``: hold
    the CPUs out of their idle states as ``run`` does (:class:`realtime.rtsys.CpuWakeLatency`), so that
    both runs have the same platform; ``cpu_awake`` in the result says whether it could.
    """
    import numpy as np

    from mixpilot.realtime.devices import portaudio_ready
    from mixpilot.realtime.stream import ensure_backend, release_portaudio

    sd = portaudio_ready()  # run() released PortAudio when it stopped its server
    server = ensure_backend(False, sample_rate, blocksize, note or (lambda s: None))
    counts = np.zeros(2, dtype=np.int64)  # blocks, xruns
    xrun_at = np.zeros(64, dtype=np.int64)  # block index of the first 64 xruns
    starts = np.zeros(int(seconds * sample_rate / blocksize) + 4096, dtype=np.int64)
    cap = starts.shape[0]
    clock = time.perf_counter_ns

    def callback(outdata, frames, t, status) -> None:
        k = counts[0]
        if k < cap:
            starts[k] = clock()
        if status:
            x = counts[1]
            if x < 64:
                xrun_at[x] = k
            counts[1] = x + 1
        outdata.fill(0)
        counts[0] = k + 1

    from mixpilot.realtime.rtsys import CpuWakeLatency

    wake = CpuWakeLatency()
    awake = wake.hold()[0] if cpu_awake else False
    try:
        with sd.OutputStream(
            samplerate=sample_rate,
            blocksize=blocksize,
            channels=2,
            dtype="float32",
            callback=callback,
            latency="low",
        ):
            time.sleep(seconds)
        n = int(min(counts[0], cap))
        d = np.diff(starts[1:n]) / 1000.0 if n > 3 else np.zeros(0)
        out = {
            "seconds": round(int(counts[0]) * blocksize / sample_rate, 3),
            "blocks": int(counts[0]),
            "xruns": int(counts[1]),
            "xrun_at_s": [round(int(b) * blocksize / sample_rate, 3) for b in xrun_at[: min(int(counts[1]), 64)]],
            "callback_interval_us": {
                "period": round(1e6 * blocksize / sample_rate, 1),
                "p99": round(float(np.percentile(d, 99)), 1) if d.size else None,
                "p999": round(float(np.percentile(d, 99.9)), 1) if d.size else None,
                "max": round(float(d.max()), 1) if d.size else None,
            },
            "cpu_awake": awake,
        }
    finally:
        wake.release()
        if server is not None:
            release_portaudio()
            server.stop()
    return out


# --- the soak --------------------------------------------------------------------------


def _write_program(path: str, seconds: float, sample_rate: int, program_s: float = 30.0) -> None:
    import numpy as np
    import soundfile as sf

    from mixpilot.demo import synth_demo

    x = synth_demo(min(program_s, seconds), sample_rate, seed=1)
    n = round(seconds * sample_rate)
    with sf.SoundFile(path, "w", samplerate=sample_rate, channels=x.shape[1], subtype="PCM_16") as f:
        done = 0
        while done < n:
            m = min(len(x), n - done)
            f.write(np.clip(x[:m], -1.0, 1.0))
            done += m


class _RssSampler:
    """``psutil`` RSS of this process once a second, from its own thread (mostly asleep in C).

    Sampling ends when ``until`` (the run's ``finished`` event) is set, with one last sample
    then: the teardown after the stream (engine, JACK client, server) is not part of the soak.
    """

    def __init__(self, every_s: float = 1.0) -> None:
        import psutil

        self._proc = psutil.Process()
        self.every_s = every_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._until: threading.Event | None = None
        self._thread = threading.Thread(target=self._loop, name="mixpilot-soak-rss", daemon=True)

    def start(self, until: threading.Event | None = None) -> None:
        self.t0 = time.monotonic()
        self._until = until
        self._thread.start()

    def _sample(self) -> None:
        self.samples.append((time.monotonic() - self.t0, self._proc.memory_info().rss))

    def _loop(self) -> None:
        k = 0
        while not self._stop.is_set():
            self._sample()
            k += 1
            wait = max(0.0, self.t0 + k * self.every_s - time.monotonic())
            if self._until is not None:
                if self._until.wait(wait):
                    break
            elif self._stop.wait(wait):
                return
        self._sample()

    def stop(self) -> None:
        if not hasattr(self, "t0"):  # never started (the run failed before the stream)
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)

    def summary(self, warmup_s: float) -> dict:
        s = self.samples
        if not s:
            return {"rss_growth_mb": None}
        mib = 1024.0 * 1024.0
        after = next(((t, r) for t, r in s if t >= warmup_s), s[-1])
        return {
            "rss_growth_mb": (s[-1][1] - after[1]) / mib,
            "rss_warmup_s": after[0],
            "rss_mb": {
                "start": s[0][1] / mib,
                "after_warmup": after[1] / mib,
                "end": s[-1][1] / mib,
                "max": max(r for _, r in s) / mib,
                "samples": len(s),
            },
        }


def _midi_api() -> str:
    """The API mixpilot's ``--midi-in virtual`` port is on now: JACK when a JACK server answers."""
    from mixpilot.realtime.midi import choose_api

    return choose_api("virtual")


def run_soak(
    seconds: float,
    *,
    blocksize: int = 128,
    model: str = "default",
    ai_hop_s: float = 0.25,
    midi_rate_hz: float = 200.0,
    warmup_s: float = 10.0,
    sample_rate: int = 48000,
    note: Callable[[str], None] | None = None,
    bare: bool = True,
    busy: int = 0,
    ui: bool = True,
    ai_process: bool = True,
    realtime_sys: bool = True,
    midi_dispatch: str | None = "engine",
    cpu_awake: bool = True,
    rounds: int = 1,
) -> dict:
    """Run the soak (module docstring); returns the result dict.  Raises StreamError before the stream opens.

    ``bare``: afterwards the bare callback (:func:`run_bare`) under the same conditions, in
    ``result["bare"]``.  ``busy``: that many spinning processes beside both runs.  ``ui``: the meter
    UI computes and writes its line (to ``os.devnull``) as ``play`` does.  ``ai_process`` and
    ``realtime_sys`` switch the issue-16 mechanisms off for a side-by-side comparison; ``cpu_awake``
    only the CPU wake-latency request (in both runs).

    ``rounds``: split SECONDS into that many rounds, each the soak for SECONDS / rounds and then the
    bare callback as long, alternating (:func:`combine_rounds` sums them).  On a machine whose other
    work comes and goes, two halves run one after the other see different loads (measured: load
    average 6.2 during a ten-minute soak, 4.6 during its bare run); alternating short rounds give
    both sides the same conditions.  Each round starts its own stream (and JACK server), so each
    side's start-up is counted once per round.  The one-minute load average at the end of each run
    is kept in ``load_1min``.
    """
    rounds = max(1, int(rounds))
    busy_procs = busy_processes(busy)
    parts: list[dict] = []
    try:
        for _ in range(rounds):
            out = _soak(
                seconds / rounds,
                blocksize,
                model,
                ai_hop_s,
                midi_rate_hz,
                warmup_s,
                sample_rate,
                note,
                ui,
                ai_process,
                realtime_sys,
                midi_dispatch,
                cpu_awake,
            )
            out["load_1min"] = round(os.getloadavg()[0], 2)
            if bare:
                out["bare"] = run_bare(
                    seconds / rounds,
                    blocksize=blocksize,
                    sample_rate=out["samplerate"] or sample_rate,
                    cpu_awake=realtime_sys and cpu_awake,
                )
                out["bare"]["load_1min"] = round(os.getloadavg()[0], 2)
                b = out["bare"]["xruns"]
                out["xruns_minus_bare"] = (out["xruns"] - b) if out["xruns"] is not None else None
            parts.append(out)
            if out.get("error"):  # the stream died: no further rounds
                break
    finally:
        end_processes(busy_procs)
    out = parts[0] if len(parts) == 1 else combine_rounds(parts, seconds)
    out["busy_processes"] = len(busy_procs)
    return out


def _sum(values: list) -> int | float | None:
    return None if any(v is None for v in values) else sum(values)


def _worst(values: list) -> float | None:
    v = [x for x in values if x is not None]
    return max(v) if v else None


def combine_rounds(parts: list[dict], requested_seconds: float) -> dict:
    """One result from alternating rounds (:func:`run_soak`'s ``rounds``).

    Counts add up (xruns, seconds, inference runs, MIDI sent / received / applied); a percentile
    cannot be combined from per-round percentiles, so each is the worst round's
    (``percentiles: "worst round"``), and so is the RSS growth.  ``rounds`` keeps every round's
    xruns, the bare callback's, the seconds and the load averages.
    """
    first = parts[0]
    out = dict(first)
    keys = ("p50", "p99", "p999", "max")
    cb = {k: _worst([(p.get("callback_us") or {}).get(k) for p in parts]) for k in keys}
    iv = {k: _worst([(p.get("callback_interval_us") or {}).get(k) for p in parts]) for k in ("p99", "p999", "max")}
    budget = first["budget_us"]
    out.update(
        {
            "seconds": round(sum(p["seconds"] or 0.0 for p in parts), 3),
            "requested_seconds": requested_seconds,
            "xruns": _sum([p["xruns"] for p in parts]),
            "callback_us": {**(first.get("callback_us") or {}), **cb},
            "callback_p999_us": cb["p999"],
            "callback_p999_pct": (100.0 * cb["p999"] / budget) if cb["p999"] is not None else None,
            "callback_interval_us": {**(first.get("callback_interval_us") or {}), **iv},
            "rss_growth_mb": _worst([p.get("rss_growth_mb") for p in parts]),
            "percentiles": "worst round",
            "end": next((p["end"] for p in parts if p.get("error")), parts[-1]["end"]),
            "error": next((p["error"] for p in parts if p.get("error")), None),
            "notes": [n for p in parts for n in p.get("notes", [])],
        }
    )
    out.pop("load_1min", None)
    inf = [p.get("inference") or {} for p in parts]
    if any(inf):
        out["inference"] = {
            **inf[0],
            "runs": _sum([i.get("runs") for i in inf]),
            "p50_ms": _worst([i.get("p50_ms") for i in inf]),
            "p99_ms": _worst([i.get("p99_ms") for i in inf]),
            "late": _sum([i.get("late") for i in inf]),
        }
    midi = [p.get("midi") or {} for p in parts]
    out["midi"] = {
        **midi[0],
        **{k: _sum([m.get(k) for m in midi]) for k in ("sent", "messages", "applied")},
        "latency": {
            "n": _sum([(m.get("latency") or {}).get("n") for m in midi]),
            "p50_ms": _worst([(m.get("latency") or {}).get("p50_ms") for m in midi]),
            "p99_ms": _worst([(m.get("latency") or {}).get("p99_ms") for m in midi]),
        },
    }
    bares = [p["bare"] for p in parts if p.get("bare")]
    if bares:
        biv = {k: _worst([(b.get("callback_interval_us") or {}).get(k) for b in bares]) for k in ("p99", "p999", "max")}
        out["bare"] = {
            "seconds": round(sum(b["seconds"] for b in bares), 3),
            "blocks": sum(b["blocks"] for b in bares),
            "xruns": sum(b["xruns"] for b in bares),
            "callback_interval_us": {**(bares[0].get("callback_interval_us") or {}), **biv},
            "cpu_awake": all(b.get("cpu_awake") for b in bares),
        }
        out["xruns_minus_bare"] = (out["xruns"] - out["bare"]["xruns"]) if out["xruns"] is not None else None
    out["rounds"] = [
        {
            "seconds": p["seconds"],
            "xruns": p["xruns"],
            "load_1min": p.get("load_1min"),
            **(
                {"bare_xruns": p["bare"]["xruns"], "bare_load_1min": p["bare"].get("load_1min")}
                if p.get("bare")
                else {}
            ),
        }
        for p in parts
    ]
    return out


def format_rounds(s: dict) -> str:
    """``rounds 10 (xruns mixpilot/bare, load average): 31/12 (4.1/4.0), ...`` or "" for one round."""
    r = s.get("rounds")
    if not r:
        return ""
    items = []
    for x in r:
        if "bare_xruns" in x:
            items.append(f"{x['xruns']}/{x['bare_xruns']} ({x['load_1min']}/{x['bare_load_1min']})")
        else:
            items.append(f"{x['xruns']} ({x['load_1min']})")
    head = "xruns mixpilot/bare, load average" if "bare_xruns" in r[0] else "xruns, load average"
    return f"{len(r)} alternating rounds ({head}; percentiles are the worst round's): " + ", ".join(items)


def _soak(
    seconds,
    blocksize,
    model,
    ai_hop_s,
    midi_rate_hz,
    warmup_s,
    sample_rate,
    note,
    ui,
    ai_process,
    realtime_sys,
    midi_dispatch,
    cpu_awake=True,
):
    from mixpilot.realtime.stream import RunOptions, run

    say = note or (lambda s: None)
    notes: list[str] = []
    warm = min(warmup_s, 0.3 * seconds)
    has_midi = "midi_in" in getattr(RunOptions, "__dataclass_fields__", {})
    sampler = _RssSampler()
    flood_proc: list[subprocess.Popen] = []
    midi: dict = {"rate_hz": midi_rate_hz if has_midi else 0.0, "api": None, "sent": 0}
    done = threading.Event()  # run() returned
    flood_out = tempfile.TemporaryFile(mode="w+")
    flood_err = tempfile.TemporaryFile(mode="w+")

    def end_flood() -> None:
        """SIGTERM the flood (it closes its port and prints its counts) and wait for it."""
        for p in flood_proc:
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    with tempfile.TemporaryDirectory(prefix="mixpilot-soak-") as tmp:
        path = os.path.join(tmp, "program.wav")
        _write_program(path, seconds + 2.0, sample_rate)
        kw = {
            "mode": "play",
            "file": path,
            "seconds": seconds,
            "model": model,
            "ai_hop_s": ai_hop_s,
            "ui": ui,
            "blocksize": blocksize,
            "ai_process": ai_process,
            "realtime_sys": realtime_sys,
        }
        if "cpu_awake" in getattr(RunOptions, "__dataclass_fields__", {}):
            kw["cpu_awake"] = cpu_awake
        if has_midi:
            kw["midi_dispatch"] = midi_dispatch
        if has_midi:
            kw["midi_in"] = "virtual"
        else:
            notes.append("RunOptions has no midi_in (MIDI input not wired into the engine): no MIDI flood sent")
        opts = RunOptions(**kw)

        def started(runner) -> None:
            finished = getattr(runner, "finished", None)
            sampler.start(finished)
            if not has_midi:
                return
            try:
                midi["api"] = _midi_api()
            except Exception as exc:  # no MIDI API at all: the soak goes on without the flood
                notes.append(f"no MIDI API for the flood ({exc})")
                return
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "--flood",
                "--rate",
                str(midi_rate_hz),
                "--seconds",
                str(seconds + 5.0),
                "--api",
                midi["api"],
            ]
            flood_proc.append(
                subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=flood_out, stderr=flood_err, text=True)
            )
            if finished is not None:  # stop the flood when the stream ends, before the JACK server goes

                def watch() -> None:
                    while not finished.wait(0.2):
                        if done.is_set():
                            return
                    end_flood()

                threading.Thread(target=watch, name="mixpilot-soak-flood", daemon=True).start()

        say_notes: list[str] = []
        try:
            with open(os.devnull, "w") as devnull:  # the meter UI writes its line, as play does to a log
                res = run(opts, note=lambda s: (say_notes.append(s), say(s)), on_started=started, ui_stream=devnull)
        finally:
            done.set()
            sampler.stop()
            end_flood()
    flood_out.seek(0)
    flood_err.seek(0)
    got = False
    for ln in flood_out.read().splitlines():
        if ln.startswith("{"):
            try:
                midi.update(json.loads(ln))
                got = True
            except ValueError:
                pass
    err_lines = [ln.strip() for ln in flood_err.read().splitlines() if ln.strip()]
    flood_out.close()
    flood_err.close()
    if flood_proc and not got:
        notes.append(f"MIDI flood ended without its counts: {err_lines[-1] if err_lines else 'no output'}")
    if midi.get("error"):
        notes.append(f"MIDI flood: {midi['error']}")
    stats = res.stats or {}
    cb = stats.get("callback_us") or {}
    budget = stats.get("budget_us") or 1e6 * blocksize / sample_rate
    sr = stats.get("samplerate") or sample_rate
    played = stats.get("seconds") or 0.0
    midi_stats = stats.get("midi") or {}
    midi["messages"] = midi_stats.get("messages")
    midi["applied"] = midi_stats.get("applied")
    midi["latency"] = midi_stats.get("latency")  # message handled -> applied at a block start
    out = {
        "seconds": played,
        "requested_seconds": seconds,
        "xruns": stats.get("xruns"),
        "callback_p999_us": cb.get("p999"),
        **sampler.summary(warm),
        "callback_p999_pct": (100.0 * cb["p999"] / budget) if cb.get("p999") is not None else None,
        "callback_us": cb,
        "budget_us": budget,
        "samplerate": sr,
        "blocksize": blocksize,
        "status_flags": stats.get("status_flags"),
        "callback_interval_us": stats.get("callback_interval_us"),
        "realtime": stats.get("realtime"),
        "ai_hop_s": ai_hop_s,
        "model": stats.get("model"),
        "inference": stats.get("inference"),
        "midi": midi,
        "end": res.reason,
        "error": res.error,
        "backend": "JACK dummy server" if any("JACK dummy" in n for n in say_notes) else "default device",
        "notes": notes + [n for n in say_notes if not n.startswith("no audio device found")],
    }
    return out


def format_soak(s: dict) -> str:
    cb = s.get("callback_us") or {}
    iv = s.get("callback_interval_us") or {}
    text = (
        f"soak {s['seconds']:.1f} s on {s['backend']}: xruns {s['xruns']}, callback p50 {cb.get('p50')} "
        f"p99 {cb.get('p99')} p99.9 {cb.get('p999')} max {cb.get('max')} us (budget {s['budget_us']:.1f}), "
        f"start interval p99.9 {iv.get('p999')} max {iv.get('max')} us, "
        f"RSS growth {s['rss_growth_mb']:.2f} MiB, inference {s.get('inference')}, MIDI {s['midi']}"
    )
    b = s.get("bare")
    if b:
        bi = b.get("callback_interval_us") or {}
        text += (
            f"\nbare callback (outdata.fill(0)) {b['seconds']:.1f} s, same conditions: xruns {b['xruns']}, "
            f"start interval p99.9 {bi.get('p999')} max {bi.get('max')} us"
        )
    if s.get("busy_processes"):
        text += f"\n(both with {s['busy_processes']} busy processes beside them)"
    if s.get("rounds"):
        text += "\n" + format_rounds(s)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mixpilot.benchmarks.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument(
        "--blocksize",
        type=int,
        default=128,
        help="frames per period of the stream (and of the JACK dummy server it starts); default 128",
    )
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--model", default="default")
    ap.add_argument("--busy", type=int, default=0, help="spinning processes beside both runs")
    ap.add_argument("--no-bare", action="store_true", help="skip the bare-callback run")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate the soak and the bare callback in N rounds of SECONDS/N each (same load for both)",
    )
    ap.add_argument("--no-ui", action="store_true", help="no meter UI thread")
    ap.add_argument("--ai-thread", action="store_true", help="the AI as a thread in the audio process (as before)")
    ap.add_argument("--no-rt", action="store_true", help="no real-time priority / mlock / frozen collector")
    ap.add_argument(
        "--no-cpu-awake", action="store_true", help="do not hold the CPUs out of idle states (/dev/cpu_dma_latency)"
    )
    ap.add_argument("--midi-thread", action="store_true", help="MIDI polled by a thread every 1 ms (as before)")
    ap.add_argument("--flood", action="store_true", help=argparse.SUPPRESS)  # the MIDI flood process
    ap.add_argument("--rate", type=float, default=200.0, help=argparse.SUPPRESS)
    ap.add_argument("--api", default="jack", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if not (a.seconds > 0 and a.rate > 0):
        ap.error("--seconds and --rate must be > 0")
    if a.rounds < 1:
        ap.error("--rounds must be >= 1")
    if not 16 <= a.blocksize <= 8192:
        ap.error("--blocksize must be 16..8192 frames")
    if a.flood:
        flood(a.rate, a.seconds, a.api)  # prints its counts as one JSON line
        return 0
    r = run_soak(
        a.seconds,
        blocksize=a.blocksize,
        model=a.model,
        note=lambda s: print(f"note: {s}", file=sys.stderr),
        bare=not a.no_bare,
        busy=a.busy,
        ui=not a.no_ui,
        ai_process=not a.ai_thread,
        realtime_sys=not a.no_rt,
        midi_dispatch=None if a.midi_thread else "engine",
        cpu_awake=not a.no_cpu_awake,
        rounds=a.rounds,
    )
    print(format_soak(r))
    if a.json:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from mixpilot.fileio import write_text_atomic

        write_text_atomic(a.json, json.dumps(r, indent=1) + "\n")
    return 1 if r.get("error") else 0


if __name__ == "__main__":
    raise SystemExit(main())
