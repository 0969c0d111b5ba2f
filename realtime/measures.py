"""Descriptors of a rendered buffer that ``compare`` and ``analyze --plot`` store and draw.

All take ``x`` as ``[frames, channels]`` float (mono or stereo) and return
plain Python numbers/lists, ready for JSON:

- :func:`third_octave_spectrum`: long-term average spectrum of the mid signal
  (Welch, Hann, ~0.7 s segments, 50 % overlap) in 1/3-octave bands (IEC 61260
  base-2 centres ``1000 * 2**(k/3)``, 25 Hz .. 16 kHz, those whose upper edge
  lies below Nyquist), in dB relative to the mean over the bands;
- :func:`tonal_distance`: per-band difference of two such spectra after
  removing their mean difference (a pure gain is distance 0: "tonal error
  after loudness match"), and its RMS;
- :func:`short_term_series`: EBU short-term loudness (3 s window, Tech 3341)
  every ``hop_s`` seconds, from the project's BS.1770-4 meter;
- :func:`envelope`: peak and RMS over equal time bins (a waveform overview);
- :func:`side_mid_db`: stereo width as side/mid energy ratio (dB), ``None`` for mono.
"""

from __future__ import annotations

import math

import numpy as np

from mixpilot.dsp.meter import LoudnessMeter
from mixpilot.dsp.spec import ProcessSpec

__all__ = [
    "third_octave_centres",
    "third_octave_spectrum",
    "tonal_distance",
    "short_term_series",
    "envelope",
    "side_mid_db",
]

_THIRD_OCTAVE_K = range(-16, 13)  # 1000 * 2**(k/3): 24.8 Hz .. 16 kHz (nominal 25 .. 16k)
_BAND_HALF_WIDTH = 2.0 ** (1.0 / 6.0)  # band edges fc / 2^(1/6) .. fc * 2^(1/6)


def third_octave_centres(sample_rate: float) -> list[float]:
    """Exact base-2 1/3-octave centres (Hz) whose upper band edge lies below Nyquist."""
    out = []
    for k in _THIRD_OCTAVE_K:
        fc = 1000.0 * 2.0 ** (k / 3.0)
        if fc * _BAND_HALF_WIDTH < sample_rate / 2.0:
            out.append(fc)
    return out


def _mid(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).mean(axis=1)


