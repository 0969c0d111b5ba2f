"""Lookahead true-peak limiter.

Per sample (stereo linked):

1. true-peak detection: the input is 4x oversampled (ITU-R BS.1770-4
   Annex 2) by two interpolators at once and the larger reading counts: the
   least-squares fractional-delay branches of :mod:`dsp.oversample` (what our
   meter reads) and the Kaiser windowed-sinc that ``scipy.signal.resample_poly``
   uses by default (:func:`kaiser_branches`).  Meters differ by up to 0.5 dB on
   a limiter's output, whose gain changes put energy near Nyquist where one
   design reads high and the other low; reading the larger keeps the ceiling
   for both.  The detector delay ``TP_DELAY`` lies inside the lookahead.  The
   peak of the segment ``[m - 1, m + 3/4]`` gives the gain this sample needs:
   ``g = min(1, ceiling x AIM_FRACTION / peak)`` (the headroom, below);
2. the required gain enters a sliding minimum over ``W`` samples (a monotonic
   deque, O(1) amortised);
3. the minimum is released with a one-pole ramp (attack is instant);
4. a moving average of length ``W`` smooths the result.  Because every value
   in the average window is at most the gain sample ``m`` required, the
   smoothed gain never exceeds it: the limiter settles *inside* the lookahead
   window with no overshoot (the hold-then-average construction);
5. audio is delayed by ``L = TP_DELAY + W - 1`` samples (the reported latency)
   and multiplied by the gain; a last-resort clamp just under the ceiling
   (so that the float32 output rounds to at most the ceiling) guards against
   floating-point rounding.

The gain is exact at the samples; between them the output's true peak is the
interpolation of *gain times signal*, which exceeds the ceiling when the gain
changes fast against the interpolator's length.  ``W`` is therefore never
shorter than :data:`MIN_RAMP_SAMPLES` (two interpolator lengths): a shorter
``lookahead_ms`` (the table allows 0.5 ms, under the detector's own delay at
low rates) is compensated by a longer latency, never by a weaker ceiling.
Measured on 300 fuzzed signals (+20 dBFS noise, squares, near-Nyquist tones,
random-sign bursts; 8-192 kHz; every lookahead, release and ceiling of the
table): independent true peak (``resample_poly``) at most +0.05 dB over the
ceiling, against +0.99 dB with the old minimum of two samples.  So the
detector aims :data:`TP_HEADROOM_DB` (0.06 dB) under the ceiling: the
delivered true peak stays under the ceiling itself (tested against
``resample_poly`` and our BS.1770 meter), at the price of 0.06 dB of level
on the loudest peaks.

Below the ceiling every gain is exactly 1.0, so the signal passes unchanged
apart from the delay.

Cost (issue 19): the detector is most of the limiter -- per loud sample two
channels times six interpolating branches of 24 taps.  Evaluated one sample
after another they are six chains of 24 dependent adds each; the limiter now
runs step 1 over the whole chunk first, time-major
(:func:`dsp.oversample._tp_chunk_peaks`, three branches at a time: the same
sums in the same order, vectorised across samples), and only over the
span of samples whose detector window can reach the ceiling.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .oversample import TP_COEFFS, TP_DELAY, TP_TAPS, _tp_chunk_peaks
from .params import PARAM_INDEX
from .stage import BLOCK_CHUNK, ST_LIM_GAIN_MIN, Stage

#: Shortest gain ramp (the moving average ``W``), in samples: two true-peak interpolator lengths.
MIN_RAMP_SAMPLES = 2 * TP_TAPS


def kaiser_branches(taps: int = TP_TAPS, delay: int = TP_DELAY) -> np.ndarray:
    """``scipy.signal.resample_poly(x, 4, 1)``'s default interpolator as branches like ``TP_COEFFS``.

    The prototype is ``firwin(81, 1/4, window=("kaiser", 5.0)) * 4`` (scipy's
    default for an up-sampling factor of 4: 10 zero crossings per side, Kaiser
    beta 5), built here with numpy; row ``r`` gives the signal at
    ``n - delay + r/4`` from ``x[n - taps + 1 .. n]`` (reversed for a dot
    product with the history, oldest first).
    """
    half = 10 * 4
    m = np.arange(2 * half + 1) - half
    h = 0.25 * np.sinc(0.25 * m) * np.kaiser(2 * half + 1, 5.0)
    h = 4.0 * h / h.sum()  # firwin scales to unit DC gain; x4 restores the zero-stuffed level
    out = np.zeros((4, taps))
    for r in range(4):
        for j in range(taps):  # j = 0: the oldest sample of the history, x[n - taps + 1]
            k = 4 * (j - (taps - 1) + delay) - r + half  # prototype tap for the output at n - delay + r/4
            if 0 <= k < len(h):
                out[r, j] = h[k]
    return np.ascontiguousarray(out)


#: The limiter's detector: the least-squares branches (row 0, the exact delay, is read directly) and
#: the Kaiser branches 1-3 (its branch 0 is 1.0006 times the sample, 0.005 dB: the direct read stands in).
LIMITER_TP_COEFFS = np.ascontiguousarray(np.vstack([TP_COEFFS, kaiser_branches()[1:]]))

# |x| below ceiling / this bound on every sample of the detector window guarantees a true peak below
# the ceiling (triangle inequality over the largest branch's absolute coefficient sum), so the
# interpolation can be skipped without changing the result.
TP_GAIN_BOUND = float(np.max(np.sum(np.abs(LIMITER_TP_COEFFS), axis=1)))
# the six interpolating branches tap-major (row i: every branch's coefficient of history sample i),
# so that one pass over the history feeds six accumulators at once (_tp_peak6)
TP_COEFFS_T = np.ascontiguousarray(LIMITER_TP_COEFFS[1:].T)
# The detector aims this far under the ceiling (TP_HEADROOM_DB): the gain is exact at the samples, but
# the true peak of gain x signal between them overshoots a fast gain change by up to +0.05 dB (module
# docstring; 300 fuzzed signals).  The headroom turns "within 0.05 dB of the ceiling" into "under it".
TP_HEADROOM_DB = 0.06
AIM_FRACTION = 10.0 ** (-TP_HEADROOM_DB / 20.0)
# the last-resort clamp sits this much under the ceiling, so that float32 rounding never lands above it
_CLAMP_FRACTION = 1.0 - 2.0**-23
_U = np.uint64  # an index known to be >= 0 (see _limiter_block)

__all__ = [
    "LIMITER",
    "MIN_RAMP_SAMPLES",
    "TP_HEADROOM_DB",
    "kaiser_branches",
    "lookahead_samples",
    "LI_WRITE",
    "LI_HEAD",
    "LI_COUNT",
    "LI_AVG",
    "LI_N",
    "LI_TPW",
    "LI_L",
    "LI_W",
]

P_CEIL = PARAM_INDEX["limiter_ceiling_dbtp"]
P_LREL = PARAM_INDEX["limiter_release_ms"]
P_LOOK = PARAM_INDEX["lookahead_ms"]
_LN10_20 = math.log(10.0) / 20.0
_DENORMAL = 1e-30

# int state slots
LI_WRITE, LI_HEAD, LI_COUNT, LI_AVG, LI_N, LI_TPW, LI_L, LI_W = 0, 1, 2, 3, 4, 5, 7, 8
# float state slots
# 3, 4: the ceiling (linear), the release alpha; 5: the ceiling in dB that 3 was computed for
LF_SUM, LF_HREL, LF_PREV, LF_CEIL, LF_REL, LF_CEIL_DB = 0, 1, 2, 3, 4, 5


def lookahead_samples(lookahead_ms: float, sample_rate: float) -> int:
    """Total latency L in samples: the lookahead, but never under ``TP_DELAY + MIN_RAMP_SAMPLES - 1``."""
    return max(int(round(lookahead_ms * sample_rate / 1000.0)), TP_DELAY + MIN_RAMP_SAMPLES - 1)


def init_state(lookahead: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Fresh limiter state for a latency of ``lookahead`` samples."""
    w = lookahead - TP_DELAY + 1
    li = np.zeros(10, dtype=np.int64)  # slot 9: samples until the detector window is quiet
    li[LI_L] = lookahead
    li[LI_W] = w
    lf = np.zeros(6, dtype=np.float64)
    reset_state(li, lf, None, None, None, None)
    return li, lf, w


