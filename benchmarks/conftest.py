"""Fixtures of the pytest-benchmark suites (``pytest benchmarks/ --benchmark-only`` from the repo root).

``benchmarks/`` sits outside ``testpaths`` (``tests``), so ``make test`` never runs these; give
the folder explicitly.  The signal is the synthesised demo song (:func:`mixpilot.demo.synth_demo`,
seed 1, 48 kHz stereo), the same program ``mixpilot bench`` measures.
"""

from __future__ import annotations

import numpy as np
import pytest

SAMPLE_RATE = 48000
BLOCK = 128


class BlockCycler:
    """``next_block()`` -> the next ``size``-frame view of ``x``, wrapping: each round gets new music."""

    def __init__(self, x: np.ndarray, size: int) -> None:
        self.blocks = [x[i : i + size] for i in range(0, x.shape[0] - size + 1, size)]
        self.i = 0

    def __call__(self) -> np.ndarray:
        b = self.blocks[self.i]
        self.i = (self.i + 1) % len(self.blocks)
        return b


@pytest.fixture(scope="session")
def program() -> np.ndarray:
    """4 s of the demo song, float32 [frames, 2], C-contiguous, 48 kHz."""
    from mixpilot.demo import synth_demo

    return np.ascontiguousarray(synth_demo(4.0, SAMPLE_RATE, seed=1), dtype=np.float32)


@pytest.fixture
def blocks(program) -> BlockCycler:
    """128-frame blocks of :func:`program`, one after the other."""
    return BlockCycler(program, BLOCK)