def third_octave_spectrum(x: np.ndarray, sample_rate: float) -> tuple[list[float], list[float | None]]:
    """``(centres_hz, level_db)``: the mid signal's long-term 1/3-octave balance, dB re the band mean.

    Welch's method with a Hann window of ``2**ceil(log2(0.68 s))`` samples
    (32768 at 48 kHz: 1.5 Hz bins, so the 25 Hz band holds 4 of them), hop
    half of that; shorter input is zero-padded to one segment.  A band with
    no energy is ``None`` and does not count in the mean.
    """
    mono = _mid(x)
    nfft = 1 << int(math.ceil(math.log2(0.68 * sample_rate)))
    if mono.size < nfft:
        mono = np.pad(mono, (0, nfft - mono.size))
    hop = nfft // 2
    w = np.hanning(nfft)
    n_seg = 1 + (mono.size - nfft) // hop
    acc = np.zeros(nfft // 2 + 1)
    for i in range(0, n_seg, 64):  # 64 segments per FFT call bounds the memory
        idx = np.arange(i, min(i + 64, n_seg))[:, None] * hop + np.arange(nfft)[None, :]
        spec = np.fft.rfft(mono[idx] * w, axis=1)
        acc += (spec.real**2 + spec.imag**2).sum(axis=0)
    f = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
    centres = third_octave_centres(sample_rate)
    levels: list[float | None] = []
    for fc in centres:
        sel = (f >= fc / _BAND_HALF_WIDTH) & (f < fc * _BAND_HALF_WIDTH)
        p = float(acc[sel].sum())
        levels.append(10.0 * math.log10(p) if p > 0.0 else None)
    finite = [v for v in levels if v is not None]
    ref = float(np.mean(finite)) if finite else 0.0
    return centres, [None if v is None else v - ref for v in levels]


def tonal_distance(levels_db: list[float | None], reference_db: list[float | None]) -> tuple[list[float | None], float]:
    """``(per_band_db, rms_db)``: ``levels - reference`` with the mean difference removed.

    Bands where either side is ``None`` are ``None`` and left out of the
    mean and the RMS; ``rms_db`` is NaN when no band is left.
    """
    if len(levels_db) != len(reference_db):
        raise ValueError(f"{len(levels_db)} bands against {len(reference_db)}")
    diff = [None if a is None or b is None else a - b for a, b in zip(levels_db, reference_db)]
    finite = [d for d in diff if d is not None]
    if not finite:
        return diff, math.nan
    mean = float(np.mean(finite))
    per_band = [None if d is None else d - mean for d in diff]
    rms = float(np.sqrt(np.mean(np.square([d for d in per_band if d is not None]))))
    return per_band, rms


def short_term_series(x: np.ndarray, sample_rate: int, hop_s: float = 0.5) -> tuple[list[float], list[float | None]]:
    """``(t_s, short_term_lufs)``: EBU short-term loudness every ``hop_s`` (a multiple of 100 ms).

    Only times with a full 3 s window behind them (``t >= 3 s``) are listed;
    a gated/silent window reads ``None``.  For a buffer shorter than 3 s the
    list holds its end only (the window then counts the time before the
    start as silence, as the meter does).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, ch = x.shape
    meter = LoudnessMeter(ProcessSpec(sample_rate=sample_rate, max_block_size=max(1, n), num_channels=ch))
    hop = max(1, int(round(hop_s / 0.1))) * meter.step_samples
    ts: list[float] = []
    vals: list[float | None] = []
    for end in range(hop, n + 1, hop):
        meter.process(x[end - hop : end])
        t = end / sample_rate
        if t + 1e-9 >= 3.0:
            v = meter.short_term_lufs
            ts.append(t)
            vals.append(v if math.isfinite(v) else None)
    if not ts and n > 0:
        meter.process(x[(n // hop) * hop :])
        v = meter.short_term_lufs
        ts.append(n / sample_rate)
        vals.append(v if math.isfinite(v) else None)
    return ts, vals


def envelope(x: np.ndarray, bins: int = 600) -> tuple[list[float], list[float]]:
    """``(peak, rms)`` over ``bins`` equal slices of the buffer (fewer when it is shorter).

    ``peak`` is the largest absolute sample over all channels in the slice,
    ``rms`` the root mean square over all its samples (linear, full scale 1).
    """
    a = np.asarray(x, dtype=np.float64)
    n = a.shape[0]
    bins = max(1, min(bins, n))
    if n == 0:
        return [0.0], [0.0]
    edges = np.linspace(0, n, bins + 1).astype(np.int64)
    starts = edges[:-1]
    absmax = np.abs(a).max(axis=1)
    peak = np.maximum.reduceat(absmax, starts)
    sq = np.square(a).mean(axis=1)
    counts = np.diff(edges)
    rms = np.sqrt(np.add.reduceat(sq, starts) / counts)
    return [float(v) for v in peak], [float(v) for v in rms]


def side_mid_db(x: np.ndarray) -> float | None:
    """Side/mid energy ratio in dB (``-inf`` for dual mono); ``None`` for a mono buffer."""
    a = np.asarray(x, dtype=np.float64)
    if a.shape[1] != 2:
        return None
    mid = 0.5 * (a[:, 0] + a[:, 1])
    side = 0.5 * (a[:, 0] - a[:, 1])
    em, es = float(np.sum(mid**2)), float(np.sum(side**2))
    if em <= 0.0:
        return None
    return 10.0 * math.log10(es / em) if es > 0.0 else -math.inf