def reset_state(
    li: np.ndarray,
    lf: np.ndarray,
    dbuf: np.ndarray | None,
    tp: np.ndarray | None,
    dq: np.ndarray | None,
    avg: np.ndarray | None,
) -> None:
    w = int(li[LI_W])
    li[LI_WRITE] = li[LI_HEAD] = li[LI_COUNT] = li[LI_AVG] = li[LI_N] = 0
    li[LI_TPW] = li[LI_TPW + 1] = 0
    li[9] = 0
    lf[LF_SUM] = float(w)
    lf[LF_HREL] = 1.0
    lf[LF_PREV] = 0.0
    lf[LF_CEIL] = 1.0  # with LF_CEIL_DB = 0: 0 dB, a consistent pair (see _lim_derive)
    lf[LF_CEIL_DB] = 0.0
    for a in (dbuf, tp, dq):
        if a is not None:
            a[...] = 0.0
    if avg is not None:
        avg[...] = 1.0


# Rows of the detector's scratch ``tp`` [7, BLOCK_CHUNK + TP_TAPS - 1]: the two channels' histories (the
# last TP_TAPS - 1 samples of the previous chunk, then this chunk), whether each sample of the chunk
# is interpolated, and per channel the readings of the least-squares and of the Kaiser branches.
_TP_L, _TP_R, _TP_NEED, _TP_LS_L, _TP_K_L, _TP_LS_R, _TP_K_R = range(7)
_TP_HIST = TP_TAPS - 1
#: The least-squares (columns 0-2 of TP_COEFFS_T) and the Kaiser branches (3-5), each tap-major [taps, 3]:
#: the chunk's readings are two passes of three branches (dsp.oversample._tp_chunk_peaks), which the
#: compiler vectorises across samples; one pass with six accumulators it does not (measured: 33 ns
#: against 2 x 3.5 ns per sample and channel).
TP_LS_T = np.ascontiguousarray(TP_COEFFS_T[:, :3])
TP_KAISER_T = np.ascontiguousarray(TP_COEFFS_T[:, 3:])


