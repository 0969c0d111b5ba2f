"""MixChain: the whole mixing chain in one fused ``@njit(nogil=True)`` call per block.

The stages, in signal order, are the entries of the stage registry
(:mod:`dsp.registry`; signal flow there).  The per-block kernel is generated
from the registry (:mod:`dsp.fused`): one sequential per-sample loop over
every stage, with the limiter stage-major per chunk.

Parameters come from one target vector ordered like :data:`dsp.params.PARAMS`.
When a target changes, that parameter ramps per sample toward it over its
glide time (:mod:`dsp.glide`); gains, mixes, thresholds and the delay time
are read every sample, filter and time-constant coefficients are recomputed
every ``CONTROL_SAMPLES`` samples while their parameter moves.  Control
ticks fall on absolute sample positions (multiples of ``CONTROL_SAMPLES`` since
``prepare``/``reset``), so the output does not depend on how the stream is cut
into blocks.

Each stage can be bypassed; a bypass change crossfades over
``STAGE_GLIDE_S`` (no click).  The reverb and delay are skipped while their
send is zero and their loop is silent, which makes default renders cheap.
NaN/Inf input samples are replaced by zero before they reach any state
(and counted).

:meth:`MixChain.process` calls the kernel (:mod:`dsp.fused`), which
takes the glide banks, the control copy, the int state and every state array
as views of two arenas (one float64, one int64) and rebuilds the views
inside: Numba unboxes each array argument at every call (about 35 ns each,
measured on empty calls: 45 arguments 1.65 us, 14 arguments 0.59 us), and
rebuilding the views inside costs less (128 frames, all stages, one process,
alternating: 20.53 -> 20.23 and 24.84 -> 24.42 us p50).  The arrays stay
ordinary numpy views for everyone else (:meth:`state_arrays`); the engine
calls the same kernel with :meth:`kernel_args` (the same packed arguments).
The views are written directly (:func:`dsp.fused._arena_view`), not by
Numba's ``reshape`` (a C helper call each), and ``process`` checks the usual
arguments in one expression: a 0-frame ``process`` went from 2.0 to 1.2 us
(issue 19).

Every parameter is also an attribute: ``chain.comp_ratio = 4`` sets the
target (validated) exactly like ``chain.set_param("comp_ratio", 4)``, and
``chain.comp_ratio`` reads the target back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from . import fused as _fused
from .gain import P_LOUD, P_OUT
from .glide import make_bank
from .params import (
    N_PARAMS,
    PARAM_INDEX,
    PARAMS,
    ParameterError,
    default_vector,
    hard_ranges,
    validate_value,
    vector_from_mapping,
)
from .registry import REGISTRY, STAGES
from .spec import ProcessSpec, check_block
from .stage import CONTROL_SAMPLES, ST_COMP_GR_DB, ST_LIM_GAIN_MIN, ST_NONFINITE, STAT_NAMES

__all__ = [
    "MixChain",
    "STAGES",
    "CONTROL_SAMPLES",
    "STAGE_GLIDE_S",
    "DEFAULT_GLIDE_S",
    "STAT_NAMES",
    "chain_kernel",
    "P_OUT",
    "P_LOUD",
]

STAGE_GLIDE_S = 0.01  # bypass crossfade
DEFAULT_GLIDE_S = 0.05  # JUCE's usual 50 ms ramp
_FIXED = tuple(i for i, p in enumerate(PARAMS) if p.glide == "fixed")  # structural: read at prepare

_MODULE = _fused.load(REGISTRY)
#: The fused kernel, for callers that fuse the chain with other work in one Numba call:
#: ``chain_kernel(x, out, *chain.kernel_args(), tap)`` (see :mod:`dsp.fused`).
chain_kernel = _MODULE.chain_kernel
_chain_process = _MODULE.chain_process
_settle_kernel = _MODULE.settle_kernel
_NO_TAP = np.zeros((0, 2))
_NDARRAY = np.ndarray
_F32 = np.dtype(np.float32)


class MixChain:
    """The mixing chain (prepare/process/reset).

    Parameters
    ----------
    stages : iterable of str, optional
        Which of :data:`STAGES` exist in this chain (all by default).  The
        standalone processors in :mod:`dsp.processors` are chains with one stage.
    glide_ms : float
        Default ramp time for target changes, in milliseconds.

    Notes
    -----
    ``process(block, out)`` takes float32 arrays of shape (frames, 1 or 2);
    mono is processed as identical left/right and written back as their mean.
    The chain reads ``self.targets`` (or the ``targets`` passed to ``process``)
    at the start of every block.
    """

    def __init__(self, stages: Iterable[str] = STAGES, *, glide_ms: float = DEFAULT_GLIDE_S * 1000.0):
        stages = tuple(stages)
        for s in stages:
            if s not in STAGES:
                raise ValueError(f"unknown stage {s!r}; stages are {', '.join(STAGES)}")
        self.stages = stages
        self._mask = sum(1 << STAGES.index(s) for s in stages)
        self.targets = default_vector()
        #: [2, N_PARAMS]: every target is held inside (minimum, maximum) by the kernel; the table's hard
        #: range unless :meth:`limit` narrows it (a run's ``--ceiling-dbtp`` caps ``limiter_ceiling_dbtp``).
        self.bounds = hard_ranges().T.copy()
        self.glide_s = np.full(N_PARAMS, glide_ms / 1000.0)
        self.enabled = np.ones(len(STAGES))
        self._stage_glide_s = np.full(len(STAGES), STAGE_GLIDE_S)
        self.stats = np.zeros(len(STAT_NAMES))
        self.spec: ProcessSpec | None = None
        self._layout: tuple | None = None
        self._pargs: tuple | None = None  # the kernel's arguments after (x, out), from prepare()
        self._latency = 0

    # -- parameters -------------------------------------------------------
    def set_params(self, values: Mapping[str, object]) -> None:
        """Set targets by name (validated against the parameter table)."""
        self.targets[:] = vector_from_mapping(values, base=self.targets)

    def set_param(self, name: str, value: float, *, glide_ms: float | None = None) -> None:
        v = validate_value(name, value)
        i = PARAM_INDEX[name]
        if glide_ms is not None:
            self.glide_s[i] = glide_ms / 1000.0
        self.targets[i] = v

    def limit(self, name: str, *, minimum: float | None = None, maximum: float | None = None) -> None:
        """Hold ``name`` inside ``[minimum, maximum]`` whatever its target says (``None``: the table's bound).

        The safety net under every layer that writes targets (MIDI, automation,
        the AI): e.g. ``chain.limit("limiter_ceiling_dbtp", maximum=-1.0)`` keeps
        a mapped knob from lifting the ceiling above the run's ``--ceiling-dbtp``.
        The caller that lets a control ask for more says so; the chain only
        holds the bound.  Takes effect at the next block (no glide is skipped).
        """
        i = PARAM_INDEX[name]
        p = PARAMS[i]
        lo = p.minimum if minimum is None else validate_value(name, minimum)
        hi = p.maximum if maximum is None else validate_value(name, maximum)
        if lo > hi:
            raise ParameterError(f"{name}: limit minimum {lo:g} is above maximum {hi:g}")
        self.bounds[0, i] = lo
        self.bounds[1, i] = hi

    def set_bypass(self, stage: str, bypassed: bool = True) -> None:
        if stage not in STAGES:
            raise ParameterError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        self.enabled[STAGES.index(stage)] = 0.0 if bypassed else 1.0

    def value(self, name: str) -> float:
        """Current (possibly gliding) value of a parameter."""
        if self.spec is None:
            raise RuntimeError("prepare() the chain first")
        return float(self._g[0, PARAM_INDEX[name]])

    @property
    def latency_samples(self) -> int:
        """Delay from input to output in samples (the limiter lookahead), 0 without a limiter."""
        return self._latency

    @property
    def comp_gain_reduction_db(self) -> float:
        """Largest compressor gain reduction in the last block (dB, >= 0)."""
        return float(self.stats[ST_COMP_GR_DB])

    @property
    def limiter_gain_reduction_db(self) -> float:
        """Largest limiter gain reduction in the last block (dB, >= 0)."""
        return float(-20.0 * math.log10(max(self.stats[ST_LIM_GAIN_MIN], 1e-12)))

    @property
    def nonfinite_samples(self) -> int:
        """NaN/Inf input samples replaced by zero in the last block."""
        return int(self.stats[ST_NONFINITE])

    # -- prepare / process / reset ---------------------------------------
    def prepare(self, spec: ProcessSpec) -> None:
        """Allocate the stages' state for ``spec`` and reset.

        The state is allocated again only when the spec or a structural
        (``fixed``) parameter such as ``lookahead_ms`` changed since the last
        ``prepare``; otherwise the same arrays are reset in place (so the
        tuple from :meth:`kernel_args` stays valid).
        """
        if spec.num_channels not in (1, 2):
            raise ValueError(f"MixChain processes mono or stereo, not {spec.num_channels} channels")
        fs = float(spec.sample_rate)
        layout = (fs, tuple(float(self.targets[i]) for i in _FIXED))
        self.spec = spec
        if layout != self._layout:
            self._fs = fs
            self._g = make_bank(np.clip(self.targets, self.bounds[0], self.bounds[1]), [p.glide for p in PARAMS])
            self._sm = make_bank(self.enabled, ["linear"] * len(STAGES))
            self._cc = np.zeros(N_PARAMS)
            self._live = np.zeros(N_PARAMS, dtype=np.int64)  # indexes of the gliding parameters
            self._ist = np.zeros(_fused.IST_SIZE, dtype=np.int64)
            states = [s.allocate(fs, self.targets) for s in REGISTRY]
            # every array below, each state array included, lives in one of two arenas, so that
            # process() hands the kernel three arrays for them (module docstring)
            flat = [a for st in states for a in st]
            common = [self._g, self._live, self._sm, self._cc, self._ist]
            fa, ia, lay, views = _fused.pack(common + flat)
            self._g, self._live, self._sm, self._cc, self._ist = views[: len(common)]
            flat_views = iter(views[len(common) :])
            self._states = tuple(tuple(next(flat_views) for _ in st) for st in states)
            self._flat_states = tuple(a for st in self._states for a in st)
            self._latency = sum(
                s.latency(fs, self.targets) for s in REGISTRY if s.latency is not None and s.name in self.stages
            )
            self._pargs = (
                self.targets,
                self.bounds,
                self.glide_s,
                self.enabled,
                self._stage_glide_s,
                self._fs,
                self._mask,
                self.stats,
                fa,
                ia,
                lay,
            )
            self._layout = layout
        self.reset()

    def reset(self) -> None:
        """Clear every state in place; parameters settle on their targets."""
        if self.spec is None:
            return
        self._g[:] = make_bank(np.clip(self.targets, self.bounds[0], self.bounds[1]), [p.glide for p in PARAMS])
        self._sm[:] = make_bank(self.enabled, ["linear"] * len(STAGES))
        self._ist[:] = 0
        for s, st in zip(REGISTRY, self._states):
            s.reset(st, self._fs, self.targets)
        _settle_kernel(self._fs, self._g[0], self._cc, *self._flat_states)

    def kernel_args(self) -> tuple:
        """Everything :data:`chain_kernel` takes after ``(x, out)`` and before ``tap``, for fused callers.

        The arrays are the chain's own state (mutated in place; the state arrays packed in two arenas,
        :func:`dsp.fused.pack`), so the tuple stays valid until a :meth:`prepare` that changes the
        spec or a structural parameter.  ``targets`` and ``glide_s`` are :attr:`targets` and
        :attr:`glide_s`.
        """
        if self.spec is None or self._pargs is None:
            raise RuntimeError("prepare() the chain first")
        return self._pargs

    @property
    def current_values(self) -> np.ndarray:
        """The live (possibly gliding) parameter vector, float64 [N_PARAMS]; a view, do not write."""
        return self._g[0]

    def process(
        self, block: np.ndarray, out: np.ndarray, targets: np.ndarray | None = None, glide_s: np.ndarray | None = None
    ) -> None:
        """Process one block.

        Parameters
        ----------
        block, out : np.ndarray [shape=(frames, channels), dtype=float32]
            ``out`` may be ``block`` (in place).
        targets : np.ndarray [shape=(N_PARAMS,), dtype=float64], optional
            Target vector for this block (defaults to ``self.targets``); values
            must already be validated (the engine clamps before it swaps them in).
        glide_s : np.ndarray [shape=(N_PARAMS,), dtype=float64], optional
            Per-parameter glide time in seconds for targets that change now.
        """
        pargs: Any = self._pargs
        shape: Any = getattr(block, "shape", None)
        # the usual case in one expression (issue 19: half the cost of the general checks below)
        if not (
            pargs is not None
            and type(block) is _NDARRAY
            and type(out) is _NDARRAY
            and block.dtype is _F32
            and out.dtype is _F32
            and len(shape) == 2
            and shape == out.shape
            and 0 < shape[1] < 3
        ):
            if self.spec is None:
                raise RuntimeError("prepare() the chain before process()")
            channels = block.shape[1] if getattr(block, "ndim", 0) == 2 else 0
            check_block(block, out, channels if channels in (1, 2) else 2)
        if targets is None and glide_s is None:
            _chain_process(block, out, *pargs, _NO_TAP)
        else:
            args = list(pargs)
            args[0] = self.targets if targets is None else targets
            args[2] = self.glide_s if glide_s is None else glide_s
            _chain_process(block, out, *args, _NO_TAP)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every state array, as ``"stage.name"`` (for inspection in tests)."""
        if self.spec is None:
            raise RuntimeError("prepare() the chain first")
        return {f"{s.name}.{n}": a for s, st in zip(REGISTRY, self._states) for n, a in zip(s.state_names, st)}


def _param_property(name: str) -> property:
    i = PARAM_INDEX[name]

    def get(self: MixChain) -> float:
        return float(self.targets[i])

    def set(self: MixChain, value: float) -> None:
        self.set_param(name, value)

    return property(get, set, doc=f"target of {name} ({PARAMS[i].description}, {PARAMS[i].range_text})")


for _p in PARAMS:  # chain.comp_ratio = 4 is chain.set_param("comp_ratio", 4)
    setattr(MixChain, _p.name, _param_property(_p.name))
del _p
