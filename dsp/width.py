"""Stereo width (mid/side): ``side *= stereo_width`` (0 mono, 1 unchanged, 2 double side), and width per band."""

from __future__ import annotations

import numpy as np
from numba import njit

from .biquad import HIGH_PASS, LOW_PASS, _biquad_x2, _flush_states, _rbj_into
from .params import PARAM_INDEX
from .stage import Stage

__all__ = ["WIDTH", "WIDTH_BANDS", "BAND_FADE_S"]

P_WIDTH = PARAM_INDEX["stereo_width"]


def _no_state(sample_rate: float, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    return ()


@njit(cache=True, nogil=True, inline="always")
def _width_tick(xl, xr, mix, v, g, glide_s, sample_rate, stats):  # pragma: no cover
    width = 1.0 + mix * (v[P_WIDTH] - 1.0)
    if width != 1.0:
        mid = 0.5 * (xl + xr)
        side = 0.5 * (xl - xr) * width
        xl = mid + side
        xr = mid - side
    return xl, xr


WIDTH = Stage(
    name="width",
    processor="StereoWidth",
    params=("stereo_width",),
    description="M/S stereo width",
    state_names=(),
    allocate=_no_state,
    tick=_width_tick,
)


# --- width per band ----------------------------------------------------------------------
# Side = low + high through a Linkwitz-Riley crossover (LR4: two cascaded Butterworth biquads per
# branch).  LR4's low and high outputs are in phase at every frequency and their magnitudes sum to 1,
# so side' = width_low * low + width_high * high has |side'| = (width_low |LP| + width_high |HP|)|side|:
# a monotonic blend between the two widths, flat at width 1 (the sum is an all-pass of the side
# signal), with no bump at the crossover.  Mid is untouched, so the mono sum never changes.  At
# width_low = width_high = 1 the stage is exactly the identity: it fades its crossover path in (and
# out) over BAND_FADE_S when a width leaves (returns to) 1, and sleeps, states cleared, when idle.

P_WLOW = PARAM_INDEX["width_low"]
P_WHIGH = PARAM_INDEX["width_high"]
P_XOVER = PARAM_INDEX["width_crossover_hz"]
BAND_FADE_S = 0.02
_SQRT_HALF = 0.7071067811865476


def _bands_allocate(sample_rate: float, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    # c [2, 5]: Butterworth low-pass and high-pass at the crossover; z [2, 2, 2]: the two sections'
    # states (section, state, low-pass / high-pass: the two branches run as lanes of _biquad_x2);
    # fade [3]: crossover-path mix, its per-sample step, wanted (1 while a width is off 1)
    fade = np.zeros(3)
    fade[1] = 1.0 / max(1.0, BAND_FADE_S * sample_rate)
    return (np.zeros((2, 5)), np.zeros((2, 2, 2)), fade)


def _bands_reset(state: tuple[np.ndarray, ...], sample_rate: float, targets: np.ndarray) -> None:
    c, z, fade = state
    c[...] = 0.0
    z[...] = 0.0
    wanted = 1.0 if (targets[P_WLOW] != 1.0 or targets[P_WHIGH] != 1.0) else 0.0
    fade[0] = wanted  # a chain prepared with band widths starts with them
    fade[2] = wanted


@njit(cache=True, nogil=True, inline="always")
def _bands_control(force, sample_rate, v, cc, c, z, fade):  # pragma: no cover
    _flush_states(z)  # the biquads' states (dsp.biquad._flush_states)
    if force or v[P_XOVER] != cc[P_XOVER]:
        _rbj_into(LOW_PASS, v[P_XOVER], 0.0, _SQRT_HALF, sample_rate, c[0])
        _rbj_into(HIGH_PASS, v[P_XOVER], 0.0, _SQRT_HALF, sample_rate, c[1])
    fade[2] = 1.0 if (v[P_WLOW] != 1.0 or v[P_WHIGH] != 1.0) else 0.0


@njit(cache=True, nogil=True, inline="always")
def _bands_tick(xl, xr, mix, v, g, glide_s, sample_rate, stats, c, z, fade):  # pragma: no cover
    m = fade[0]
    if fade[2] > 0.0:
        if m < 1.0:
            m = min(1.0, m + fade[1])
            fade[0] = m
    elif m > 0.0:
        m = max(0.0, m - fade[1])
        fade[0] = m
        if m == 0.0:
            z[...] = 0.0  # asleep: the next wake-up starts from silence
    if m > 0.0 and mix > 0.0:
        mid = 0.5 * (xl + xr)
        side = 0.5 * (xl - xr)
        lo, hi = _biquad_x2(c[0], c[1], z[0], side, side)  # LR4: each branch two Butterworth sections
        lo, hi = _biquad_x2(c[0], c[1], z[1], lo, hi)
        banded = v[P_WLOW] * lo + v[P_WHIGH] * hi
        side = side + m * mix * (banded - side)
        xl = mid + side
        xr = mid - side
    return xl, xr


WIDTH_BANDS = Stage(
    name="width_bands",
    processor="BandWidth",
    params=("width_low", "width_high", "width_crossover_hz"),
    description="M/S width below and above a Linkwitz-Riley crossover",
    state_names=("coefficients", "z", "fade"),
    allocate=_bands_allocate,
    reset=_bands_reset,
    control=_bands_control,
    tick=_bands_tick,
)