@njit(cache=True, nogil=True, fastmath=False)  # explicit: never the chain kernel's flags (dsp.fused)
def _limiter_block(
    rows: np.ndarray,
    frames: int,
    dbuf: np.ndarray,
    tp: np.ndarray,
    dq: np.ndarray,
    dqi: np.ndarray,
    avg: np.ndarray,
    li: np.ndarray,
    lf: np.ndarray,
    tp_ls: np.ndarray,
    tp_kaiser: np.ndarray,
    tp_bound: float,
) -> float:  # pragma: no cover
    """The limiter over ``frames`` rows of ``rows`` [n, 7] = (left, right, ceiling, release alpha, mix, out).

    Runs stage-major (the chain hands it chunks) with its state in locals, so
    the per-sample bookkeeping stays in registers; steps 1-5 of the module
    docstring.  Writes (left, right) into columns 5 and 6; returns the smallest gain.

    Step 1 runs first over the whole chunk, time-major (:func:`_tp_chunk_peaks`): per
    sample, six 24-tap sums per channel are six chains of dependent adds, and
    one sample after another they left the core waiting; across the chunk they
    vectorise (issue 19).  Only the span of samples whose detector window holds
    a sample that can reach the ceiling is interpolated, as before.

    The per-sample loop indexes as unsigned (``_U``; every index is in range by construction): Numba
    emits no wraparound for negative indexes then (issue 19: 1.84 -> 1.63 us per 128-frame block
    without limiting, 2.58 -> 2.44 with, standalone, best of 12).
    """
    wi = li[0]
    head = li[1]
    count = li[2]
    a = li[3]
    n = li[4]
    lat = li[7]
    win = li[8]
    s = lf[0]
    hr = lf[1]
    prev = lf[2]
    loud_left = li[9]
    cap = dq.shape[0]
    taps = TP_TAPS
    gmin = 1.0
    # 1. true peak (BS.1770-4 Annex 2, 4x), skipped while provably below the ceiling
    lo = frames
    hi = 0
    for k in range(frames):
        xl = rows[k, 0]
        xr = rows[k, 1]
        tp[_TP_L, _TP_HIST + k] = xl
        tp[_TP_R, _TP_HIST + k] = xr
        if max(abs(xl), abs(xr)) * tp_bound > 0.9 * rows[k, 2]:  # 10 % margin covers a gliding ceiling
            loud_left = taps
        if loud_left > 0:
            loud_left -= 1
            tp[_TP_NEED, k] = 1.0
            if k < lo:
                lo = k
            hi = k + 1
        else:
            tp[_TP_NEED, k] = 0.0
    if hi > lo:  # the branch sums, vectorised across the samples; each one's order as in _tp_peak6
        m = hi - lo
        _tp_chunk_peaks(tp[_TP_L, lo:], m, tp_ls, tp[_TP_LS_L, lo:])
        _tp_chunk_peaks(tp[_TP_L, lo:], m, tp_kaiser, tp[_TP_K_L, lo:])
        _tp_chunk_peaks(tp[_TP_R, lo:], m, tp_ls, tp[_TP_LS_R, lo:])
        _tp_chunk_peaks(tp[_TP_R, lo:], m, tp_kaiser, tp[_TP_K_R, lo:])
    for j in range(_TP_HIST):  # the history the next chunk starts from
        tp[_TP_L, j] = tp[_TP_L, frames + j]
        tp[_TP_R, j] = tp[_TP_R, frames + j]
    for k in range(frames):
        xl = rows[_U(k), 0]
        xr = rows[_U(k), 1]
        ceiling = rows[_U(k), 2]
        p = 0.0  # where the interpolation was skipped (step 1 above)
        if tp[_TP_NEED, _U(k)] != 0.0:  # _tp_peak6 of each channel, the larger
            p = max(tp[_TP_LS_L, _U(k)], tp[_TP_K_L, _U(k)], tp[_TP_LS_R, _U(k)], tp[_TP_K_R, _U(k)])
        pe = p if p > prev else prev
        prev = p
        g = 1.0
        aim = ceiling * AIM_FRACTION
        if pe > aim:
            g = aim / pe
        # 2. sliding minimum over W samples (monotonic deque, capacity W + 1)
        while count > 0:
            back = head + count - 1
            if back >= cap:
                back -= cap
            if dq[_U(back)] >= g:
                count -= 1
            else:
                break
        pos = head + count
        if pos >= cap:
            pos -= cap
        dq[_U(pos)] = g
        dqi[_U(pos)] = n
        count += 1
        while dqi[_U(head)] <= n - win:
            head += 1
            if head == cap:
                head = 0
            count -= 1
        h = dq[_U(head)]
        n += 1
        # 3. release ramp (attack is instant)
        if h < hr:
            hr = h
        else:
            hr = h + rows[_U(k), 3] * (hr - h)
        # 4. moving average of length W (exact re-sum once per cycle against drift)
        s += hr - avg[_U(a)]
        avg[_U(a)] = hr
        a += 1
        if a == win:
            a = 0
            s = 0.0
            for j in range(win):
                s += avg[j]
        gain = s / win
        if gain < gmin:
            gmin = gain
        # 5. delay line of L samples, gain (blended toward 1 by the bypass mix), last-resort clamp
        dl = dbuf[0, _U(wi)]
        dr = dbuf[1, _U(wi)]
        dbuf[0, _U(wi)] = xl
        dbuf[1, _U(wi)] = xr
        wi += 1
        if wi == lat:
            wi = 0
        ml = rows[_U(k), 4]
        gb = gain if ml >= 1.0 else 1.0 + ml * (gain - 1.0)
        yl = dl * gb
        yr = dr * gb
        if ml >= 1.0:
            cl = ceiling * _CLAMP_FRACTION
            if yl > cl:
                yl = cl
            elif yl < -cl:
                yl = -cl
            if yr > cl:
                yr = cl
            elif yr < -cl:
                yr = -cl
        if -_DENORMAL < yl < _DENORMAL:  # no float32 subnormal leaves the chain (dsp.biquad._flush_states)
            yl = 0.0
        if -_DENORMAL < yr < _DENORMAL:
            yr = 0.0
        rows[_U(k), 5] = yl
        rows[_U(k), 6] = yr
    li[0] = wi
    li[1] = head
    li[2] = count
    li[3] = a
    li[4] = n
    li[9] = loud_left
    lf[0] = s
    lf[1] = hr
    lf[2] = prev
    return gmin


