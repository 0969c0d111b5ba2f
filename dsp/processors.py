"""Standalone processors: each stage of the chain on its own.

Every processor is a :class:`~dsp.chain.MixChain` holding a single stage, so
it runs exactly the kernel code the full chain runs (the same private tick
functions inside the same fused loop) and shares its prepare/process/reset
contract, glide and bypass.  Each exposes only the parameters its stage reads.
"""

from __future__ import annotations

from .chain import MixChain
from .params import PARAM_INDEX, validate_value

__all__ = [
    "Processor",
    "Gain",
    "Compressor",
    "Equalizer",
    "Reverb",
    "Delay",
    "StereoWidth",
    "OutputGain",
    "Limiter",
    "ALL_PROCESSORS",
]


class Processor(MixChain):
    stage: str = ""
    params: tuple[str, ...] = ()

    def __init__(self, *, glide_ms: float = 50.0, **values: float):
        super().__init__((self.stage,), glide_ms=glide_ms)
        self.set_params(values)

    def set_params(self, values) -> None:  # narrow the names to this stage's parameters
        for name in values:
            if name not in self.params:
                validate_value(name, values[name])  # unknown names raise with the full list
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; it has {', '.join(self.params)}")
        super().set_params(values)

    def __getattr__(self, name: str):
        params = type(self).params
        if name in params:
            return float(self.targets[PARAM_INDEX[name]])
        raise AttributeError(name)


class Gain(Processor):
    stage = "input_gain"
    params = ("input_gain_db",)


class Compressor(Processor):
    stage = "compressor"
    params = ("comp_threshold_db", "comp_ratio", "comp_attack_ms", "comp_release_ms", "comp_knee_db", "comp_makeup_db")


class Equalizer(Processor):
    stage = "eq"
    params = (
        "low_gain_db",
        "low_freq_hz",
        "mid_gain_db",
        "mid_freq_hz",
        "mid_q",
        "high_gain_db",
        "high_freq_hz",
        "presence_gain_db",
        "presence_freq_hz",
        "presence_q",
    )


class Reverb(Processor):
    stage = "reverb"
    params = ("reverb_send", "reverb_room_size", "reverb_damping")


class Delay(Processor):
    stage = "delay"
    params = ("delay_send", "delay_ms", "delay_feedback")


class StereoWidth(Processor):
    stage = "width"
    params = ("stereo_width",)


class OutputGain(Processor):
    stage = "output_gain"
    params = ("output_gain_db", "loudness_gain_db")


class Limiter(Processor):
    stage = "limiter"
    params = ("limiter_ceiling_dbtp", "limiter_release_ms", "lookahead_ms")


ALL_PROCESSORS = (Gain, Compressor, Equalizer, Reverb, Delay, StereoWidth, OutputGain, Limiter)
