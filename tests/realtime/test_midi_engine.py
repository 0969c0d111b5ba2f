"""MIDI into the real engine while audio plays on a JACK server (dummy driver, 48 kHz / 128 frames).

References: the messages the test sends (every one counted; the chain's
target equals the mapped value of the last one per parameter — the
documented coalescing) and the built-in map's ranges from dsp.params.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mixpilot.dsp.params import PARAM_INDEX, PARAMS
from mixpilot.realtime.stream import RunOptions, run

from .test_midi_jack import jack_out, wait_for

rtmidi = pytest.importorskip("rtmidi")
SR = 48000
LOW = PARAM_INDEX["low_gain_db"]
REV = PARAM_INDEX["reverb_send"]


def _song(tmp_wav, seconds: float):
    rng = np.random.default_rng(3)
    return tmp_wav((0.05 * rng.standard_normal((int(seconds * SR), 2))).astype(np.float32), SR, "song.wav")


class _Running:
    """run() on a thread; ``runner`` once the stream has started."""

    def __init__(self, opts: RunOptions) -> None:
        self.started = threading.Event()
        self.runner = None
        self.result = None
        self.thread = threading.Thread(target=self._go, args=(opts,), daemon=True)
        self.thread.start()
        assert self.started.wait(60), "the stream did not start"

    def _go(self, opts):
        def hook(r):
            self.runner = r
            self.started.set()

        self.result = run(opts, on_started=hook)
        self.started.set()

    def join(self):
        self.thread.join(60)
        return self.result


def test_cc_reaches_the_chain_with_soft_takeover(jack_server, tmp_wav, tmp_path):
    # Built-in map: CC 70 -> low_gain_db over its AI range -3..3 dB, soft takeover on.
    song = _song(tmp_wav, 8.0)
    params_out = tmp_path / "p.jsonl"
    r = _Running(
        RunOptions(
            mode="play",
            file=str(song),
            seconds=6.0,
            ui=False,
            model="none",
            midi_in="virtual",
            params_out=str(params_out),
        )
    )
    eng = r.runner.engine
    bank = eng.controls
    out = jack_out("mixpilot-test-cc", bank)
    try:
        out.send_message([0xB0, 70, 127])  # far from the current 0 dB: not picked up, nothing jumps
        time.sleep(0.1)
        assert eng.chain.targets[LOW] == 0.0 and eng.manual_active[LOW] == 0
        for v in range(58, 72):  # sweep through the middle (0 dB at 63.5): picked up on the way
            out.send_message([0xB0, 70, v])
            time.sleep(0.005)
        out.send_message([0xB0, 70, 127])
        assert wait_for(lambda: eng.chain.targets[LOW] == PARAMS[LOW].ai_maximum, 2.0)
        assert eng.manual_active[LOW] == 1
        assert wait_for(lambda: abs(eng.value("low_gain_db") - 3.0) < 1e-9, 1.0)  # glided (30 ms) all the way
    finally:
        out.close_port()
    res = r.join()
    lat = res.stats["midi"]["latency"]
    print(f"\nMIDI message -> applied in the chain: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms over {lat['n']}")
    assert res.stats["midi"]["applied"] >= 2 and lat["n"] >= 2
    logged = [ln for ln in params_out.read_text().splitlines() if '"source": "midi"' in ln]
    assert any('"low_gain_db"' in ln and '"value": 3.0' in ln for ln in logged)


FLOOD_SENDER = r"""
import sys, time, rtmidi
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="mixpilot-test-flood")
deadline = time.monotonic() + 20
while True:
    names = out.get_ports()
    hits = [i for i, n in enumerate(names) if n.endswith(":mixpilot")]
    if hits or time.monotonic() > deadline:
        break
    time.sleep(0.05)
out.open_port(hits[-1], name="out")
time.sleep(0.5)  # the connection settles
print("ready", flush=True)
sys.stdin.readline()  # go
sent = 0
for v in range(0, 128, 4):  # pick both knobs up: sweep through their current positions
    out.send_message([0xB0, 70, v]); out.send_message([0xB0, 75, v]); sent += 2
    time.sleep(0.002)
