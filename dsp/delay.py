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

from .params import PARAM_INDEX, PARAMS
from .stage import Stage

__all__ = ["buffer_length", "DELAY"]

P_DL_SEND = PARAM_INDEX["delay_send"]
P_DL_MS = PARAM_INDEX["delay_ms"]
P_DL_FB = PARAM_INDEX["delay_feedback"]
_MAX_DELAY_MS = PARAMS[P_DL_MS].maximum

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


# --- the chain stage (a send: wet added to the dry signal) ------------------------------
# state: buf [2, N] (the loop), f [4] = (head A delay, head B delay, crossfade position, crossfade
# step), i [4] int = (write index, crossfade samples left, samples the loop has been silent, buffer
# length: a loop silent that long is skipped)
_W, _XF, _QUIET, _IDLE = range(4)


def _allocate(sample_rate: float, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    buf = np.zeros((2, buffer_length(_MAX_DELAY_MS, sample_rate)))
    i = np.zeros(4, dtype=np.int64)
    i[_IDLE] = buf.shape[1]
    return (buf, np.zeros(4), i)


def _reset(state: tuple[np.ndarray, ...], sample_rate: float, targets: np.ndarray) -> None:
    buf, f, i = state
    buf[...] = 0.0
    f[:] = 0.0
    f[0] = targets[P_DL_MS] * sample_rate * 0.001
    i[_W] = i[_XF] = 0
    i[_QUIET] = i[_IDLE]  # starts idle


@njit(cache=True, nogil=True, inline="always")
def _delay_send_tick(xl, xr, mix, v, g, glide_s, sample_rate, stats, buf, f, st):  # pragma: no cover
    """The wet (left, right) for one sample; skipped while the send is 0 and the loop is silent."""
    send = v[P_DL_SEND] * mix
    if send != 0.0 or st[_QUIET] < st[_IDLE]:
        target_d = g[1, P_DL_MS] * sample_rate * 0.001
        if st[_XF] == 0 and target_d != f[0]:
            # open the second head at the new time; crossfade over this parameter's glide
            f[1] = target_d
            f[2] = 0.0
            nx = int(glide_s[P_DL_MS] * sample_rate + 0.5)
            st[_XF] = nx if nx > 1 else 1
            f[3] = 1.0 / st[_XF]
        fb = v[P_DL_FB]
        w = st[_W]
        dl = _delay_read(buf, 0, w, f[0])
        dr = _delay_read(buf, 1, w, f[0])
        if st[_XF] > 0:
            m = f[2]
            dl = dl + m * (_delay_read(buf, 0, w, f[1]) - dl)
            dr = dr + m * (_delay_read(buf, 1, w, f[1]) - dr)
            st[_XF] -= 1
            if st[_XF] == 0:
                f[0] = f[1]
                f[2] = 0.0
            else:
                f[2] = m + f[3]
        il = xl * send
        ir = xr * send
        _delay_write(buf, 0, w, il + fb * dl)
        _delay_write(buf, 1, w, ir + fb * dr)
        w += 1
        if w == buf.shape[1]:
            w = 0
        st[_W] = w
        # every write of the last buffer-length samples was zero -> the loop is silent
        if il == 0.0 and ir == 0.0 and dl == 0.0 and dr == 0.0:
            st[_QUIET] += 1
        else:
            st[_QUIET] = 0
        return dl, dr
    return 0.0, 0.0


DELAY = Stage(
    name="delay",
    processor="Delay",
    params=("delay_send", "delay_ms", "delay_feedback"),
    description="feedback delay send with crossfading heads (wet added to dry)",
    kind="send",
    state_names=("buffer", "heads", "indexes"),
    allocate=_allocate,
    reset=_reset,
    tick=_delay_send_tick,
)
