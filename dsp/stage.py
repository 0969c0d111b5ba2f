"""What a stage of the mixing chain declares: its parameters, its state arrays and its kernels.

A :class:`Stage` is one entry of the chain's registry (:mod:`dsp.registry`),
in the spirit of JUCE's ``juce::dsp::ProcessorChain`` and pedalboard's plugin
list: everything the chain needs to know about a stage lives in its entry,
next to its kernel.  The fused per-block kernel is generated from the
registry (:mod:`dsp.fused`), :class:`dsp.chain.MixChain` allocates and resets
the state arrays the entries declare, and :mod:`dsp.processors` makes one
standalone processor per entry.  Adding a stage is its kernel, its rows in
:mod:`dsp.params` and one registry entry.

Kernel calling conventions (every function is ``@njit(inline="always")``,
module level, and is called from the generated kernel with the stage's state
arrays appended in the order of ``state_names``).  ``inline="always"`` matters:
a stage kernel that stays a real call costs about 20 ns per sample (the
arrays cross a function boundary every sample); inlined into the generated
loop, which Numba compiles without reference counting, the registry costs
nothing against the hand-written loop it replaced (measured, see
:mod:`dsp.fused`):

``tick(xl, xr, mix, v, g, glide_s, sample_rate, stats, *state) -> (a, b)``
    one stereo sample.  ``mix`` is the stage's bypass mix (0 bypassed .. 1
    on, glided), ``v`` the current parameter vector (``g[0]``), ``g`` the
    whole glide bank (targets in ``g[1]``), ``stats`` the chain's per-block
    statistics (slots ``ST_*``).  A ``serial`` stage returns the processed
    sample; a ``send`` stage returns its wet signal, which is added to the dry
    signal after the last send of a run of consecutive sends (they all hear
    the same input).
``derive(v, *state)``
    optional: values derived from parameters that are read every sample
    (a dB gain as a linear factor).  Called every sample while any parameter
    glides, and at reset.
``control(force, sample_rate, v, cc, *state)``
    optional: coefficients (filters, time constants), called every
    ``CONTROL_SAMPLES`` samples; ``cc`` holds ``v`` as it was at the last
    control tick, so a stage recomputes only what moved (``force`` at reset).

A ``serial`` stage may also split its tick into a side chain that runs ahead
over the chunk and a per-sample apply (the compressor: its log and exp, out
of the per-sample loop, overlap across samples instead of lying on every
sample's path through the chain):

``steady(v, cc, *state) -> bool``
    at the start of a block: True when no control tick of this block can
    change what the side chain reads (the chain also checks that no parameter
    of this stage or of the stages before it glides, nor their bypass mixes);
``detect(row, xl, xr, mix, v, stats, *state)``
    the side chain for row ``row`` of the chunk, on the sample as this stage
    would receive it (the stages before it must be ``pure``: a tick that only
    reads its state, so the chain can run it twice); an optional
    ``detect_end(rows, mix, v, stats, *state)`` goes on over the chunk's rows;
``apply(row, xl, xr, mix, v, g, glide_s, sample_rate, stats, *state) -> (a, b)``
    what ``tick`` returns, from what ``detect`` stored.  Both paths must give
    the same bits (tested), so which one a block takes never shows.

A ``block`` stage (the limiter) runs stage-major over chunks of
``BLOCK_CHUNK`` samples instead of ``tick``: per sample
``feed(k, xl, xr, mix, v, *state)`` stores row ``k`` of its input; after the
chunk ``run(out, start, frames, stats, *state)`` processes the rows and
writes ``out[start:start + frames]`` (mono as the mean of left and right).
At most one block stage, and it is the last.

Python side: ``allocate(sample_rate, targets)`` returns the state arrays
(``targets`` holds the ``fixed`` parameters such as ``lookahead_ms``),
``reset(state, sample_rate, targets)`` clears them in place (default: every
array to zero), ``latency(sample_rate, targets)`` is the stage's delay in
samples (default 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Stage",
    "KINDS",
    "ST_COMP_GR_DB",
    "ST_LIM_GAIN_MIN",
    "ST_NONFINITE",
    "STATS_INIT",
    "STAT_NAMES",
    "CONTROL_SAMPLES",
    "BLOCK_CHUNK",
    "zero_state",
]

KINDS = ("serial", "send", "block")

#: Per-block statistics every stage may write (``stats`` in the kernels); reset at each block start.
STAT_NAMES = ("comp_gain_reduction_db", "limiter_gain_min", "nonfinite_samples")
ST_COMP_GR_DB, ST_LIM_GAIN_MIN, ST_NONFINITE = range(3)
STATS_INIT = (0.0, 1.0, 0.0)

CONTROL_SAMPLES = 32  # sub-block rate for coefficient updates (power of two)
BLOCK_CHUNK = 256  # a block stage runs stage-major over chunks of this many samples

StateArrays = tuple[np.ndarray, ...]


def zero_state(state: StateArrays, sample_rate: float, targets: np.ndarray) -> None:
    """The default reset: every state array to zero."""
    for a in state:
        a[...] = 0


@dataclass(frozen=True)
class Stage:
    """One stage of the chain: name, parameters, state and kernels (see the module docstring)."""

    name: str
    processor: str  # class name of its standalone processor in dsp.processors
    params: tuple[str, ...]  # its rows in dsp.params, in table order
    description: str
    state_names: tuple[str, ...]
    allocate: Callable[[float, np.ndarray], StateArrays]
    tick: Any = None  # njit dispatcher (serial and send stages)
    kind: str = "serial"
    derive: Any = None
    control: Any = None
    feed: Any = None  # block stage
    run: Any = None  # block stage
    reset: Callable[[StateArrays, float, np.ndarray], None] = zero_state
    latency: Callable[[float, np.ndarray], int] | None = None
    tap_before: bool = False  # the chain's pre-delivery tap is taken just before this stage
    steady: Any = None  # split serial stage: side chain ahead (module docstring)
    detect: Any = None
    detect_end: Any = None  # optional, after detect's rows: (rows, mix, v, stats, *state)
    apply: Any = None
    pure: bool = False  # its tick only reads its state (may run before a split stage's side chain)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"stage {self.name}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.kind == "block":
            if self.feed is None or self.run is None or self.tick is not None:
                raise ValueError(f"stage {self.name}: a block stage has feed and run, no tick")
        elif self.tick is None or self.feed is not None or self.run is not None:
            raise ValueError(f"stage {self.name}: a {self.kind} stage has a tick, no feed/run")
        split = (self.steady, self.detect, self.apply)
        if any(f is not None for f in split) and (self.kind != "serial" or any(f is None for f in split)):
            raise ValueError(f"stage {self.name}: a split stage is serial and has steady, detect and apply")
        if self.detect_end is not None and self.detect is None:
            raise ValueError(f"stage {self.name}: detect_end goes with detect")

    def kernels(self) -> dict[str, Any]:
        """The njit functions this stage declares, by role."""
        roles = ("tick", "derive", "control", "feed", "run", "steady", "detect", "detect_end", "apply")
        return {r: getattr(self, r) for r in roles if getattr(self, r) is not None}
