"""The fused chain kernel, generated from the stage registry at import.

:func:`generate_source` writes one ``@njit`` function, ``chain_kernel``, that
runs every stage of :data:`dsp.registry.REGISTRY` per sample in signal order
(the per-sample loop the chain always had, now written by a program): the
glide of every parameter, each stage's ``derive`` while anything glides, each
stage's ``control`` at the control ticks, the input sanitiser, each stage's
``tick`` (sends summed after their run), the pre-delivery tap, and the block
stage (limiter) stage-major per chunk.  A stage whose bit is not in ``mask``
is skipped.  A split stage (the compressor, :mod:`dsp.stage`) runs its side
chain over each chunk before the per-sample loop when nothing it reads glides
in the block (decided at the block's start), and per sample otherwise.

The kernel is compiled with ``_nrt=False`` (Numba's switch for its reference
counting): it allocates nothing and only borrows the caller's arrays, and
with reference counting on, every array a stage kernel takes costs an
incref/decref pair per sample (measured: 3 ns per array per sample, +30 % on
the whole chain).  Without it the generated chain is as fast as the
hand-written one it replaced (128 frames, all stages on, side by side:
chain p50 17.5 us against 18.9 us; ``mixpilot bench`` engine p50 within 2 %).

Where the time goes (issue 19, 128 frames at 48 kHz stereo, every stage
active at ``benchmarks.chain_vs_pedalboard.SETTINGS``; the machine was shared,
so every comparison below was measured in one process, alternating, best or
p50 of several runs):

* per call, before any sample: ``MixChain.process`` with 0 frames took
  2.2 us, 0.7 us of it Python and the rest mostly Numba unboxing the array
  arguments (about 35 ns each: an empty ``@njit`` function with 45 arrays
  costs 1.65 us, with 14 0.59 us).  ``process`` now calls ``chain_kernel``
  with the banks and state arrays packed in two arenas (14 arguments; 0.3-0.4
  us less per block, :mod:`dsp.chain`); the kernel builds their views itself
  with :func:`_arena_view` (Numba's ``reshape`` took 0.7 us for the 34 views);
* per sample (each stage alone on the signal it gets inside the chain, main
  before issue 19's third round, ns per sample, one noisy run): compressor 38
  (libm's log and exp), tonal-match EQ 36 and four-band EQ 14 (stereo
  biquads), reverb 30, limiter 23 (mostly its true-peak detector), band
  widths 7, delay 4.5, gains and width about 1.  The detector now vectorises across each
  chunk (:mod:`dsp.limiter`), the biquads flush their states at the control
  ticks instead of twice per biquad per sample (:func:`dsp.biquad._flush_states`),
  the compressor skips the log under the knee (:mod:`dsp.compressor`).
* Not kept: a stage-major form of this kernel (each stage over a 32-sample
  segment before the next, stages with their state in locals, glides still
  per sample; bit-identical to this one, tested) was no faster -- 23.9 against
  26.4 us, then 31.0 against 30.5 us once the biquads' flushes had gone --
  and took 135 s to compile against 17 s.  The per-sample cost is arithmetic
  (the flushes were a fifth of a biquad), not loads and stores: with every
  coefficient and state in locals the ten-band cascade spills registers and
  ran slower (45 against 39 ns per sample).  Short series for the
  compressor's log and exp (an int64 view of a float64 slot) were slower than
  libm (28 against 7.7 ns for both): the store and load through memory
  chain the samples.
* Fourth round (128 frames, every stage, sum over blocks of each block's
  fastest of 8 passes, alternating with main): 19.8 us -> 18.9 (stereo
  biquads as 2-wide vectors, :func:`dsp.biquad._biquad_x2`) -> 17.1 (the
  compressor's side chain ahead, above) -> 16.2 (views and argument checks);
  marginal cost of each stage afterwards, in us per block (one noisy run):
  reverb 3.6, tonal-match EQ 2.8, limiter 2.4, compressor 1.9, four-band EQ
  1.6, band widths 1.2, delay 0.9, gains and width 0.5-0.8; no stage at all
  3.0 (1.2 of it per call, the rest the loop, glides and control ticks).
  Not kept, each bit-identical and measured in one process against this
  kernel: the per-sample loop skewed so that the stages after the tonal-match
  EQ run one sample behind the ones before it (two independent halves per
  iteration for the core to overlap: 17-21 against 16.2 us); the stages up
  to the tonal-match EQ in their own loop over the chunk before the rest
  (17.6 against 17.5); the reverb's read side (line outputs, damping, mix,
  which do not depend on the current input) over the chunk ahead (17.2-17.3
  against 16.1-16.6: in the fused loop that work was already off the
  critical path); a wavefront over the ten-band cascade (biquad b on sample
  n - b; 21-25 against 20 ns per sample alone).  What is left is the
  arithmetic itself, kept bit-exact (no FMA, no reassociation).
* Fifth round (128 frames, every stage, mean over blocks of each block's
  fastest of 8 passes, alternating with main c67caba; each step bit-identical):
  15.5 us -> 15.15 (the reverb's ring rows one cache line longer than their
  power-of-two ring: the eight lines' writes at the shared index had fallen
  into one set of the 8-way L1 data cache, :func:`dsp.reverb.ring_size`; the
  reverb's marginal cost 3.5 -> 3.1) -> 15.0 (the position and the glide
  counts in locals through the loop; the reverb's and the limiter's indexes
  unsigned, so that Numba emits no wraparound for them) -> 14.8 (one kernel
  that takes the packed arguments and builds the views: before,
  ``chain_process`` built them and called ``chain_kernel`` with all 45
  arrays, each passed as its whole struct; a 0-frame ``process`` 1.26 ->
  0.99 us).  Marginal costs afterwards, us per block (one noisy run): reverb
  3.1, tonal-match EQ 3.0 (1.4-2.8 in other runs: the cascade lies on the
  per-sample critical path, and what it costs depends on what overlaps it),
  limiter 2.0 (its true-peak detector about 0.5 of it: at these settings
  only about a quarter of the samples lie in a window that can reach the
  ceiling), four-band EQ 1.6, compressor 1.2, band widths 0.9, output gain
  0.7 (the limiter's work at +8 dB), delay 0.6; no stage 2.5.  Not kept: the
  reverb's eight lines as the lanes of one 8-wide vector (an LLVM
  ``<8 x double>`` intrinsic like :func:`dsp.biquad._biquad_x2`: reads,
  damping, the butterflies by shuffles, feeds; bit-identical, tested) --
  24.6 against 24.3 ns per sample alone, 15.0 against 14.8 us in the chain:
  the reverb is not bound by its arithmetic (its four all-passes alone cost
  about half of it); the limiter's per-sample loop split into passes (the
  gain each sample requires; minimum, release and average; delay and
  clamp): no faster alone; the all-passes' loop unrolled and the delay's
  indexes unsigned: no difference in the chain.  Not tried: a float32
  true-peak detector (twice the lanes: 8.9 -> 4.9 ns per sample and channel
  alone, so about 0.25 us per block here; not bit-identical); skipping the
  tonal-match EQ's bands at 0 dB one by one (bit-identical, but every band is
  off 0 dB at the bench settings).
* Sixth round: no longer bit-exact against the old arithmetic (issue 19
  allows it; block-size invariance and live = offline stay exact, since every
  caller runs this one kernel).  ``chain_kernel`` and ``settle_kernel`` are
  compiled with ``fastmath={'contract'}`` (multiplies and adds may fuse; no
  reassociation, no other fast-math assumption: NaN and signed-zero handling
  unchanged), and the biquads, which lie on the per-sample critical path, take
  two explicit fused multiply-adds (:func:`dsp.biquad._biquad_x2`).
  ``generate_source(..., contract=False)`` gives the kernel without
  contraction (before the compressor's log and exponential changed, main's
  kernel bit for bit); the tests state the difference (float32 output within 2**-24, in under
  0.1 % of the samples; the biquad within 1e-12 of its peak of an
  extended-precision reference).  Chain at 128 frames, every stage, mean of
  per-block minima, alternating with main 2e24976, 4 runs each (load 3.9):
  14.4-15.1 -> 13.3-13.5 us.  Numba compiles an ``@njit`` callee that is
  not inlined with its caller's ``fastmath`` and ``error_model`` unless the
  callee sets them, and its disk cache does not key on them: which version
  a run got would depend on who compiled it first.  So each such callee of
  the chain (coefficients, glides, the limiter's block, the detector's sums)
  says ``fastmath=False``: the contraction covers the kernel's inlined stage
  code and the biquads, nothing else.  The kernel also takes
  ``error_model='numpy'`` (a float division by zero gives inf/NaN instead of
  raising: no test and branch per division, and a loop with one can
  vectorise), and the compressor's log and exponential are
  :mod:`dsp.approx`'s (within 1 ulp of libm, tested), so that its side
  chain's passes vectorise: its marginal cost 1.2 -> 0.36 us.  Chain at 128
  frames, every stage, mean of per-block minima, alternating with main: 14.4
  -> 12.1 us; marginal costs afterwards (us per block, one run): reverb 2.8,
  limiter 2.0-2.2, tonal-match EQ 2.2, four-band EQ 1.2, band widths 1.1,
  output gain 0.9, delay 0.7, width 0.5, compressor 0.4, input gain 0.4; no
  stage 2.0.  ``mixpilot bench --quick`` alternating with main 2e24976, 6 runs
  each (load 2.0-2.8): ratio p50 main 0.49/0.45/0.48/0.50/0.51/0.51 (median
  0.495), this 0.45/0.53/0.47/0.46/0.37/0.44 (median 0.455); chain p50 main
  14.7-20.1 us, this 13.4-16.7.

The source is written to a file under Numba's cache directory (keyed by the
hash of every DSP source file, :mod:`dsp`) and imported from there, so Numba
caches its compilation like any other kernel; :data:`SOURCE` holds it for
reading.  Nothing is written when the file already holds the same source.

``chain_kernel(x, out, *kernel_args, tap)`` is the entry point for callers
that fuse the chain with other work in one Numba call (the engine):
``kernel_args`` comes from :meth:`dsp.chain.MixChain.kernel_args`, ``tap`` is
a float64 array of at least ``len(x)`` rows and 2 columns that receives the
stereo signal just before the stage marked ``tap_before`` (zero rows: no tap).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable
from types import ModuleType

import numpy as np
from numba.core import cgutils, types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from .stage import BLOCK_CHUNK, CONTROL_SAMPLES, ST_NONFINITE, STATS_INIT, Stage

__all__ = [
    "generate_source",
    "load",
    "pack",
    "PROCESS_ARGS",
    "PACKED",
    "IST_POS",
    "IST_GLIDING",
    "IST_STAGE_GLIDING",
    "IST_SIZE",
]

#: The arguments of ``chain_kernel`` between ``x, out`` and the arenas: the common arguments that
#: are not packed.
PROCESS_ARGS = ("targets", "bounds", "glide_s", "enabled", "stage_glide_s", "sample_rate", "mask", "stats")
#: The common arrays ``chain_kernel`` takes packed (name, dtype kind, ndim), before the state arrays.
PACKED = (("g", "f", 2), ("live", "i", 1), ("sm", "f", 2), ("cc", "f", 1), ("ist", "i", 1))
IST_POS, IST_GLIDING, IST_STAGE_GLIDING = range(3)  # slots of the chain's int state ``ist``
IST_SIZE = 3


@intrinsic
def _arena_view(typingctx, arena, offset, shape):  # pragma: no cover (compiled into chain_kernel)
    """``arena[offset : offset + prod(shape)].reshape(shape)`` for a C-contiguous 1-D ``arena``, unchecked.

    Numba's ``reshape`` calls a C helper (numba_attempt_nocopy_reshape) for every view: rebuilding
    the chain's 34 arrays that way cost about 0.7 us per block (issue 19).  Here the view's shape
    and strides are written directly; :func:`pack` made the layout, so nothing is checked.
    """
    if not (isinstance(arena, types.Array) and arena.ndim == 1 and arena.layout == "C"):
        return None
    if not (isinstance(offset, types.Integer) and isinstance(shape, types.UniTuple)):
        return None
    if not isinstance(shape.dtype, types.Integer):
        return None
    nd = shape.count
    retty = types.Array(arena.dtype, nd, "C")

    def codegen(context, builder, sig, args):
        src = make_array(sig.args[0])(context, builder, args[0])
        off = context.cast(builder, args[1], sig.args[1], types.intp)
        dims = [context.cast(builder, d, shape.dtype, types.intp) for d in cgutils.unpack_tuple(builder, args[2], nd)]
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(arena.dtype)))
        strides = [itemsize] * nd
        for d in range(nd - 2, -1, -1):
            strides[d] = builder.mul(strides[d + 1], dims[d + 1])
        view = make_array(retty)(context, builder)
        populate_array(
            view,
            data=builder.gep(src.data, [off]),
            shape=dims,
            strides=strides,
            itemsize=itemsize,
            meminfo=src.meminfo,
            parent=src.parent,
        )
        return impl_ret_borrowed(context, builder, retty, view._getvalue())

    return retty(arena, offset, shape), codegen


def state_arg_names(s: Stage) -> list[str]:
    return [f"{s.name}__{n}" for n in s.state_names]


def _kinds(s: Stage) -> list[tuple[str, int]]:
    """(dtype kind, ndim) of each of the stage's state arrays, from an allocation at 48 kHz."""
    from .params import default_vector

    out = []
    for name, a in zip(s.state_names, s.allocate(48000.0, default_vector())):
        if a.dtype not in (np.float64, np.int64) or not a.flags.c_contiguous or a.ndim > 3:
            raise TypeError(f"{s.name}.{name}: state arrays are C-contiguous float64 or int64, at most 3-D")
        out.append(("f" if a.dtype == np.float64 else "i", a.ndim))
    return out


