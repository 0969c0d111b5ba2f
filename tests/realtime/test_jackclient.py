"""``live --jack``: mixpilot as a JACK client between two other clients, on the real dummy server.

A feeder client (JACK-Client, in this test) plays two sines on ``feeder:out_L/out_R``; mixpilot
runs ``live --connect-in 'mp-feeder:out_' --connect-out 'mp-sink:in_'`` with static parameters
(no AI, output gain -6 dB, delivery gain fixed at 0 dB); a sink client records what arrives.
References: mixpilot's own ``--record`` (the samples that arrive must be those, bit for bit), and
the closed form of the chain on a quiet sine at neutral settings (a pure gain of -6 dB: the
RMS of what arrives is the sine's RMS, A/sqrt(2), times 10^(-6/20)).  Mechanisms only, never
timing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from mixpilot.realtime.stream import RunOptions, run

from .jack_losses import XrunClock, unexplained

jack = pytest.importorskip("jack")

SR = 48000
AMP = (0.1, 0.05)
FREQ = (440.0, 660.0)


def _program(seconds: float) -> np.ndarray:
    """Two sines plus seeded noise (never periodic, so a block of it is found at one place only)."""
    t = np.arange(int(seconds * SR)) / SR
    noise = 0.01 * np.random.default_rng(7).standard_normal((t.size, 2))
    x = np.stack([AMP[c] * np.sin(2 * np.pi * FREQ[c] * t) for c in (0, 1)], axis=1) + noise
    return x.astype(np.float32)


class _Peer:
    """A JACK client in this process: ``feeder`` plays :func:`_program`, ``sink`` records what arrives."""

    def __init__(self, name: str, seconds: float) -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.outs = [self.client.outports.register(f"out_{s}") for s in "LR"]
        self.ins = [self.client.inports.register(f"in_{s}") for s in "LR"]
        self.pos = 0
        self.program = _program(seconds)
        self.got = np.zeros((int(seconds * SR) + 8192, 2), dtype=np.float32)
        self.n = 0
        self.client.set_process_callback(self._process)

    def _process(self, frames: int) -> None:
        a = self.pos % (self.program.shape[0] - frames)
        for c, p in enumerate(self.outs):
            p.get_array()[:] = self.program[a : a + frames, c]
        self.pos += frames
        if self.n + frames <= self.got.shape[0]:
            for c, p in enumerate(self.ins):
                self.got[self.n : self.n + frames, c] = p.get_array()
            self.n += frames

    def __enter__(self) -> _Peer:
        self.client.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.client.deactivate()
        self.client.close()


def test_live_jack_sits_between_two_clients_with_named_ports(jack_server, tmp_path):
    rec = tmp_path / "rec.wav"
    params = {"output_gain_db": -6.0, "loudness_gain_db": 0.0}
    seen: dict = {}
    notes: list[str] = []

    def started(runner) -> None:
        c = jack.Client("mp-probe", no_start_server=True)
        try:
            seen["ports"] = sorted(p.name for p in c.get_ports("mixpilot:"))
            seen["in_L"] = [p.name for p in c.get_all_connections("mixpilot:in_L")]
            seen["out_R"] = [p.name for p in c.get_all_connections("mixpilot:out_R")]
        finally:
            c.close()

    with _Peer("mp-feeder", 6.0), _Peer("mp-sink", 6.0) as sink:
        opts = RunOptions(
            mode="live",
            seconds=3.0,
            ui=False,
            model="none",
            params=params,
            record=str(rec),
            connect_in="mp-feeder:out_",
            connect_out="mp-sink:in_",
        )
        x0 = jack_server.xrun_count()
        res = run(opts, note=notes.append, on_started=started)
        n = sink.n
    xruns = jack_server.xrun_count() - x0  # every client's late cycles (feeder, sink, mixpilot)
    assert res.error is None and res.reason == "seconds", (res, notes)
    assert seen["ports"] == ["mixpilot:in_L", "mixpilot:in_R", "mixpilot:out_L", "mixpilot:out_R"]
    assert seen["in_L"] == ["mp-feeder:out_L"] and seen["out_R"] == ["mp-sink:in_R"]
    assert any(n.startswith("JACK client 'mixpilot' at 48000 Hz, period 128 frames") for n in notes), notes
    assert res.stats["samplerate"] == SR and res.stats["blocksize"] == 128

    got = sink.got[:n]
    y, sr = sf.read(str(rec), dtype="float32", always_2d=True)
    assert sr == SR and y.shape[0] == pytest.approx(3.0 * SR, abs=128)
    # what arrived at the sink is what mixpilot produced, bit for bit (found by its first block)
    # (a cycle lost to an xrun differs between the two: then the next probe 25 periods later is tried)
    for start in range(SR, y.shape[0] - 256, 128 * 25):
        probe = y[start : start + 256]
        hits = [i for i in range(got.shape[0] - 256) if np.array_equal(got[i : i + 256], probe)]
        if hits or xruns == 0:
            break
    assert len(hits) == 1, (hits, start, xruns, res.stats["xruns"])
    k = (hits[0] - start) % 128  # both streams are cut into the same JACK periods
    arrived = {got[j : j + 128].tobytes() for j in range(k, got.shape[0] - 128, 128)}
    made = [y[i : i + 128].tobytes() for i in range(128 * 200, y.shape[0] - 128, 128)]  # connected by then
    found = sum(b in arrived for b in made)
    # every block mixpilot made arrived, bit for bit; a JACK cycle lost to an xrun (this machine's
    # scheduling, not the mechanism) may lose a block: at most one per xrun report (mixpilot's, or the
    # sink's on its way in), so two per report
    assert len(made) - found <= 2 * xruns, (found, len(made), xruns, res.stats["xruns"])
    # processed: a quiet program through the neutral chain at -6 dB output gain (closed form: a gain)
    steady = y[SR : SR + SR].astype(np.float64)
    x = _program(6.0).astype(np.float64)
    for c in (0, 1):
        rms = float(np.sqrt(np.mean(steady[:, c] ** 2)))
        want = float(np.sqrt(np.mean(x[:, c] ** 2))) * 10 ** (-6.0 / 20)
        assert rms == pytest.approx(want, rel=0.01), (c, rms, want)
        assert want == pytest.approx(math.hypot(AMP[c] / math.sqrt(2), 0.01) * 10 ** (-6.0 / 20), rel=0.01)


def test_connect_patterns_that_match_nothing_warn_and_the_run_goes_on(jack_server):
    notes: list[str] = []
    opts = RunOptions(mode="live", seconds=1.0, ui=False, model="none", connect_in="no-such-client:out")
    res = run(opts, note=notes.append)
    assert res.error is None and res.reason == "seconds"
    assert any(n.startswith("warning: --connect-in 'no-such-client:out': no JACK output ports match") for n in notes)


def test_a_bad_pattern_is_one_line_before_anything_runs(jack_server):
    from mixpilot.realtime.stream import StreamUsageError

    with pytest.raises(StreamUsageError, match=r"--connect-out '\[': not a regular expression"):
        run(RunOptions(mode="live", seconds=1.0, ui=False, model="none", connect_out="["))


def test_a_port_that_appears_later_is_connected(jack_server):
    # the DAW starts after mixpilot: its ports are connected when they register
    seen: dict = {}

    def started(runner) -> None:
        def late() -> None:
            threading.Event().wait(0.5)
            with _Peer("mp-late", 3.0):
                threading.Event().wait(1.0)
                c = jack.Client("mp-probe2", no_start_server=True)
                seen["in_L"] = [p.name for p in c.get_all_connections("mixpilot:in_L")]
                c.close()

        threading.Thread(target=late, daemon=True).start()

    res = run(
        RunOptions(mode="live", seconds=2.5, ui=False, model="none", connect_in="mp-late:out_"),
        on_started=started,
    )
    assert res.error is None
    assert seen.get("in_L") == ["mp-late:out_L"], seen


SENDER = """
import json, threading, time, rtmidi
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="mp-sender")
for _ in range(100):
    names = out.get_ports()
    hit = [i for i, n in enumerate(names) if n == "mixpilot:mixpilot"]
    if hit:
        break
    time.sleep(0.02)
