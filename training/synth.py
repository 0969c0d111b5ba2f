"""Procedural multitrack music: stems, and a mix at a known good balance.

Everything is numpy, vectorised per note (no per-sample Python loops) and
driven by one ``np.random.Generator``, so a seed gives the same song on every
machine.

A song (:func:`synth_song`) is a few seconds of one of :data:`STYLE_NAMES`:
drums (synthesised kick / snare / hats / clap / shaker on a 16-step grid with
swing and ghost notes), bass, chords, lead and pad stems over a diatonic chord
progression, with a random tempo, key, mode, timbre per instrument, density
(instruments drop out), dynamics (velocities, a section swell) and stereo
image (double-tracked chords, detuned wide pads).

:func:`mix_good` mixes the stems at the style's balance with gentle panning,
brings the result to :data:`REFERENCE_LEVEL_DB`, applies the style's bus
compression with the project's own chain (:class:`dsp.chain.MixChain`, at the
AI's fixed threshold / attack / release, so that the AI's ``comp_ratio`` can
reproduce it) and renders reverb and delay *wet* signals with the chain's
reverb / delay sends at their default room, damping, time and feedback.  The
good mix is ``compressed + reverb_send * reverb_wet + delay_send * delay_wet``,
so a mix with any other send amount is one multiply-add away (the sends are
linear), and the known good amount of each send is stored with the mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from mixpilot.dsp.chain import MixChain
from mixpilot.dsp.spec import ProcessSpec

__all__ = [
    "SAMPLE_RATE",
    "SYNTH_RATE",
    "REFERENCE_LEVEL_DB",
    "STYLE_NAMES",
    "STYLES",
    "Style",
    "Song",
    "GoodMix",
    "synth_song",
    "mix_good",
    "level_db",
    "apply_chain",
    "TONAL_BANDS_HZ",
    "SIDE_MID_TARGET_DB",
    "UNREFERENCED",
    "reference_curve_db",
    "third_octave_levels_db",
    "match_tone",
    "tone_correction",
    "equalise",
    "side_scale",
    "scale_side",
    "smoothed_levels_db",
    "set_side_mid",
]

SAMPLE_RATE = 44100
"""Rate at which good mixes are made and the chain runs (the engine's usual
rate, so the chain's filters behave as they will when serving)."""

SYNTH_RATE = 22050
"""Rate at which stems are synthesised (the feature bandwidth is 11.025 kHz,
so nothing the features see is lost); :func:`mix_good` resamples the mix."""

REFERENCE_LEVEL_DB = -18.0
"""Level of every good mix: mean-square over both channels, dBFS (0 dB = a
full-scale sine in both channels is -3 dB).  -18 dBFS RMS is the usual
analogue-style gain-staging level; the AI's ``input_gain_db`` aims here."""

STEM_NAMES = ("drums", "bass", "chords", "lead", "pad")


@dataclass(frozen=True)
class Style:
    """What a style chooses from.  Ranges are (low, high) for a uniform draw."""

    name: str
    tempo_bpm: tuple[float, float]
    minor_prob: float
    drums: tuple[str, ...]  # drum kits to choose from ("none" = no drums)
    bass: tuple[str, ...]
    chords: tuple[str, ...]
    lead: tuple[str, ...]
    pad: tuple[str, ...]
    presence: dict  # stem -> probability it plays
    gains_db: dict  # stem -> good level relative to the drums (dB)
    swing: tuple[float, float]
    reverb_wet_db: tuple[float, float]  # known good reverb level relative to the dry mix (dB)
    delay_wet_db: tuple[float, float]  # known good delay level relative to the dry mix (dB)
    comp_ratio: tuple[float, float]  # known good bus-compression ratio


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            "pop",
            (88, 128),
            0.3,
            ("pop", "four"),
            ("saw_lp", "square_lp", "sine_sub", "pluck"),
            ("piano", "rhodes", "strum", "organ"),
            ("square_vib", "saw_lp", "sine_flute", "pluck"),
            ("saw_pad", "soft_pad"),
            {"drums": 1.0, "bass": 1.0, "chords": 0.95, "lead": 0.75, "pad": 0.6},
            {"drums": 0.0, "bass": -2.0, "chords": -4.0, "lead": -3.0, "pad": -9.0},
            (0.0, 0.1),
            (-20.0, -13.0),
            (-24.0, -16.0),
            (2.0, 3.0),
        ),
        Style(
            "rock",
            (100, 160),
            0.45,
            ("rock",),
            ("saw_lp", "square_lp", "pluck"),
            ("guitar_dist", "guitar_dist", "strum", "organ"),
            ("guitar_lead", "saw_lp", "square_vib"),
            ("saw_pad",),
            {"drums": 1.0, "bass": 1.0, "chords": 1.0, "lead": 0.6, "pad": 0.3},
            {"drums": 0.0, "bass": -2.0, "chords": -3.0, "lead": -3.0, "pad": -10.0},
            (0.0, 0.05),
            (-22.0, -15.0),
            (-28.0, -20.0),
            (2.5, 3.5),
        ),
        Style(
            "electronic",
            (118, 136),
            0.55,
            ("four",),
            ("saw_lp", "sine_sub", "square_lp"),
            ("saw_chord", "rhodes", "organ"),
            ("arp", "square_vib", "bell"),
            ("supersaw", "saw_pad"),
            {"drums": 1.0, "bass": 1.0, "chords": 0.7, "lead": 0.85, "pad": 0.8},
            {"drums": 0.0, "bass": -1.0, "chords": -6.0, "lead": -4.0, "pad": -7.0},
            (0.0, 0.05),
            (-18.0, -12.0),
            (-20.0, -13.0),
            (2.5, 3.5),
        ),
        Style(
            "ambient",
            (60, 90),
            0.5,
            ("none", "none", "soft"),
            ("sine_sub", "soft_saw"),
            ("piano", "rhodes", "organ"),
            ("bell", "sine_flute"),
            ("soft_pad", "supersaw", "saw_pad"),
            {"drums": 0.4, "bass": 0.8, "chords": 0.8, "lead": 0.8, "pad": 1.0},
            {"drums": -4.0, "bass": -3.0, "chords": -2.0, "lead": -3.0, "pad": 0.0},
            (0.0, 0.0),
            (-12.0, -6.0),
            (-18.0, -12.0),
            (1.3, 1.8),
        ),
        Style(
            "folk",
            (76, 120),
            0.35,
            ("none", "shaker", "soft"),
            ("sine_sub", "pluck", "soft_saw"),
            ("strum", "strum", "piano"),
            ("sine_flute", "pluck", "square_vib"),
            ("soft_pad",),
            {"drums": 0.7, "bass": 0.9, "chords": 1.0, "lead": 0.85, "pad": 0.35},
            {"drums": -3.0, "bass": -3.0, "chords": 0.0, "lead": -2.0, "pad": -9.0},
            (0.0, 0.15),
            (-18.0, -12.0),
            (-30.0, -22.0),
            (1.5, 2.2),
        ),
        Style(
            "hiphop",
            (78, 98),
            0.6,
            ("hiphop",),
            ("808", "sine_sub"),
            ("rhodes", "piano", "saw_chord"),
            ("bell", "sine_flute", "square_vib"),
            ("soft_pad",),
            {"drums": 1.0, "bass": 1.0, "chords": 0.85, "lead": 0.55, "pad": 0.4},
            {"drums": 0.0, "bass": -1.0, "chords": -6.0, "lead": -5.0, "pad": -10.0},
            (0.05, 0.2),
            (-24.0, -16.0),
            (-24.0, -16.0),
            (2.5, 3.5),
        ),
    )
}
STYLE_NAMES: tuple[str, ...] = tuple(STYLES)

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
_PROGRESSIONS = (
    (0, 5, 3, 4),
    (0, 4, 5, 3),
    (5, 3, 0, 4),
    (0, 3, 4, 3),
    (0, 5, 1, 4),
    (0, 6, 5, 4),
    (0, 3, 0, 4),
    (3, 4, 0, 0),
    (0, 2, 3, 4),
)


