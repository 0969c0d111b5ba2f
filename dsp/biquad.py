"""RBJ-cookbook biquads (low shelf, bell, high shelf, low-pass, high-pass) in transposed direct form II.

Coefficients follow Robert Bristow-Johnson, "Cookbook formulae for audio EQ
biquad filter coefficients" (shelf slope S = 1, i.e. Q = 1/sqrt(2) for the
shelves).  With S fixed, a -G shelf or bell is the exact inverse of the +G one
(numerator and denominator swap), so a +G/-G cascade is the identity.

Coefficient rows are ``[b0, b1, b2, a1, a2]`` normalised by ``a0``.  Centre
and corner frequencies are limited to 0.49 fs so every sample rate from 8 kHz
to 192 kHz gets a stable filter.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba import njit
from numba.core import cgutils, types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

__all__ = ["LOW_SHELF", "BELL", "HIGH_SHELF", "LOW_PASS", "HIGH_PASS", "rbj_coefficients", "response"]

LOW_SHELF, BELL, HIGH_SHELF, LOW_PASS, HIGH_PASS = 0, 1, 2, 3, 4
_DENORMAL = 1e-30
_NYQUIST_FRACTION = 0.49


@njit(cache=True, nogil=True, fastmath=False)  # explicit: never the chain kernel's flags (dsp.fused)
def _rbj_into(
    kind: int, freq_hz: float, gain_db: float, q: float, sample_rate: float, out: np.ndarray
) -> None:  # pragma: no cover
    """Write normalised cookbook coefficients [b0, b1, b2, a1, a2] into ``out``."""
    f = min(freq_hz, _NYQUIST_FRACTION * sample_rate)
    a = 10.0 ** (gain_db / 40.0)  # cookbook: A = 10^(dBgain/40)
    w0 = 2.0 * math.pi * f / sample_rate
    cw = math.cos(w0)
    sw = math.sin(w0)
    if kind == LOW_PASS or kind == HIGH_PASS:  # gain_db unused
        alpha = sw / (2.0 * q)
        if kind == LOW_PASS:
            b0 = (1.0 - cw) / 2.0
            b1 = 1.0 - cw
        else:
            b0 = (1.0 + cw) / 2.0
            b1 = -(1.0 + cw)
        b2 = b0
        a0 = 1.0 + alpha
        a1 = -2.0 * cw
        a2 = 1.0 - alpha
    elif kind == BELL:
        alpha = sw / (2.0 * q)
        b0 = 1.0 + alpha * a
        b1 = -2.0 * cw
        b2 = 1.0 - alpha * a
        a0 = 1.0 + alpha / a
        a1 = -2.0 * cw
        a2 = 1.0 - alpha / a
    else:
        # shelf slope S = 1: alpha = sin(w0)/2 * sqrt((A + 1/A)(1/S - 1) + 2)
        alpha = sw / 2.0 * math.sqrt(2.0)
        sa = 2.0 * math.sqrt(a) * alpha
        if kind == LOW_SHELF:
            b0 = a * ((a + 1.0) - (a - 1.0) * cw + sa)
            b1 = 2.0 * a * ((a - 1.0) - (a + 1.0) * cw)
            b2 = a * ((a + 1.0) - (a - 1.0) * cw - sa)
            a0 = (a + 1.0) + (a - 1.0) * cw + sa
            a1 = -2.0 * ((a - 1.0) + (a + 1.0) * cw)
            a2 = (a + 1.0) + (a - 1.0) * cw - sa
        else:
            b0 = a * ((a + 1.0) + (a - 1.0) * cw + sa)
            b1 = -2.0 * a * ((a - 1.0) + (a + 1.0) * cw)
            b2 = a * ((a + 1.0) + (a - 1.0) * cw - sa)
            a0 = (a + 1.0) - (a - 1.0) * cw + sa
            a1 = 2.0 * ((a - 1.0) - (a + 1.0) * cw)
            a2 = (a + 1.0) - (a - 1.0) * cw - sa
    out[0] = b0 / a0
    out[1] = b1 / a0
    out[2] = b2 / a0
    out[3] = a1 / a0
    out[4] = a2 / a0


@njit(cache=True, nogil=True, inline="always")
def _biquad_tick(c: np.ndarray, z: np.ndarray, x: float) -> float:  # pragma: no cover
    """One sample through TDF-II: ``c`` = [b0, b1, b2, a1, a2], ``z`` = [z1, z2] (updated).

    The states are not flushed here but at the chain's control ticks (:func:`_flush_states`).
    """
    y = c[0] * x + z[0]
    z[0] = c[1] * x - c[3] * y + z[1]
    z[1] = c[2] * x - c[4] * y
    return y


@njit(cache=True, nogil=True, inline="always")
def _flush_states(z: np.ndarray) -> None:  # pragma: no cover
    """Every state of ``z`` (C-contiguous, any shape) under 1e-30 in magnitude to exactly 0.

    The stages call it at every control tick (every ``CONTROL_SAMPLES`` samples) instead of
    flushing both states inside every biquad on every sample: those compares and selects were a fifth
    of a cascade's cost (issue 19; ten bands, stereo, one process, best of 9: 29.4 -> 23.5 ns per
    sample).  Between two ticks a state that was at least 1e-30 decays by at most its pole radius
    to the 31st power, nowhere near the float64 subnormals (2.2e-308); the chain flushes what it
    writes to the float32 output (so no float32 subnormal leaves it).
    """
    f = _flat(z)  # z.reshape(z.size) calls Numba's reshape helper (a C call, at every tick of every stage)
    for i in range(f.shape[0]):
        a = f[i]
        f[i] = 0.0 if abs(a) < _DENORMAL else a  # a select, not a branch: the loop vectorises (NaN kept)


_V2 = ir.VectorType(ir.DoubleType(), 2)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_KEEP = ("arcp",)  # a flag that changes nothing for fmul/fsub and keeps Numba's fastmath rewrite off them


def _contracts(context: Any) -> bool:
    """True when the function being compiled lets floating-point operations contract (fastmath 'contract')."""
    fm = getattr(context, "fastmath", None)
    flags = getattr(fm, "flags", ()) if fm else ()
    return "contract" in flags or "fast" in flags


def _is_f64_array(t: object) -> bool:
    return isinstance(t, types.Array) and t.dtype == types.float64 and t.layout == "C"


def _biquad_x2_typer(typingctx, ca, cb, z, xa, xb):  # pragma: no cover (compiled into the kernels)
    """Two biquads at once as 2-wide vectors: ``(ya, yb)``, lane a with ``ca``, lane b with ``cb``.

    ``ca``, ``cb``: [b0, b1, b2, a1, a2] (C-contiguous float64, may be the same array); ``z``: the
    four states, C-contiguous, lanes innermost: [z1a, z1b, z2a, z2b] (updated).  Compiled into a
    function without fast-math flags, each lane computes what :func:`_biquad_tick` computes, the same
    multiplies and adds in the same order: bit-identical to two scalar biquads.  Compiled into one
    with fastmath 'contract' (the chain kernel, :mod:`dsp.fused`), each lane takes two fused
    multiply-adds (below; error against extended precision tested: under 1e-12 of the peak, within
    twice the plain form's).  The stereo cascade puts
    left and right in the two lanes (:func:`_cascade_tick`), the band-width crossover its low-pass
    and high-pass (:mod:`dsp.width`): half the arithmetic, loads and stores of the scalar pair
    (Numba leaves LLVM's SLP vectoriser off, so it never packs the two itself; issue 19).
    """
    if not (_is_f64_array(ca) and _is_f64_array(cb) and _is_f64_array(z)):
        return None
    sig = types.UniTuple(types.float64, 2)(ca, cb, z, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        pa = context.make_array(signature.args[0])(context, builder, args[0]).data
        pb = context.make_array(signature.args[1])(context, builder, args[1]).data
        pz = context.make_array(signature.args[2])(context, builder, args[2]).data
        dbl = ir.DoubleType()

        def pair(a, b):
            v = builder.insert_element(ir.Constant(_V2, ir.Undefined), a, ir.Constant(_I32, 0))
            return builder.insert_element(v, b, ir.Constant(_I32, 1))

        def coef(i):
            k = ir.Constant(_I64, i)
            a = builder.load(builder.gep(pa, [k], source_etype=dbl), typ=dbl)
            b = builder.load(builder.gep(pb, [k], source_etype=dbl), typ=dbl)
            return pair(a, b)

        c0, c1, c2, c3, c4 = (coef(i) for i in range(5))
        x = pair(args[3], args[4])
        p1 = builder.bitcast(pz, _V2.as_pointer())
        p2 = builder.bitcast(builder.gep(pz, [ir.Constant(_I64, 2)], source_etype=dbl), _V2.as_pointer())
        z1 = builder.load(p1, typ=_V2, align=8)
        z2 = builder.load(p2, typ=_V2, align=8)
        if _contracts(context):
            # TDF-II with two fused multiply-adds (issue 19: the cascade lies on the chain's per-sample
            # critical path; x -> y is one fma instead of a multiply and an add):
            #   y = fma(b0, x, z1); z1 = fma(b1, x, z2) - a1 y; z2 = b2 x - a2 y
            # A 0 dB shelf or bell (b = a, b0 = 1) from zero states stays exactly the identity with zero
            # states (round(b1 x) - round(a1 x) = 0), as the EQ's skip needs (dsp.eq, dsp.tone); its
            # states ring out to exactly 0 as before.  The fsub and fmul carry the flag 'arcp' (it only
            # allows a division by a reciprocal: nothing here) because Numba's fastmath rewrite adds its
            # flags only to instructions without any: contracting a1 y into the subtraction would leave
            # the rounding error of b1 x in the state (and a 0 dB band would never sleep).
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V2, [_V2] * 3), "llvm.fma.v2f64")
            y = builder.call(fma, [c0, x, z1])
            n1 = builder.fsub(builder.call(fma, [c1, x, z2]), builder.fmul(c3, y, flags=_KEEP), flags=_KEEP)
            n2 = builder.fsub(builder.fmul(c2, x, flags=_KEEP), builder.fmul(c4, y, flags=_KEEP), flags=_KEEP)
        else:
            # TDF-II, as _biquad_tick: y = b0 x + z1; z1 = b1 x - a1 y + z2; z2 = b2 x - a2 y
            y = builder.fadd(builder.fmul(c0, x), z1)
            n1 = builder.fadd(builder.fsub(builder.fmul(c1, x), builder.fmul(c3, y)), z2)
            n2 = builder.fsub(builder.fmul(c2, x), builder.fmul(c4, y))
        builder.store(n1, p1, align=8)
        builder.store(n2, p2, align=8)
        ya = builder.extract_element(y, ir.Constant(_I32, 0))
        yb = builder.extract_element(y, ir.Constant(_I32, 1))
        return context.make_tuple(builder, signature.return_type, (ya, yb))

    return sig, codegen


#: ``_biquad_x2(ca, cb, z, xa, xb) -> (ya, yb)`` in jitted code (see :func:`_biquad_x2_typer`)
_biquad_x2: Any = intrinsic(_biquad_x2_typer)


def _flat_typer(typingctx, a):  # pragma: no cover (compiled into the kernels)
    """``a.reshape(a.size)`` for a C-contiguous array, without Numba's reshape helper call."""
    if not (isinstance(a, types.Array) and a.layout == "C"):
        return None
    retty = types.Array(a.dtype, 1, "C")

    def codegen(context, builder, signature, args):
        src = make_array(signature.args[0])(context, builder, args[0])
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(a.dtype)))
        view = make_array(retty)(context, builder)
        populate_array(
            view, data=src.data, shape=[src.nitems], strides=[itemsize], itemsize=itemsize, meminfo=src.meminfo
        )
        return impl_ret_borrowed(context, builder, retty, view._getvalue())

    return retty(a), codegen


