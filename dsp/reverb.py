"""Reverb send: a feedback delay network (FDN) after Jot & Chaigne (1991).

Structure (per sample):

* the send signal (mono sum of the two channels) passes four Schroeder
  all-pass diffusers (Freeverb's lengths 556/441/341/225 at 44.1 kHz, g = 0.5);
* it is injected with alternating signs into eight delay lines whose lengths
  (21-59 ms at 48 kHz, mutually prime) are scaled to the sample rate;
* the line outputs pass a one-pole low-pass (damping) and a per-line gain
  ``g_i = 10^(-3 L_i / (RT60 fs))`` (JOS, "Physical Audio Signal Processing",
  FDN reverberation: the decay that gives 60 dB in RT60 seconds);
* they are mixed by an orthonormal 8x8 Hadamard matrix (lossless), computed
  as a fast Walsh-Hadamard transform, and fed back;
* left and right are two orthogonal sign patterns over the line outputs,
  normalised by ``sqrt(1 - g^2)`` so the wet level stays comparable across
  room sizes, and trimmed by :data:`WET_TRIM_DB` so that ``reverb_send = 1``
  at the default room size and damping returns white noise at the dry level
  (wet power = dry power; measured +11.2 dB before the trim).  The AI's
  maximum send, 0.3, is then about 10 dB under the dry signal.

``reverb_room_size`` 0..1 maps to RT60 0.2..5 s geometrically;
``reverb_damping`` 0..1 maps to the low-pass pole 0..0.7.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .params import PARAM_INDEX
from .stage import Stage

__all__ = ["N_LINES", "line_lengths", "allpass_lengths", "REVERB"]

P_RV_SEND = PARAM_INDEX["reverb_send"]
P_RV_ROOM = PARAM_INDEX["reverb_room_size"]
P_RV_DAMP = PARAM_INDEX["reverb_damping"]

N_LINES = 8
_BASE_LINES_48K = (1031, 1327, 1523, 1801, 2053, 2311, 2593, 2851)
_BASE_ALLPASS_44K = (556, 441, 341, 225)
_ALLPASS_GAIN = 0.5
_RT60_MIN_S = 0.2
_RT60_MAX_S = 5.0
_DAMPING_MAX_POLE = 0.7
_DENORMAL = 1e-30
WET_TRIM_DB = -11.24  # see the module docstring; checked in tests/dsp/test_chain.py
_WET_TRIM = 10.0 ** (WET_TRIM_DB / 20.0)
_PAD = 8  # unused columns after each ring row: see ring_size
# Ring indexes are masked, never negative: as unsigned, Numba emits no wraparound for them (with signed
# ones, a shift, an and and an add per access: 24 accesses per sample; 22.5 -> 21.3 ns per sample)
_U = np.uint64


def line_lengths(sample_rate: float) -> np.ndarray:
    return np.array([max(2, int(round(n * sample_rate / 48000.0))) for n in _BASE_LINES_48K], dtype=np.int64)


def allpass_lengths(sample_rate: float) -> np.ndarray:
    return np.array([max(2, int(round(n * sample_rate / 44100.0))) for n in _BASE_ALLPASS_44K], dtype=np.int64)


@njit(cache=True, nogil=True, fastmath=False)  # explicit: never the chain kernel's flags (dsp.fused)
def _reverb_coeffs(
    coef: np.ndarray, lengths: np.ndarray, room_size: float, damping: float, sample_rate: float
) -> None:  # pragma: no cover
    """coef[0:8] per-line gains, coef[8] damping pole, coef[9] output normalisation."""
    rt60 = _RT60_MIN_S * (_RT60_MAX_S / _RT60_MIN_S) ** room_size
    mean_sq = 0.0
    for i in range(N_LINES):
        g = 10.0 ** (-3.0 * lengths[i] / (rt60 * sample_rate))
        coef[i] = g
        mean_sq += g * g
    mean_sq /= N_LINES
    coef[8] = damping * _DAMPING_MAX_POLE
    coef[9] = math.sqrt(1.0 - mean_sq) * 2.0 / math.sqrt(N_LINES) * _WET_TRIM


def ring_size(lengths: np.ndarray) -> int:
    """Power-of-two ring size holding the longest of ``lengths`` (one shared write index, masked reads).

    The rings' rows are allocated ``_PAD`` columns longer than this (unused; the masks are ``size - 1``):
    with a power-of-two row stride the eight lines' writes at the shared index (and the four
    all-passes') fall in one set of the 8-way L1 data cache and evict each other every sample.  One
    cache line of padding per row spreads them over eight sets: the reverb's marginal cost in the
    chain 3.4-3.5 -> 3.0-3.1 us per 128-frame block (issue 19), its outputs bit for bit the same.
    """
    size = 1
    while size <= int(np.max(lengths)):
        size *= 2
    return size


@njit(cache=True, nogil=True, inline="always")
def _damped(lines, lengths, lp, coef, pole, w, lmask, i):  # pragma: no cover
    """Line ``i``'s output, through its damping low-pass (state ``lp[i]``), times its decay gain.

    The low-pass states are flushed at the control ticks (:func:`_reverb_control`), like the
    biquads' (:func:`dsp.biquad._flush_states`): 21.2 -> 19.0 ns per sample for the whole tick.
    What is written into the rings is still flushed per sample (:func:`_feed`).
    """
    o = lines[i, _U((w - lengths[i]) & lmask)]
    s = (1.0 - pole) * o + pole * lp[i]
    lp[i] = s
    return s * coef[i]


@njit(cache=True, nogil=True, inline="always")
def _feed(lines, w, i, z):  # pragma: no cover
    """Write line ``i``'s input ``z`` (flushed below 1e-30)."""
    if -_DENORMAL < z < _DENORMAL:
        z = 0.0
    lines[i, _U(w)] = z


