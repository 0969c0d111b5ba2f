"""A synthesised demo song, so that a fresh clone has something to mix.

``python -m mixpilot.demo OUT.wav [--seconds 20] [--sample-rate 44100] [--seed 0]`` (also as
``python -m mixpilot.realtime.demo``, its earlier home)
writes a deterministic stereo song as a 24-bit WAV (atomically): a drum kit (kick, snare,
closed and open hats), a bass line, chord pads and a simple lead over an
A-minor loop (Am - F - C - G, one chord per bar, 120 BPM).

The song is made to need mixing: the bass and kick are too loud, the hats too
quiet, the pads lean to the right and the whole mix is rolled off above about
4 kHz, so it sounds dull and bottom-heavy.  Its level is set by construction
(see :data:`DEMO_RMS_DBFS`): about -20 LUFS integrated, peaks near -6.5 dBFS.

Everything is numpy, vectorised over samples (the only Python loops run over
harmonics, voices and drum hits), and seeded: the same arguments give the same
array on the same machine.  20 s at 44.1 kHz takes a few tenths of a second.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import numpy as np

from mixpilot.realtime.audio_io import AudioFileError, write_audio_atomic

__all__ = ["DEMO_RMS_DBFS", "DEMO_PEAK_MAX", "synth_demo", "write_demo", "main"]

#: RMS level of the finished mix in dBFS, taken over both channels together.
#: BS.1770 sums the two channels' mean squares (+3 dB over this mean) and
#: subtracts 0.691; K-weighting then takes about 1.4 dB off this bottom-heavy
#: material, so the song reads about -20 LUFS integrated.
DEMO_RMS_DBFS = -21.0

#: Peak guard, linear (-3 dBFS): if a mix normalised to ``DEMO_RMS_DBFS`` would
#: peak above this, it is turned down until it does not.  The arrangement's crest
#: factor is 14-15 dB (kick-led), so peaks land near -6.5 dBFS and the guard,
#: which would need a crest factor above 18 dB, is only a backstop.
DEMO_PEAK_MAX = 10.0 ** (-3.0 / 20.0)

_BPM = 120.0
_STEPS_PER_BAR = 16  # sixteenth notes

# One chord per bar: Am, F, C, G.  Pad voicings and bass roots as MIDI notes.
_PAD_CHORDS = np.array(
    [
        [57, 60, 64, 69],  # A3 C4 E4 A4
        [53, 57, 60, 65],  # F3 A3 C4 F4
        [55, 60, 64, 67],  # G3 C4 E4 G4
        [55, 59, 62, 67],  # G3 B3 D4 G4
    ],
    dtype=np.float64,
)
_BASS_ROOTS = np.array([33, 29, 36, 31], dtype=np.float64)  # A1 F1 C2 G1
_BASS_PATTERN = np.array([0, 0, 12, 0, 0, 12, 7, 0], dtype=np.float64)  # per eighth
_LEAD_SCALE = np.array([69, 72, 74, 76, 79, 81], dtype=np.float64)  # A minor pentatonic

# Drum patterns over one bar of sixteenths: velocity per step (0 = no hit).
_KICK = np.array([1.0, 0, 0, 0, 0, 0, 0, 0.7, 1.0, 0, 0.8, 0, 0, 0, 0, 0])
_SNARE = np.array([0.0, 0, 0, 0, 1.0, 0, 0, 0, 0, 0, 0, 0, 1.0, 0, 0, 0.3])
_HAT = np.array([0.8, 0, 0.5, 0, 0.8, 0, 0.5, 0, 0.8, 0, 0.5, 0, 0.8, 0, 0, 0])
_OPEN_HAT = np.zeros(16)
_OPEN_HAT[14] = 0.6

# Mix: (gain, pan in -1..1).  Deliberately unbalanced (see the module docstring).
_MIX = {
    "kick": (0.95, 0.0),
    "snare": (0.40, 0.05),
    "hat": (0.14, 0.35),
    "bass": (0.60, 0.0),
    "lead": (0.22, -0.25),
}
_PAD_GAIN_LR = (0.13, 0.17)  # pads lean right
_TILT_HZ = 4000.0  # first-order roll-off of the whole mix: the "dull" part


def _midi_hz(note: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _pan(pan: float) -> tuple[float, float]:
    """Constant-power pan law: (left, right) gains for ``pan`` in -1..1."""
    angle = (pan + 1.0) * np.pi / 4.0
    return float(np.cos(angle)), float(np.sin(angle))


def _shape_spectrum(
    x: np.ndarray, sample_rate: int, gain_of_hz: Callable[[np.ndarray], np.ndarray], pad: int
) -> np.ndarray:
    """Zero-phase filter ``x`` (along axis 0) by a real magnitude response.

    ``pad`` zeros are appended first so that the (short, two-sided) impulse
    response does not wrap around onto the signal.
    """
    n = x.shape[0]
    nfft = _fast_fft_size(n + pad)
    rows = np.ascontiguousarray(x.T)  # FFT along contiguous memory: much faster
    spectrum = np.fft.rfft(rows, n=nfft, axis=-1)
    spectrum *= gain_of_hz(np.fft.rfftfreq(nfft, 1.0 / sample_rate))
    return np.fft.irfft(spectrum, n=nfft, axis=-1)[..., :n].T


def _fast_fft_size(n: int) -> int:
    """Smallest 2**a * 3**b * 5**c >= n (sizes pocketfft handles fastest)."""
    best = 1 << int(np.ceil(np.log2(max(n, 1))))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            size = p35
            while size < n:
                size *= 2
            best = min(best, size)
            p35 *= 3
        p5 *= 5
    return best


def _band(lo_hz: float, hi_hz: float) -> Callable[[np.ndarray], np.ndarray]:
    """Smooth band-pass magnitude (second-order-like skirts) for noise shaping."""

    def gain(f: np.ndarray) -> np.ndarray:
        hp = (f / lo_hz) ** 2 / (1.0 + (f / lo_hz) ** 2)
        lp = 1.0 / (1.0 + (f / hi_hz) ** 2)
        return hp * lp

    return gain


def _note_envelope(
    t_in: np.ndarray, length_s: float, *, attack_s: float, decay_s: float, release_s: float
) -> np.ndarray:
    """Attack ramp, exponential decay, and a short release before the note ends."""
    attack = np.minimum(t_in / attack_s, 1.0)
    release = np.clip((length_s - t_in) / release_s, 0.0, 1.0)
    return attack * np.exp(-t_in / decay_s) * release


def _drum_templates(sample_rate: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    sr = sample_rate

    def tt(seconds: float) -> np.ndarray:
        return np.arange(int(seconds * sr)) / sr

    # Kick: a sine swept from ~120 Hz down to 45 Hz, plus a 2 ms noise click.
    t = tt(0.40)
    kick_hz = 45.0 + 75.0 * np.exp(-t / 0.03)
    kick = np.sin(2.0 * np.pi * np.cumsum(kick_hz) / sr) * np.exp(-t / 0.16)
    click = _shape_spectrum(rng.standard_normal(t.size), sr, _band(1000.0, 4000.0), 1024)
    kick += 0.3 * click * np.exp(-t / 0.002)

    # Snare: two body partials and band-passed noise with a longer tail.
    t = tt(0.30)
    body = (np.sin(2.0 * np.pi * 185.0 * t) + 0.5 * np.sin(2.0 * np.pi * 330.0 * t)) * np.exp(-t / 0.05)
    noise = _shape_spectrum(rng.standard_normal(t.size), sr, _band(1200.0, 6000.0), 1024)
    noise /= np.sqrt(np.mean(noise**2))
    snare = 0.6 * body + 0.5 * noise * np.exp(-t / 0.09)

    # Hats: high-passed noise, short (closed) and long (open).
    t = tt(0.40)
    hiss = _shape_spectrum(rng.standard_normal(t.size), sr, _band(6000.0, 14000.0), 1024)
    hiss /= np.sqrt(np.mean(hiss**2))
    hat = hiss[: int(0.08 * sr)] * np.exp(-t[: int(0.08 * sr)] / 0.02)
    open_hat = hiss * np.exp(-t / 0.12)

    return {"kick": kick, "snare": snare, "hat": hat, "open_hat": open_hat}


def _place(n: int, template: np.ndarray, onsets: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Mono track of length ``n`` with ``template`` added at each onset (samples)."""
    track = np.zeros(n)
    for start, gain in zip(onsets.tolist(), gains.tolist()):
        if start >= n:
            continue
        stop = min(n, start + template.size)
        track[start:stop] += gain * template[: stop - start]
    return track