@dataclass
class Song:
    """Stems of one synthetic song.

    Attributes
    ----------
    stems : dict[str, np.ndarray [shape=(frames, 2), dtype=float32]]
        one entry per playing stem (``drums``, ``bass``, ``chords``, ``lead``, ``pad``).
    """

    stems: dict
    style: str
    tempo_bpm: float
    key_midi: int
    minor: bool
    sample_rate: int
    instruments: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return next(iter(self.stems.values())).shape[0]


@dataclass
class GoodMix:
    """A mix at the known good balance, with its parts.

    Attributes
    ----------
    dry : np.ndarray [shape=(frames, 2), dtype=float32]
        stems mixed at the good balance, *before* bus compression, level-matched
        to the good mix (the "under-compressed" version).
    compressed : np.ndarray [shape=(frames, 2), dtype=float32]
        ``dry`` through the chain's compressor at ``comp_ratio`` (default
        threshold, attack, release, knee), made up to the good level.
    reverb_wet, delay_wet : np.ndarray [shape=(frames, 2), dtype=float32]
        wet output of the chain's reverb / delay for a send of 1 fed with
        ``compressed`` (default room size, damping, delay time, feedback).
    reverb_send, delay_send, comp_ratio : float
        the known good amounts.
    makeup_db : float
        gain that brought the compressed mix back to the level of ``dry``.
    tone_target_db, side_mid_target_db : np.ndarray [26] or None, float or None
        the 1/3-octave balance (:data:`TONAL_BANDS_HZ`) and side/mid ratio the
        mix was brought to (None for an unreferenced mix); training holds
        every analysed window to them as well (:mod:`training.data`).
    """

    dry: np.ndarray
    compressed: np.ndarray
    reverb_wet: np.ndarray
    delay_wet: np.ndarray
    reverb_send: float
    delay_send: float
    comp_ratio: float
    makeup_db: float
    sample_rate: int
    style: str
    pans: dict = field(default_factory=dict)
    gains_db: dict = field(default_factory=dict)
    tone_target_db: np.ndarray | None = None
    side_mid_target_db: float | None = None

    def mix(
        self, *, reverb_send: float | None = None, delay_send: float | None = None, compressed: bool = True
    ) -> np.ndarray:
        """The mix with other send amounts (defaults: the good ones), float32 [frames, 2]."""
        rs = self.reverb_send if reverb_send is None else float(reverb_send)
        ds = self.delay_send if delay_send is None else float(delay_send)
        base = self.compressed if compressed else self.dry
        out = base.astype(np.float64)
        if rs:
            out += rs * self.reverb_wet
        if ds:
            out += ds * self.delay_wet
        return out.astype(np.float32)

    @property
    def good(self) -> np.ndarray:
        return self.mix()


# ---------------------------------------------------------------------------
# small helpers


def level_db(x: np.ndarray) -> float:
    """Mean-square level over all channels in dBFS (silence: -200)."""
    ms = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10.0 * math.log10(ms) if ms > 1e-20 else -200.0


def _midi_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _place(buf: np.ndarray, start: int, sig: np.ndarray) -> None:
    """Add ``sig`` into ``buf`` at ``start`` (either may be 1-D or 2-D), cut at the end."""
    if start >= buf.shape[0]:
        return
    if start < 0:
        sig = sig[-start:]
        start = 0
    n = min(sig.shape[0], buf.shape[0] - start)
    if n > 0:
        buf[start : start + n] += sig[:n]


def _env(
    n: int, sr: int, attack_s: float, decay_s: float, sustain: float, release_s: float, hold_s: float | None = None
) -> np.ndarray:
    """ADSR envelope of ``n`` samples; the release starts at ``hold_s`` (default: n - release)."""
    t = np.arange(n) / sr
    total = n / sr
    rel_start = total - release_s if hold_s is None else min(hold_s, total - release_s)
    rel_start = max(rel_start, 1e-4)
    a = min(attack_s, rel_start)
    e = np.interp(t, [0.0, a, a + decay_s], [0.0, 1.0, sustain])
    # exponential-ish tail
    tail = t >= rel_start
    if np.any(tail):
        lvl = float(np.interp(rel_start, [0.0, a, a + decay_s], [0.0, 1.0, sustain]))
        e[tail] = lvl * np.maximum(0.0, 1.0 - (t[tail] - rel_start) / max(release_s, 1e-4)) ** 2
    return e


def _phase(freq: float, n: int, sr: int, vib_hz: float = 0.0, vib_depth: float = 0.0, phi0: float = 0.0) -> np.ndarray:
    """Phase in cycles of a tone at ``freq`` with optional sinusoidal vibrato (closed form)."""
    t = np.arange(n) / sr
    p = freq * t + phi0
    if vib_depth > 0.0 and vib_hz > 0.0:
        p -= freq * vib_depth / (2.0 * np.pi * vib_hz) * (np.cos(2.0 * np.pi * vib_hz * t) - 1.0)
    return p