@njit(cache=True, nogil=True, inline="always")
def _reverb_tick(
    x: float,
    lines: np.ndarray,
    lengths: np.ndarray,
    lp: np.ndarray,
    ap: np.ndarray,
    ap_len: np.ndarray,
    pos: np.ndarray,
    coef: np.ndarray,
    v: np.ndarray,
) -> tuple[float, float]:  # pragma: no cover
    """One mono sample in, (left, right) wet out.

    ``lines`` [8, P + _PAD] and ``ap`` [4, Pa + _PAD] are power-of-two rings (P, Pa) sharing
    one write index each (``pos[0]``, ``pos[1]``); a line of length L reads the
    value written L samples ago at ``(w - L) & (P - 1)``; the last ``_PAD`` columns are unused
    (:func:`ring_size`).  ``v`` (scratch) is unused: the eight
    line values stay in locals.
    """
    wa = pos[1]
    amask = ap.shape[1] - _PAD - 1
    # Schroeder all-pass diffusers (Freeverb form: y = -x + buf; buf = x + g*buf)
    for k in range(ap.shape[0]):
        b = ap[k, _U((wa - ap_len[k]) & amask)]
        y = b - x
        nb = x + _ALLPASS_GAIN * b
        if -_DENORMAL < nb < _DENORMAL:
            nb = 0.0
        ap[k, _U(wa)] = nb
        x = y
    pos[1] = (wa + 1) & amask
    w = pos[0]
    lmask = lines.shape[1] - _PAD - 1
    pole = coef[8]
    # read the line outputs, damp them, apply decay gains (unrolled: the eight values stay in registers)
    v0 = _damped(lines, lengths, lp, coef, pole, w, lmask, 0)
    v1 = _damped(lines, lengths, lp, coef, pole, w, lmask, 1)
    v2 = _damped(lines, lengths, lp, coef, pole, w, lmask, 2)
    v3 = _damped(lines, lengths, lp, coef, pole, w, lmask, 3)
    v4 = _damped(lines, lengths, lp, coef, pole, w, lmask, 4)
    v5 = _damped(lines, lengths, lp, coef, pole, w, lmask, 5)
    v6 = _damped(lines, lengths, lp, coef, pole, w, lmask, 6)
    v7 = _damped(lines, lengths, lp, coef, pole, w, lmask, 7)
    left = (v0 + v1 + v2 + v3 + v4 + v5 + v6 + v7) * coef[9]
    right = (v0 - v1 + v2 - v3 + v4 - v5 + v6 - v7) * coef[9]
    # orthonormal Hadamard mix (fast Walsh-Hadamard, 3 butterfly stages: pairs 1, 2 and 4 apart)
    v0, v1 = v0 + v1, v0 - v1
    v2, v3 = v2 + v3, v2 - v3
    v4, v5 = v4 + v5, v4 - v5
    v6, v7 = v6 + v7, v6 - v7
    v0, v2 = v0 + v2, v0 - v2
    v1, v3 = v1 + v3, v1 - v3
    v4, v6 = v4 + v6, v4 - v6
    v5, v7 = v5 + v7, v5 - v7
    v0, v4 = v0 + v4, v0 - v4
    v1, v5 = v1 + v5, v1 - v5
    v2, v6 = v2 + v6, v2 - v6
    v3, v7 = v3 + v7, v3 - v7
    scale = 1.0 / math.sqrt(N_LINES)
    _feed(lines, w, 0, v0 * scale + x)
    _feed(lines, w, 1, v1 * scale - x)
    _feed(lines, w, 2, v2 * scale + x)
    _feed(lines, w, 3, v3 * scale - x)
    _feed(lines, w, 4, v4 * scale + x)
    _feed(lines, w, 5, v5 * scale - x)
    _feed(lines, w, 6, v6 * scale + x)
    _feed(lines, w, 7, v7 * scale - x)
    pos[0] = (w + 1) & lmask
    return left, right


