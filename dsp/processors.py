"""Standalone processors: each stage of the chain on its own, one per registry entry.

Every processor is a :class:`~dsp.chain.MixChain` holding a single stage, so
it runs exactly the kernel code the full chain runs (the same stage kernels
inside the same generated loop) and shares its prepare/process/reset
contract, glide and bypass.  The classes are made from the stage registry
(:mod:`dsp.registry`): a new stage gets its processor without code here.
Each exposes only its stage's parameters, as keyword arguments and as
attributes (``comp.comp_ratio = 4`` sets the target the kernel glides to;
another stage's parameter is an ``AttributeError``), like pedalboard's plugins.
"""

from __future__ import annotations

from collections.abc import Mapping

from .chain import MixChain
from .params import PARAM_INDEX, validate_value
from .registry import REGISTRY
from .stage import Stage

__all__ = [
    "Processor",
    "ALL_PROCESSORS",
    "processor_for",
    "Gain",
    "Compressor",
    "Equalizer",
    "Reverb",
    "Delay",
    "StereoWidth",
    "OutputGain",
    "Limiter",
    "ToneMatch",
    "BandWidth",
]


class Processor(MixChain):
    """One stage of the chain as a processor (subclasses are made from the registry)."""

    stage: str = ""
    params: tuple[str, ...] = ()

    def __init__(self, *, glide_ms: float = 50.0, **values: float):
        super().__init__((self.stage,), glide_ms=glide_ms)
        self.set_params(values)

    def _check_name(self, name: str) -> None:
        if name not in self.params:
            if name not in PARAM_INDEX:
                validate_value(name, 0.0)  # raises ParameterError listing every parameter
            raise ValueError(f"{type(self).__name__} has no parameter {name!r}; it has {', '.join(self.params)}")

    def set_params(self, values: Mapping[str, object]) -> None:  # narrow the names to this stage's parameters
        for name in values:
            self._check_name(name)
        super().set_params(values)

    def set_param(self, name: str, value: float, *, glide_ms: float | None = None) -> None:
        self._check_name(name)
        super().set_param(name, value, glide_ms=glide_ms)

    def __repr__(self) -> str:
        values = ", ".join(f"{n}={getattr(self, n):g}" for n in self.params)
        return f"{type(self).__name__}({values})"


def _foreign(name: str) -> property:
    """Another stage's parameter on a processor: reading or setting it is an AttributeError."""

    def fail(self: Processor, *value: object) -> None:
        raise AttributeError(f"{type(self).__name__} has no parameter {name!r}; it has {', '.join(self.params)}")

    return property(fail, fail)


def _make(stage: Stage) -> type[Processor]:
    doc = f"The {stage.name} stage on its own: {stage.description}.\n\nParameters: {', '.join(stage.params)}."
    ns: dict[str, object] = {"stage": stage.name, "params": stage.params, "__doc__": doc}
    ns.update({name: _foreign(name) for name in PARAM_INDEX if name not in stage.params})
    return type(stage.processor, (Processor,), ns)


ALL_PROCESSORS: tuple[type[Processor], ...] = tuple(_make(s) for s in REGISTRY)
_BY_NAME = {p.__name__: p for p in ALL_PROCESSORS}
_BY_STAGE = {p.stage: p for p in ALL_PROCESSORS}
globals().update(_BY_NAME)  # a new stage's processor is importable by its class name


def processor_for(stage: str) -> type[Processor]:
    """The processor class of the stage called ``stage``."""
    return _BY_STAGE[stage]


# the processors the package has always had, by name (for readers and type checkers)
Gain: type[Processor] = _BY_NAME["Gain"]
Compressor: type[Processor] = _BY_NAME["Compressor"]
Equalizer: type[Processor] = _BY_NAME["Equalizer"]
Reverb: type[Processor] = _BY_NAME["Reverb"]
Delay: type[Processor] = _BY_NAME["Delay"]
StereoWidth: type[Processor] = _BY_NAME["StereoWidth"]
OutputGain: type[Processor] = _BY_NAME["OutputGain"]
Limiter: type[Processor] = _BY_NAME["Limiter"]
ToneMatch: type[Processor] = _BY_NAME["ToneMatch"]
BandWidth: type[Processor] = _BY_NAME["BandWidth"]
