"""The audio callback with a busy Python thread beside it: GIL switch interval and kernel design.

``python -m mixpilot.benchmarks.gil_switch [--seconds 20] [--json PATH]`` starts a JACK
dummy server (48 kHz, 128 frames), plays noise through a real PortAudio
stream and measures, per case: callback duration (``perf_counter_ns`` around
the real callback), the time between callback starts (the 2667 us period
plus any lateness: waiting for the GIL, the scheduler) and xruns.

Cases (each ``--seconds`` long):

``engine``            the real callback (one GIL-holding Numba call per block), nothing else running
``engine+busy@5ms``   the same with a thread spinning Python bytecode, default switch interval 5 ms
``engine+busy@1ms``   ... switch interval 1 ms
``engine+busy@0.5ms`` ... switch interval 0.5 ms (what :mod:`realtime.stream` uses)
``nogil+busy@5ms``    a callback calling the ``nogil=True`` kernels separately (chain, then meter):
                      each call gives the GIL away and must win it back from the busy thread
``nogil+busy@0.5ms``  the same at 0.5 ms

``--ai``: the real ``play`` path (``realtime.stream.run``) with the AI worker every 0.25 s
against the same run with ``--model none``: callback p50/p99/p99.9/max and the p99 rise.

What it found is written in :mod:`realtime.stream`'s docstring and the README.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import numpy as np


def _busy(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(1000):
            x += i * i  # pure bytecode: holds the GIL until the switch interval asks for it


def _case(name: str, seconds: float, busy: bool, switch_s: float, nogil: bool) -> dict:
    from mixpilot.dsp.chain import MixChain
    from mixpilot.dsp.meter import LoudnessMeter
    from mixpilot.dsp.spec import ProcessSpec
    from mixpilot.realtime.engine import Engine
    from mixpilot.realtime.stream import _sd

    sd = _sd()
    sr, bs = 48000, 128
    rng = np.random.default_rng(0)
    src = (0.05 * rng.standard_normal((int((seconds + 1) * sr), 2))).astype(np.float32)
    n_max = int(seconds * sr / bs) + 1000
    dur = np.zeros(n_max, np.int64)
    ent = np.zeros(n_max, np.int64)
    st = np.zeros(3, np.int64)  # blocks, xruns, position
    if nogil:
        spec = ProcessSpec(sr, bs, 2)
        chain = MixChain()
        chain.prepare(spec)
        meter = LoudnessMeter(spec)

        def work(inp, out):
            chain.process(inp, out)  # nogil kernel: releases and re-takes the GIL
            meter.process(out)  # a second one
    else:
        eng = Engine(sr, 2, max_block_size=bs)
        work = eng.process_block
    z = np.zeros((bs, 2), np.float32)
    work(src[:bs], z)  # warm

    def cb(outdata, frames, t, status):
        t0 = time.perf_counter_ns()
        k = st[0]
        if status:
            st[1] += 1
        p = st[2]
        work(src[p : p + frames], outdata)
        st[2] = p + frames
        if k < n_max:
            ent[k] = t0
            dur[k] = time.perf_counter_ns() - t0
        st[0] = k + 1

    stop = threading.Event()
    th = threading.Thread(target=_busy, args=(stop,), daemon=True) if busy else None
    old = sys.getswitchinterval()
    sys.setswitchinterval(switch_s)
    try:
        s = sd.OutputStream(samplerate=sr, blocksize=bs, channels=2, dtype="float32", callback=cb)
        if th is not None:
            th.start()
        s.start()
        time.sleep(seconds)
        s.stop()
        s.close()
    finally:
        stop.set()
        if th is not None:
            th.join()
        sys.setswitchinterval(old)
    n = int(min(st[0], n_max))
    d = dur[:n] / 1000.0
    gaps = np.diff(ent[:n])[1:] / 1000.0
    return {
        "case": name,
        "switch_interval_ms": switch_s * 1e3,
        "blocks": n,
        "xruns": int(st[1]),
        "callback_us": {
            q: round(float(np.percentile(d, v)), 1) for q, v in (("p50", 50), ("p99", 99), ("p999", 99.9), ("max", 100))
        },
        "start_interval_us": {
            q: round(float(np.percentile(gaps, v)), 1)
            for q, v in (("p50", 50), ("p99", 99), ("p999", 99.9), ("max", 100))
        },
    }


CASES = [
    ("engine", False, 0.005, False),
    ("engine+busy@5ms", True, 0.005, False),
    ("engine+busy@1ms", True, 0.001, False),
    ("engine+busy@0.5ms", True, 0.0005, False),
    ("nogil+busy@5ms", True, 0.005, True),
    ("nogil+busy@0.5ms", True, 0.0005, True),
]


def run(seconds: float = 20.0, cases=CASES) -> list[dict]:
    """Every case on one JACK dummy server started here (or the one JACK_DEFAULT_SERVER names)."""
    from mixpilot.realtime.jackserver import JackServer, server_running
    from mixpilot.realtime.stream import _rescan, release_portaudio

    server = None
    if not server_running(timeout_s=0.0):
        server = JackServer(sample_rate=48000, period=128).start()
        _rescan()
    try:
        return [_case(name, seconds, busy, sw, nogil) for name, busy, sw, nogil in cases]
    finally:
        if server is not None:
            release_portaudio()
            server.stop()


def ai_compare(seconds: float = 20.0, hop_s: float = 0.25, model: str = "default") -> dict:
    """The real ``play`` run (realtime.stream.run) with inference every ``hop_s`` vs inference off.

    Same file, same JACK dummy server, one after the other; the issue's goal is a callback p99
    rise below 20 %.
    """
    import os
    import tempfile

    import soundfile as sf

    from mixpilot.demo import synth_demo
    from mixpilot.realtime.jackserver import JackServer, server_running
    from mixpilot.realtime.stream import RunOptions, _rescan, release_portaudio
    from mixpilot.realtime.stream import run as run_stream

    server = None
    if not server_running(timeout_s=0.0):
        server = JackServer(sample_rate=48000, period=128).start()
        _rescan()
    tmp = tempfile.mkdtemp(prefix="mixpilot-gil-")
    path = os.path.join(tmp, "program.wav")
    sf.write(path, synth_demo(seconds + 2, 48000, seed=1), 48000, subtype="FLOAT")
    out = {}
    try:
        for label, m in (("ai_off", "none"), ("ai_on", model)):
            res = run_stream(
                RunOptions(mode="play", file=path, seconds=seconds, ui=True, model=m, ai_hop_s=hop_s),
                ui_stream=open(os.devnull, "w"),
            )
            st = res.stats
            out[label] = {
                "callback_us": st["callback_us"],
                "xruns": st["xruns"],
                "inference": st["inference"],
                "model": st.get("model", "none"),
            }
    finally:
        if server is not None:
            release_portaudio()
            server.stop()
    off, on = out["ai_off"]["callback_us"]["p99"], out["ai_on"]["callback_us"]["p99"]
    out["p99_rise"] = round(on / off - 1.0, 3) if off else None
    out["hop_s"] = hop_s
    return out


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'case':20s} {'xruns':>5s} {'cb p50':>7s} {'cb p99':>7s} {'cb p99.9':>8s} {'cb max':>8s} "
        f"{'start-gap p99':>13s} {'gap max':>8s}   (us; period 2666.7)"
    )
    lines = [head]
    for r in rows:
        c, g = r["callback_us"], r["start_interval_us"]
        lines.append(
            f"{r['case']:20s} {r['xruns']:5d} {c['p50']:7.1f} {c['p99']:7.1f} {c['p999']:8.1f} "
            f"{c['max']:8.1f} {g['p99']:13.1f} {g['max']:8.1f}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mixpilot.benchmarks.gil_switch", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", default=None, metavar="PATH")
    ap.add_argument("--ai", action="store_true", help="compare the play callback with inference every 0.25 s vs off")
    a = ap.parse_args(argv)
    if a.ai:
        r = ai_compare(a.seconds)
        for k in ("ai_off", "ai_on"):
            c = r[k]["callback_us"]
            print(
                f"{k:7s} model {r[k]['model']:10s} xruns {r[k]['xruns']:3d}  callback p50 {c['p50']:6.1f}  "
                f"p99 {c['p99']:6.1f}  p99.9 {c['p999']:6.1f}  max {c['max']:7.1f} us  inference {r[k]['inference']}"
            )
        print(f"p99 rise with inference every {r['hop_s']} s: {100 * r['p99_rise']:+.1f} %")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(r, f, indent=1)
        return 0
    rows = run(a.seconds)
    print(format_table(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
