"""Descriptors of a rendered buffer that ``compare`` and ``analyze --plot`` store and draw.

All take ``x`` as ``[frames, channels]`` float (mono or stereo) and return
plain Python numbers/lists, ready for JSON:

- :func:`short_term_series`: EBU short-term loudness (3 s window, Tech 3341)
  every ``hop_s`` seconds, from the project's BS.1770-4 meter;
- :func:`envelope`: peak and RMS over equal time bins (a waveform overview).

The long-term 1/3-octave spectrum and the width come from
:func:`dsp.descriptors.compute_descriptors` (the descriptors profiles are made of).
"""

from __future__ import annotations

import math

import numpy as np

from mixpilot.dsp.meter import LoudnessMeter
from mixpilot.dsp.spec import ProcessSpec

__all__ = ["envelope", "short_term_series"]


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