def pack(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Copy ``arrays`` (float64 or int64) into two arenas; returns ``(fa, ia, lay, views)``.

    ``views[j]`` is ``arrays[j]``'s copy as a view of its arena (use it in its place); row ``j`` of
    ``lay`` [n, 5] int64 is (offset, size, shape...) as ``chain_kernel`` reads it.
    """
    sizes = {"f": 0, "i": 0}
    for a in arrays:
        sizes["f" if a.dtype == np.float64 else "i"] += a.size
    fa = np.zeros(max(sizes["f"], 1))
    ia = np.zeros(max(sizes["i"], 1), dtype=np.int64)
    lay = np.zeros((len(arrays), 5), dtype=np.int64)
    offs = {"f": 0, "i": 0}
    views = []
    for j, a in enumerate(arrays):
        kind = "f" if a.dtype == np.float64 else "i"
        arena = fa if kind == "f" else ia
        o = offs[kind]
        view = arena[o : o + a.size].reshape(a.shape)
        view[...] = a
        views.append(view)
        lay[j, 0] = o
        lay[j, 1] = a.size
        lay[j, 2 : 2 + a.ndim] = a.shape
        offs[kind] = o + a.size
    return fa, ia, lay, views


def _side_params(stages: tuple[Stage, ...]) -> list[int]:
    """[N_PARAMS] 1 for every parameter of ``stages`` (a split stage's side chain reads those), else 0."""
    from .params import N_PARAMS, PARAM_INDEX

    out = [0] * N_PARAMS
    for s in stages:
        for p in s.params:
            out[PARAM_INDEX[p]] = 1
    return out


def _fn_import(fn: Callable[..., object], alias: str) -> str:
    py = getattr(fn, "py_func", None)
    if py is None:
        raise TypeError(f"{alias}: stage kernels must be @njit functions, got {fn!r}")
    mod = sys.modules[py.__module__]
    if getattr(mod, py.__name__, None) is not fn:
        raise TypeError(f"{alias}: {py.__module__}.{py.__name__} must be a module-level function")
    return f"from {py.__module__} import {py.__name__} as {alias}"


def generate_source(registry: tuple[Stage, ...], *, ahead: bool = True, contract: bool = True) -> str:
    """Python source of the module holding ``chain_kernel`` and ``settle_kernel`` for ``registry``.

    ``ahead=False``: split stages always take their per-sample ``tick`` (the tests' reference for
    the side chains that run ahead; see :mod:`dsp.stage`).  ``contract=False``: both kernels without
    ``fastmath={'contract'}`` (no fused multiply-add anywhere: the tests' reference for the error
    the contraction makes).
    """
    # error_model='numpy': a float division by zero gives inf/NaN instead of raising, so it needs no
    # test and branch; a loop with a division can then vectorise (the compressor's log, dsp.approx)
    fastmath = ", error_model='numpy'" + (", fastmath={'contract'}" if contract else "")
    imports = ["import numpy as np", "from numba import njit", ""]
    imports.append(
        "from mixpilot.dsp.glide import _glide_retarget, _glide_retarget_bounded, _glide_tick, _glide_tick_live"
    )
    imports.append("from mixpilot.dsp.fused import _arena_view")
    for k, s in enumerate(registry):
        for role, fn in s.kernels().items():
            imports.append(_fn_import(fn, f"s{k}_{role}"))
    state_args = [a for s in registry for a in state_arg_names(s)]
    sig = ", ".join(["x", "out", *PROCESS_ARGS, "fa", "ia", "lay", "tap"])
    common = "v, g, glide_s, sample_rate, stats"
    block = [k for k, s in enumerate(registry) if s.kind == "block"]
    split = [k for k, s in enumerate(registry) if s.detect is not None and ahead]
    for k in split:
        impure = [t.name for t in registry[:k] if not (t.pure and t.kind == "serial")]
        if impure:
            raise ValueError(f"{registry[k].name}: the stages before a split stage must be pure, not {impure}")
    chunk = BLOCK_CHUNK if block or split else 1 << 30

    def st(s: Stage) -> str:
        return "".join(f", {a}" for a in state_arg_names(s))

    body = [
        f"CONTROL_SAMPLES = {CONTROL_SAMPLES}",
        f"CHUNK = {chunk}",
        "_DENORMAL = 1e-30",
        *(f"_SIDE{k} = np.array({_side_params(registry[: k + 1])!r}, dtype=np.int64)" for k in split),
        "",
        "",
        "@njit(inline='always')",
        "def _flush(a):  # pragma: no cover",
        '    """No float32 subnormal leaves the chain (the biquads flush their states every tick only)."""',
        "    return 0.0 if -_DENORMAL < a < _DENORMAL else a",
        "",
        "",
        "@njit(inline='always')",
        "def _clean(a):  # pragma: no cover",
        '    """The input sanitiser\'s value (NaN/Inf and subnormals to 0), without its count."""',
        "    if not (abs(a) < 1e30):",
        "        return 0.0",
        "    if -_DENORMAL < a < _DENORMAL:",
        "        return 0.0",
        "    return a",
        "",
        "",
        f"@njit(cache=True, nogil=True, _nrt=False{fastmath})",
        f"def chain_kernel({sig}):  # pragma: no cover",
        '    """One block through every stage in ``mask`` (generated by dsp.fused from the registry)."""',
        "    # the packed arrays as views of the arenas fa (float64) and ia (int64)",
    ]
    # the arrays of PACKED and every state array rebuilt as views of two arenas (fewer arguments to
    # unbox per call, and no call with every array passed: see the module docstring)
    packed = [*PACKED, *((a, kind, ndim) for s in registry for a, (kind, ndim) in zip(state_arg_names(s), _kinds(s)))]
    for j, (name, kind, ndim) in enumerate(packed):
        arena = "fa" if kind == "f" else "ia"
        dims = ", ".join(f"lay[{j}, {2 + d}]" for d in range(ndim))
        body.append(f"    {name} = _arena_view({arena}, lay[{j}, 0], ({dims}{',' if ndim == 1 else ''}))")
    body += [
        "    nch = x.shape[1]",
        f"    ist[{IST_GLIDING}] = _glide_retarget_bounded(g, targets, bounds, glide_s, sample_rate, live)",
        f"    ist[{IST_STAGE_GLIDING}] = _glide_retarget(sm, enabled, stage_glide_s, sample_rate)",
        "    v = g[0]",
        "    mix = sm[0]",
    ]
    body += [f"    stats[{i}] = {val!r}" for i, val in enumerate(STATS_INIT)]
    body += [
        "    has_tap = tap.shape[0] > 0",
    ]
    for k in split:  # may this stage's side chain run ahead over the chunks of this block?
        body += [
            f"    ahead{k} = (mask & {1 << k}) != 0 and s{k}_steady(v, cc{st(registry[k])})",
            f"    for j in range({k + 1}):",
            "        if sm[3, j] > 0.0:  # a bypass mix glides",
            f"            ahead{k} = False",
            f"    for j in range(ist[{IST_GLIDING}]):",
            f"        if _SIDE{k}[live[j]] != 0:  # a parameter it depends on glides",
            f"            ahead{k} = False",
        ]
    body += [
        f"    has_block = {f'(mask & {1 << block[0]}) != 0' if block else 'False'}",
        "    frames = x.shape[0]",
        "    # the position and the two glide counts in locals through the loop, stored back at the end: in",
        "    # ist they were stored and loaded again every sample (Numba cannot tell ist from the arrays written)",
        f"    pos = ist[{IST_POS}]",
        f"    gliding = ist[{IST_GLIDING}]",
        f"    stage_gliding = ist[{IST_STAGE_GLIDING}]",
        "    for start in range(0, frames, CHUNK):",
        "        stop = min(start + CHUNK, frames)",
    ]
    for k in split:
        body += [
            f"        if ahead{k}:  # the side chain of {registry[k].name} over the chunk, first",
            "            for n in range(start, stop):",
            "                xl = _clean(np.float64(x[n, 0]))",
            "                xr = _clean(np.float64(x[n, nch - 1]))",
        ]
        for j in range(k):
            body += [
                f"                if mask & {1 << j}:  # {registry[j].name}",
                f"                    xl, xr = s{j}_tick(xl, xr, mix[{j}], {common}{st(registry[j])})",
            ]
        body += [f"                s{k}_detect(n - start, xl, xr, mix[{k}], v, stats{st(registry[k])})"]
        if registry[k].detect_end is not None:
            body += [f"            s{k}_detect_end(stop - start, mix[{k}], v, stats{st(registry[k])})"]
    body += [
        "        for n in range(start, stop):",
        "            if gliding > 0:",
        "                gliding = _glide_tick_live(g, live, gliding)",
    ]
    body += [f"                s{k}_derive(v{st(s)})" for k, s in enumerate(registry) if s.derive is not None]
    body += [
        "            if stage_gliding > 0:",
        "                stage_gliding = _glide_tick(sm)",
        "            if (pos & (CONTROL_SAMPLES - 1)) == 0:",
    ]
    body += [
        f"                s{k}_control(False, sample_rate, v, cc{st(s)})"
        for k, s in enumerate(registry)
        if s.control is not None
    ]
    body += [
        "                for i in range(v.shape[0]):",
        "                    cc[i] = v[i]",
        "            pos += 1",
        "            xl = np.float64(x[n, 0])",
        "            xr = np.float64(x[n, nch - 1])",
        "            # NaN/Inf never reach a state; subnormal input is flushed",
        "            if not (abs(xl) < 1e30):",
        "                xl = 0.0",
        f"                stats[{ST_NONFINITE}] += 1.0",
        "            elif -_DENORMAL < xl < _DENORMAL:",
        "                xl = 0.0",
        "            if not (abs(xr) < 1e30):",
        "                xr = 0.0",
        f"                stats[{ST_NONFINITE}] += 1.0",
        "            elif -_DENORMAL < xr < _DENORMAL:",
        "                xr = 0.0",
    ]
    in_sends = False
    for k, s in enumerate(registry):
        bit = 1 << k
        if s.kind == "send" and not in_sends:
            body += ["            wet_l = 0.0", "            wet_r = 0.0"]
            in_sends = True
        if s.kind != "send" and in_sends:
            body += ["            xl += wet_l", "            xr += wet_r"]
            in_sends = False
        if s.tap_before:
            body += ["            if has_tap:", "                tap[n, 0] = xl", "                tap[n, 1] = xr"]
        if s.kind == "serial" and k in split:
            body += [
                f"            if mask & {bit}:  # {s.name}",
                f"                if ahead{k}:",
                f"                    xl, xr = s{k}_apply(n - start, xl, xr, mix[{k}], {common}{st(s)})",
                "                else:",
                f"                    xl, xr = s{k}_tick(xl, xr, mix[{k}], {common}{st(s)})",
            ]
        elif s.kind == "serial":
            body += [
                f"            if mask & {bit}:  # {s.name}",
                f"                xl, xr = s{k}_tick(xl, xr, mix[{k}], {common}{st(s)})",
            ]
        elif s.kind == "send":
            body += [
                f"            if mask & {bit}:  # {s.name}",
                f"                wl, wr = s{k}_tick(xl, xr, mix[{k}], {common}{st(s)})",
                "                wet_l += wl",
                "                wet_r += wr",
            ]
    if in_sends:
        body += ["            xl += wet_l", "            xr += wet_r"]
    out_lines = [
        "            elif nch == 1:" if block else "            if nch == 1:",
        "                out[n, 0] = 0.5 * (_flush(xl) + _flush(xr))",
        "            else:",
        "                out[n, 0] = _flush(xl)",
        "                out[n, 1] = _flush(xr)",
    ]
    if block:
        k = block[0]
        s = registry[k]
        body += [
            f"            if has_block:  # {s.name}",
            f"                s{k}_feed(n - start, xl, xr, mix[{k}], v{st(s)})",
            *out_lines,
            "        if has_block:",
            f"            s{k}_run(out, start, stop - start, stats{st(s)})",
        ]
    else:
        body += out_lines
    body += [
        f"    ist[{IST_POS}] = pos",
        f"    ist[{IST_GLIDING}] = gliding",
        f"    ist[{IST_STAGE_GLIDING}] = stage_gliding",
    ]
    body += ["", "", "chain_process = chain_kernel  # the name MixChain.process and the tests call it by"]
    settle_sig = ", ".join(["sample_rate", "v", "cc", *state_args])
    body += [
        "",
        "",
        f"@njit(cache=True, nogil=True{fastmath})",
        f"def settle_kernel({settle_sig}):  # pragma: no cover",
        '    """At reset: every derived value and coefficient from ``v``; ``cc`` = ``v``."""',
    ]
    body += [f"    s{k}_derive(v{st(s)})" for k, s in enumerate(registry) if s.derive is not None]
    body += [
        f"    s{k}_control(True, sample_rate, v, cc{st(s)})" for k, s in enumerate(registry) if s.control is not None
    ]
    body += ["    for i in range(v.shape[0]):", "        cc[i] = v[i]", ""]
    header = [
        '"""Generated by mixpilot.dsp.fused from the stage registry: do not edit (see dsp/fused.py)."""',
        "",
    ]
    return "\n".join(header + imports + ["", ""] + body)


def _cache_root() -> str:
    import numba

    return os.path.join(str(numba.config.CACHE_DIR), "fused")


def _write_if_changed(path: str, text: str) -> None:
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return  # unchanged: keep the file's time stamp, so Numba's cache stays valid
    except OSError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".fused-", suffix=".py")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(registry: tuple[Stage, ...], name: str = "chain", *, ahead: bool = True, contract: bool = True) -> ModuleType:
    """Generate, write (when new) and import the fused module for ``registry`` (options: :func:`generate_source`)."""
    return load_source(generate_source(registry, ahead=ahead, contract=contract), name)


def load_source(text: str, name: str) -> ModuleType:
    """Write (when new) and import generated source under Numba's cache directory, so Numba caches it."""
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    modname = f"mixpilot.dsp._fused_{name}_{digest}"
    if modname in sys.modules:
        return sys.modules[modname]
    try:
        path = os.path.join(_cache_root(), f"_fused_{name}_{digest}.py")
        _write_if_changed(path, text)
    except OSError:  # a read-only cache: a private directory (compiles at every start)
        path = os.path.join(tempfile.mkdtemp(prefix="mixpilot-fused-"), f"_fused_{name}_{digest}.py")
        _write_if_changed(path, text)
    spec = importlib.util.spec_from_file_location(modname, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    mod.SOURCE = text  # type: ignore[attr-defined]
    return mod