# --- the chain stage (a send: wet added to the dry signal) ------------------------------
# state: lines [8, P] and ap [4, Pa] (rings), ri [4, 8] int (line lengths, write indexes, all-pass
# lengths, and [3, 0] the samples the loop has been silent, [3, 1] the samples after which a silent
# loop is skipped), rf [3, 10] (damping low-pass states, coefficients, scratch).
_QUIET = 3


def _allocate(sample_rate: float, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    lengths = line_lengths(sample_rate)
    ap_lengths = allpass_lengths(sample_rate)
    ri = np.zeros((4, N_LINES), dtype=np.int64)
    ri[0] = lengths
    ri[2, : len(ap_lengths)] = ap_lengths
    ri[_QUIET, 1] = int(lengths.max() + ap_lengths.sum() + 256)
    lines = np.zeros((N_LINES, ring_size(lengths) + _PAD))
    ap = np.zeros((len(ap_lengths), ring_size(ap_lengths) + _PAD))
    return (lines, ap, ri, np.zeros((3, 10)))


def _reset(state: tuple[np.ndarray, ...], sample_rate: float, targets: np.ndarray) -> None:
    lines, ap, ri, rf = state
    lines[...] = 0.0
    ap[...] = 0.0
    rf[...] = 0.0
    ri[1] = 0  # [0]: line write index, [1]: all-pass write index
    ri[_QUIET, 0] = ri[_QUIET, 1]  # starts idle


@njit(cache=True, nogil=True, inline="always")
def _reverb_control(force, sample_rate, v, cc, lines, ap, ri, rf):  # pragma: no cover
    lp = rf[0]
    for i in range(N_LINES):  # the damping low-pass states (see _damped); a select, as _flush_states
        a = lp[i]
        lp[i] = 0.0 if abs(a) < _DENORMAL else a
    if force or v[P_RV_ROOM] != cc[P_RV_ROOM] or v[P_RV_DAMP] != cc[P_RV_DAMP]:
        _reverb_coeffs(rf[1], ri[0], v[P_RV_ROOM], v[P_RV_DAMP], sample_rate)


@njit(cache=True, nogil=True, inline="always")
def _reverb_send_tick(xl, xr, mix, v, g, glide_s, sample_rate, stats, lines, ap, ri, rf):  # pragma: no cover
    """The wet (left, right) for one sample; skipped while the send is 0 and the loop is silent."""
    send = v[P_RV_SEND] * mix
    if send != 0.0 or ri[_QUIET, 0] < ri[_QUIET, 1]:
        mono = 0.5 * (xl + xr) * send
        rl, rr = _reverb_tick(mono, lines, ri[0], rf[0], ap, ri[2], ri[1], rf[1], rf[2])
        if mono == 0.0 and rl == 0.0 and rr == 0.0:
            ri[_QUIET, 0] += 1
        else:
            ri[_QUIET, 0] = 0
        return rl, rr
    return 0.0, 0.0


REVERB = Stage(
    name="reverb",
    processor="Reverb",
    params=("reverb_send", "reverb_room_size", "reverb_damping"),
    description="FDN reverb send (wet added to dry)",
    kind="send",
    state_names=("lines", "allpass", "indexes", "lowpass_coefficients"),
    allocate=_allocate,
    reset=_reset,
    control=_reverb_control,
    tick=_reverb_send_tick,
)
