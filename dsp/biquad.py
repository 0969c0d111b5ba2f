"""RBJ-cookbook biquads (low shelf, bell, high shelf, low-pass, high-pass) in transposed direct form II.

Coefficients follow Robert Bristow-Johnson, "Cookbook formulae for audio EQ
biquad filter coefficients" (shelf slope S = 1, i.e. Q = 1/sqrt(2) for the
shelves).  With S fixed, a -G shelf or bell is the exact inverse of the +G one
(numerator and denominator swap), so a +G/-G cascade is the identity.

Coefficient rows are ``[b0, b1, b2, a1, a2]`` normalised by ``a0``.  Centre
and corner frequencies are limited to 0.49 fs so every sample rate from 8 kHz
to 192 kHz gets a stable filter.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["LOW_SHELF", "BELL", "HIGH_SHELF", "LOW_PASS", "HIGH_PASS", "rbj_coefficients", "response"]

LOW_SHELF, BELL, HIGH_SHELF, LOW_PASS, HIGH_PASS = 0, 1, 2, 3, 4
_DENORMAL = 1e-30
_NYQUIST_FRACTION = 0.49


@njit(cache=True, nogil=True)
def _rbj_into(
    kind: int, freq_hz: float, gain_db: float, q: float, sample_rate: float, out: np.ndarray
) -> None:  # pragma: no cover
    """Write normalised cookbook coefficients [b0, b1, b2, a1, a2] into ``out``."""
    f = min(freq_hz, _NYQUIST_FRACTION * sample_rate)
    a = 10.0 ** (gain_db / 40.0)  # cookbook: A = 10^(dBgain/40)
    w0 = 2.0 * math.pi * f / sample_rate
    cw = math.cos(w0)
    sw = math.sin(w0)
    if kind == LOW_PASS or kind == HIGH_PASS:  # gain_db unused
        alpha = sw / (2.0 * q)
        if kind == LOW_PASS:
            b0 = (1.0 - cw) / 2.0
            b1 = 1.0 - cw
        else:
            b0 = (1.0 + cw) / 2.0
            b1 = -(1.0 + cw)
        b2 = b0
        a0 = 1.0 + alpha
        a1 = -2.0 * cw
        a2 = 1.0 - alpha
    elif kind == BELL:
        alpha = sw / (2.0 * q)
        b0 = 1.0 + alpha * a
        b1 = -2.0 * cw
        b2 = 1.0 - alpha * a
        a0 = 1.0 + alpha / a
        a1 = -2.0 * cw
        a2 = 1.0 - alpha / a
    else:
        # shelf slope S = 1: alpha = sin(w0)/2 * sqrt((A + 1/A)(1/S - 1) + 2)
        alpha = sw / 2.0 * math.sqrt(2.0)
        sa = 2.0 * math.sqrt(a) * alpha
        if kind == LOW_SHELF:
            b0 = a * ((a + 1.0) - (a - 1.0) * cw + sa)
            b1 = 2.0 * a * ((a - 1.0) - (a + 1.0) * cw)
            b2 = a * ((a + 1.0) - (a - 1.0) * cw - sa)
            a0 = (a + 1.0) + (a - 1.0) * cw + sa
            a1 = -2.0 * ((a - 1.0) + (a + 1.0) * cw)
            a2 = (a + 1.0) + (a - 1.0) * cw - sa
        else:
            b0 = a * ((a + 1.0) + (a - 1.0) * cw + sa)
            b1 = -2.0 * a * ((a - 1.0) + (a + 1.0) * cw)
            b2 = a * ((a + 1.0) + (a - 1.0) * cw - sa)
            a0 = (a + 1.0) - (a - 1.0) * cw + sa
            a1 = 2.0 * ((a - 1.0) - (a + 1.0) * cw)
            a2 = (a + 1.0) - (a - 1.0) * cw - sa
    out[0] = b0 / a0
    out[1] = b1 / a0
    out[2] = b2 / a0
    out[3] = a1 / a0
    out[4] = a2 / a0


@njit(cache=True, nogil=True, inline="always")
def _biquad_tick(c: np.ndarray, z: np.ndarray, x: float) -> float:  # pragma: no cover
    """One sample through TDF-II: ``c`` = [b0, b1, b2, a1, a2], ``z`` = [z1, z2] (updated).

    The states are not flushed here but at the chain's control ticks (:func:`_flush_states`).
    """
    y = c[0] * x + z[0]
    z[0] = c[1] * x - c[3] * y + z[1]
    z[1] = c[2] * x - c[4] * y
    return y


@njit(cache=True, nogil=True, inline="always")
def _flush_states(z: np.ndarray) -> None:  # pragma: no cover
    """Every state of ``z`` (C-contiguous, any shape) under 1e-30 in magnitude to exactly 0.

    The stages call it at every control tick (every ``CONTROL_SAMPLES`` samples) instead of
    flushing both states inside every biquad on every sample: those compares and selects were a fifth
    of a cascade's cost (issue 19; ten bands, stereo, one process, best of 9: 29.4 -> 23.5 ns per
    sample).  Between two ticks a state that was at least 1e-30 decays by at most its pole radius
    to the 31st power, nowhere near the float64 subnormals (2.2e-308); the chain flushes what it
    writes to the float32 output (so no float32 subnormal leaves it).
    """
    f = z.reshape(z.size)  # a view (C-contiguous): 30 ns for the tone stage's 40 states, np.ndindex took 108
    for i in range(f.shape[0]):
        if -_DENORMAL < f[i] < _DENORMAL:
            f[i] = 0.0


@njit(cache=True, nogil=True, inline="always")
def _cascade_tick(
    c: np.ndarray, z: np.ndarray, xl: float, xr: float, mix: float
) -> tuple[float, float]:  # pragma: no cover
    """Stereo sample through the biquads ``c`` [k, 5] (states ``z`` [k, 2, 2]), blended in by ``mix``."""
    yl = xl
    yr = xr
    for b in range(c.shape[0]):
        yl = _biquad_tick(c[b], z[b, 0], yl)
        yr = _biquad_tick(c[b], z[b, 1], yr)
    return xl + mix * (yl - xl), xr + mix * (yr - xr)


def rbj_coefficients(kind: int, freq_hz: float, gain_db: float, q: float, sample_rate: float) -> np.ndarray:
    """Normalised coefficients [b0, b1, b2, a1, a2] (float64) for one cookbook filter."""
    out = np.zeros(5)
    _rbj_into(kind, float(freq_hz), float(gain_db), float(q), float(sample_rate), out)
    return out


def response(coeffs: np.ndarray, freqs_hz: np.ndarray, sample_rate: float) -> np.ndarray:
    """Complex frequency response of the biquad ``coeffs`` [b0, b1, b2, a1, a2] at ``freqs_hz`` (closed form)."""
    c = np.asarray(coeffs, dtype=np.float64)
    z = np.exp(-2j * np.pi * np.asarray(freqs_hz, dtype=np.float64) / float(sample_rate))
    return (c[0] + c[1] * z + c[2] * z * z) / (1.0 + c[3] * z + c[4] * z * z)
