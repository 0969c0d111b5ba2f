"""Loudness-matched A/B while the loudness follower runs (issue 13, item 1).

Switching A/B off re-enables the follower, whose next update position had been
left behind while it was frozen; ``process_block`` then never reached it and
spun forever.  The CLI case is the user's repro: a MIDI file pressing the A/B
button (CC 103 in the built-in map) at 1 s and at 3 s during
``render --loudness-mode follow``.
"""

from __future__ import annotations

import subprocess
import sys

import mido
import numpy as np
import soundfile as sf

from mixpilot.realtime.engine import Engine


def _ab_twice_midi(path) -> None:
    """CC 103 = 127 at 1 s and at 3 s (120 bpm, 480 ticks per beat: 960 ticks per second)."""
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    track.append(mido.Message("control_change", control=103, value=127, time=960))
    track.append(mido.Message("control_change", control=103, value=127, time=1920))
    mid.tracks.append(track)
    mid.save(str(path))


def test_render_follow_with_ab_on_and_off_terminates(tmp_wav, tmp_path, rng):
    x = 0.5 * rng.standard_normal((10 * 48000, 2)).astype(np.float32)  # loud noise, 10 s
    src = tmp_wav(x, 48000, "loud10s.wav")
    mid = tmp_path / "ab_twice.mid"
    _ab_twice_midi(mid)
    out = tmp_path / "o.wav"
    cmd = [sys.executable, "-m", "mixpilot.realtime.cli", "render", str(src), str(out), "--loudness-mode", "follow",
           "--midi-file", str(mid), "--model", "none", "--quiet"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180)  # hung forever before the fix
    assert p.returncode == 0, p.stderr
    y, fs = sf.read(out, dtype="float32")
    assert fs == 48000 and y.shape == x.shape and np.isfinite(y).all()


def test_follower_resumes_on_its_grid_after_b_side():
    fs, hop = 48000, 24000  # follow_hop_s 0.5
    eng = Engine(fs, 2, max_block_size=1000, target_lufs=-14.0, follow_hop_s=0.5)
    x = (0.1 * np.sin(2 * np.pi * 440 * np.arange(1000) / fs)).astype(np.float32)[:, None].repeat(2, 1)
    y = np.empty_like(x)
    for _ in range(60):  # 1.25 s
        eng.process_block(x, y)
    eng.set_ab(True)
    for _ in range(100):  # frozen follower: 2.08 s more
        eng.process_block(x, y)
    updates = eng.follow_updates
    eng.set_ab(False)
    pos = eng.position
    for _ in range(60):
        eng.process_block(x, y)
    # the follower stepped again at the multiples of its hop after the switch, and only there
    expected = len(range((pos // hop + 1) * hop, eng.position + 1, hop))
    assert eng.follow_updates - updates == expected
    assert eng._next_follow % hop == 0 and eng._next_follow > eng.position
