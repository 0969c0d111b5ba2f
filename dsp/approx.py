"""Natural log and exponential without libm calls, for loops that LLVM should vectorise (issue 19).

A libm call in a loop keeps the loop scalar and clobbers every vector register
at each call.  These two are plain arithmetic on the float64's bits (two
intrinsics reinterpret them, :func:`_bits` and :func:`_from_bits`), so a loop
over a chunk of samples vectorises across them; the compressor's side chain
takes them (:mod:`dsp.compressor`).

:func:`ln` follows musl's ``log`` (from FreeBSD's ``e_log.c``, Sun Microsystems
1993): the argument split as ``2**k * m`` with ``m`` in [sqrt(1/2), sqrt(2)),
``f = m - 1``, ``s = f / (2 + f)`` and the minimax polynomial ``Lg1..Lg7`` in
``s**2`` (its own error under 2**-58.45), ``k ln 2`` in two parts.  Domain:
positive normal numbers (the compressor's levels are at least 1e-12).

:func:`exp` reduces ``t = k ln 2 + r`` with ``k = floor(t / ln 2 + 1/2)`` (``ln 2`` in
two parts, so ``r`` is exact to about 2**-80 relative to ``t``), ``|r| <= ln(2)/2``,
and sums the Taylor series of ``e**r`` to ``r**13 / 13!`` (the first term left
out is under 4.2e-18, 0.04 ulp of the result), then multiplies by ``2**k``
built from its bits.  Domain: ``|t| <= 700`` (``2**k`` stays a normal number).

Errors, measured against libm (``math.log``, ``math.exp``) over 2**20 arguments
each and tested (``tests/dsp/test_compressor.py``): :func:`ln` within 1 ulp of
its result (or 2**-52 absolute near ``x = 1``, where the result goes to 0),
:func:`exp` within 2 ulp.  In the compressor: the level in dB within 1e-13 dB,
the gain within 5e-16 relative.  Compiled into a kernel with fastmath
'contract' (the chain), multiplies and adds may fuse: the bounds hold for both.
"""

from __future__ import annotations

import math
from typing import Any

from llvmlite import ir  # type: ignore[import-untyped]
from numba import njit
from numba.core import types
from numba.extending import intrinsic

__all__ = ["ln", "exp"]


def _bits_typer(typingctx, x):  # pragma: no cover (compiled into the kernels)
    """The bits of a float64 as an int64 (a register move, no memory)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(x), codegen


def _from_bits_typer(typingctx, i):  # pragma: no cover (compiled into the kernels)
    """The float64 whose bits are the int64 ``i``."""
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(i), codegen


_bits: Any = intrinsic(_bits_typer)
_from_bits: Any = intrinsic(_from_bits_typer)

# musl / FreeBSD e_log.c
_LN2_HI = 6.93147180369123816490e-01  # 3fe62e42 fee00000
_LN2_LO = 1.90821492927058770002e-10  # 3dea39ef 35793c76
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT_HALF_HI = 0x3FE6A09E  # high word of sqrt(1/2)
_SHIFT = (0x3FF00000 - _SQRT_HALF_HI) << 32  # moves m's split point from 1 to sqrt(1/2)
_M_BASE = _SQRT_HALF_HI << 32
_MANTISSA = (1 << 52) - 1

_INV_LN2 = 1.0 / math.log(2.0)
# Taylor coefficients 1/n!, n = 2..13
_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = (1.0 / math.factorial(n) for n in range(2, 14))


@njit(cache=True, nogil=True, inline="always")
def ln(x: float) -> float:  # pragma: no cover
    """Natural log of a positive normal float64 (musl's method; see the module docstring)."""
    ix = _bits(x) + _SHIFT
    k = (ix >> 52) - 1023
    m = _from_bits((ix & _MANTISSA) + _M_BASE)  # in [sqrt(1/2), sqrt(2))
    f = m - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    dk = float(k)
    return s * (hfsq + t2 + t1) + dk * _LN2_LO - hfsq + f + dk * _LN2_HI


@njit(cache=True, nogil=True, inline="always")
def exp(t: float) -> float:  # pragma: no cover
    """e**t for |t| <= 700 (range reduction by ln 2, Taylor series to degree 13; module docstring)."""
    kf = math.floor(t * _INV_LN2 + 0.5)
    r = (t - kf * _LN2_HI) - kf * _LN2_LO
    p = _C12 + r * _C13
    p = _C11 + r * p
    p = _C10 + r * p
    p = _C9 + r * p
    p = _C8 + r * p
    p = _C7 + r * p
    p = _C6 + r * p
    p = _C5 + r * p
    p = _C4 + r * p
    p = _C3 + r * p
    p = _C2 + r * p
    p = 1.0 + r * (1.0 + r * p)
    return p * _from_bits((int(kf) + 1023) << 52)
