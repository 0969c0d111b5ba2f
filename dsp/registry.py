"""The stage registry: the mixing chain's stages in signal order (one entry per stage).

Each entry is a :class:`dsp.stage.Stage` declared next to its kernel.  From
this tuple come the fused per-block kernel (:mod:`dsp.fused`), the state
:class:`dsp.chain.MixChain` allocates, the stage names ``MixChain`` accepts
and bypasses (:data:`STAGES`), and the standalone processors
(:mod:`dsp.processors`).  Every parameter of :mod:`dsp.params` belongs to
exactly one stage (checked below at import).

Signal flow::

    input gain -> compressor -> EQ -> tonal-match EQ -> + reverb send \\  parallel sends from the
                                                        + delay send  /  EQ output, wet added to dry
       -> stereo width -> width per band -> [tap] -> output gain x loudness gain
       -> lookahead true-peak limiter
"""

from __future__ import annotations

from .compressor import COMPRESSOR
from .delay import DELAY
from .eq import EQ
from .gain import INPUT_GAIN, OUTPUT_GAIN
from .limiter import LIMITER
from .params import PARAM_NAMES
from .reverb import REVERB
from .stage import Stage
from .tone import TONE
from .width import WIDTH, WIDTH_BANDS

__all__ = ["REGISTRY", "STAGES", "stage"]

REGISTRY: tuple[Stage, ...] = (
    INPUT_GAIN,
    COMPRESSOR,
    EQ,
    TONE,
    REVERB,
    DELAY,
    WIDTH,
    WIDTH_BANDS,
    OUTPUT_GAIN,
    LIMITER,
)

STAGES: tuple[str, ...] = tuple(s.name for s in REGISTRY)


def stage(name: str) -> Stage:
    """The registry entry called ``name``."""
    for s in REGISTRY:
        if s.name == name:
            return s
    raise KeyError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")


def _check(registry: tuple[Stage, ...]) -> None:
    names = [s.name for s in registry]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate stage names in {names}")
    if len(registry) > 62:
        raise ValueError("at most 62 stages (the stage mask is an int64)")
    owned = [p for s in registry for p in s.params]
    missing = sorted(set(PARAM_NAMES) - set(owned))
    unknown = sorted(set(owned) - set(PARAM_NAMES))
    dup = sorted({p for p in owned if owned.count(p) > 1})
    if missing or unknown or dup:
        raise ValueError(f"parameters without a stage {missing}, unknown {unknown}, in two stages {dup}")
    blocks = [i for i, s in enumerate(registry) if s.kind == "block"]
    if len(blocks) > 1 or (blocks and blocks[0] != len(registry) - 1):
        raise ValueError("at most one block stage, and it must be the last")
    if sum(s.tap_before for s in registry) > 1:
        raise ValueError("at most one stage takes the tap")


_check(REGISTRY)