def _wave(kind: str, p: np.ndarray, width: float = 0.5) -> np.ndarray:
    frac = p - np.floor(p)
    if kind == "sine":
        return np.sin(2.0 * np.pi * p)
    if kind == "saw":
        return 2.0 * frac - 1.0
    if kind == "square":
        return np.where(frac < width, 1.0, -1.0)
    if kind == "triangle":
        return 4.0 * np.abs(frac - 0.5) - 1.0
    raise ValueError(kind)


def _lowpass(x: np.ndarray, cutoff_hz: float, sr: int, order: int = 2) -> np.ndarray:
    cutoff_hz = min(cutoff_hz, 0.45 * sr)
    sos = signal.butter(order, cutoff_hz, btype="low", fs=sr, output="sos")
    return signal.sosfilt(sos, x, axis=0)


def _highpass(x: np.ndarray, cutoff_hz: float, sr: int, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, min(cutoff_hz, 0.45 * sr), btype="high", fs=sr, output="sos")
    return signal.sosfilt(sos, x, axis=0)


def _bandpass(x: np.ndarray, lo: float, hi: float, sr: int) -> np.ndarray:
    sos = signal.butter(2, [lo, min(hi, 0.45 * sr)], btype="band", fs=sr, output="sos")
    return signal.sosfilt(sos, x, axis=0)


# ---------------------------------------------------------------------------
# drums


def _kick(rng, sr, kind):
    if kind == "808":
        dur, f0, f1, tp, ta = 0.9, rng.uniform(120, 160), rng.uniform(42, 55), 0.04, rng.uniform(0.35, 0.6)
    else:
        dur, f0, f1, tp, ta = (
            0.4,
            rng.uniform(130, 190),
            rng.uniform(45, 65),
            rng.uniform(0.02, 0.05),
            rng.uniform(0.12, 0.3),
        )
    n = int(dur * sr)
    t = np.arange(n) / sr
    phase = f1 * t + (f0 - f1) * tp * (1.0 - np.exp(-t / tp))
    body = np.sin(2.0 * np.pi * phase) * np.exp(-t / ta)
    click = _highpass(rng.standard_normal(n) * np.exp(-t / 0.003), 1500.0, sr) * rng.uniform(0.1, 0.4)
    x = body + click
    if kind == "808":
        x = np.tanh(1.5 * x) / np.tanh(1.5)
    return x


def _snare(rng, sr):
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    tone = np.sin(2 * np.pi * rng.uniform(170, 230) * t) * np.exp(-t / rng.uniform(0.04, 0.08))
    noise = _bandpass(rng.standard_normal(n), rng.uniform(800, 1500), rng.uniform(7000, 10000), sr)
    noise *= np.exp(-t / rng.uniform(0.08, 0.18))
    return 0.6 * tone + rng.uniform(0.8, 1.4) * noise


def _clap(rng, sr):
    n = int(0.3 * sr)
    t = np.arange(n) / sr
    env = np.exp(-t / 0.1)
    for off in (0.0, 0.011, 0.022):
        env += 0.8 * (t >= off) * np.exp(-np.maximum(t - off, 0) / 0.006)
    return _bandpass(rng.standard_normal(n), 900, 6000, sr) * env * 0.7


def _hat(rng, sr, open_: bool, cutoff=7000.0):
    n = int((0.35 if open_ else 0.08) * sr)
    t = np.arange(n) / sr
    tau = rng.uniform(0.12, 0.25) if open_ else rng.uniform(0.015, 0.04)
    return _highpass(rng.standard_normal(n), cutoff, sr, order=4) * np.exp(-t / tau)


def _crash(rng, sr):
    n = int(1.5 * sr)
    t = np.arange(n) / sr
    return _highpass(rng.standard_normal(n), 3500.0, sr, order=2) * np.exp(-t / 0.6) * 0.5


# 16-step patterns per bar (1 = hit); drawn per kit
_KITS = {
    "pop": dict(kick=[[0, 8], [0, 7, 8], [0, 10], [0, 6, 8]], snare=[[4, 12]], hat=8, open_hat=False),
    "four": dict(kick=[[0, 4, 8, 12]], snare=[[4, 12]], hat=8, open_hat=True),
    "rock": dict(kick=[[0, 8], [0, 2, 8, 10], [0, 6, 8]], snare=[[4, 12], [4, 12, 14]], hat=8, open_hat=False),
    "hiphop": dict(kick=[[0, 7, 10], [0, 3, 10], [0, 9, 11]], snare=[[8], [4, 12]], hat=16, open_hat=False),
    "soft": dict(kick=[[0], [0, 8]], snare=[[8], []], hat=4, open_hat=False),
    "shaker": dict(kick=[[]], snare=[[]], hat=8, open_hat=False, shaker=True),
}


def _drums(rng, sr, n, kit, step_s, bar_offset, swing):
    out = np.zeros((n, 2))
    if kit == "none":
        return out
    spec = _KITS[kit]
    kick = _kick(rng, sr, "808" if kit == "hiphop" and rng.random() < 0.6 else "acoustic")
    snare = _clap(rng, sr) if (kit in ("four", "hiphop") and rng.random() < 0.5) else _snare(rng, sr)
    if spec.get("shaker"):
        hat_c = _hat(rng, sr, False, cutoff=5000.0) * 0.6
    else:
        hat_c = _hat(rng, sr, False)
    hat_o = _hat(rng, sr, True)
    kick_steps = spec["kick"][rng.integers(len(spec["kick"]))]
    snare_steps = spec["snare"][rng.integers(len(spec["snare"]))]
    hat_every = 16 // spec["hat"]
    hat_pan = rng.uniform(-0.35, 0.35)
    hat_gains = np.array([math.cos((hat_pan + 1) * math.pi / 4), math.sin((hat_pan + 1) * math.pi / 4)]) * math.sqrt(2)
    k_gain, s_gain, h_gain = 1.0, rng.uniform(0.5, 0.9), rng.uniform(0.15, 0.35)
    total_steps = int(n / (step_s * sr)) + 32
    first = -int(bar_offset / step_s) - 16
    for step in range(first, first + total_steps):
        pos_in_bar = step % 16
        t = step * step_s + bar_offset + (swing * step_s if step % 2 else 0.0)
        start = int(round(t * sr))
        if start >= n or start + 20000 < 0:
            continue
        vel = rng.uniform(0.85, 1.0)
        mono = None
        if pos_in_bar in kick_steps or (rng.random() < 0.04 and pos_in_bar % 2 == 0 and kit != "shaker"):
            _place(out, start, (kick * k_gain * vel)[:, None])
        if pos_in_bar in snare_steps:
            _place(out, start, (snare * s_gain * vel)[:, None])
        elif kit in ("pop", "rock", "hiphop") and rng.random() < 0.05:  # ghost note
            _place(out, start, (snare * s_gain * 0.25 * vel)[:, None])
        if pos_in_bar % hat_every == 0:
            open_ = spec["open_hat"] and pos_in_bar % 4 == 2
            h = (hat_o if open_ else hat_c) * h_gain * (vel if pos_in_bar % 4 == 0 else 0.7 * vel)
            mono = h
        if mono is not None:
            _place(out, start, mono[:, None] * hat_gains)
    if kit == "rock" and rng.random() < 0.7:
        _place(
            out, int(round(bar_offset * sr)) if bar_offset > 0 else 0, _crash(rng, sr)[:, None] * np.array([0.8, 1.2])
        )
    return out