def _drum_hits(
    pattern: np.ndarray, n_bars: int, first_bar: int, step_samples: float, rng: np.random.Generator, jitter: float
) -> tuple[np.ndarray, np.ndarray]:
    """Onsets (samples) and velocities of one drum over the song, humanised a little."""
    bars = np.arange(first_bar, n_bars)
    steps = np.nonzero(pattern)[0]
    grid = (bars[:, None] * _STEPS_PER_BAR + steps[None, :]).ravel()
    velocity = np.tile(pattern[steps], bars.size)
    velocity = velocity * (1.0 + jitter * rng.uniform(-1.0, 1.0, velocity.size))
    onsets = np.round(grid * step_samples).astype(np.int64)
    return onsets, velocity


def synth_demo(seconds: float = 20.0, sample_rate: int = 44100, seed: int = 0) -> np.ndarray:
    """Synthesise the demo song.

    Parameters
    ----------
    seconds : float
        Length in seconds (> 0).
    sample_rate : int
        Sample rate in Hz (8000 to 192000).
    seed : int
        Seeds the melody, the noise of the drums and the humanising.

    Returns
    -------
    np.ndarray [shape=(frames, 2), dtype=float32]
        Stereo audio, ``frames = round(seconds * sample_rate)``, RMS
        :data:`DEMO_RMS_DBFS` dBFS (lower only if the peak guard acts), peak at
        most :data:`DEMO_PEAK_MAX`.
    """
    seconds = float(seconds)
    if not np.isfinite(seconds) or seconds <= 0.0:
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    if int(sample_rate) != sample_rate or not 8000 <= sample_rate <= 192000:
        raise ValueError(f"sample_rate must be an integer from 8000 to 192000 Hz, got {sample_rate!r}")
    sr = int(sample_rate)
    n = int(round(seconds * sr))
    if n < 1:
        raise ValueError(f"{seconds} s at {sr} Hz is less than one frame")

    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    step_s = 60.0 / _BPM / 4.0
    bar_s = step_s * _STEPS_PER_BAR
    eighth_s = 2.0 * step_s
    n_bars = int(np.ceil(n / sr / bar_s))
    bar = (t // bar_s).astype(np.int64)
    chord = bar % len(_BASS_ROOTS)
    eighth = (t // eighth_s).astype(np.int64)
    t_in_eighth = t - eighth * eighth_s
    t_in_bar = t - bar * bar_s

    left = np.zeros(n)
    right = np.zeros(n)

    def add(mono: np.ndarray, name: str) -> None:
        gain, pan = _MIX[name]
        gl, gr = _pan(pan)
        left[:] += gain * gl * mono
        right[:] += gain * gr * mono

    # Drums: bar 0 has hats only; the kit comes in from bar 1.
    templates = _drum_templates(sr, rng)
    step_samples = step_s * sr
    for name, pattern, first_bar, template in (
        ("kick", _KICK, 1, templates["kick"]),
        ("snare", _SNARE, 1, templates["snare"]),
        ("hat", _HAT, 0, templates["hat"]),
        ("hat", _OPEN_HAT, 1, templates["open_hat"]),
    ):
        onsets, velocity = _drum_hits(pattern, n_bars, first_bar, step_samples, rng, 0.1)
        add(_place(n, template, onsets, velocity), name)

    # Bass: a soft saw (five harmonics, rolled off) on eighths, from bar 1.
    bass_table = _midi_hz(_BASS_ROOTS[:, None] + _BASS_PATTERN[None, :])  # [chord, eighth]
    bass_hz = bass_table[chord, eighth % _BASS_PATTERN.size]
    bass_phase = 2.0 * np.pi * np.cumsum(bass_hz) / sr
    bass = sum(np.sin(k * bass_phase) * (0.6**k) / k for k in range(1, 6)) / 0.6
    bass *= _note_envelope(t_in_eighth, eighth_s, attack_s=0.004, decay_s=0.2, release_s=0.01)
    add(bass * (bar >= 1), "bass")

    # Pads: the bar's chord, each voice as two oscillators detuned +-6 cents,
    # one per side; a slow swell in and out of every bar.
    pad_env = np.sin(np.pi * np.clip(t_in_bar / bar_s, 0.0, 1.0)) ** 2
    pad_env = np.minimum(pad_env * 2.0, 1.0)
    pad_table = _midi_hz(_PAD_CHORDS)
    for voice in range(_PAD_CHORDS.shape[1]):
        hz = pad_table[chord, voice]
        for side, cents in ((left, -6.0), (right, 6.0)):
            phase = 2.0 * np.pi * hz * 2.0 ** (cents / 1200.0) * t_in_bar
            tone = np.sin(phase) + 0.25 * np.sin(2.0 * phase)
            gain = _PAD_GAIN_LR[0] if side is left else _PAD_GAIN_LR[1]
            side += gain * pad_env * tone

    # Lead: a two-bar motif of eighths from the pentatonic scale (seeded),
    # about a third of them rests; square-ish tone with delayed vibrato.
    motif_len = 2 * (_STEPS_PER_BAR // 2)  # two bars of eighths
    motif = rng.choice(_LEAD_SCALE, size=motif_len)
    gate = rng.uniform(size=motif_len) > 0.35
    gate[0] = True
    idx = eighth % motif_len
    vibrato = 1.0 + 0.004 * np.sin(2.0 * np.pi * 5.5 * t) * np.minimum(t_in_eighth / 0.2, 1.0)
    lead_hz = _midi_hz(motif)[idx] * vibrato
    lead_phase = 2.0 * np.pi * np.cumsum(lead_hz) / sr
    lead = np.sin(lead_phase) + 0.2 * np.sin(3.0 * lead_phase) + 0.08 * np.sin(5.0 * lead_phase)
    lead *= _note_envelope(t_in_eighth, eighth_s, attack_s=0.01, decay_s=0.35, release_s=0.015)
    lead *= gate[idx] * ((bar >= 2) & (bar < max(n_bars - 1, 3)))
    add(lead, "lead")

    # Dull it: first-order roll-off above _TILT_HZ, zero phase.
    mix = np.stack([left, right], axis=1)
    mix = _shape_spectrum(mix, sr, lambda f: 1.0 / np.sqrt(1.0 + (f / _TILT_HZ) ** 2), 4096)

    # 20 ms fades so the ends do not click.
    fade = np.minimum(1.0, np.minimum(t, (n - 1) / sr - t) / 0.02)
    mix *= fade[:, None]

    # Level by construction: RMS to DEMO_RMS_DBFS, then the peak guard.
    rms = float(np.sqrt(np.mean(mix**2)))
    if rms > 0.0:
        mix *= 10.0 ** (DEMO_RMS_DBFS / 20.0) / rms
    peak = float(np.max(np.abs(mix)))
    if peak > DEMO_PEAK_MAX:
        mix *= DEMO_PEAK_MAX / peak
    return np.ascontiguousarray(mix, dtype=np.float32)


def write_demo(
    path: str | os.PathLike[str], *, seconds: float = 20.0, sample_rate: int = 44100, seed: int = 0
) -> np.ndarray:
    """Synthesise the demo and write it to ``path`` as 24-bit PCM, atomically.

    ``path`` ends in ``.wav`` (or ``.flac``); missing folders are created.  The
    file goes through :func:`realtime.audio_io.write_audio_atomic` (temporary
    file beside it, then :func:`os.replace`), so a reader never sees half a
    file.  Returns the audio written.
    """
    audio = synth_demo(seconds, sample_rate, seed)
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    os.makedirs(folder, exist_ok=True)
    write_audio_atomic(path, audio, sample_rate, subtype="PCM_24")
    return audio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mixpilot.demo",
        description="Write a deterministic synthesised demo song (stereo, 24-bit WAV).",
    )
    parser.add_argument("out", help="output .wav path")
    parser.add_argument("--seconds", type=float, default=20.0, help="length in seconds (default 20)")
    parser.add_argument("--sample-rate", type=int, default=44100, help="Hz (default 44100)")
    parser.add_argument("--seed", type=int, default=0, help="melody and noise seed (default 0)")
    args = parser.parse_args(argv)
    try:
        audio = write_demo(args.out, seconds=args.seconds, sample_rate=args.sample_rate, seed=args.seed)
    except (ValueError, OSError, AudioFileError) as exc:
        print(f"mixpilot.demo: error: {exc}", file=sys.stderr)
        return 2
    peak_db = 20.0 * np.log10(max(float(np.max(np.abs(audio))), 1e-12))
    rms_db = 20.0 * np.log10(max(float(np.sqrt(np.mean(audio.astype(np.float64) ** 2))), 1e-12))
    print(
        f"wrote {args.out}: {audio.shape[0] / args.sample_rate:.1f} s, {args.sample_rate} Hz, stereo, "
        f"peak {peak_db:.1f} dBFS, RMS {rms_db:.1f} dBFS"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