t0 = time.perf_counter(); k = 0
while time.perf_counter() - t0 < 10.0:
    due = int((time.perf_counter() - t0) * 1000)
    while k < due:
        out.send_message([0xB0, 70 if k % 2 else 75, (k * 7) % 128]); k += 1
    time.sleep(0.001)
# The last value per knob again, three times after a pause: a repeat changes nothing where it arrives
# (the same value), and one copy that arrives is enough for last-value-wins to end on it.
time.sleep(0.3)
for _ in range(3):
    for j in range(k - 2, k):
        out.send_message([0xB0, 70 if j % 2 else 75, (j * 7) % 128]); sent += 1
    time.sleep(0.05)
print(sent + k, k, flush=True)
time.sleep(0.5)  # let the last messages through before the port closes (a graph change)
out.close_port()
"""


def test_cc_flood_while_playing(jack_server, tmp_wav, record_property):
    # 1000 CC/s for 10 s on two mapped knobs from another process (a controller is external) while
    # playing at 128 frames.  What the module documents, asserted:
    # - every message the port delivered is counted once: received = mapped + ignored + dropped (none malformed);
    # - the only loss is JACK's: it drops the MIDI events of a cycle it reports as an xrun (jackd's log, or the
    #   stream's status flags), so a message short without any xrun report fails;
    # - last value wins: the chain ends exactly on the mapped value of the last value sent per knob (sent
    #   again after the flood, so that a dropped cycle cannot take the last word).
    # Counts and xruns are reported (record_property: the junit XML, and printed), not thresholded.
    import subprocess
    import sys

    jack_xruns_before = jack_server.xrun_count()
    song = _song(tmp_wav, 14.0)
    r = _Running(
        RunOptions(mode="play", file=str(song), seconds=13.0, ui=True, model="none", midi_in="virtual", midi_map=None)
    )
    eng = r.runner.engine
    sr = eng.spec.sample_rate
    p = subprocess.Popen(
        [sys.executable, "-c", FLOOD_SENDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert p.stdout.readline().strip() == "ready", p.stderr.read()
    t_go = eng.position / sr
    p.stdin.write("go\n")
    p.stdin.flush()
    sent, k = map(int, p.stdout.readline().split())
    t_done = eng.position / sr
    p.wait(30)
    last = {70: None, 75: None}
    for j in range(k - 2, k):
        last[70 if j % 2 else 75] = (j * 7) % 128
    res = r.join()
    st = res.stats
    m = st["midi"]
    jack_xruns = jack_server.xrun_reports()[jack_xruns_before:]
    report = {
        "sent": sent,
        "received": m["messages"],
        "applied": m["applied"],
        "ignored": m["ignored"],
        "dropped": m["dropped"],
        "stream_xruns": st["xruns"],
        "stream_xrun_at_s": st["xrun_at_s"],
        "jack_xrun_reports": len(jack_xruns),
        "callback_us": st["callback_us"],
        "latency": m["latency"],
    }
    record_property("cc_flood", report)
    print("\nflood:", report)
    assert m["messages"] == m["applied"] + m["ignored"] + m["dropped"] and m["dropped"] == 0
    lost = sent - m["messages"]
    if lost:  # short, or (seen once under load in test_midi_jack) over: a cycle JACK delivered twice
        assert jack_xruns or st["xruns"], f"{lost:+d} messages lost without any xrun reported: {report}"
    lo, hi = PARAMS[LOW].ai_minimum, PARAMS[LOW].ai_maximum
    assert eng.chain.targets[LOW] == pytest.approx(lo + (hi - lo) * last[70] / 127.0)
    rlo, rhi = PARAMS[REV].ai_minimum, PARAMS[REV].ai_maximum
    assert eng.chain.targets[REV] == pytest.approx(rlo + (rhi - rlo) * last[75] / 127.0)
    during = [t for t in st["xrun_at_s"] if t_go <= t <= t_done]
    # Xruns depend on the machine's scheduling (a timing figure): reported here and in the issue note,
    # not asserted (STYLE/brief: no timing thresholds in tests; the soak benchmark measures them).
    print(
        f"flood from {t_go:.2f} s to {t_done:.2f} s of stream time: {len(during)} xruns; "
        f"all xruns at {st['xrun_at_s']} s"
    )
