"""Stereo width (mid/side): ``side *= stereo_width`` (0 mono, 1 unchanged, 2 double side)."""

from __future__ import annotations

import numpy as np
from numba import njit

from .params import PARAM_INDEX
from .stage import Stage

__all__ = ["WIDTH"]

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