# ---------------------------------------------------------------------------
# tonal instruments: each renders one note (float64 [len] or [len, 2])


def _note(kind: str, rng, sr: int, freq: float, dur_s: float, vel: float, brightness: float) -> np.ndarray:
    n = max(int(dur_s * sr), 16)
    t = np.arange(n) / sr
    if kind == "sine_sub":
        p = _phase(freq, n, sr)
        x = np.sin(2 * np.pi * p) + 0.15 * np.sin(4 * np.pi * p)
        return x * _env(n, sr, 0.005, 0.1, 0.85, 0.04) * vel
    if kind == "808":
        p = _phase(freq, n, sr)
        x = np.tanh(1.8 * np.sin(2 * np.pi * p)) / np.tanh(1.8)
        return x * np.exp(-t / 0.7) * _env(n, sr, 0.003, 0.0, 1.0, 0.03) * vel
    if kind in ("saw_lp", "square_lp", "soft_saw", "pluck"):
        w = "square" if kind == "square_lp" else "saw"
        x = _wave(w, _phase(freq, n, sr, phi0=rng.random()), rng.uniform(0.3, 0.5))
        cutoff = freq * (3 + 10 * brightness) if kind != "soft_saw" else freq * 2.5
        x = _lowpass(x, cutoff, sr)
        if kind == "pluck":
            return x * np.exp(-t / rng.uniform(0.15, 0.4)) * _env(n, sr, 0.002, 0.0, 1.0, 0.02) * vel
        return x * _env(n, sr, 0.008, 0.15, 0.7, 0.05) * vel
    if kind in ("piano", "strum_note"):
        # additive partials, higher partials decay faster (a piano / guitar pluck)
        rate = 0.6 if kind == "piano" else 1.5
        step = np.exp(-t * (1.6 * rate))
        ek = np.exp(-t * (1.2 * rate))
        tilt = 1.6 - 0.6 * brightness
        x = np.zeros(n)
        for k in range(1, 7):
            if k * freq >= 0.45 * sr:
                break
            ek = ek * step
            x += (k**-tilt) * ek * np.sin((2.0 * np.pi * freq * k * (1.0 + 0.0004 * k * k)) * t + 6.28 * rng.random())
        return x * _env(n, sr, 0.002, 0.0, 1.0, 0.05) * vel
    if kind == "rhodes":
        index = 1.5 * brightness * np.exp(-t / 0.3)
        x = np.sin(2 * np.pi * freq * t + index * np.sin(2 * np.pi * freq * t))
        return x * np.exp(-t / 1.2) * _env(n, sr, 0.003, 0.0, 1.0, 0.06) * vel
    if kind == "organ":
        p = _phase(freq, n, sr, 5.5, 0.002)
        x = np.sin(2 * np.pi * p) + 0.5 * np.sin(4 * np.pi * p) + 0.25 * brightness * np.sin(6 * np.pi * p)
        return x * _env(n, sr, 0.01, 0.05, 0.9, 0.05) * vel
    if kind == "saw_chord":
        x = _wave("saw", _phase(freq, n, sr, phi0=rng.random())) + _wave(
            "saw", _phase(freq * 1.006, n, sr, phi0=rng.random())
        )
        x = _lowpass(x, 1200 + 3000 * brightness, sr)
        return 0.6 * x * _env(n, sr, 0.01, 0.2, 0.6, 0.08) * vel
    if kind in ("guitar_dist", "guitar_lead"):
        x = _wave("saw", _phase(freq, n, sr, 5.0 if kind == "guitar_lead" else 0.0, 0.004, rng.random()))
        x = _lowpass(np.tanh(4.0 * x), 2500 + 2500 * brightness, sr)
        return 0.6 * x * _env(n, sr, 0.005, 0.1, 0.8, 0.04) * vel
    if kind == "square_vib":
        x = _wave("square", _phase(freq, n, sr, 5.5, 0.004 * rng.random(), rng.random()), 0.5)
        x = _lowpass(x, freq * (4 + 8 * brightness), sr)
        return 0.5 * x * _env(n, sr, 0.01, 0.1, 0.75, 0.05) * vel
    if kind == "sine_flute":
        p = _phase(freq, n, sr, 5.0, 0.003)
        x = np.sin(2 * np.pi * p) + 0.1 * np.sin(4 * np.pi * p)
        x += 0.04 * _bandpass(rng.standard_normal(n), freq, min(freq * 4, 0.4 * sr), sr)
        return x * _env(n, sr, 0.05, 0.1, 0.85, 0.08) * vel
    if kind == "bell":
        index = 2.5 * np.exp(-t / 0.4)
        x = np.sin(2 * np.pi * freq * t + index * np.sin(2 * np.pi * 3.5 * freq * t))
        return 0.6 * x * np.exp(-t / 0.8) * _env(n, sr, 0.002, 0.0, 1.0, 0.05) * vel
    if kind == "arp":
        x = _lowpass(_wave("saw", _phase(freq, n, sr, phi0=rng.random())), 1500 + 4000 * brightness, sr)
        return 0.6 * x * np.exp(-t / 0.15) * _env(n, sr, 0.002, 0.0, 1.0, 0.02) * vel
    raise ValueError(kind)