# --- the chain stage (a block stage: stage-major over chunks, the chain's last) ---------
# state: buf [2, L] (the delay), tp [2, 2 TP_TAPS] (detector histories), dq / dqi [W + 1] (sliding
# minimum deque), avg [W] (moving average), li / lf (int / float slots above; lf also holds the
# ceiling and the release alpha), rows [chunk, 7] (per sample: left, right, ceiling, release alpha,
# mix in; left, right out).


def _latency(sample_rate: float, targets: np.ndarray) -> int:
    return lookahead_samples(targets[P_LOOK], sample_rate)


def _allocate(sample_rate: float, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    lat = _latency(sample_rate, targets)
    li, lf, win = init_state(lat)
    return (
        np.zeros((2, lat)),
        np.zeros((7, BLOCK_CHUNK + _TP_HIST)),
        np.zeros(win + 1),
        np.zeros(win + 1, dtype=np.int64),
        np.ones(win),
        li,
        lf,
        np.zeros((BLOCK_CHUNK, 7)),
    )


def _reset(state: tuple[np.ndarray, ...], sample_rate: float, targets: np.ndarray) -> None:
    dbuf, tp, dq, dqi, avg, li, lf, rows = state
    reset_state(li, lf, dbuf, tp, dq, avg)
    rows[...] = 0.0


@njit(cache=True, nogil=True, inline="always")
def _lim_derive(v, dbuf, tp, dq, dqi, avg, li, lf, rows):  # pragma: no cover
    if v[P_CEIL] != lf[LF_CEIL_DB]:  # recomputed only when the ceiling moved (dsp.gain._gain_from_db)
        lf[LF_CEIL] = math.exp(v[P_CEIL] * _LN10_20)
        lf[LF_CEIL_DB] = v[P_CEIL]


@njit(cache=True, nogil=True, inline="always")
def _lim_control(force, sample_rate, v, cc, dbuf, tp, dq, dqi, avg, li, lf, rows):  # pragma: no cover
    if force or v[P_LREL] != cc[P_LREL]:
        lf[LF_REL] = math.exp(-1000.0 / (v[P_LREL] * sample_rate))


@njit(cache=True, nogil=True, inline="always")
def _lim_feed(row, xl, xr, mix, v, dbuf, tp, dq, dqi, avg, li, lf, rows):  # pragma: no cover
    rows[row, 0] = xl
    rows[row, 1] = xr
    rows[row, 2] = lf[LF_CEIL]
    rows[row, 3] = lf[LF_REL]
    rows[row, 4] = mix


@njit(cache=True, nogil=True, inline="always")
def _lim_run(out, start, frames, stats, dbuf, tp, dq, dqi, avg, li, lf, rows):  # pragma: no cover
    gmin = _limiter_block(rows, frames, dbuf, tp, dq, dqi, avg, li, lf, TP_LS_T, TP_KAISER_T, TP_GAIN_BOUND)
    if gmin < stats[ST_LIM_GAIN_MIN]:
        stats[ST_LIM_GAIN_MIN] = gmin
    nch = out.shape[1]
    for j in range(frames):
        if nch == 1:
            out[start + j, 0] = 0.5 * (rows[j, 5] + rows[j, 6])
        else:
            out[start + j, 0] = rows[j, 5]
            out[start + j, 1] = rows[j, 6]


LIMITER = Stage(
    name="limiter",
    processor="Limiter",
    params=("limiter_ceiling_dbtp", "limiter_release_ms", "lookahead_ms"),
    description="lookahead true-peak limiter",
    kind="block",
    state_names=("delay", "tp", "deque", "deque_index", "average", "int_state", "float_state", "rows"),
    allocate=_allocate,
    reset=_reset,
    derive=_lim_derive,
    control=_lim_control,
    feed=_lim_feed,
    run=_lim_run,
    latency=_latency,
)
