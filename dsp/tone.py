"""The tonal-match EQ: ten fixed octave bands that realise a target tonal difference.

Bands (``tone_31hz_db`` .. ``tone_16khz_db``, centres ``1000 * 2**k`` Hz,
k = -5..4): a low shelf for 31 Hz and a high shelf for 16 kHz (RBJ, slope
S = 1, corners half an octave inside, 44.2 Hz and 11.3 kHz, so the shelf's
full gain covers the extreme octave and what lies beyond it) and eight bells
(RBJ, Q = 0.7) at 63 Hz .. 8 kHz.  The shape was chosen on 30 random
octave-smooth targets (+-6 dB at every octave plus a tilt, 25 Hz - 20 kHz at
1/3 octave): least-squares fits left a median 0.2 dB and at most 0.49 dB RMS
at 44.1, 48 and 96 kHz; bells everywhere (0.26-0.50 / 0.71-1.09 dB), a
narrower Q (1.0: 0.41 / 0.68 dB) or a wider one (0.5: ill-conditioned fits)
did worse.  Neighbouring bands overlap, so a target is never the band gains
read off the curve: :func:`fit` solves for the gains with the interaction,
against the closed-form cascade response :func:`response_db` (the same
coefficients the kernel uses).

In the chain (after the four-band EQ, which stays: ``low_gain_db`` & co. keep
working) every gain glides like any dB parameter, coefficients follow at the
control rate, states are flushed below 1e-30, and the stage costs one test
per sample at neutral: a 0 dB shelf or bell is exactly the identity, so with
every gain at 0 dB and every state at zero the ten biquads are skipped
(bit-identical to running them).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import ArrayLike

from .biquad import BELL, HIGH_SHELF, LOW_SHELF, _cascade_tick, _flush_states, _rbj_into, rbj_coefficients
from .biquad import response as biquad_response
from .params import PARAM_INDEX, PARAMS
from .stage import Stage

__all__ = ["TONE", "TONE_PARAMS", "CENTRES_HZ", "response_db", "fit", "band_filters"]

CENTRES_HZ = tuple(1000.0 * 2.0**k for k in range(-5, 5))
TONE_PARAMS = (
    "tone_31hz_db",
    "tone_63hz_db",
    "tone_125hz_db",
    "tone_250hz_db",
    "tone_500hz_db",
    "tone_1khz_db",
    "tone_2khz_db",
    "tone_4khz_db",
    "tone_8khz_db",
    "tone_16khz_db",
)
N_BANDS = len(TONE_PARAMS)
BELL_Q = 0.7
_SQRT_HALF = math.sqrt(0.5)
_KINDS = np.array([LOW_SHELF] + [BELL] * (N_BANDS - 2) + [HIGH_SHELF], dtype=np.int64)
_FREQS = np.array([CENTRES_HZ[0] * math.sqrt(2.0), *CENTRES_HZ[1:-1], CENTRES_HZ[-1] / math.sqrt(2.0)])
_QS = np.array([_SQRT_HALF] + [BELL_Q] * (N_BANDS - 2) + [_SQRT_HALF])
_P = np.array([PARAM_INDEX[n] for n in TONE_PARAMS], dtype=np.int64)
P_FIRST = int(_P[0])
assert np.array_equal(_P, np.arange(P_FIRST, P_FIRST + N_BANDS)), "the tone rows are consecutive in the table"


def band_filters() -> list[tuple[int, float, float]]:
    """(kind, frequency in Hz, Q) of each band, lowest first (the shelves' Q stands for slope S = 1)."""
    return [(int(k), float(f), float(q)) for k, f, q in zip(_KINDS, _FREQS, _QS)]


# --- closed form and fit (numpy) ---------------------------------------------------------


def response_db(gains_db: ArrayLike, freqs_hz: ArrayLike, sample_rate: float) -> np.ndarray:
    """Magnitude response (dB) of the ten-band cascade with ``gains_db`` at ``freqs_hz`` (closed form).

    The bands off 0 dB in one Numba kernel, real-valued (:func:`_response_kernel`): the values of the
    band-by-band :func:`_response_db_bandwise` with :func:`dsp.biquad.response` to 1e-9 dB (tested; the
    complex form it replaced, issue 19, differs from it by up to ~2e-11 dB where numerator and denominator
    nearly cancel).
    """
    g = np.asarray(gains_db, dtype=np.float64)
    if g.shape != (N_BANDS,):
        raise ValueError(f"gains_db must have {N_BANDS} values, got shape {g.shape}")
    f = np.asarray(freqs_hz, dtype=np.float64)
    out = np.zeros(f.size)
    if g.any():
        w = (2.0 * np.pi / float(sample_rate)) * f.ravel()
        _response_kernel(g, np.cos(w), np.sin(w), float(sample_rate), out)
    return out.reshape(f.shape)


@njit(cache=True, nogil=True)
def _response_kernel(
    g: np.ndarray, cw: np.ndarray, sw: np.ndarray, sample_rate: float, out: np.ndarray
) -> None:  # pragma: no cover
    """``out[i]`` += ``10 log10 |H_k|^2`` at ``w_i`` (cosine ``cw``, sine ``sw``) of every band ``k`` off 0 dB,
    in band order; ``|H|^2`` written out in reals as :func:`_fit_kernel` does."""
    coef = np.empty((1, 5))
    band = np.empty(1, dtype=np.int64)
    gain = np.empty(1)
    for k in range(N_BANDS):
        if g[k] == 0.0:
            continue  # a 0 dB band is the identity
        band[0] = k
        gain[0] = g[k]
        _rbj_bands(band, gain, sample_rate, coef)
        b0 = coef[0, 0]
        b1 = coef[0, 1]
        b2 = coef[0, 2]
        a1 = coef[0, 3]
        a2 = coef[0, 4]
        for i in range(cw.shape[0]):
            c2 = cw[i] * cw[i] - sw[i] * sw[i]
            s2 = 2.0 * cw[i] * sw[i]
            nr = b0 + b1 * cw[i] + b2 * c2
            ni = b1 * sw[i] + b2 * s2
            dr = 1.0 + a1 * cw[i] + a2 * c2
            di = a1 * sw[i] + a2 * s2
            out[i] += 10.0 * math.log10((nr * nr + ni * ni) / (dr * dr + di * di))


def _response_db_bandwise(gains_db: ArrayLike, freqs_hz: ArrayLike, sample_rate: float) -> np.ndarray:
    """:func:`response_db` one band at a time with :func:`dsp.biquad.response` (the tests' reference)."""
    g = np.asarray(gains_db, dtype=np.float64)
    f = np.asarray(freqs_hz, dtype=np.float64)
    out = np.zeros(f.shape)
    for (kind, fc, q), gain in zip(band_filters(), g):
        if gain != 0.0:
            out += 20.0 * np.log10(
                np.abs(biquad_response(rbj_coefficients(kind, fc, gain, q, sample_rate), f, sample_rate))
            )
    return out


@njit(cache=True, nogil=True)
def _rbj_bands(bands: np.ndarray, gains: np.ndarray, sample_rate: float, out: np.ndarray) -> None:  # pragma: no cover
    """Coefficients of band ``bands[k]`` at ``gains[k]`` into ``out[k]``."""
    for k in range(gains.shape[0]):
        b = bands[k]
        _rbj_into(_KINDS[b], _FREQS[b], gains[k], _QS[b], sample_rate, out[k])


def _band_levels(bands: np.ndarray, gains: np.ndarray, z: np.ndarray, sample_rate: float) -> np.ndarray:
    """``log10 |H|`` of band ``bands[k]`` at ``gains[k]``, rows ``k``, at ``z = exp(-2j pi f / fs)``.

    The closed form of :func:`dsp.biquad.response`, term for term, for all rows at once.
    """
    c = np.empty((gains.shape[0], 5))
    _rbj_bands(bands if bands.dtype == np.int64 else bands.astype(np.int64), gains, float(sample_rate), c)
    num = c[:, 0:1] + c[:, 1:2] * z + c[:, 2:3] * z * z
    den = 1.0 + c[:, 3:4] * z + c[:, 4:5] * z * z
    return np.log10(np.abs(num / den))


def _jacobian(g: np.ndarray, f: np.ndarray, sample_rate: float, step_db: float = 1e-3) -> np.ndarray:
    """Central-difference Jacobian of :func:`response_db` (one band at a time; the reference of :func:`_fit_step`)."""
    j = np.empty((f.shape[0], N_BANDS))
    for k, (kind, fc, q) in enumerate(band_filters()):
        up = biquad_response(rbj_coefficients(kind, fc, g[k] + step_db, q, sample_rate), f, sample_rate)
        dn = biquad_response(rbj_coefficients(kind, fc, g[k] - step_db, q, sample_rate), f, sample_rate)
        j[:, k] = 20.0 * (np.log10(np.abs(up)) - np.log10(np.abs(dn))) / (2.0 * step_db)
    return j


_ALL3 = np.tile(np.arange(N_BANDS, dtype=np.int64), 3)  # each band at g, g + step and g - step


def _fit_step(g: np.ndarray, z: np.ndarray, sample_rate: float, step_db: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """:func:`response_db` and :func:`_jacobian` at ``g`` in one batch: ``z = exp(-2j pi f / fs)``.

    The thirty responses (each band at ``g``, ``g + step`` and ``g - step``) are evaluated as one
    array, with the closed form of :func:`dsp.biquad.response` term for term: the same values as
    the one-band-at-a-time functions (tested to 1e-9 dB; measured identical), a fit about 5x faster
    (4.7 -> 0.87 ms for the matcher's 29-band target at 48 kHz, issue 19).
    """
    gains = np.concatenate([g, g + step_db, g - step_db])
    level = _band_levels(_ALL3, gains, z, sample_rate)
    on = np.flatnonzero(g != 0.0)
    # the rows added in band order, as the former loop ``r += 20 * level[k]`` did (an axis-0 sum adds row
    # after row: the same values bit for bit, tested against that loop)
    r = (20.0 * level[on]).sum(axis=0) if on.size else np.zeros(z.shape[0])
    jac = (20.0 * (level[N_BANDS : 2 * N_BANDS] - level[2 * N_BANDS :]) / (2.0 * step_db)).T
    return r, jac


def fit(
    freqs_hz: ArrayLike,
    target_db: ArrayLike,
    sample_rate: float = 48000.0,
    *,
    weights: ArrayLike | None = None,
    bounds: tuple | None = None,
    iterations: int = 12,
    ridge: float = 1e-6,
) -> np.ndarray:
    """Band gains (dB, ``TONE_PARAMS`` order) whose cascade best realises ``target_db`` at ``freqs_hz``.

    Gauss-Newton on the closed-form cascade response (:func:`response_db`):
    the dB responses of the bands add exactly, but each band's shape depends
    on its own gain, so the linear least-squares start is refined by
    re-linearising around the current gains.  ``weights`` (per frequency,
    default equal) weight the squared errors; ``bounds`` (``(lo, hi)``,
    scalars or per band; default each row's hard range) clamp the gains after
    every step (a projected Gauss-Newton).  ``ridge`` (dB^2 per dB^2 of gain)
    adds ``ridge * |g|^2`` to the squared error: the default only keeps a band
    that no frequency reaches at 0 dB; a larger one (the matcher uses 0.05)
    keeps neighbouring overlapping bands from answering a jagged target with
    large opposite gains.  Frequencies at or above
    0.49 x ``sample_rate`` are ignored (the bands cannot reach them).
    """
    f = np.asarray(freqs_hz, dtype=np.float64).ravel()
    t = np.asarray(target_db, dtype=np.float64).ravel()
    if f.shape != t.shape or f.size == 0:
        raise ValueError("freqs_hz and target_db must be non-empty and of the same length")
    if not (np.isfinite(f).all() and np.isfinite(t).all()) or (f <= 0).any():
        raise ValueError("freqs_hz must be positive and target_db finite")
    w = np.ones_like(f) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != f.shape or (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("weights must be finite, >= 0 and one per frequency")
    keep = f < 0.49 * sample_rate
    if not keep.all():
        f, t, w = f[keep], t[keep], w[keep]
    if bounds is None:
        lo = np.array([PARAMS[PARAM_INDEX[n]].minimum for n in TONE_PARAMS])
        hi = np.array([PARAMS[PARAM_INDEX[n]].maximum for n in TONE_PARAMS])
    else:
        lo = np.asarray(bounds[0], dtype=np.float64)
        hi = np.asarray(bounds[1], dtype=np.float64)
        if lo.shape != (N_BANDS,) or hi.shape != (N_BANDS,):  # scalars (a band's own array is taken as it is)
            lo = np.broadcast_to(lo, (N_BANDS,))
            hi = np.broadcast_to(hi, (N_BANDS,))
    if not (math.isfinite(ridge) and ridge >= 0.0):
        raise ValueError("ridge must be finite and >= 0")
    ridge = max(float(ridge), 1e-6)  # at least: keeps a band that no frequency reaches at 0 dB
    lo = np.ascontiguousarray(lo, dtype=np.float64)
    hi = np.ascontiguousarray(hi, dtype=np.float64)
    g = np.zeros(N_BANDS)
    w_rad = 2.0 * np.pi * f / float(sample_rate)
    _fit_kernel(np.cos(w_rad), np.sin(w_rad), t, w, lo, hi, ridge, float(sample_rate), int(iterations), g)
    return g


@njit(cache=True, nogil=True)
def _fit_kernel(
    cw: np.ndarray,
    sw: np.ndarray,
    t: np.ndarray,
    wsq: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    ridge: float,
    sample_rate: float,
    iterations: int,
    g: np.ndarray,
) -> None:  # pragma: no cover - jitted
    """:func:`fit`'s projected Gauss-Newton on ``g`` (zeros in, the gains out), real-valued and without lstsq.

    At ``w = 2 pi f / fs`` (``cw``, ``sw`` its cosine and sine) each band's ``|H|^2`` is
    ``|b0 + b1 z + b2 z^2|^2 / |1 + a1 z + a2 z^2|^2`` with ``z = exp(-jw)`` written out in reals; the
    response and the central-difference Jacobian (step 1e-3 dB, ``20 (log10|H+| - log10|H-|) / 2e-3`` as one
    ``10 log10(|H+|^2 / |H-|^2) / 2e-3``) are :func:`_fit_step`'s; each step solves the ridge-weighted normal
    equations ``(J^T W J + ridge I) s = -J^T W r - ridge g`` (W = ``wsq``, the weights) by Cholesky (SPD:
    ridge >= 1e-6) instead of :func:`numpy.linalg.lstsq` on ``[sqrt(W) J; sqrt(ridge) I]`` (the same
    minimiser; the last bits differ, tested against the lstsq version).  Clamped to ``[lo, hi]`` after every
    step; stops when no gain moves by 1e-6 dB.
    """
    n = cw.shape[0]
    nb = N_BANDS
    step_db = 1e-3
    c2 = np.empty(n)
    s2 = np.empty(n)
    for i in range(n):  # cos 2w, sin 2w
        c2[i] = cw[i] * cw[i] - sw[i] * sw[i]
        s2[i] = 2.0 * cw[i] * sw[i]
    coef = np.empty((3 * nb, 5))
    gains = np.empty(3 * nb)
    band = np.empty(3 * nb, dtype=np.int64)
    for k in range(3 * nb):
        band[k] = k % nb
    p = np.empty((3 * nb, n))  # |H|^2 of each row at each frequency
    r = np.empty(n)
    jac = np.empty((n, nb))
    m = np.empty((nb, nb))
    rhs = np.empty(nb)
    low = np.empty((nb, nb))
    y = np.empty(nb)
    step = np.empty(nb)
    for _ in range(iterations):
        for k in range(nb):
            gains[k] = g[k]
            gains[nb + k] = g[k] + step_db
            gains[2 * nb + k] = g[k] - step_db
        _rbj_bands(band, gains, sample_rate, coef)
        for row in range(3 * nb):
            if row < nb and g[row] == 0.0:
                continue  # a 0 dB band is the identity: no term in the response
            b0 = coef[row, 0]
            b1 = coef[row, 1]
            b2 = coef[row, 2]
            a1 = coef[row, 3]
            a2 = coef[row, 4]
            for i in range(n):
                nr = b0 + b1 * cw[i] + b2 * c2[i]
                ni = b1 * sw[i] + b2 * s2[i]
                dr = 1.0 + a1 * cw[i] + a2 * c2[i]
                di = a1 * sw[i] + a2 * s2[i]
                p[row, i] = (nr * nr + ni * ni) / (dr * dr + di * di)
        for i in range(n):
            acc = 0.0
            for k in range(nb):
                if g[k] != 0.0:
                    acc += 10.0 * math.log10(p[k, i])
            r[i] = acc - t[i]
            for k in range(nb):
                jac[i, k] = 10.0 * math.log10(p[nb + k, i] / p[2 * nb + k, i]) / (2.0 * step_db)
        for a in range(nb):  # normal equations
            for b in range(a + 1):
                acc = 0.0
                for i in range(n):
                    acc += wsq[i] * jac[i, a] * jac[i, b]
                m[a, b] = acc
            m[a, a] += ridge
            acc = 0.0
            for i in range(n):
                acc += wsq[i] * jac[i, a] * r[i]
            rhs[a] = -acc - ridge * g[a]
        for a in range(nb):  # Cholesky m = L L^T (lower triangle of m)
            for b in range(a + 1):
                acc = m[a, b]
                for q in range(b):
                    acc -= low[a, q] * low[b, q]
                if a == b:
                    low[a, a] = math.sqrt(acc)
                else:
                    low[a, b] = acc / low[b, b]
        for a in range(nb):  # L y = rhs
            acc = rhs[a]
            for q in range(a):
                acc -= low[a, q] * y[q]
            y[a] = acc / low[a, a]
        for a in range(nb - 1, -1, -1):  # L^T step = y
            acc = y[a]
            for q in range(a + 1, nb):
                acc -= low[q, a] * step[q]
            step[a] = acc / low[a, a]
        moved = 0.0
        for k in range(nb):
            v = min(max(g[k] + step[k], lo[k]), hi[k])
            d = abs(v - g[k])
            if d > moved:
                moved = d
            g[k] = v
        if moved < 1e-6:
            break


# --- the chain stage ---------------------------------------------------------------------
# state: c [10, 5] coefficients, z [10, 2, 2] TDF-II states (band, state, channel), act [1]: 1 while any gain
# is off 0 dB or any state is non-zero (decided at the control ticks).


def _allocate(sample_rate: float, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    return (np.zeros((N_BANDS, 5)), np.zeros((N_BANDS, 2, 2)), np.zeros(1))


@njit(cache=True, nogil=True, inline="always")
def _tone_control(force, sample_rate, v, cc, c, z, act):  # pragma: no cover
    _flush_states(z)  # the biquads' states (dsp.biquad._flush_states)
    active = 0.0
    for k in range(N_BANDS):
        i = P_FIRST + k
        if force or v[i] != cc[i]:
            _rbj_into(_KINDS[k], _FREQS[k], v[i], _QS[k], sample_rate, c[k])
        if v[i] != 0.0:
            active = 1.0
    if active == 0.0:
        for k in range(N_BANDS):
            if z[k, 0, 0] != 0.0 or z[k, 0, 1] != 0.0 or z[k, 1, 0] != 0.0 or z[k, 1, 1] != 0.0:
                active = 1.0
                break
    act[0] = active


@njit(cache=True, nogil=True, inline="always")
def _tone_tick(xl, xr, mix, v, g, glide_s, sample_rate, stats, c, z, act):  # pragma: no cover
    if mix > 0.0 and act[0] != 0.0:
        xl, xr = _cascade_tick(c, z, xl, xr, mix)
    return xl, xr


TONE = Stage(
    name="tone",
    processor="ToneMatch",
    params=TONE_PARAMS,
    description="ten-band octave EQ for tonal matching (low shelf, 8 bells, high shelf)",
    state_names=("coefficients", "z", "active"),
    allocate=_allocate,
    control=_tone_control,
    tick=_tone_tick,
)