def _pad_chord(kind, rng, sr, freqs, dur_s, brightness):
    """A wide pad chord: different detunes left and right decorrelate the channels."""
    n = int(dur_s * sr)
    out = np.zeros((n, 2))
    t = np.arange(n) / sr
    vib_hz = rng.uniform(0.1, 0.4)
    vib = (np.cos(2.0 * np.pi * vib_hz * t) - 1.0) * (-0.002 / (2.0 * np.pi * vib_hz))
    voices = 2
    spread = 0.012 if kind == "supersaw" else 0.006
    for f in freqs:
        for ch in range(2):
            for _voice in range(voices):
                fd = f * (1.0 + rng.uniform(-spread, spread))
                p = fd * (t + vib) + rng.random()
                if kind == "soft_pad":
                    out[:, ch] += np.sin(2.0 * np.pi * p)
                else:
                    out[:, ch] += 2.0 * (p - np.floor(p)) - 1.0
    cutoff = (600 + 1800 * brightness) if kind != "soft_pad" else 4000.0
    if kind != "soft_pad":
        out = _lowpass(out, cutoff, sr)
    env = _env(n, sr, rng.uniform(0.2, 0.8), 0.3, 0.9, 0.4)
    return out * env[:, None] / (voices * len(freqs)) * 2.0


# ---------------------------------------------------------------------------
# the song


def synth_song(
    rng: np.random.Generator, *, style: str | None = None, seconds: float = 8.0, sample_rate: int = SYNTH_RATE
) -> Song:
    """Synthesise one song segment.

    Parameters
    ----------
    rng : np.random.Generator
        the only source of randomness.
    style : str, optional
        one of :data:`STYLE_NAMES` (drawn from ``rng`` when omitted).
    seconds : float
        segment length.
    sample_rate : int
        Hz (default :data:`SYNTH_RATE`).

    Returns
    -------
    Song with float32 stereo stems of ``round(seconds * sample_rate)`` frames.
    """
    if style is None:
        style = STYLE_NAMES[int(rng.integers(len(STYLE_NAMES)))]
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; styles are {', '.join(STYLE_NAMES)}")
    st = STYLES[style]
    sr = int(sample_rate)
    n = int(round(seconds * sr))
    tempo = float(rng.uniform(*st.tempo_bpm))
    beat = 60.0 / tempo
    bar = 4 * beat
    step = beat / 4
    minor = bool(rng.random() < st.minor_prob)
    scale = _MINOR if minor else _MAJOR
    key = int(rng.integers(36, 48))  # bass register root, C2..B2
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    chord_bars = 1 if rng.random() < 0.7 else 2
    bar_offset = -float(rng.uniform(0, bar))  # the segment starts somewhere inside a bar
    swing = float(rng.uniform(*st.swing))
    brightness = {s: float(rng.uniform(0.2, 1.0)) for s in STEM_NAMES}
    instruments = {
        "drums": st.drums[int(rng.integers(len(st.drums)))],
        "bass": st.bass[int(rng.integers(len(st.bass)))],
        "chords": st.chords[int(rng.integers(len(st.chords)))],
        "lead": st.lead[int(rng.integers(len(st.lead)))],
        "pad": st.pad[int(rng.integers(len(st.pad)))],
    }
    playing = {s: bool(rng.random() < st.presence[s]) for s in STEM_NAMES}
    if instruments["drums"] == "none":
        playing["drums"] = False
    if not (playing["chords"] or playing["pad"]):
        playing["chords" if rng.random() < 0.5 else "pad"] = True

    n_chords = int(math.ceil((seconds - bar_offset) / (chord_bars * bar))) + 1

    def degree_midi(deg, octave_base):
        return octave_base + scale[deg % 7] + 12 * (deg // 7)

    chords = []  # (start_s, dur_s, [midi notes above key+12], root midi)
    for i in range(n_chords):
        deg = prog[i % len(prog)]
        notes = [degree_midi(deg + k, key + 12) for k in (0, 2, 4)]
        if rng.random() < 0.3:
            notes.append(degree_midi(deg + 6, key + 12))
        chords.append((bar_offset + i * chord_bars * bar, chord_bars * bar, notes, degree_midi(deg, key)))

    stems: dict[str, np.ndarray] = {}
    if playing["drums"]:
        stems["drums"] = _drums(rng, sr, n, instruments["drums"], step, bar_offset, swing)

    if playing["bass"]:
        b = np.zeros(n)
        kind = instruments["bass"]
        per_beat = {"808": 0.5, "sine_sub": 1, "soft_saw": 1}.get(kind, 2 if rng.random() < 0.6 else 1)
        for c0, cd, _, root in chords:
            units = max(1, int(round(cd / beat * per_beat)))
            u = cd / units
            for j in range(units):
                if rng.random() < 0.1:
                    continue
                m = root + (7 if rng.random() < 0.12 else 0) + (12 if rng.random() < 0.08 else 0)
                start = c0 + j * u
                if start + u < 0 or start > seconds:
                    continue
                note = _note(kind, rng, sr, float(_midi_hz(m)), u * 0.95, rng.uniform(0.8, 1.0), brightness["bass"])
                _place(b, int(round(start * sr)), note)
        stems["bass"] = np.repeat(b[:, None], 2, axis=1)

    if playing["chords"]:
        kind = instruments["chords"]
        c = np.zeros((n, 2))
        doubled = kind in ("guitar_dist", "strum") and rng.random() < 0.7
        rhythm = {
            "strum": [0.5, 1.0],
            "piano": [1.0, 2.0, 4.0],
            "rhodes": [1.0, 2.0, 4.0],
            "organ": [4.0],
            "saw_chord": [0.5, 1.0, 4.0],
            "guitar_dist": [0.5, 1.0, 4.0],
        }[kind]
        hit_beats = rhythm[int(rng.integers(len(rhythm)))]
        cache: dict = {}
        for c0, cd, notes, _ in chords:
            hits = max(1, int(round(cd / (hit_beats * beat))))
            hd = cd / hits
            for j in range(hits):
                start = c0 + j * hd
                if start + hd < 0 or start > seconds:
                    continue
                for side in (0, 1) if doubled else (None,):
                    for q, m in enumerate(notes):
                        nk = "strum_note" if kind == "strum" else kind
                        delay = q * rng.uniform(0.008, 0.02) if kind == "strum" else 0.0
                        key_ = (nk, m, int(hd * 1000), side == 1)
                        if key_ not in cache:  # repeated hits of one chord reuse the rendered note
                            f = float(_midi_hz(m + (12 if kind in ("strum", "guitar_dist") else 0)))
                            cache[key_] = _note(
                                nk, rng, sr, f * (1 + rng.uniform(-0.002, 0.002)), hd * 0.98, 1.0, brightness["chords"]
                            ) / len(notes)
                        note = cache[key_] * rng.uniform(0.6, 0.9)
                        s0 = int(round((start + delay + (rng.uniform(0, 0.012) if side is not None else 0.0)) * sr))
                        if side is None:
                            _place(c, s0, note[:, None] * np.ones(2))
                        else:
                            # double-tracked: two takes, one left-heavy, one right-heavy
                            g = np.array([1.0, 0.25]) if side == 0 else np.array([0.25, 1.0])
                            _place(c, s0, note[:, None] * g)
        stems["chords"] = c

    if playing["lead"]:
        kind = instruments["lead"]
        lead = np.zeros(n)
        deg = int(rng.integers(0, 7))
        t = bar_offset + bar * (1 if rng.random() < 0.5 else 0)
        octave = key + 24
        density = rng.uniform(0.5, 0.9)
        while t < seconds:
            dur = beat * float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0] if kind != "arp" else [0.25, 0.5]))
            if rng.random() < density and t + dur > 0:
                deg = int(np.clip(deg + rng.integers(-2, 3), -3, 10))
                m = degree_midi(deg, octave)
                note = _note(kind, rng, sr, float(_midi_hz(m)), dur * 0.95, rng.uniform(0.7, 1.0), brightness["lead"])
                _place(lead, int(round(t * sr)), note)
            t += dur
        stems["lead"] = np.repeat(lead[:, None], 2, axis=1)

    if playing["pad"]:
        kind = instruments["pad"]
        pad = np.zeros((n, 2))
        for c0, cd, notes, _ in chords:
            if c0 + cd < 0 or c0 > seconds:
                continue
            chord = _pad_chord(kind, rng, sr, _midi_hz(np.array(notes[:3])), cd + 0.3, brightness["pad"])
            _place(pad, int(round(c0 * sr)), chord)
        stems["pad"] = pad

    # dynamics: a gentle swell or fade across the segment, shared by all stems
    swell_db = np.linspace(rng.uniform(-3, 0), rng.uniform(-3, 0), n)
    swell = 10.0 ** (swell_db / 20.0)
    out = {}
    for name, x in stems.items():
        peak = float(np.max(np.abs(x))) or 1.0
        out[name] = (x * (swell[:, None] / peak)).astype(np.float32)
    return Song(
        stems=out,
        style=style,
        tempo_bpm=tempo,
        key_midi=key,
        minor=minor,
        sample_rate=sr,
        instruments={k: v for k, v in instruments.items() if k in out},
    )


