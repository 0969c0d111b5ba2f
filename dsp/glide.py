"""Parameter glide: every parameter ramps per sample toward its target.

One small component reused everywhere (after JUCE ``SmoothedValue``).  A bank
is a float64 array ``g`` of shape (5, n):

=========  =====================================================
``g[0]``   current value
``g[1]``   target
``g[2]``   per-sample increment (additive) or factor (geometric)
``g[3]``   samples left in the ramp (0 = settled)
``g[4]``   style: 0 additive (linear, dB), 1 geometric (Hz, ms, Q,
           ratio), 2 fixed (never glides; read at prepare)
=========  =====================================================

A ramp always lands exactly on its target after ``round(glide_s * fs)``
samples: additive ramps (mix amounts and dB values — a dB ramp is a
multiplicative ramp of the linear gain) step by a constant; geometric ramps
multiply by a constant factor, i.e. move in equal steps of log-frequency or
log-time.  Re-targeting mid-ramp starts a new ramp from the current value, so
no change is ever a step.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["G_VALUE", "G_TARGET", "G_INC", "G_LEFT", "G_STYLE", "STYLE_CODES", "make_bank", "Glide"]

G_VALUE, G_TARGET, G_INC, G_LEFT, G_STYLE = 0, 1, 2, 3, 4
STYLE_CODES = {"linear": 0.0, "db": 0.0, "geometric": 1.0, "fixed": 2.0}


def make_bank(values: np.ndarray, styles: list[str] | tuple[str, ...]) -> np.ndarray:
    """A settled glide bank holding ``values`` with the given glide styles."""
    values = np.asarray(values, dtype=np.float64)
    g = np.zeros((5, values.shape[0]), dtype=np.float64)
    g[G_VALUE] = values
    g[G_TARGET] = values
    g[G_STYLE] = [STYLE_CODES[s] for s in styles]
    return g


@njit(cache=True, nogil=True, inline="always")
def _arm(g: np.ndarray, i: int, t: float, glide_s: np.ndarray, sample_rate: float) -> None:  # pragma: no cover
    style = g[4, i]
    if style < 1.5 and t != g[1, i]:
        g[1, i] = t
        ns = np.floor(glide_s[i] * sample_rate + 0.5)
        if ns < 1.0:
            ns = 1.0
        if style > 0.5:
            g[2, i] = (t / g[0, i]) ** (1.0 / ns)
        else:
            g[2, i] = (t - g[0, i]) / ns
        g[3, i] = ns


@njit(cache=True, nogil=True, fastmath=False)  # explicit: never the chain kernel's flags (dsp.fused)
def _glide_retarget(
    g: np.ndarray, targets: np.ndarray, glide_s: np.ndarray, sample_rate: float
) -> int:  # pragma: no cover
    """Arm a ramp for every entry whose target changed; return how many are ramping."""
    active = 0
    for i in range(g.shape[1]):
        _arm(g, i, targets[i], glide_s, sample_rate)
        if g[3, i] > 0.0:
            active += 1
    return active


@njit(cache=True, nogil=True, fastmath=False)  # explicit: never the chain kernel's flags (dsp.fused)
def _glide_retarget_bounded(
    g: np.ndarray, targets: np.ndarray, bounds: np.ndarray, glide_s: np.ndarray, sample_rate: float, live: np.ndarray
) -> int:  # pragma: no cover
    """:func:`_glide_retarget` with every target held inside ``bounds`` [2, n] (minimum, maximum).

    ``live`` [n] receives the indexes of the ramping entries (the count is
    returned), so that :func:`_glide_tick_live` touches only those: a chain
    with 40 parameters of which one glides (the loudness follower's delivery
    gain, nearly always) pays for one per sample, not for 40.
    """
    active = 0
    for i in range(g.shape[1]):
        t = targets[i]
        if t > bounds[1, i]:
            t = bounds[1, i]
        elif t < bounds[0, i]:
            t = bounds[0, i]
        _arm(g, i, t, glide_s, sample_rate)
        if g[3, i] > 0.0:
            live[active] = i
            active += 1
    return active


@njit(cache=True, nogil=True, inline="always")
def _step(g: np.ndarray, i: int) -> bool:  # pragma: no cover
    """One sample of entry ``i``'s ramp (it must be ramping); True while it still ramps."""
    left = g[3, i] - 1.0
    if left <= 0.0:
        g[0, i] = g[1, i]
        g[3, i] = 0.0
        return False
    if g[4, i] > 0.5:
        g[0, i] *= g[2, i]
    else:
        g[0, i] += g[2, i]
    g[3, i] = left
    return True


@njit(cache=True, nogil=True, fastmath=False)  # explicit: never the chain kernel's flags (dsp.fused)
def _glide_tick_live(g: np.ndarray, live: np.ndarray, count: int) -> int:  # pragma: no cover
    """:func:`_glide_tick` over the ``count`` entries listed in ``live`` (kept compact); return how many still ramp."""
    active = 0
    for k in range(count):
        i = live[k]
        if _step(g, i):
            live[active] = i
            active += 1
    return active


@njit(cache=True, nogil=True, fastmath=False)  # explicit: never the chain kernel's flags (dsp.fused)
def _glide_tick(g: np.ndarray) -> int:  # pragma: no cover
    """Advance every ramping entry by one sample; return how many still ramp."""
    active = 0
    for i in range(g.shape[1]):
        if g[3, i] > 0.0 and _step(g, i):
            active += 1
    return active


@njit(cache=True, nogil=True)
def _glide_fill(g: np.ndarray, i: int, out: np.ndarray) -> None:  # pragma: no cover
    """Advance entry ``i`` for ``len(out)`` samples, writing each value (testing aid)."""
    for n in range(out.shape[0]):
        if g[3, i] > 0.0:
            _step(g, i)
        out[n] = g[0, i]


class Glide:
    """A single smoothed value (JUCE ``SmoothedValue`` shape) over the bank kernels.

    Parameters
    ----------
    value : float
        Initial (settled) value.
    style : {"linear", "db", "geometric"}
    sample_rate : float
    glide_s : float
        Ramp time in seconds used by :meth:`set_target`.
    """

    def __init__(self, value: float, *, style: str = "linear", sample_rate: float, glide_s: float = 0.05):
        if style == "geometric" and value <= 0:
            raise ValueError("geometric glide needs a positive value")
        self._g = make_bank(np.array([value]), [style])
        self._t = np.array([value], dtype=np.float64)
        self._s = np.array([glide_s], dtype=np.float64)
        self.sample_rate = float(sample_rate)

    @property
    def value(self) -> float:
        return float(self._g[G_VALUE, 0])

    @property
    def target(self) -> float:
        return float(self._g[G_TARGET, 0])

    @property
    def is_smoothing(self) -> bool:
        return bool(self._g[G_LEFT, 0] > 0)

    def set_target(self, target: float, glide_s: float | None = None) -> None:
        if glide_s is not None:
            self._s[0] = glide_s
        self._t[0] = target
        _glide_retarget(self._g, self._t, self._s, self.sample_rate)

    def next_block(self, out: np.ndarray) -> None:
        """Fill ``out`` (float64 [n]) with the next ``n`` per-sample values."""
        _glide_fill(self._g, 0, out)
