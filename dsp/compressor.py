"""Feed-forward log-domain soft-knee compressor with stereo link.

After D. Giannoulis, M. Massberg and J. D. Reiss, "Digital Dynamic Range
Compressor Design — A Tutorial and Analysis", JAES 60(6), 2012:

* level detection on the linked stereo peak ``max(|l|, |r|)`` in dB;
* static gain computer with a quadratic soft knee of width W (their eq. 4);
* the gain reduction ``x_G - y_G`` is smoothed in the log domain by the
  "smooth branching" peak detector (their eq. 12): one-pole attack when the
  reduction rises, one-pole release when it falls, with
  ``alpha = exp(-1 / (tau * fs))`` so a step reaches 1 - 1/e = 63.2 % after
  ``tau`` seconds;
* make-up gain is added after smoothing.

Cost (issue 19): the log of the level and the exponential of the gain are
most of the stage.  The log is the natural one scaled to dB (cheaper than a
base-10 log), and it is not taken for a level surely under
the knee, where eq. (4) is the identity and the reduction exactly 0 (a fifth
of the samples of the benchmark's song); on that song, one process, best of
7: 29.7 -> 22.2 ns per stereo sample.  The gain's exponential stays.

The stage is split (:mod:`dsp.stage`): while none of its parameters, the
input gain or their bypass mixes glide, its side chain (level, log, gain
curve, envelope, exponential) runs over each chunk ahead of the per-sample
loop (:func:`_comp_detect`), which then only multiplies (:func:`_comp_apply`).
The two libm calls per sample left the chain's per-sample path: there they
sat on every sample's dependency chain and the call clobbered every vector
register; ahead, successive samples' calls overlap.  Bit-identical to the
per-sample tick (tested against a kernel generated without the split); the
whole chain at 128 frames, every stage, alternating: 18.9 -> 17.1 us per block.
Ahead, the per-sample part only takes the linked level; the log and the
exponential then run in two passes over the chunk with the parameters in
locals (:func:`_comp_detect_end`): 16.2 -> 15.7 us.  The log and the
exponential are now :mod:`dsp.approx`'s (plain arithmetic, within 1 ulp of
libm, tested), in every path, and the exponential has a pass of its own: the
log's and the exponential's passes vectorise across the chunk (the kernel's
``error_model='numpy'`` lets a loop with a division vectorise).  The
compressor's marginal cost in the chain at 128 frames, every stage, mean of
per-block minima, two runs each: 1.21/1.22 -> 0.38/0.35 us per block.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .approx import exp, ln
from .params import PARAM_INDEX
from .stage import BLOCK_CHUNK, ST_COMP_GR_DB, Stage

__all__ = ["static_curve_db", "COMPRESSOR"]

P_TH = PARAM_INDEX["comp_threshold_db"]
P_RATIO = PARAM_INDEX["comp_ratio"]
P_ATT = PARAM_INDEX["comp_attack_ms"]
P_REL = PARAM_INDEX["comp_release_ms"]
P_KNEE = PARAM_INDEX["comp_knee_db"]
P_MAKEUP = PARAM_INDEX["comp_makeup_db"]
_LN10_20 = math.log(10.0) / 20.0
_DB_PER_NEPER = 20.0 / math.log(10.0)

_DENORMAL = 1e-30
_LEVEL_FLOOR = 1e-12  # -240 dBFS: log of silence stays finite


@njit(cache=True, nogil=True, inline="always")
def _gain_computer_db(x_db: float, threshold_db: float, ratio: float, knee_db: float) -> float:  # pragma: no cover
    """Static curve y_G(x_G) of Giannoulis et al. 2012, eq. (4)."""
    over = x_db - threshold_db
    if 2.0 * over < -knee_db:
        return x_db
    if knee_db > 0.0 and 2.0 * abs(over) <= knee_db:
        t = over + knee_db / 2.0
        return x_db + (1.0 / ratio - 1.0) * t * t / (2.0 * knee_db)
    return threshold_db + over / ratio


def static_curve_db(x_db: float, *, threshold_db: float, ratio: float, knee_db: float) -> float:
    """Output level (dB) of the static gain computer for an input level ``x_db``."""
    return float(_gain_computer_db(float(x_db), float(threshold_db), float(ratio), float(knee_db)))


@njit(cache=True, nogil=True, inline="always")
def _comp_gain_db(
    env: np.ndarray,
    level: float,
    threshold_db: float,
    ratio: float,
    knee_db: float,
    alpha_attack: float,
    alpha_release: float,
    below_knee: float,
) -> float:  # pragma: no cover
    """Smoothed gain reduction in dB (<= 0) for one linked level sample; ``env[0]`` is the state.

    ``below_knee``: a linear level under which the static curve is surely the identity
    (:func:`_below_knee`); there the reduction is exactly 0 and the log is not taken.
    """
    if level < below_knee:
        x_g = 0.0  # eq. (4) returns its input: x_db - y_G(x_db) is exactly 0
    else:
        if level < _LEVEL_FLOOR:
            level = _LEVEL_FLOOR
        x_db = _DB_PER_NEPER * ln(level)  # 20 log10, without a libm call (dsp.approx)
        x_g = x_db - _gain_computer_db(x_db, threshold_db, ratio, knee_db)  # reduction >= 0
    y = env[0]
    if x_g > y:
        y = alpha_attack * y + (1.0 - alpha_attack) * x_g
    else:
        y = alpha_release * y + (1.0 - alpha_release) * x_g
    if y < _DENORMAL:
        y = 0.0
    env[0] = y
    return -y


# --- the chain stage -------------------------------------------------------------------
# state: env [1] (smoothed gain reduction, dB), k [7] = (make-up gain, attack alpha, release alpha, the
# level under the knee (_below_knee), the threshold and knee it was computed for, the make-up in dB),
# gains [BLOCK_CHUNK] (the side chain's gains for the chunk, when it runs ahead: see _comp_steady)


def _allocate(sample_rate: float, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    k = np.zeros(7)
    k[0] = 1.0  # with k[6] = 0: the make-up gain of 0 dB, a consistent pair
    return (np.zeros(1), k, np.ones(BLOCK_CHUNK))


def _reset(state: tuple[np.ndarray, ...], sample_rate: float, targets: np.ndarray) -> None:
    env, k, gains = state
    env[...] = 0.0
    k[...] = 0.0
    k[0] = 1.0
    gains[...] = 1.0


@njit(cache=True, nogil=True, inline="always")
def _below_knee(threshold_db: float, knee_db: float) -> float:  # pragma: no cover
    """A level (linear) under which eq. (4) is surely the identity: the knee's start less a 1e-9 margin.

    The margin (4e-9 dB) is far above the rounding of the log and of the curve's arithmetic, so a
    level under it gives exactly the reduction 0 the full computation gives.
    """
    return math.exp((threshold_db - 0.5 * knee_db) * _LN10_20) * (1.0 - 1e-9)


@njit(cache=True, nogil=True, inline="always")
def _comp_derive(v, env, k, gains):  # pragma: no cover
    if v[P_MAKEUP] != k[6]:  # see dsp.gain._gain_from_db
        k[0] = math.exp(v[P_MAKEUP] * _LN10_20)
        k[6] = v[P_MAKEUP]
    # derive runs every sample while any parameter glides (the loudness follower's delivery gain
    # nearly always): the knee's level is recomputed only when the threshold or the knee moved.
    # k[3] = 0 (after a reset) only ever means "take the log": safe whatever k[4], k[5] hold.
    if v[P_TH] != k[4] or v[P_KNEE] != k[5]:
        k[3] = _below_knee(v[P_TH], v[P_KNEE])
        k[4] = v[P_TH]
        k[5] = v[P_KNEE]


@njit(cache=True, nogil=True, inline="always")
def _comp_control(force, sample_rate, v, cc, env, k, gains):  # pragma: no cover
    if force or v[P_ATT] != cc[P_ATT] or v[P_REL] != cc[P_REL]:
        # one-pole time constants: alpha = exp(-1 / (tau fs)) (Giannoulis et al. 2012, eq. 7)
        k[1] = math.exp(-1000.0 / (v[P_ATT] * sample_rate))
        k[2] = math.exp(-1000.0 / (v[P_REL] * sample_rate))


@njit(cache=True, nogil=True, inline="always")
def _comp_gain(xl, xr, mix, v, stats, env, k):  # pragma: no cover
    """The linear gain for one stereo sample, blended toward 1 by ``mix`` (> 0); advances the envelope."""
    ratio = v[P_RATIO]
    if ratio != 1.0 or env[0] != 0.0:
        level = max(abs(xl), abs(xr))  # stereo link
        gr_db = _comp_gain_db(env, level, v[P_TH], ratio, v[P_KNEE], k[1], k[2], k[3])
        if -gr_db > stats[ST_COMP_GR_DB]:
            stats[ST_COMP_GR_DB] = -gr_db
        gc = exp((gr_db + v[P_MAKEUP]) * _LN10_20)
    else:
        gc = k[0]
    return 1.0 + mix * (gc - 1.0)


@njit(cache=True, nogil=True, inline="always")
def _comp_tick(xl, xr, mix, v, g, glide_s, sample_rate, stats, env, k, gains):  # pragma: no cover
    if mix > 0.0:
        gc = _comp_gain(xl, xr, mix, v, stats, env, k)
        xl *= gc
        xr *= gc
    return xl, xr


@njit(cache=True, nogil=True, inline="always")
def _comp_steady(v, cc, env, k, gains):  # pragma: no cover
    """True when the side chain may run ahead: no control tick of this block can change the coefficients,
    and the ratio is not 1 (where :func:`_comp_gain` takes the log only while the envelope is not 0)."""
    return v[P_ATT] == cc[P_ATT] and v[P_REL] == cc[P_REL] and v[P_RATIO] != 1.0


@njit(cache=True, nogil=True, inline="always")
def _comp_detect(row, xl, xr, mix, v, stats, env, k, gains):  # pragma: no cover
    """Row ``row`` of the side chain ahead: the linked level into ``gains`` (:func:`_comp_detect_end` goes on)."""
    gains[row] = max(abs(xl), abs(xr))  # stereo link


@njit(cache=True, nogil=True, inline="always")
def _comp_detect_end(rows, mix, v, stats, env, k, gains):  # pragma: no cover
    """The rest of :func:`_comp_gain` over the chunk's ``rows`` levels in ``gains``, which get the gains.

    Three passes with the parameters in locals: the reduction the static curve asks for (the log),
    the envelope, the gain (the exponential).  The log and the exponential are :mod:`dsp.approx`'s,
    without libm calls, so the first and the third pass vectorise across the chunk.  The same
    operations in the same order as :func:`_comp_gain` with ratio != 1 (``_comp_steady``).
    """
    if not mix > 0.0:
        return  # _comp_apply passes the sample unchanged, as _comp_tick does
    th = v[P_TH]
    ratio = v[P_RATIO]
    knee = v[P_KNEE]
    makeup = v[P_MAKEUP]
    alpha_attack = k[1]
    alpha_release = k[2]
    below_knee = k[3]
    for j in range(rows):  # as _comp_gain_db, up to the reduction x_g
        level = gains[j]
        if level < below_knee:
            x_g = 0.0
        else:
            if level < _LEVEL_FLOOR:
                level = _LEVEL_FLOOR
            x_db = _DB_PER_NEPER * ln(level)
            x_g = x_db - _gain_computer_db(x_db, th, ratio, knee)
        gains[j] = x_g
    y = env[0]
    peak = stats[ST_COMP_GR_DB]
    for j in range(rows):  # as _comp_gain_db from the envelope on, up to the reduction gr_db
        x_g = gains[j]
        if x_g > y:
            y = alpha_attack * y + (1.0 - alpha_attack) * x_g
        else:
            y = alpha_release * y + (1.0 - alpha_release) * x_g
        if y < _DENORMAL:
            y = 0.0
        gr_db = -y
        if -gr_db > peak:
            peak = -gr_db
        gains[j] = gr_db
    env[0] = y
    stats[ST_COMP_GR_DB] = peak
    for j in range(rows):  # as the rest of _comp_gain
        gc = exp((gains[j] + makeup) * _LN10_20)
        gains[j] = 1.0 + mix * (gc - 1.0)


@njit(cache=True, nogil=True, inline="always")
def _comp_apply(row, xl, xr, mix, v, g, glide_s, sample_rate, stats, env, k, gains):  # pragma: no cover
    """:func:`_comp_tick` with the gain :func:`_comp_detect` computed ahead."""
    if mix > 0.0:
        gc = gains[row]
        xl *= gc
        xr *= gc
    return xl, xr


COMPRESSOR = Stage(
    name="compressor",
    processor="Compressor",
    params=("comp_threshold_db", "comp_ratio", "comp_attack_ms", "comp_release_ms", "comp_knee_db", "comp_makeup_db"),
    description="feed-forward soft-knee compressor, stereo linked",
    state_names=("envelope", "coefficients", "gains"),
    allocate=_allocate,
    reset=_reset,
    derive=_comp_derive,
    control=_comp_control,
    tick=_comp_tick,
    steady=_comp_steady,
    detect=_comp_detect,
    detect_end=_comp_detect_end,
    apply=_comp_apply,
)