# ---------------------------------------------------------------------------
# the good mix


_CHAIN_CACHE: dict = {}


def _chain(stages: tuple[str, ...], sample_rate: int) -> MixChain:
    key = (stages, int(sample_rate))
    ch = _CHAIN_CACHE.get(key)
    if ch is None:
        ch = MixChain(stages)
        ch.prepare(ProcessSpec(float(sample_rate), max_block_size=1 << 16, num_channels=2))
        _CHAIN_CACHE[key] = ch
    return ch


def apply_chain(x: np.ndarray, sample_rate: int, params: dict, *, stages: tuple[str, ...]) -> np.ndarray:
    """Run ``x`` [frames, 2] through a :class:`MixChain` of ``stages`` with ``params`` settled.

    Parameters not named keep their defaults.  The chain is reset after the
    parameters are set, so they start at their targets (no 50 ms glide); its
    latency (none without the limiter) is removed, so the output lines up
    with the input.  Returns float32 [frames, 2].
    """
    ch = _chain(tuple(stages), sample_rate)
    ch.targets[:] = _defaults()
    ch.set_params(params)
    ch.reset()
    lat = ch.latency_samples
    src = np.ascontiguousarray(x, dtype=np.float32)
    if lat:
        src = np.concatenate([src, np.zeros((lat, src.shape[1]), np.float32)])
    out = np.empty_like(src)
    block = 1 << 16
    for s in range(0, src.shape[0], block):
        ch.process(src[s : s + block], out[s : s + block])
    return out[lat:] if lat else out


def _defaults():
    from mixpilot.dsp.params import default_vector

    return default_vector()


# tonal and stereo reference of a good mix

TONAL_BANDS_HZ = 1000.0 * 10.0 ** (np.arange(-15, 11) / 10.0)
"""1/3-octave centres (IEC 61260-1 base ten, nominal 31.5 Hz .. 10 kHz) where
:func:`mix_good` measures and matches the long-term spectrum (the synthesised
stems end at 11 kHz)."""

TONAL_PLATEAU_HZ = (50.0, 150.0)
TONAL_SLOPE_DB_PER_OCT = -4.0
TONAL_LOW_ROLLOFF_DB_PER_OCT = 6.0
TONAL_RESIDUAL = {"tilt_db_per_oct": 0.4, "region_db": 1.0}
SIDE_MID_TARGET_DB = (-13.5, -10.5)
UNREFERENCED = {"tilt_db_per_oct": 1.5, "region_db": 3.0}
"""Colour of the *unreferenced* good mixes (``mix_good(referenced=False)``):
the stems' own balance (mid-heavy, bass-light next to the reference) tilted
by up to +-1.5 dB/octave with 3 dB regional offsets, and their natural width.
They stand for material unlike the reference -- a solo instrument, speech, a
differently voiced genre -- that is nevertheless as it should be; a model that
has seen them learns not to pull everything onto the reference."""
TONAL_MAX_CORRECTION_DB = 24.0
TONAL_SMOOTHING_BANDS = 1.5
EQUALISE_PAD_S = 0.5
_TONAL_REGIONS_HZ = (80.0, 1000.0, 4500.0, 9000.0)


def reference_curve_db(freq_hz) -> np.ndarray:
    """The good mixes' long-term 1/3-octave band levels (dB, arbitrary offset).

    A design choice, not a measurement: flat (equal power per 1/3 octave, as
    pink noise) over :data:`TONAL_PLATEAU_HZ`, falling
    :data:`TONAL_SLOPE_DB_PER_OCT` (-4 dB per octave, i.e. 1 dB/oct steeper
    than pink) above it and :data:`TONAL_LOW_ROLLOFF_DB_PER_OCT` below it --
    the bass-weighted, falling balance of produced popular music, rather than
    the mid-heavy balance the synthesised stems happen to have.
    """
    f = np.asarray(freq_hz, dtype=np.float64)
    lo, hi = TONAL_PLATEAU_HZ
    out = np.zeros_like(f)
    out = np.where(f > hi, TONAL_SLOPE_DB_PER_OCT * np.log2(np.maximum(f, 1e-9) / hi), out)
    out = np.where(f < lo, -TONAL_LOW_ROLLOFF_DB_PER_OCT * np.log2(lo / np.maximum(f, 1e-9)), out)
    return out


