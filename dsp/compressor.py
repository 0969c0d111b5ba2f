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
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["static_curve_db"]

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
) -> float:  # pragma: no cover
    """Smoothed gain reduction in dB (<= 0) for one linked level sample; ``env[0]`` is the state."""
    if level < _LEVEL_FLOOR:
        level = _LEVEL_FLOOR
    x_db = 20.0 * math.log10(level)
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
