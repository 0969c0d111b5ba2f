"""ProcessSpec and the processor contract (after JUCE ``juce::dsp::ProcessSpec``).

Every processor in :mod:`dsp` follows the same shape:

``prepare(spec)``
    allocate state and derive coefficients for ``spec`` (re-prepares only when
    the spec really changes);
``process(block, out)``
    ``block`` and ``out`` are float32 arrays of shape (frames, channels); never
    allocates, never raises on the audio path (arguments are checked at the
    boundary, before any state is touched);
``reset()``
    clear state in place (tails are cut).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

import numpy as np

__all__ = ["ProcessSpec", "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE", "check_block"]

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
_F32 = np.dtype(np.float32)


@dataclass(frozen=True)
class ProcessSpec:
    """What a processor is prepared for: sample rate (Hz), largest block (frames), channels."""

    sample_rate: float
    max_block_size: int = 8192
    num_channels: int = 2

    def __post_init__(self) -> None:
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise ValueError(
                f"sample rate {self.sample_rate:g} Hz is outside the supported {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
            )
        if self.max_block_size < 1:
            raise ValueError(f"max_block_size must be >= 1, got {self.max_block_size}")
        if self.num_channels < 1:
            raise ValueError(f"num_channels must be >= 1, got {self.num_channels}")


def check_block(block: np.ndarray, out: np.ndarray, channels: int) -> None:
    """Boundary check for ``process``: float32, 2-D, same shape, ``channels`` wide."""
    # the usual case in one expression (a fifth of the general checks' cost, paid on every block)
    if (
        type(block) is np.ndarray
        and type(out) is np.ndarray
        and block.dtype is _F32
        and out.dtype is _F32
        and block.ndim == 2
        and block.shape == out.shape
        and block.shape[1] == channels
    ):
        return
    for name, a in (("block", block), ("out", out)):
        if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.ndim != 2:
            raise TypeError(f"{name} must be a float32 array of shape (frames, channels)")
        if a.shape[1] != channels:
            raise ValueError(f"{name} has {a.shape[1]} channels, processor prepared for {channels}")
    if block.shape != out.shape:
        raise ValueError(f"block {block.shape} and out {out.shape} differ in shape")