def third_octave_levels_db(x: np.ndarray, sample_rate: int, centres_hz: np.ndarray = TONAL_BANDS_HZ) -> np.ndarray:
    """Long-term power of ``x`` [frames, channels] in 1/3-octave bands (dB).

    Welch (periodic Hann, 8192-point segments, 50 % overlap), power averaged
    over the channels, summed over the FFT bins inside ``fc * 10**(+-1/20)``.
    """
    nper = min(8192, x.shape[0])
    f, p = signal.welch(
        np.asarray(x, np.float64),
        fs=sample_rate,
        window="hann",
        nperseg=nper,
        noverlap=nper // 2,
        axis=0,
        scaling="spectrum",
    )
    p = p.mean(axis=1)
    out = np.empty(len(centres_hz))
    for i, fc in enumerate(centres_hz):
        m = (f >= fc * 10 ** (-1 / 20)) & (f < fc * 10 ** (1 / 20))
        out[i] = 10.0 * np.log10(max(float(p[m].sum()), 1e-30))
    return out


def _tonal_residual_db(
    rng: np.random.Generator,
    centres_hz: np.ndarray,
    *,
    tilt_db_per_oct: float = TONAL_RESIDUAL["tilt_db_per_oct"],
    region_db: float = TONAL_RESIDUAL["region_db"],
) -> np.ndarray:
    """A good mix's own taste around the reference: a tilt and four smooth regional bumps."""
    octs = np.log2(centres_hz / 1000.0)
    r = rng.uniform(-1.0, 1.0) * tilt_db_per_oct * octs
    for fc in _TONAL_REGIONS_HZ:
        a = rng.normal(0.0, region_db)
        r = r + a * np.exp(-0.5 * (np.log2(centres_hz / fc) / 0.7) ** 2)
    return r


def smoothed_levels_db(levels_db: np.ndarray, width_bands: float = TONAL_SMOOTHING_BANDS) -> np.ndarray:
    """1/3-octave band levels smoothed in power with a Gaussian over band index
    (standard deviation ``width_bands`` bands): the broad balance an equaliser
    shelf or bell acts on, without single notes' peaks."""
    k = np.arange(len(levels_db))
    w = np.exp(-0.5 * ((k[:, None] - k[None, :]) / width_bands) ** 2)
    p = 10.0 ** (np.asarray(levels_db, np.float64) / 10.0)
    return 10.0 * np.log10(np.maximum(w @ p / w.sum(axis=1), 1e-30))


def equalise(
    x: np.ndarray, sample_rate: int, correction_db: np.ndarray, centres_hz: np.ndarray = TONAL_BANDS_HZ
) -> np.ndarray:
    """Apply a per-band gain ``correction_db`` to ``x`` [frames, channels] as a zero-phase FFT gain.

    The gain is interpolated over log frequency between the band centres and
    fades to 0 dB one octave beyond the outer bands; one FFT of the signal zero-padded by
    :data:`EQUALISE_PAD_S` (the correction is smooth over 1/3-octave bands, so
    its impulse response dies out within ~0.15 s even at 31.5 Hz).  Returns float64.
    """
    from scipy import fft as sfft

    n = x.shape[0]
    pad = int(EQUALISE_PAD_S * sample_rate)
    nfft = sfft.next_fast_len(n + 2 * pad, real=True)
    spec = sfft.rfft(np.asarray(x, np.float64), n=nfft, axis=0)
    logf = np.log2(np.maximum(np.fft.rfftfreq(nfft, 1.0 / sample_rate), 1.0))
    lc = np.log2(centres_hz)
    # beyond the outer bands the correction fades to 0 dB over one octave: no boost of sub-sonic
    # rumble or of the empty top (which the features would not see but a level meter would)
    xs = np.concatenate([[lc[0] - 1.0], lc, [lc[-1] + 1.0]])
    ys = np.concatenate([[0.0], correction_db, [0.0]])
    g = 10.0 ** (np.interp(logf, xs, ys) / 20.0)
    return sfft.irfft(spec * g[:, None], n=nfft, axis=0)[:n]


def tone_correction(
    x: np.ndarray,
    sample_rate: int,
    target_db: np.ndarray,
    centres_hz: np.ndarray = TONAL_BANDS_HZ,
    *,
    iterations: int = 3,
    measure_from: int = 0,
) -> np.ndarray:
    """The per-band correction (dB) that brings ``x`` [frames, 2]'s broad balance onto ``target_db``.

    Each pass measures the 1/3-octave levels of ``x[measure_from:]`` after the
    correction so far (:func:`third_octave_levels_db`), smooths them
    (:func:`smoothed_levels_db`, half an octave) and adds ``target - measured``
    (both mean-removed over the bands that have content; bands more than 70 dB
    under the loudest are left alone), limited to
    +-:data:`TONAL_MAX_CORRECTION_DB` per band.
    """
    tgt = smoothed_levels_db(target_db)
    total = np.zeros(len(centres_hz))
    y = np.asarray(x, np.float64)
    for _ in range(iterations):
        lv = third_octave_levels_db(y[measure_from:], sample_rate, centres_hz)
        live = lv >= lv.max() - 70.0
        d = tgt - smoothed_levels_db(lv)
        d = np.where(live, d - d[live].mean(), 0.0)
        total = np.clip(total + d, -TONAL_MAX_CORRECTION_DB, TONAL_MAX_CORRECTION_DB)
        y = equalise(x, sample_rate, total, centres_hz)
    return total


def match_tone(
    x: np.ndarray,
    sample_rate: int,
    target_db: np.ndarray,
    centres_hz: np.ndarray = TONAL_BANDS_HZ,
    *,
    iterations: int = 3,
) -> tuple[np.ndarray, np.ndarray]:
    """Equalise ``x`` [frames, 2] so its broad long-term balance follows ``target_db``
    (:func:`tone_correction` then :func:`equalise`).  Returns (float64 audio, the correction in dB per band)."""
    corr = tone_correction(x, sample_rate, target_db, centres_hz, iterations=iterations)
    return equalise(x, sample_rate, corr, centres_hz), corr


def side_scale(x: np.ndarray, side_mid_db: float) -> float:
    """The factor on the side signal of ``x`` [frames, 2] that makes 10 log10(S^2 / M^2) ``side_mid_db``.

    1 if either is silent.
    """
    m = 0.5 * (x[:, 0] + x[:, 1])
    s = 0.5 * (x[:, 0] - x[:, 1])
    es, em = float(np.sum(np.square(s, dtype=np.float64))), float(np.sum(np.square(m, dtype=np.float64)))
    if es <= 1e-20 or em <= 1e-20:
        return 1.0
    return math.sqrt(10.0 ** (side_mid_db / 10.0) * em / es)