#: ``_flat(a)``: a C-contiguous array as a 1-D view, in jitted code (see :func:`_flat_typer`)
_flat: Any = intrinsic(_flat_typer)


@njit(cache=True, nogil=True, inline="always")
def _cascade_tick(
    c: np.ndarray, z: np.ndarray, xl: float, xr: float, mix: float
) -> tuple[float, float]:  # pragma: no cover
    """Stereo sample through the biquads ``c`` [k, 5], blended in by ``mix``.

    States ``z`` [k, 2, 2]: band, state, channel; left and right run as the two lanes of :func:`_biquad_x2`.
    """
    yl = xl
    yr = xr
    for b in range(c.shape[0]):
        cb = c[b]
        yl, yr = _biquad_x2(cb, cb, z[b], yl, yr)
    return xl + mix * (yl - xl), xr + mix * (yr - xr)


def rbj_coefficients(kind: int, freq_hz: float, gain_db: float, q: float, sample_rate: float) -> np.ndarray:
    """Normalised coefficients [b0, b1, b2, a1, a2] (float64) for one cookbook filter."""
    out = np.zeros(5)
    _rbj_into(kind, float(freq_hz), float(gain_db), float(q), float(sample_rate), out)
    return out


def response(coeffs: np.ndarray, freqs_hz: np.ndarray, sample_rate: float) -> np.ndarray:
    """Complex frequency response of the biquad ``coeffs`` [b0, b1, b2, a1, a2] at ``freqs_hz`` (closed form)."""
    c = np.asarray(coeffs, dtype=np.float64)
    z = np.exp(-2j * np.pi * np.asarray(freqs_hz, dtype=np.float64) / float(sample_rate))
    return (c[0] + c[1] * z + c[2] * z * z) / (1.0 + c[3] * z + c[4] * z * z)
