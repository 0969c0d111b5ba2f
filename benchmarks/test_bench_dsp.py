"""pytest-benchmark: the chain, each processor, the limiter, the loudness meter, the engine.

``pytest benchmarks/ --benchmark-only`` (repo root).  Every case processes 128-frame stereo
blocks at 48 kHz, one after the other through the demo song (state carries on from round to
round, as in a stream), after one warm-up call that loads or compiles the Numba kernels.  The
stage settings are :data:`benchmarks.chain_vs_pedalboard.SETTINGS` (every stage active), so
the figures line up with ``mixpilot bench`` and the pedalboard comparison.
"""

from __future__ import annotations

import numpy as np
import pytest

from mixpilot.benchmarks.chain_vs_pedalboard import SETTINGS
from mixpilot.benchmarks.conftest import BLOCK, SAMPLE_RATE, BlockCycler
from mixpilot.dsp.chain import MixChain
from mixpilot.dsp.meter import LoudnessMeter
from mixpilot.dsp.processors import ALL_PROCESSORS, Limiter
from mixpilot.dsp.spec import ProcessSpec

SPEC = ProcessSpec(SAMPLE_RATE, BLOCK, 2)


def _warm_and_run(benchmark, process, blocks: BlockCycler, out: np.ndarray) -> None:
    process(blocks(), out)  # warm-up: compile / load the kernel
    benchmark(lambda: process(blocks(), out))


@pytest.mark.benchmark(group="chain")
def test_chain_128(benchmark, blocks):
    """dsp.chain.MixChain.process, the whole chain (the ``chain`` figures of ``mixpilot bench``)."""
    chain = MixChain()
    chain.set_params(SETTINGS)
    chain.prepare(SPEC)
    _warm_and_run(benchmark, chain.process, blocks, np.zeros((BLOCK, 2), np.float32))


@pytest.mark.benchmark(group="processors")
@pytest.mark.parametrize("cls", ALL_PROCESSORS, ids=lambda c: c.__name__)
def test_processor_128(benchmark, blocks, cls):
    """Each stage of dsp.processors on its own, with its SETTINGS values."""
    proc = cls(**{k: SETTINGS[k] for k in cls.params if k in SETTINGS})
    proc.prepare(SPEC)
    _warm_and_run(benchmark, proc.process, blocks, np.zeros((BLOCK, 2), np.float32))


@pytest.mark.benchmark(group="processors")
def test_limiter_hot_128(benchmark, program):
    """The true-peak lookahead limiter reducing gain nearly all the time: the song +18 dB, ceiling -1 dBTP."""
    lim = Limiter(limiter_ceiling_dbtp=-1.0, limiter_release_ms=50.0)
    lim.prepare(SPEC)
    blocks = BlockCycler(np.ascontiguousarray(program[SAMPLE_RATE // 2 :] * 8.0), BLOCK)  # past the quiet intro
    out = np.zeros((BLOCK, 2), np.float32)
    gr = 0.0
    for _ in range(40):  # warm-up, and past the lookahead into the loud part
        lim.process(blocks(), out)
        gr = max(gr, lim.limiter_gain_reduction_db)
    assert gr > 0.0  # the case measures a limiter at work, not a pass-through
    benchmark(lambda: lim.process(blocks(), out))


@pytest.mark.benchmark(group="meter")
def test_loudness_meter_128(benchmark, blocks):
    """dsp.meter.LoudnessMeter.process: BS.1770-4 K-weighting, gating histograms, 4x true peak."""
    meter = LoudnessMeter(SPEC)
    meter.process(blocks())
    benchmark(lambda: meter.process(blocks()))


@pytest.mark.benchmark(group="engine")
@pytest.mark.parametrize("block", [32, 128, 1024])
def test_engine_process_block(benchmark, program, block):
    """realtime.engine.Engine.process_block as ``mixpilot play`` sets it up (follower on, meters)."""
    from mixpilot.realtime.engine import Engine

    params = {k: v for k, v in SETTINGS.items() if k not in ("loudness_gain_db", "limiter_ceiling_dbtp")}
    eng = Engine(
        SAMPLE_RATE, 2, max_block_size=max(block, 4096), params=params, ceiling_dbtp=SETTINGS["limiter_ceiling_dbtp"]
    )
    eng.warm_up()
    _warm_and_run(benchmark, eng.process_block, BlockCycler(program, block), np.zeros((block, 2), np.float32))
