"""The four-band EQ stage: low shelf, mid bell, high shelf, presence bell (RBJ biquads, :mod:`dsp.biquad`).

A 0 dB shelf or bell is exactly the identity (its numerator equals its denominator), so with the four
gains at 0 dB and every state at zero the biquads are skipped, bit-identical to running them (decided
at the control ticks, as in :mod:`dsp.tone`): a neutral EQ costs one test per sample (issue 19: a
60 s stereo render with the default model's neutral EQ spent about a sixth of its chain time here).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .biquad import BELL, HIGH_SHELF, LOW_SHELF, _cascade_tick, _flush_states, _rbj_into
from .params import PARAM_INDEX
from .stage import Stage

__all__ = ["EQ"]

_SQRT_HALF = math.sqrt(0.5)
P_LOW_G = PARAM_INDEX["low_gain_db"]
P_LOW_F = PARAM_INDEX["low_freq_hz"]
P_MID_G = PARAM_INDEX["mid_gain_db"]
P_MID_F = PARAM_INDEX["mid_freq_hz"]
P_MID_Q = PARAM_INDEX["mid_q"]
P_HIGH_G = PARAM_INDEX["high_gain_db"]
P_HIGH_F = PARAM_INDEX["high_freq_hz"]
P_PRES_G = PARAM_INDEX["presence_gain_db"]
P_PRES_F = PARAM_INDEX["presence_freq_hz"]
P_PRES_Q = PARAM_INDEX["presence_q"]


def _allocate(sample_rate: float, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    # coefficients [band, b0 b1 b2 a1 a2], TDF-II states [band, state, channel], active [1]: 1 while a gain
    # is off 0 dB or a state is not 0
    return (np.zeros((4, 5)), np.zeros((4, 2, 2)), np.ones(1))


@njit(cache=True, nogil=True, inline="always")
def _changed(v, cc, a, b, c):  # pragma: no cover
    return v[a] != cc[a] or v[b] != cc[b] or v[c] != cc[c]


@njit(cache=True, nogil=True, inline="always")
def _eq_control(force, sample_rate, v, cc, c, z, act):  # pragma: no cover
    _flush_states(z)  # the biquads' states (dsp.biquad._flush_states)
    if force or _changed(v, cc, P_LOW_G, P_LOW_F, P_LOW_F):
        _rbj_into(LOW_SHELF, v[P_LOW_F], v[P_LOW_G], _SQRT_HALF, sample_rate, c[0])
    if force or _changed(v, cc, P_MID_G, P_MID_F, P_MID_Q):
        _rbj_into(BELL, v[P_MID_F], v[P_MID_G], v[P_MID_Q], sample_rate, c[1])
    if force or _changed(v, cc, P_HIGH_G, P_HIGH_F, P_HIGH_F):
        _rbj_into(HIGH_SHELF, v[P_HIGH_F], v[P_HIGH_G], _SQRT_HALF, sample_rate, c[2])
    if force or _changed(v, cc, P_PRES_G, P_PRES_F, P_PRES_Q):
        _rbj_into(BELL, v[P_PRES_F], v[P_PRES_G], v[P_PRES_Q], sample_rate, c[3])
    active = 0.0
    if v[P_LOW_G] != 0.0 or v[P_MID_G] != 0.0 or v[P_HIGH_G] != 0.0 or v[P_PRES_G] != 0.0:
        active = 1.0
    else:
        for k in range(4):
            if z[k, 0, 0] != 0.0 or z[k, 0, 1] != 0.0 or z[k, 1, 0] != 0.0 or z[k, 1, 1] != 0.0:
                active = 1.0
                break
    act[0] = active


@njit(cache=True, nogil=True, inline="always")
def _eq_tick(xl, xr, mix, v, g, glide_s, sample_rate, stats, c, z, act):  # pragma: no cover
    if mix > 0.0 and act[0] != 0.0:
        xl, xr = _cascade_tick(c, z, xl, xr, mix)
    return xl, xr


EQ = Stage(
    name="eq",
    processor="Equalizer",
    params=(
        "low_gain_db",
        "low_freq_hz",
        "mid_gain_db",
        "mid_freq_hz",
        "mid_q",
        "high_gain_db",
        "high_freq_hz",
        "presence_gain_db",
        "presence_freq_hz",
        "presence_q",
    ),
    description="low shelf, mid bell, high shelf, presence bell",
    state_names=("coefficients", "z", "active"),
    allocate=_allocate,
    control=_eq_control,
    tick=_eq_tick,
)