out.open_port(hit[0], name="out")
time.sleep(0.3)  # the connection settles
sent = []
for v in range(100):
    sent.append(time.perf_counter_ns())  # CLOCK_MONOTONIC: the same clock in every process (Linux)
    out.send_message([0xB0, 75, v])
    time.sleep(0.004 + 0.001 * (v % 3))
time.sleep(0.2)
out.close_port()
print(json.dumps(sent))
"""

MIDI_MAP = """
[[cc]]
cc = 75
param = "reverb_send"
range = "ai"
soft_takeover = false
"""


def test_midi_port_on_the_audio_client_applies_every_message(jack_server, tmp_path, capsys, monkeypatch):
    # --jack --midi-in jack: the MIDI port is mixpilot:mixpilot on the audio client itself, read in its
    # process callback.  Reference: the messages sent (each one counted and applied, in order, the
    # last value in the chain's targets); the send -> applied latency is printed, not asserted.
    pytest.importorskip("rtmidi")
    from mixpilot.dsp.params import PARAM_INDEX
    from mixpilot.realtime.midi import ControlMapper
    from mixpilot.realtime.midi_map import MidiMap

    handled: list[tuple[int, int]] = []  # when the process callback handed each CC to the mapper (the block then runs)
    original = ControlMapper.handle

    def timed(self, data, t_ns=None):
        if len(data) == 3 and data[1] == 75:
            handled.append((time.perf_counter_ns(), data[2]))
        return original(self, data, t_ns)

    monkeypatch.setattr(ControlMapper, "handle", timed)

    map_path = tmp_path / "map.toml"
    map_path.write_text(MIDI_MAP)
    binding = MidiMap.from_toml_text(MIDI_MAP).find(1, 75)
    seen: dict = {}
    notes: list[str] = []

    def started(runner) -> None:
        seen["runner"] = runner
        # the sender is another process, as a controller or a DAW would be: an rtmidi call here would
        # hold this process's GIL inside libjack while JACK waits for mixpilot's notification callbacks
        seen["proc"] = subprocess.Popen(
            [sys.executable, "-c", SENDER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    opts = RunOptions(
        mode="live",
        jack=True,
        seconds=2.5,
        ui=False,
        model="none",
        midi_in="jack",
        midi_map=str(map_path),
    )
    # JACK drops (or, seen once under load: repeats) the MIDI events of a cycle in which a client missed
    # its deadline (an xrun): a message lost or repeated is JACK's only when jackd reported an xrun within
    # 40 ms of its sending (the sender's clock is this process's: CLOCK_MONOTONIC); anything else fails
    params = tmp_path / "params.jsonl"
    with XrunClock(jack_server.xrun_count) as clock:
        res = run(dataclasses.replace(opts, params_out=str(params)), note=notes.append, on_started=started)
        out, err = seen["proc"].communicate(timeout=30)
    assert res.error is None, (res, notes)
    assert any(n.startswith("MIDI in: JACK port 'mixpilot:mixpilot' on the audio client") for n in notes), notes
    sent = json.loads(out.strip().splitlines()[-1]) if out.strip() else []
    assert len(sent) == 100, (out, err)
    got = [v for _, v in handled]
    bad = unexplained(
        got, 100, lambda k: clock.between(sent[k], sent[k] + 40_000_000), lambda k: clock.nearest(sent[k])
    )
    assert not bad, (bad[:5], len(clock.stamps), res.stats["xruns"])
    m = res.stats["midi"]
    assert m["messages"] == m["applied"] == len(got), m
    lines = [json.loads(x) for x in params.read_text().splitlines()]
    midi = [e for e in lines if e["source"] == "midi"]
    assert [e["value"] for e in midi] == [binding.value_at(v / 127) for v in got]
    engine = seen["runner"].engine
    assert engine.chain.targets[PARAM_INDEX["reverb_send"]] == binding.value_at(got[-1] / 127)
    first: dict[int, int] = {}
    for t, v in handled:
        first.setdefault(v, t)
    lat_ms = np.array([(t - sent[v]) / 1e6 for v, t in first.items()])
    assert (lat_ms > 0).all()
    p50, p99 = np.percentile(lat_ms, [50, 99])
    with capsys.disabled():
        print(
            f"\nJACK MIDI port on the audio client, 48 kHz / 128 frames: send -> handled in the process callback "
            f"(the block is processed right after) p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {lat_ms.max():.2f} ms; "
            f"handled -> applied {res.stats['midi']['latency']}"
        )
