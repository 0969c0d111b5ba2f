"""Feedback delay send with two crossfading read heads.

A change of ``delay_ms`` does not move the read head (that would sweep the
pitch of the echoes, tape style): a second head opens at the new delay time
and the output crossfades from the old head to the new one over the
parameter's glide time, then the new head becomes the only one.  A change
that arrives during a crossfade starts when it ends.  Reads are fractional
(linear interpolation).  The send scales what enters the loop, so lowering
it lets the echoes die away naturally, like an aux send on a console.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["buffer_length"]

_FLUSH = 1e-15  # -300 dBFS: below this the loop is silent; lets an idle delay be skipped


def buffer_length(max_delay_ms: float, sample_rate: float) -> int:
    return int(math.ceil(max_delay_ms * sample_rate / 1000.0)) + 3


@njit(cache=True, nogil=True, inline="always")
def _delay_read(buf: np.ndarray, c: int, w: int, delay_samples: float) -> float:  # pragma: no cover
    """Channel ``c``, ``delay_samples`` (>= 1) behind write index ``w``, linearly interpolated."""
    size = buf.shape[1]
    k = math.floor(delay_samples)
    frac = delay_samples - k
    i0 = w - k
    if i0 < 0:
        i0 += size
    i1 = i0 - 1
    if i1 < 0:
        i1 += size
    return (1.0 - frac) * buf[c, i0] + frac * buf[c, i1]


@njit(cache=True, nogil=True, inline="always")
def _delay_write(buf: np.ndarray, c: int, w: int, v: float) -> None:  # pragma: no cover
    if -_FLUSH < v < _FLUSH:
        v = 0.0
    buf[c, w] = v
