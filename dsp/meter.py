"""Streaming loudness meter: ITU-R BS.1770-4 / EBU R 128 (EBU Tech 3341, Tech 3342).

:class:`LoudnessMeter` follows the ``prepare / process / reset`` contract of
:mod:`dsp.spec`.  ``process`` hands each block to one private Numba kernel that
does all per-sample work over state arrays sized in ``prepare``:

1. **K-weighting** (BS.1770-4, Annex 1, Fig. 1 and Tables 1-2): a high-shelf
   pre-filter (stage 1, the acoustic effect of the head) followed by the RLB
   high-pass (stage 2), two biquads in float64 with subnormal flushing.  The
   standard tabulates the coefficients at 48 kHz only; for any rate we derive
   them from the analog prototype by the bilinear transform with the
   standard's centre frequency, Q and gain, exactly as libebur128
   (``ebur128_init_filter``) and pyloudnorm (``high_shelf_DeMan`` /
   ``high_pass_DeMan``, after B. De Man's derivation) do.  At 48 kHz this
   reproduces the tabulated coefficients to 1e-8; from 32 kHz up the
   magnitude response stays within 0.05 dB of the 48 kHz filter (20 Hz to
   min(fs/4, 20 kHz)).  At lower rates the derivation drifts (shelf warped
   near Nyquist, the fixed ``[1, -2, 1]`` RLB numerator adds up to +0.2 dB of
   pass-band gain at 8 kHz), exactly as in libebur128; a 1 kHz tone still
   reads within 0.02 LU of its 48 kHz loudness.
2. **Mean square per 100 ms step** (BS.1770-4 eq. 1 and 3): every
   ``step_samples = round(0.1 * sample_rate)`` samples the channel-weighted
   sum ``sum_i G_i * sum_n y_i[n]**2`` is pushed into a ring of the last 30
   steps.  A 400 ms gating block (75 % overlap, BS.1770-4 section 2.1) is the
   last 4 steps, the EBU short-term window (Tech 3341 section 2.2) the last 30.
3. **Momentary / short-term** loudness (Tech 3341 section 2.1) are updated at
   every step; their maxima are tracked.  Before a window has filled, the
   time before the stream start counts as digital silence (as in
   libebur128); readouts are ``-inf`` until the first 100 ms step completes.
4. **Integrated loudness** (BS.1770-4 eqs. 4-7: absolute gate -70 LUFS,
   relative gate -10 LU) and **loudness range** (EBU Tech 3342: short-term
   values every 100 ms, absolute gate -70 LUFS, relative gate -20 LU,
   LRA = 95th - 10th percentile) are computed from two fixed histograms of
   0.01 LU bins over -70..+10 LUFS (blocks louder than +10 LUFS share the top
   bin).  Each bin keeps a count **and** the sum of its blocks' energies, so
   the gated means are exact except for the one bin that straddles the
   relative gate, which is decided by its mean loudness (libebur128's
   histogram mode keeps counts only, in 0.1 LU bins).  Memory stays constant
   for unbounded streams.  These readouts are evaluated lazily from the
   histograms when asked (off the audio thread), never inside ``process``.
5. **True peak** (BS.1770-4 Annex 2) by the 4x polyphase interpolator of
   :mod:`dsp.oversample`, and the sample peak, per channel, max over the
   stream.

Readouts are properties in their unit (``*_lufs``, ``*_lu``, ``*_dbtp``,
``*_dbfs``); each is ``float('-inf')`` when nothing has been measured yet,
when the signal is digital silence, or when every block falls below the gates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

from .oversample import (
    TP_COEFFS_T,
    TP_DELAY,
    TP_TAPS,
    _tp_channel_history,
    _tp_channel_peak,
    _tp_peak3,
    _tp_push,
    tp_scratch,
)
from .spec import ProcessSpec

__all__ = [
    "LoudnessMeter",
    "measure",
    "true_peak_dbtp",
    "TruePeakMeter",
    "k_weighting_coeffs",
    "default_channel_weights",
    "ABSOLUTE_GATE_LUFS",
    "RELATIVE_GATE_LU",
    "LRA_RELATIVE_GATE_LU",
    "READOUT_NAMES",
]

# --- constants from the standards -------------------------------------------------

LOUDNESS_OFFSET_DB = -0.691  # BS.1770-4 eq. 2: L_K = -0.691 + 10 log10(sum_i G_i z_i)
ABSOLUTE_GATE_LUFS = -70.0  # BS.1770-4 section 2.5 (Gamma_a); Tech 3342 absolute gate
RELATIVE_GATE_LU = -10.0  # BS.1770-4 eq. 6 (Gamma_r = L(J_g) - 10 LU)
LRA_RELATIVE_GATE_LU = -20.0  # EBU Tech 3342 section 3.1 (relative gate -20 LU)
LRA_LOW_PERCENTILE = 0.10  # EBU Tech 3342: LRA = L_95 - L_10
LRA_HIGH_PERCENTILE = 0.95

STEP_SECONDS = 0.1  # 75 % overlap of 400 ms blocks -> 100 ms hop (BS.1770-4 section 2.1)
MOMENTARY_STEPS = 4  # 400 ms (BS.1770-4 gating block; Tech 3341 "M")
SHORT_TERM_STEPS = 30  # 3 s (Tech 3341 "S")

HIST_MIN_LUFS = ABSOLUTE_GATE_LUFS
HIST_MAX_LUFS = 10.0
HIST_BIN_LU = 0.01
HIST_BINS = int(round((HIST_MAX_LUFS - HIST_MIN_LUFS) / HIST_BIN_LU))  # 8000

SUBNORMAL_FLUSH = 1e-30  # filter states below this (-600 dB) are flushed to zero

#: order of the values :meth:`LoudnessMeter.read_into` writes
READOUT_NAMES = (
    "momentary_lufs",
    "short_term_lufs",
    "integrated_lufs",
    "loudness_range_lu",
    "true_peak_dbtp",
    "sample_peak_dbfs",
)

# indices into the small state arrays
_I_STEP_FILL = 0  # samples accumulated in the current step
_I_RING_POS = 1  # next write position in the step ring
_I_STEPS = 2  # steps completed since reset
_I_NONFINITE = 3  # non-finite input samples replaced by 0
_N_ISTATE = 4

_F_STEP_ACC = 0  # weighted energy sum of the current step
_F_MOMENTARY = 1  # mean square over the last 400 ms (weighted, BS.1770-4 eq. 4 argument)
_F_SHORT_TERM = 2  # mean square over the last 3 s
_F_MAX_MOMENTARY = 3
_F_MAX_SHORT_TERM = 4
_N_FSTATE = 5


# --- design (Python, at prepare time) --------------------------------------------


def k_weighting_coeffs(sample_rate: float) -> np.ndarray:
    """K-weighting biquads for ``sample_rate`` (BS.1770-4 Annex 1).

    The analog prototypes are the ones libebur128 (``ebur128_init_filter``)
    and pyloudnorm (``*_DeMan`` filters) use: stage 1 a high shelf with
    ``f0 = 1681.974 Hz``, ``Q = 0.70718``, ``+3.99984 dB``; stage 2 the RLB
    high-pass with ``f0 = 38.135 Hz``, ``Q = 0.50033``; both mapped by the
    bilinear transform with ``K = tan(pi f0 / fs)``.  At 48 kHz this gives
    the coefficients of BS.1770-4 Tables 1 and 2.

    Parameters
    ----------
    sample_rate : float
        Hz.

    Returns
    -------
    np.ndarray [shape=(2, 5)]
        ``[b0, b1, b2, a1, a2]`` per stage (``a0 = 1``), float64.
    """
    out = np.zeros((2, 5))
    # Stage 1: high shelf (BS.1770-4 Table 1)
    f0_hz = 1681.974450955533
    gain_db = 3.999843853973347
    q = 0.7071752369554196
    k = math.tan(math.pi * f0_hz / sample_rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    out[0] = [
        (vh + vb * k / q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / q + k * k) / a0,
    ]
    # Stage 2: RLB high-pass (BS.1770-4 Table 2); numerator is exactly [1, -2, 1]
    f0_hz = 38.13547087602444
    q = 0.5003270373238773
    k = math.tan(math.pi * f0_hz / sample_rate)
    a0 = 1.0 + k / q + k * k
    out[1] = [1.0, -2.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return out


def default_channel_weights(num_channels: int) -> np.ndarray:
    """BS.1770-4 Table 3 channel weights ``G_i`` for ``num_channels``.

    5 channels are taken as L, R, C, Ls, Rs (the Tech 3341 case 6 order):
    ``[1, 1, 1, 1.41, 1.41]``; 6 channels as 5.1 in L, R, C, LFE, Ls, Rs order,
    with the LFE excluded (weight 0).  Any other count weights every channel 1.0.
    """
    if num_channels == 5:
        return np.array([1.0, 1.0, 1.0, 1.41, 1.41])
    if num_channels == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(num_channels)


# --- kernels -----------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _energy_to_lufs(energy: float) -> float:  # pragma: no cover - jitted
    """BS.1770-4 eq. 2/4: -0.691 + 10 log10(weighted mean square); -inf for 0."""
    if energy <= 0.0:
        return -np.inf
    return LOUDNESS_OFFSET_DB + 10.0 * math.log10(energy)


@njit(cache=True, nogil=True, inline="always")
def _hist_add(count: np.ndarray, energy_sum: np.ndarray, energy: float) -> None:  # pragma: no cover
    """Add one block (mean-square ``energy``) to a histogram if above -70 LUFS."""
    lufs = _energy_to_lufs(energy)
    if not lufs > ABSOLUTE_GATE_LUFS:  # BS.1770-4 eq. 5: J_g = {j : l_j > Gamma_a}
        return
    b = int((lufs - HIST_MIN_LUFS) / HIST_BIN_LU)
    if b >= count.shape[0]:
        b = count.shape[0] - 1  # louder than +10 LUFS: top bin (its energy stays exact)
    count[b] += 1
    energy_sum[b] += energy


@njit(cache=True, nogil=True)
def _meter_kernel(
    x: np.ndarray,
    coeffs: np.ndarray,
    weights: np.ndarray,
    z: np.ndarray,
    ring: np.ndarray,
    istate: np.ndarray,
    fstate: np.ndarray,
    gate_count: np.ndarray,
    gate_energy: np.ndarray,
    st_count: np.ndarray,
    st_energy: np.ndarray,
    tp_buf: np.ndarray,
    tp_w: np.ndarray,
    tp_coeffs: np.ndarray,
    true_peak: np.ndarray,
    sample_peak: np.ndarray,
    step_samples: int,
    do_true_peak: bool,
    tp_work: np.ndarray,
) -> None:  # pragma: no cover - jitted
    """All per-sample work of :meth:`LoudnessMeter.process`; mutates state in place.

    x [frames, channels]; coeffs [2, 5]; weights [channels]; z [channels, 2, 2]
    (transposed direct form II states); ring [30] weighted step energies;
    gate_* / st_* [HIST_BINS]; tp_buf [channels, 2*TP_TAPS]; tp_w [channels];
    tp_work: scratch of :func:`dsp.oversample.tp_scratch`.
    """
    frames = x.shape[0]
    channels = x.shape[1]
    if do_true_peak:
        # true peak, BS.1770-4 Annex 2: 4x interpolation then |.| (dsp.oversample), channel by
        # channel over the block (non-finite samples as 0, as below)
        for c in range(channels):
            p, tp_w[c] = _tp_channel_peak(x, c, tp_buf[c], tp_w[c], tp_coeffs, tp_work, true_peak[c])
            if p > true_peak[c]:
                true_peak[c] = p
    ring_len = ring.shape[0]
    b10 = coeffs[0, 0]
    b11 = coeffs[0, 1]
    b12 = coeffs[0, 2]
    a11 = coeffs[0, 3]
    a12 = coeffs[0, 4]
    b20 = coeffs[1, 0]
    b21 = coeffs[1, 1]
    b22 = coeffs[1, 2]
    a21 = coeffs[1, 3]
    a22 = coeffs[1, 4]
    fill = istate[_I_STEP_FILL]
    acc = fstate[_F_STEP_ACC]
    for n in range(frames):
        e = 0.0
        for c in range(channels):
            v = np.float64(x[n, c])
            if not math.isfinite(v):  # NaN/Inf never reaches filter state
                v = np.float64(0.0)
                istate[_I_NONFINITE] += 1
            # sample peak
            a = abs(v)
            if a > sample_peak[c]:
                sample_peak[c] = a
            # K-weighting stage 1, high shelf (BS.1770-4 Annex 1, Table 1), TDF-II
            y = b10 * v + z[c, 0, 0]
            s1 = b11 * v - a11 * y + z[c, 0, 1]
            s2 = b12 * v - a12 * y
            if abs(s1) < SUBNORMAL_FLUSH:
                s1 = 0.0
            if abs(s2) < SUBNORMAL_FLUSH:
                s2 = 0.0
            z[c, 0, 0] = s1
            z[c, 0, 1] = s2
            # K-weighting stage 2, RLB high-pass (BS.1770-4 Annex 1, Table 2)
            u = b20 * y + z[c, 1, 0]
            s1 = b21 * y - a21 * u + z[c, 1, 1]
            s2 = b22 * y - a22 * u
            if abs(s1) < SUBNORMAL_FLUSH:
                s1 = 0.0
            if abs(s2) < SUBNORMAL_FLUSH:
                s2 = 0.0
            z[c, 1, 0] = s1
            z[c, 1, 1] = s2
            # BS.1770-4 eq. 1 (integrand y_i^2) weighted by G_i (eq. 2 / Table 3)
            e += weights[c] * (u * u)
        acc += e
        fill += 1
        if fill == step_samples:
            # one 100 ms step done: BS.1770-4 section 2.1, 75 % overlap of 400 ms blocks
            pos = istate[_I_RING_POS]
            ring[pos] = acc
            pos += 1
            if pos == ring_len:
                pos = 0
            istate[_I_RING_POS] = pos
            istate[_I_STEPS] += 1
            acc = 0.0
            fill = 0
            # momentary: mean square over the last 400 ms (Tech 3341 section 2.1, "M")
            s = 0.0
            for j in range(MOMENTARY_STEPS):
                k = pos - 1 - j
                if k < 0:
                    k += ring_len
                s += ring[k]
            mom = s / (MOMENTARY_STEPS * step_samples)
            # short-term: mean square over the last 3 s (Tech 3341 section 2.1, "S")
            for j in range(MOMENTARY_STEPS, SHORT_TERM_STEPS):
                k = pos - 1 - j
                if k < 0:
                    k += ring_len
                s += ring[k]
            st = s / (SHORT_TERM_STEPS * step_samples)
            fstate[_F_MOMENTARY] = mom
            fstate[_F_SHORT_TERM] = st
            if mom > fstate[_F_MAX_MOMENTARY]:
                fstate[_F_MAX_MOMENTARY] = mom
            if st > fstate[_F_MAX_SHORT_TERM]:
                fstate[_F_MAX_SHORT_TERM] = st
            steps = istate[_I_STEPS]
            if steps >= MOMENTARY_STEPS:
                # a complete 400 ms gating block z_j (BS.1770-4 eq. 3) -> gating histogram
                _hist_add(gate_count, gate_energy, mom)
            if steps >= SHORT_TERM_STEPS:
                # a complete 3 s short-term value at 10 Hz (EBU Tech 3342 section 3) -> LRA histogram
                _hist_add(st_count, st_energy, st)
    istate[_I_STEP_FILL] = fill
    fstate[_F_STEP_ACC] = acc


@njit(cache=True, nogil=True)
def _tp_block(
    x: np.ndarray,
    tp_buf: np.ndarray,
    tp_w: np.ndarray,
    tp_coeffs: np.ndarray,
    tp_work: np.ndarray,
    true_peak: np.ndarray,
    peaks: np.ndarray,
    given: bool,
    floor: np.ndarray,
) -> None:  # pragma: no cover - jitted
    """The true-peak part of :func:`_meter_kernel` for ``x`` [frames, channels], its peaks shared.

    ``given`` False: each channel's peak over the block into ``peaks[c]`` (what ``_meter_kernel`` computes),
    exact above ``floor[c]`` (:func:`dsp.oversample._tp_channel_peak`; at most this meter's true peak and
    that of every meter the peaks go to); True: ``peaks`` are that block's peaks from a meter whose
    interpolator history equals this one's (the same last ``TP_TAPS`` samples), computed with a floor at most
    this meter's true peak: only the history advances.  Either way ``true_peak`` as the kernel keeps it.
    """
    for c in range(x.shape[1]):
        if given:
            p = peaks[c]
            tp_w[c] = _tp_channel_history(x, c, tp_buf[c], tp_w[c])
        else:
            p, tp_w[c] = _tp_channel_peak(x, c, tp_buf[c], tp_w[c], tp_coeffs, tp_work, floor[c])
            peaks[c] = p
        if p > true_peak[c]:
            true_peak[c] = p


@njit(cache=True, nogil=True)
def _tp_flush(
    tp_buf: np.ndarray, tp_w: np.ndarray, tp_coeffs: np.ndarray, true_peak: np.ndarray, zeros: int
) -> None:  # pragma: no cover - jitted
    """Push ``zeros`` silent samples through the true-peak interpolators only."""
    for _ in range(zeros):
        for c in range(tp_buf.shape[0]):
            tp_w[c] = _tp_push(tp_buf[c], tp_w[c], 0.0)
            p = _tp_peak3(tp_buf[c], tp_w[c], tp_coeffs)
            if p > true_peak[c]:
                true_peak[c] = p


@njit(cache=True, nogil=True)
def _gated_lufs(count: np.ndarray, energy_sum: np.ndarray, relative_gate_lu: float) -> float:  # pragma: no cover
    """Gated loudness of a histogram of absolute-gated blocks (BS.1770-4 eqs. 5-7).

    Relative threshold = loudness of the mean energy of all blocks (already
    above -70 LUFS) plus ``relative_gate_lu``; result = loudness of the mean
    energy of the blocks above it.  A bin is kept when its mean loudness is
    above the threshold (only the bin straddling it can be split wrongly).
    """
    n_all = 0
    e_all = 0.0
    for b in range(count.shape[0]):
        n_all += count[b]
        e_all += energy_sum[b]
    if n_all == 0:
        return -np.inf
    threshold = _energy_to_lufs(e_all / n_all) + relative_gate_lu  # eq. 6
    n = 0
    e = 0.0
    for b in range(count.shape[0]):
        if count[b] > 0 and _energy_to_lufs(energy_sum[b] / count[b]) > threshold:
            n += count[b]
            e += energy_sum[b]
    if n == 0:
        return -np.inf
    return _energy_to_lufs(e / n)  # eq. 7


@njit(cache=True, nogil=True)
def _st_gate(count: np.ndarray, energy_sum: np.ndarray) -> tuple[float, int]:  # pragma: no cover - jitted
    """EBU Tech 3342 gating of a short-term histogram: (relative threshold LUFS, values kept).

    Absolute gate -70 LUFS (the histogram holds only those), relative gate
    -20 LU below the energy mean; a bin is kept when its mean loudness is at
    or above the threshold.  ``(-inf, 0)`` for an empty histogram.
    """
    n_all = 0
    e_all = 0.0
    for b in range(count.shape[0]):
        n_all += count[b]
        e_all += energy_sum[b]
    if n_all == 0:
        return -np.inf, 0
    threshold = _energy_to_lufs(e_all / n_all) + LRA_RELATIVE_GATE_LU
    m = 0
    for b in range(count.shape[0]):
        if count[b] > 0 and _energy_to_lufs(energy_sum[b] / count[b]) >= threshold:
            m += count[b]
    return threshold, m


@njit(cache=True, nogil=True)
def _st_value_at_rank(count: np.ndarray, energy_sum: np.ndarray, threshold: float, k: int) -> float:  # pragma: no cover
    """Loudness of the ``k``-th (0-based) kept short-term value in ascending order (its bin's mean)."""
    seen = 0
    for b in range(count.shape[0]):
        if count[b] == 0:
            continue
        lufs = _energy_to_lufs(energy_sum[b] / count[b])
        if lufs < threshold:
            continue
        seen += count[b]
        if seen > k:
            return lufs
    return -np.inf


@njit(cache=True, nogil=True)
def _st_percentile(count: np.ndarray, energy_sum: np.ndarray, fraction: float) -> float:  # pragma: no cover
    """Gated short-term loudness percentile (``fraction`` in 0..1) with Tech 3342's rank rule.

    The rank is ``round((m - 1) * fraction)`` (0-based) among the ``m`` values
    kept by :func:`_st_gate`, as in Tech 3342's reference code; ``-inf`` when
    nothing is kept.
    """
    threshold, m = _st_gate(count, energy_sum)
    if m == 0:
        return -np.inf
    return _st_value_at_rank(count, energy_sum, threshold, int((m - 1) * fraction + 0.5))


@njit(cache=True, nogil=True)
def _loudness_range_lu(count: np.ndarray, energy_sum: np.ndarray) -> float:  # pragma: no cover - jitted
    """EBU Tech 3342 loudness range from a histogram of short-term values.

    Absolute gate -70 LUFS (the histogram holds only those), relative gate
    -20 LU below the energy mean, then L_95 - L_10 with the percentile index
    of Tech 3342's reference code, ``round((n - 1) * p)`` (0-based) in the
    sorted values; a value is its bin's mean loudness (exact when one level
    fills the bin).
    """
    threshold, m = _st_gate(count, energy_sum)
    if m == 0:
        return -np.inf
    low = _st_value_at_rank(count, energy_sum, threshold, int((m - 1) * LRA_LOW_PERCENTILE + 0.5))
    high = _st_value_at_rank(count, energy_sum, threshold, int((m - 1) * LRA_HIGH_PERCENTILE + 0.5))
    return high - low


@njit(cache=True, nogil=True)
def _peaks(true_peak: np.ndarray, sample_peak: np.ndarray) -> tuple[float, float]:  # pragma: no cover - jitted
    """(true peak, sample peak) over the channels, linear; the true peak never below the sample peak
    (the interpolator lags TP_DELAY samples)."""
    tp = 0.0
    sp = 0.0
    for c in range(true_peak.shape[0]):
        if true_peak[c] > tp:
            tp = true_peak[c]
        if sample_peak[c] > sp:
            sp = sample_peak[c]
    if sp > tp:
        tp = sp
    return tp, sp


@njit(cache=True, nogil=True)
def _summary_kernel(
    gate_count: np.ndarray,
    gate_energy: np.ndarray,
    st_count: np.ndarray,
    st_energy: np.ndarray,
    true_peak: np.ndarray,
    sample_peak: np.ndarray,
    fractions: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - jitted
    """``[integrated, loudness range, true peak, percentile(fractions[0]), ...]`` into ``out``: the values of
    ``_gated_lufs``, ``_loudness_range_lu``, ``_read_kernel``'s true peak and ``_st_percentile`` (the same
    functions, one short-term gating for all of them instead of one per readout)."""
    out[0] = _gated_lufs(gate_count, gate_energy, RELATIVE_GATE_LU)
    threshold, m = _st_gate(st_count, st_energy)
    if m == 0:
        out[1] = -np.inf
        for i in range(fractions.shape[0]):
            out[3 + i] = -np.inf
    else:
        low = _st_value_at_rank(st_count, st_energy, threshold, int((m - 1) * LRA_LOW_PERCENTILE + 0.5))
        high = _st_value_at_rank(st_count, st_energy, threshold, int((m - 1) * LRA_HIGH_PERCENTILE + 0.5))
        out[1] = high - low
        for i in range(fractions.shape[0]):
            out[3 + i] = _st_value_at_rank(st_count, st_energy, threshold, int((m - 1) * fractions[i] + 0.5))
    tp, _ = _peaks(true_peak, sample_peak)
    out[2] = 20.0 * math.log10(tp) if tp > 0.0 else -np.inf


@njit(cache=True, nogil=True)
def _read_kernel(
    istate: np.ndarray,
    fstate: np.ndarray,
    gate_count: np.ndarray,
    gate_energy: np.ndarray,
    st_count: np.ndarray,
    st_energy: np.ndarray,
    true_peak: np.ndarray,
    sample_peak: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - jitted
    """Write the six readouts (order of ``READOUT_NAMES``) into ``out`` [6]."""
    if istate[_I_STEPS] == 0:
        out[0] = -np.inf
        out[1] = -np.inf
    else:
        out[0] = _energy_to_lufs(fstate[_F_MOMENTARY])
        out[1] = _energy_to_lufs(fstate[_F_SHORT_TERM])
    out[2] = _gated_lufs(gate_count, gate_energy, RELATIVE_GATE_LU)
    out[3] = _loudness_range_lu(st_count, st_energy)
    tp, sp = _peaks(true_peak, sample_peak)
    out[4] = 20.0 * math.log10(tp) if tp > 0.0 else -np.inf
    out[5] = 20.0 * math.log10(sp) if sp > 0.0 else -np.inf


# --- the processor -----------------------------------------------------------------


class LoudnessMeter:
    """Streaming BS.1770-4 / EBU R 128 loudness, loudness range and true-peak meter.

    Parameters
    ----------
    spec : ProcessSpec, optional
        When given, :meth:`prepare` is called with it.
    channel_weights : sequence of float, optional
        BS.1770-4 channel weights ``G_i`` (Table 3), one per channel; default
        :func:`default_channel_weights` (1.0 each; 5.0 / 5.1 surround weights
        for 5 / 6 channels).
    true_peak : bool
        Measure true peak (the 4x interpolator, about half of the per-sample
        cost).  ``False`` leaves ``true_peak_dbtp`` at the sample peak.

    Notes
    -----
    Readouts (properties) are ``float('-inf')`` when nothing has been
    measured yet, for digital silence, and when every block is below the
    gates.  ``momentary_lufs`` and ``short_term_lufs`` are updated every
    100 ms step; before their window has filled, time before the stream start
    counts as silence.  ``integrated_lufs`` and ``loudness_range_lu`` are
    evaluated from the histograms at read time.  Reading from another thread
    while ``process`` runs is allowed (no locks); a read can then mix the
    state of two consecutive steps.
    """

    def __init__(
        self, spec: ProcessSpec | None = None, *, channel_weights: Sequence[float] | None = None, true_peak: bool = True
    ) -> None:
        self._spec: ProcessSpec | None = None
        self._do_true_peak = bool(true_peak)
        self._weights_arg = None if channel_weights is None else np.asarray(channel_weights, dtype=np.float64)
        if self._weights_arg is not None:
            if (
                self._weights_arg.ndim != 1
                or not np.all(np.isfinite(self._weights_arg))
                or np.any(self._weights_arg < 0)
            ):
                raise ValueError(f"channel_weights must be finite, >= 0, one per channel; got {channel_weights!r}")
        if spec is not None:
            self.prepare(spec)

    # -- contract -----------------------------------------------------------

    def prepare(self, spec: ProcessSpec) -> None:
        """Allocate all state and derive the coefficients for ``spec``.

        Re-preparing with an equal spec only resets the state.
        """
        if not isinstance(spec, ProcessSpec):
            raise TypeError(f"prepare expects a ProcessSpec, got {type(spec).__name__}")
        if spec == self._spec:
            self.reset()
            return
        ch = spec.num_channels
        if self._weights_arg is not None:
            if self._weights_arg.shape[0] != ch:
                raise ValueError(f"{self._weights_arg.shape[0]} channel weights given for {ch} channels")
            weights = self._weights_arg.copy()
        else:
            weights = default_channel_weights(ch)
        self._spec = spec
        self._sample_rate = float(spec.sample_rate)
        self._step_samples = max(1, int(round(STEP_SECONDS * spec.sample_rate)))
        self._coeffs = k_weighting_coeffs(spec.sample_rate)
        self._weights = weights
        self._z = np.zeros((ch, 2, 2))
        self._ring = np.zeros(SHORT_TERM_STEPS)
        self._istate = np.zeros(_N_ISTATE, dtype=np.int64)
        self._fstate = np.zeros(_N_FSTATE)
        self._gate_count = np.zeros(HIST_BINS, dtype=np.int64)
        self._gate_energy = np.zeros(HIST_BINS)
        self._st_count = np.zeros(HIST_BINS, dtype=np.int64)
        self._st_energy = np.zeros(HIST_BINS)
        self._tp_buf = np.zeros((ch, 2 * TP_TAPS))
        self._tp_w = np.zeros(ch, dtype=np.int64)
        self._tp_coeffs = TP_COEFFS_T  # tap-major interpolating branches (oversample._tp_peak3)
        self._tp_work = tp_scratch()
        self._true_peak = np.zeros(ch)
        self._sample_peak = np.zeros(ch)
        self._scratch = np.zeros(len(READOUT_NAMES))

    def reset(self) -> None:
        """Clear all measurement state in place (filters, windows, histograms, peaks)."""
        self._require_prepared()
        for a in (
            self._z,
            self._ring,
            self._istate,
            self._fstate,
            self._gate_count,
            self._gate_energy,
            self._st_count,
            self._st_energy,
            self._tp_buf,
            self._tp_w,
            self._true_peak,
            self._sample_peak,
        ):
            a.fill(0)

    def process(self, block: np.ndarray) -> None:
        """Measure one block; allocates nothing.

        Parameters
        ----------
        block : np.ndarray [shape=(frames, channels), dtype=float32 or float64]
            Any number of frames (0 is allowed); ``channels`` as prepared.
            Non-finite samples are measured as 0 (and counted in
            :attr:`nonfinite_count`).
        """
        self._require_prepared()
        if not isinstance(block, np.ndarray) or block.ndim != 2 or block.dtype not in (np.float32, np.float64):
            raise TypeError("block must be a float32 or float64 array of shape (frames, channels)")
        if block.shape[1] != self._z.shape[0]:
            raise ValueError(f"block has {block.shape[1]} channels, meter prepared for {self._z.shape[0]}")
        if block.shape[0] == 0:
            return
        _meter_kernel(
            block,
            self._coeffs,
            self._weights,
            self._z,
            self._ring,
            self._istate,
            self._fstate,
            self._gate_count,
            self._gate_energy,
            self._st_count,
            self._st_energy,
            self._tp_buf,
            self._tp_w,
            self._tp_coeffs,
            self._true_peak,
            self._sample_peak,
            self._step_samples,
            self._do_true_peak,
            self._tp_work,
        )

    def lower_peak_floor(self, floor: np.ndarray) -> None:
        """``floor`` [channels] lowered in place to this meter's true peak so far (linear), channel by channel:
        the floor of :meth:`process_sharing_peaks` for peaks that go to this meter too."""
        np.minimum(floor, self._true_peak, out=floor)

    def process_sharing_peaks(
        self, block: np.ndarray, peaks: np.ndarray, given: bool, floor: np.ndarray | None = None
    ) -> None:
        """:meth:`process` with the block's true peaks shared between meters fed the same samples.

        ``given`` False: as :meth:`process`, and each channel's true peak over ``block`` into ``peaks``
        [channels], exact above ``floor`` (default this meter's true peak so far; :meth:`lower_peak_floor`
        of every meter they go to); True: ``peaks`` is what another meter wrote for this very block, with a
        floor at most this meter's true peak, and this meter's interpolator history is that meter's (both
        have seen at least ``TP_TAPS`` samples and the last ones alike): the 4x interpolation is skipped.
        The state afterwards is the one :meth:`process` leaves, bit for bit (tested).  ``block``: float64
        [frames, channels], finite (as the descriptors feed it).
        """
        self._require_prepared()
        if block.shape[0] == 0:
            return
        if self._do_true_peak:
            _tp_block(
                block,
                self._tp_buf,
                self._tp_w,
                self._tp_coeffs,
                self._tp_work,
                self._true_peak,
                peaks,
                given,
                self._true_peak if floor is None else floor,
            )
        _meter_kernel(
            block,
            self._coeffs,
            self._weights,
            self._z,
            self._ring,
            self._istate,
            self._fstate,
            self._gate_count,
            self._gate_energy,
            self._st_count,
            self._st_energy,
            self._tp_buf,
            self._tp_w,
            self._tp_coeffs,
            self._true_peak,
            self._sample_peak,
            self._step_samples,
            False,
            self._tp_work,
        )

    def kernel_args(self) -> tuple:
        """Everything ``_meter_kernel`` takes after the block, for fused callers (state mutated in place)."""
        self._require_prepared()
        return (
            self._coeffs,
            self._weights,
            self._z,
            self._ring,
            self._istate,
            self._fstate,
            self._gate_count,
            self._gate_energy,
            self._st_count,
            self._st_energy,
            self._tp_buf,
            self._tp_w,
            self._tp_coeffs,
            self._true_peak,
            self._sample_peak,
            self._step_samples,
            self._do_true_peak,
            self._tp_work,
        )

    def read_args(self) -> tuple:
        """Everything ``_read_kernel`` takes before ``out``, for fused callers."""
        self._require_prepared()
        return (
            self._istate,
            self._fstate,
            self._gate_count,
            self._gate_energy,
            self._st_count,
            self._st_energy,
            self._true_peak,
            self._sample_peak,
        )

    def flush_true_peak(self) -> None:
        """End of stream: run ``TP_DELAY`` zeros through the true-peak interpolators.

        The interpolator sees a sample ``TP_DELAY`` samples late; this
        evaluates the inter-sample peaks after the last sample, as if the
        stream were followed by silence (as :func:`dsp.oversample.true_peak_linear`
        does).  Loudness state is untouched.
        """
        self._require_prepared()
        _tp_flush(self._tp_buf, self._tp_w, self._tp_coeffs, self._true_peak, TP_DELAY)

    def read_into(self, out: np.ndarray) -> None:
        """Copy the readouts into ``out`` without allocating.

        Parameters
        ----------
        out : np.ndarray [shape=(6,), dtype=float64]
            Receives ``[momentary_lufs, short_term_lufs, integrated_lufs,
            loudness_range_lu, true_peak_dbtp, sample_peak_dbfs]``
            (see ``READOUT_NAMES``).
        """
        self._require_prepared()
        if not isinstance(out, np.ndarray) or out.dtype != np.float64 or out.shape != (len(READOUT_NAMES),):
            raise TypeError(f"out must be a float64 array of shape ({len(READOUT_NAMES)},)")
        _read_kernel(
            self._istate,
            self._fstate,
            self._gate_count,
            self._gate_energy,
            self._st_count,
            self._st_energy,
            self._true_peak,
            self._sample_peak,
            out,
        )

    # -- readouts -----------------------------------------------------------

    def _read(self, index: int) -> float:
        self.read_into(self._scratch)
        return float(self._scratch[index])

    @property
    def momentary_lufs(self) -> float:
        """Momentary loudness, LUFS: last 400 ms, updated every 100 ms (Tech 3341 "M")."""
        return self._read(0)

    @property
    def short_term_lufs(self) -> float:
        """Short-term loudness, LUFS: last 3 s, updated every 100 ms (Tech 3341 "S")."""
        return self._read(1)

    @property
    def integrated_lufs(self) -> float:
        """Integrated (gated) loudness since reset, LUFS (BS.1770-4 eq. 7; Tech 3341 "I")."""
        self._require_prepared()
        return float(_gated_lufs(self._gate_count, self._gate_energy, RELATIVE_GATE_LU))

    @property
    def loudness_range_lu(self) -> float:
        """Loudness range since reset, LU (EBU Tech 3342)."""
        self._require_prepared()
        return float(_loudness_range_lu(self._st_count, self._st_energy))

    def short_term_percentile_lufs(self, percent: float) -> float:
        """Gated short-term loudness percentile since reset, LUFS (the values LRA is taken from).

        EBU Tech 3342 gating (absolute -70 LUFS, relative -20 LU) of the 3 s
        short-term values every 100 ms, then the ``percent``-th percentile with
        Tech 3342's rank rule, so ``percentile(95) - percentile(10)`` is
        :attr:`loudness_range_lu`.  ``-inf`` before the first complete 3 s
        window, for silence, or when every value is gated.
        """
        self._require_prepared()
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"percent must be within 0..100, got {percent!r}")
        return float(_st_percentile(self._st_count, self._st_energy, percent / 100.0))

    def summary(self, percents: tuple[float, ...]) -> tuple[float, float, float, np.ndarray]:
        """``(integrated_lufs, loudness_range_lu, true_peak_dbtp, [short_term_percentile_lufs(p) for p in
        percents])`` in one call: the same values as those readouts one by one (tested), the short-term
        gating done once (the descriptors' readout each AI hop, issue 19)."""
        self._require_prepared()
        for p in percents:
            if not 0.0 <= p <= 100.0:
                raise ValueError(f"percent must be within 0..100, got {p!r}")
        out = np.empty(3 + len(percents))
        fractions = np.array([p / 100.0 for p in percents], dtype=np.float64)
        _summary_kernel(
            self._gate_count,
            self._gate_energy,
            self._st_count,
            self._st_energy,
            self._true_peak,
            self._sample_peak,
            fractions,
            out,
        )
        return float(out[0]), float(out[1]), float(out[2]), out[3:].copy()

    @property
    def true_peak_dbtp(self) -> float:
        """Max true peak over all channels since reset, dBTP (BS.1770-4 Annex 2)."""
        return self._read(4)

    @property
    def sample_peak_dbfs(self) -> float:
        """Max absolute sample over all channels since reset, dBFS."""
        return self._read(5)

    @property
    def max_momentary_lufs(self) -> float:
        """Largest momentary loudness since reset, LUFS."""
        self._require_prepared()
        return -math.inf if self._istate[_I_STEPS] == 0 else _lufs(self._fstate[_F_MAX_MOMENTARY])

    @property
    def max_short_term_lufs(self) -> float:
        """Largest short-term loudness since reset, LUFS."""
        self._require_prepared()
        return -math.inf if self._istate[_I_STEPS] == 0 else _lufs(self._fstate[_F_MAX_SHORT_TERM])

    def channel_true_peak_dbtp(self) -> np.ndarray:
        """Per-channel true peak since reset, dBTP [shape=(channels,)] (allocates; not for the audio thread)."""
        self._require_prepared()
        with np.errstate(divide="ignore"):
            return 20.0 * np.log10(np.maximum(self._true_peak, self._sample_peak))

    @property
    def nonfinite_count(self) -> int:
        """Number of NaN/Inf input samples measured as 0 since reset."""
        self._require_prepared()
        return int(self._istate[_I_NONFINITE])

    @property
    def spec(self) -> ProcessSpec | None:
        """The spec the meter is prepared for (``None`` before :meth:`prepare`)."""
        return self._spec

    @property
    def sample_rate(self) -> float:
        """Hz."""
        self._require_prepared()
        return self._sample_rate

    @property
    def step_samples(self) -> int:
        """Samples per 100 ms step, ``round(0.1 * sample_rate)``."""
        self._require_prepared()
        return self._step_samples

    @property
    def channel_weights(self) -> np.ndarray:
        """BS.1770-4 channel weights in use [shape=(channels,)] (a copy)."""
        self._require_prepared()
        return self._weights.copy()

    def _require_prepared(self) -> None:
        if self._spec is None:
            raise RuntimeError("LoudnessMeter is not prepared: call prepare(ProcessSpec(...)) first")


def _lufs(energy: float) -> float:
    """BS.1770-4 eq. 2 in Python: -0.691 + 10 log10(energy), -inf for 0."""
    return LOUDNESS_OFFSET_DB + 10.0 * math.log10(energy) if energy > 0.0 else -math.inf


def measure(x: np.ndarray, sample_rate: float, *, channel_weights: Sequence[float] | None = None) -> dict:
    """Offline loudness measurement of a whole buffer.

    Parameters
    ----------
    x : np.ndarray [shape=(frames,) or (frames, channels)]
        Audio, float (any real dtype is converted to float64).
    sample_rate : float
        Hz.
    channel_weights : sequence of float, optional
        As for :class:`LoudnessMeter`.

    Returns
    -------
    dict
        ``integrated_lufs``, ``loudness_range_lu``, ``true_peak_dbtp``,
        ``sample_peak_dbfs``, ``max_momentary_lufs``, ``max_short_term_lufs``
        (floats; ``-inf`` as for the meter's readouts).  The true peak sees
        the end of the buffer (:meth:`LoudnessMeter.flush_true_peak`).
    """
    x = _frames_2d(x)
    meter = LoudnessMeter(
        ProcessSpec(sample_rate=sample_rate, max_block_size=max(1, x.shape[0]), num_channels=x.shape[1]),
        channel_weights=channel_weights,
    )
    meter.process(x)
    meter.flush_true_peak()
    return {
        "integrated_lufs": meter.integrated_lufs,
        "loudness_range_lu": meter.loudness_range_lu,
        "true_peak_dbtp": meter.true_peak_dbtp,
        "sample_peak_dbfs": meter.sample_peak_dbfs,
        "max_momentary_lufs": meter.max_momentary_lufs,
        "max_short_term_lufs": meter.max_short_term_lufs,
    }


def _frames_2d(x: np.ndarray) -> np.ndarray:
    """``x`` [frames] or [frames, channels] as a float32/float64 [frames, channels] array (a view when it can)."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"x must have shape (frames,) or (frames, channels), got {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return x


def true_peak_dbtp(x: np.ndarray) -> float:
    """:func:`measure`'s ``true_peak_dbtp`` alone: the same interpolators and end flush, no K-weighting.

    For a caller that needs only the true peak (the render's delivered pass, whose loudness is
    already measured): the same value as ``measure(x, fs)["true_peak_dbtp"]`` (tested), at about a
    third of the cost.  ``x`` [frames] or [frames, channels]; non-finite samples read as 0.
    :class:`TruePeakMeter` gives the same value over a stream of blocks.
    """
    x = _frames_2d(x)
    meter = TruePeakMeter(x.shape[1])
    meter.process(x)
    return meter.dbtp()


class TruePeakMeter:
    """:func:`true_peak_dbtp` over a stream: :meth:`process` blocks in order, then :meth:`dbtp`.

    The interpolators' state carries from block to block, so any split of a
    buffer gives the value of the whole (tested bit for bit); :meth:`dbtp`
    flushes a copy of the state (the end of the stream followed by silence).
    """

    def __init__(self, channels: int) -> None:
        self._buf = np.zeros((int(channels), 2 * TP_TAPS))
        self._w = np.zeros(int(channels), dtype=np.int64)
        self._peaks = np.zeros(int(channels))
        self._scratch = tp_scratch()

    def process(self, block: np.ndarray) -> None:
        """``block`` [frames, channels] float32/float64 (non-finite samples read as 0)."""
        x = _frames_2d(block)
        if x.shape[1] != self._peaks.shape[0]:
            raise ValueError(f"block has {x.shape[1]} channels, meter made for {self._peaks.shape[0]}")
        for c in range(x.shape[1]):
            peak, w = _tp_channel_peak(x, c, self._buf[c], int(self._w[c]), TP_COEFFS_T, self._scratch)
            self._peaks[c] = max(self._peaks[c], peak)
            self._w[c] = w

    def dbtp(self) -> float:
        """Max true peak over the channels so far, dBTP, the stream's end included (``-inf``: silence)."""
        buf, w, peaks = self._buf.copy(), self._w.copy(), self._peaks.copy()
        _tp_flush(buf, w, TP_COEFFS_T, peaks, TP_DELAY)
        # after the flush every sample has passed the exact-delay branch: the peak is never below the
        # sample peak (which the meter's readout also takes the max with)
        tp = float(peaks.max()) if peaks.shape[0] else 0.0
        return 20.0 * math.log10(tp) if tp > 0.0 else -math.inf
