"""Numba entry points for callers that fuse several DSP objects into one GIL-holding call per block.

The engine (:mod:`realtime.engine`) runs the chain, the loudness follower's
meter and the output meters inside one ``@njit`` function, because every
``nogil`` call would release and retake the GIL.  These are the kernels it
calls; the arguments come from the objects, which own (and reset) the state:

``chain_kernel(x, out, *chain.kernel_args(), tap)``
    one block through a prepared :class:`dsp.chain.MixChain`; ``x``/``out``
    float32 [frames, 1|2], ``tap`` float64 [>= frames or 0, 2] receives the
    pre-delivery signal (:mod:`dsp.fused`).
``meter_kernel(x, *meter.kernel_args())``
    one block into a prepared :class:`dsp.meter.LoudnessMeter`; an empty
    first argument (coefficients of shape (0, 5)) turns it off.
``meter_read_kernel(*meter.read_args(), out)``
    the meter's six readouts (``READOUT_NAMES``) into ``out`` float64 [6].

The statistics the chain writes per block are ``chain.stats``, slots
``ST_COMP_GR_DB``, ``ST_LIM_GAIN_MIN``, ``ST_NONFINITE``.
"""

from __future__ import annotations

from .chain import chain_kernel
from .meter import _meter_kernel as meter_kernel
from .meter import _read_kernel as meter_read_kernel
from .stage import ST_COMP_GR_DB, ST_LIM_GAIN_MIN, ST_NONFINITE

__all__ = ["chain_kernel", "meter_kernel", "meter_read_kernel", "ST_COMP_GR_DB", "ST_LIM_GAIN_MIN", "ST_NONFINITE"]