def scale_side(x: np.ndarray, k: float) -> np.ndarray:
    """``x`` [frames, 2] with its side signal times ``k`` (the mid unchanged)."""
    m = 0.5 * (x[:, 0] + x[:, 1])
    s = 0.5 * (x[:, 0] - x[:, 1]) * k
    return np.stack([m + s, m - s], axis=1)


def set_side_mid(x: np.ndarray, side_mid_db: float) -> np.ndarray:
    """Scale the side signal of ``x`` [frames, 2] so that 10 log10(S^2 / M^2) is ``side_mid_db``."""
    k = side_scale(x, side_mid_db)
    return x if k == 1.0 else scale_side(x, k)


def mix_good(
    song: Song, rng: np.random.Generator | None = None, *, chain_rate: int | None = SAMPLE_RATE, referenced: bool = True
) -> GoodMix:
    """Mix ``song`` at its style's good balance.

    Stem gains are the style's (``Style.gains_db``) plus up to +-1 dB of taste;
    stems get a gentle pan (drums centred, bass and lead within +-0.1, chords
    within +-0.4; pads and double-tracked chords keep their own width).  The
    sum is resampled (soxr 'HQ') to ``chain_rate`` when that differs from the
    song's rate, equalised (:func:`match_tone`) to the reference tonal balance
    (:func:`reference_curve_db`) plus this mix's own taste (a random tilt of up
    to +-0.4 dB/octave and four smooth regional offsets of 1 dB standard
    deviation), its side/mid ratio set within :data:`SIDE_MID_TARGET_DB`
    (``referenced=False``: no reference, see :data:`UNREFERENCED`),
    brought to :data:`REFERENCE_LEVEL_DB`, compressed with the
    chain's compressor at the style's ratio (default threshold -18 dB, attack,
    release and knee, i.e. what the AI's ``comp_ratio`` does) and made up to
    the reference level.  Reverb and delay wet signals are rendered with the
    chain's sends at 1; the known good send is the one that puts the wet
    signal at the style's wet-to-dry level (``Style.reverb_wet_db`` /
    ``delay_wet_db``), capped at the AI's maximum send.  ``rng`` defaults to
    one seeded from the song.
    """
    from mixpilot.dsp.params import PARAM_INDEX, PARAMS

    if rng is None:
        rng = np.random.default_rng([int(song.tempo_bpm * 1000), song.key_midi, STYLE_NAMES.index(song.style)])
    st = STYLES[song.style]
    pans = {
        "drums": 0.0,
        "bass": rng.uniform(-0.05, 0.05),
        "lead": rng.uniform(-0.1, 0.1),
        "chords": rng.uniform(-0.4, 0.4),
        "pad": rng.uniform(-0.1, 0.1),
    }
    gains = {}
    total = np.zeros((song.frames, 2))
    for name, x in song.stems.items():
        g_db = st.gains_db[name] + rng.uniform(-1.0, 1.0)
        gains[name] = g_db
        theta = (pans[name] + 1.0) * math.pi / 4.0
        lr = np.array([math.cos(theta), math.sin(theta)]) * math.sqrt(2.0) * 10.0 ** (g_db / 20.0)
        total += x * lr
    sr = song.sample_rate
    if chain_rate is not None and int(chain_rate) != sr:
        import soxr

        total = soxr.resample(total, sr, int(chain_rate), quality="HQ")
        sr = int(chain_rate)
    target, sm_target = None, None
    if referenced:
        # tone and width: the reference balance plus this mix's own taste (see reference_curve_db)
        target = reference_curve_db(TONAL_BANDS_HZ) + _tonal_residual_db(rng, TONAL_BANDS_HZ)
        total, _ = match_tone(total, sr, target)
        sm_target = float(rng.uniform(*SIDE_MID_TARGET_DB))
        total = set_side_mid(total, sm_target)
    else:
        # material of another kind: the stems' own balance, coloured further at random (see UNREFERENCED)
        own = third_octave_levels_db(total, sr)
        total, _ = match_tone(total, sr, own + _tonal_residual_db(rng, TONAL_BANDS_HZ, **UNREFERENCED), iterations=1)
    total *= 10.0 ** ((REFERENCE_LEVEL_DB - level_db(total)) / 20.0)
    dry = total.astype(np.float32)

    ratio = float(rng.uniform(*st.comp_ratio))
    comp = apply_chain(dry, sr, {"comp_ratio": ratio}, stages=("compressor",)).astype(np.float64)
    makeup_db = REFERENCE_LEVEL_DB - level_db(comp)
    comp *= 10.0 ** (makeup_db / 20.0)
    comp32 = comp.astype(np.float32)
    rv = apply_chain(comp32, sr, {"reverb_send": 1.0}, stages=("reverb",)).astype(np.float64) - comp
    dl = apply_chain(comp32, sr, {"delay_send": 1.0}, stages=("delay",)).astype(np.float64) - comp
    settled = slice(sr, None)  # the sends' level once the tails have built up
    base_db = level_db(comp[settled])
    rs_max = PARAMS[PARAM_INDEX["reverb_send"]].ai_maximum
    ds_max = PARAMS[PARAM_INDEX["delay_send"]].ai_maximum
    rs = min(rs_max, 10.0 ** ((rng.uniform(*st.reverb_wet_db) - (level_db(rv[settled]) - base_db)) / 20.0))
    ds = min(ds_max, 10.0 ** ((rng.uniform(*st.delay_wet_db) - (level_db(dl[settled]) - base_db)) / 20.0))
    # the good mix (compressed + sends) sits at the reference level; every part is scaled alike
    k = 10.0 ** ((REFERENCE_LEVEL_DB - level_db(comp + rs * rv + ds * dl)) / 20.0)
    return GoodMix(
        dry=(dry * k).astype(np.float32),
        compressed=(comp * k).astype(np.float32),
        reverb_wet=(rv * k).astype(np.float32),
        delay_wet=(dl * k).astype(np.float32),
        reverb_send=float(rs),
        delay_send=float(ds),
        comp_ratio=ratio,
        makeup_db=float(makeup_db),
        sample_rate=sr,
        style=song.style,
        pans=pans,
        gains_db=gains,
        tone_target_db=target,
        side_mid_target_db=sm_target,
    )
