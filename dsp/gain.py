"""Gain stages: the input gain (before the chain) and the output gain (after it).

The output stage multiplies by ``output_gain_db + loudness_gain_db`` (the
user's/AI's output gain and the delivery gain the loudness follower or
``render`` sets); the chain's pre-delivery tap is taken just before it.  A
bypassed gain stage glides its linear factor to 1.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .params import PARAM_INDEX
from .stage import Stage

__all__ = ["INPUT_GAIN", "OUTPUT_GAIN"]

_LN10_20 = math.log(10.0) / 20.0
P_IN = PARAM_INDEX["input_gain_db"]
P_OUT = PARAM_INDEX["output_gain_db"]
P_LOUD = PARAM_INDEX["loudness_gain_db"]


def _one_gain(sample_rate: float, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    return (np.array([1.0, 0.0]),)  # [linear gain, the dB it was computed for]


def _reset_gain(state: tuple[np.ndarray, ...], sample_rate: float, targets: np.ndarray) -> None:
    state[0][:] = (1.0, 0.0)  # a consistent pair: exp(0) = 1 exactly


@njit(cache=True, nogil=True, inline="always")
def _gain_from_db(db, d):  # pragma: no cover
    """``d[0]`` = the linear gain of ``db``, recomputed only when ``db`` moved (``d[1]``).

    ``derive`` runs every sample while any parameter glides, and in the engine the follower's
    delivery gain nearly always does: an exp per stage per sample for values that had not moved.
    """
    if db != d[1]:
        d[0] = math.exp(db * _LN10_20)
        d[1] = db


@njit(cache=True, nogil=True, inline="always")
def _input_derive(v, d):  # pragma: no cover
    _gain_from_db(v[P_IN], d)


@njit(cache=True, nogil=True, inline="always")
def _output_derive(v, d):  # pragma: no cover
    _gain_from_db(v[P_OUT] + v[P_LOUD], d)


@njit(cache=True, nogil=True, inline="always")
def _gain_tick(xl, xr, mix, v, g, glide_s, sample_rate, stats, d):  # pragma: no cover
    gi = 1.0 + mix * (d[0] - 1.0)
    xl *= gi
    xr *= gi
    return xl, xr


INPUT_GAIN = Stage(
    name="input_gain",
    processor="Gain",
    params=("input_gain_db",),
    description="gain before the chain",
    state_names=("gain",),
    allocate=_one_gain,
    reset=_reset_gain,
    derive=_input_derive,
    tick=_gain_tick,
    pure=True,
)

OUTPUT_GAIN = Stage(
    name="output_gain",
    processor="OutputGain",
    params=("output_gain_db", "loudness_gain_db"),
    description="output gain x delivery (loudness) gain",
    state_names=("gain",),
    allocate=_one_gain,
    reset=_reset_gain,
    derive=_output_derive,
    tick=_gain_tick,
    tap_before=True,
)
