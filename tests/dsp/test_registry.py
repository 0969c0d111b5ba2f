"""Every stage of the registry against the processor contract (pedalboard's ALL_BUILTIN_PLUGINS pattern).

The test enumerates :data:`dsp.registry.REGISTRY`, so a new stage is checked
without a line here.  References are closed forms: a block-split run is
bit-identical to the whole-buffer run (the kernel is sequential per sample
with control ticks on absolute positions); after ``reset`` a processor is
bit-identical to a freshly prepared one (every state cleared); mono is the
stereo run with equal channels, written back as their mean.
"""

import numpy as np
import pytest

from mixpilot.dsp import fused
from mixpilot.dsp.chain import MixChain
from mixpilot.dsp.params import PARAM_INDEX, PARAMS
from mixpilot.dsp.processors import ALL_PROCESSORS, Compressor, processor_for
from mixpilot.dsp.registry import REGISTRY, STAGES, _check
from mixpilot.dsp.spec import ProcessSpec
from mixpilot.dsp.stage import Stage

FS = 48000
IDS = [s.name for s in REGISTRY]


def active_values(stage: Stage) -> dict:
    """Every parameter of the stage at the top of its AI range (or of its hard range when the AI has none):
    a setting where each stage does audible work, chosen without knowing the stage."""
    out = {}
    for name in stage.params:
        p = PARAMS[PARAM_INDEX[name]]
        hi = p.ai_maximum if p.ai_maximum != p.ai_minimum else p.maximum
        out[name] = hi if p.glide != "fixed" else p.default
    return out


def signal(rng, seconds, ch=2, level=0.5):
    n = int(FS * seconds)
    t = np.arange(n) / FS
    s = level * (np.sin(2 * np.pi * 330 * t) * np.exp(-((t * 4) % 1) * 6) + 0.5 * rng.standard_normal(n))
    x = np.stack([s, 0.7 * s + 0.2 * level * rng.standard_normal(n)], axis=1)
    return np.ascontiguousarray(x[:, :ch]).astype(np.float32)


def make(stage: Stage, ch=2, block=8193, values=None):
    p = processor_for(stage.name)(**(values if values is not None else active_values(stage)))
    p.prepare(ProcessSpec(FS, block, ch))
    return p


def run(p, x, block):
    y = np.zeros_like(x)
    for i in range(0, len(x), block):
        p.process(x[i : i + block], y[i : i + block])
    return y


def test_every_stage_has_a_processor_and_every_parameter_one_stage():
    assert [p.stage for p in ALL_PROCESSORS] == list(STAGES)
    owned = sorted(n for s in REGISTRY for n in s.params)
    assert owned == sorted(p.name for p in PARAMS)
    for s in REGISTRY:
        assert processor_for(s.name).params == s.params
        assert s.name in fused.generate_source(REGISTRY)  # each stage is in the generated loop


def test_a_registry_that_breaks_the_rules_is_refused():
    first, *rest = REGISTRY
    with pytest.raises(ValueError, match="without a stage"):
        _check(tuple(rest))
    with pytest.raises(ValueError, match="duplicate"):
        _check((first, *REGISTRY))
    with pytest.raises(ValueError, match="block stage"):
        _check((REGISTRY[-1], *REGISTRY[:-1]))


@pytest.mark.parametrize("stage", REGISTRY, ids=IDS)
def test_empty_one_frame_mono_stereo(stage, rng):
    for ch in (1, 2):
        p = make(stage, ch, block=1024)
        for frames in (0, 1, 1024):
            x = signal(rng, frames / FS, ch) if frames else np.zeros((0, ch), np.float32)
            y = np.full_like(x, np.nan)
            p.process(x, y)
            assert np.all(np.isfinite(y))
    with pytest.raises(TypeError):
        p.process(np.zeros((4, 2)), np.zeros((4, 2)))  # float64: rejected at the boundary


@pytest.mark.parametrize("stage", REGISTRY, ids=IDS)
def test_mono_is_stereo_with_equal_channels(stage, rng):
    x = signal(rng, 0.25, 1)
    mono = run(make(stage, 1), x, 512)
    stereo = run(make(stage, 2), np.repeat(x, 2, axis=1), 512)
    np.testing.assert_allclose(mono[:, 0], stereo.mean(axis=1), atol=1e-7, rtol=0)


@pytest.mark.parametrize("stage", REGISTRY, ids=IDS)
@pytest.mark.parametrize("block", [1, 64, 65, 128, 8193])
def test_block_size_invariance(stage, block, rng):
    # every parameter glides from its default to the active values 0.1 s in, across block boundaries
    x = signal(rng, 0.4, 2)
    split = FS // 10

    def render(bs):
        p = make(stage, 2, block=max(bs, len(x)), values={})
        first = run(p, x[:split], bs)
        p.set_params(active_values(stage))
        return np.concatenate([first, run(p, x[split:], bs)])

    np.testing.assert_array_equal(render(block), render(len(x)))


@pytest.mark.parametrize("stage", REGISTRY, ids=IDS)
def test_reset_cuts_tails_and_not_resetting_keeps_them(stage, rng):
    burst = signal(rng, 0.3, 2, level=2.0)
    probe = signal(rng, 0.6, 2, level=0.3)  # longer than the longest AI delay time (0.5 s)
    fresh = run(make(stage), probe, 512)

    p = make(stage)
    before = {k: a.copy() for k, a in p.state_arrays().items()}
    run(p, burst, 512)
    memory = any(not np.array_equal(before[k], a) for k, a in p.state_arrays().items())
    kept = run(p, probe, 512)
    p2 = make(stage)
    run(p2, burst, 512)
    p2.reset()
    cut = run(p2, probe, 512)
    np.testing.assert_array_equal(cut, fresh)  # reset: exactly a fresh processor
    if memory:  # a stage whose state moved while it worked carries that into what follows
        assert not np.array_equal(kept, fresh)
    else:
        np.testing.assert_array_equal(kept, fresh)


@pytest.mark.parametrize("proc", ALL_PROCESSORS, ids=lambda p: p.__name__)
def test_parameters_are_attributes_that_reach_the_kernel(proc):
    p = proc()
    p.prepare(ProcessSpec(FS, 256, 2))
    for name in proc.params:
        par = PARAMS[PARAM_INDEX[name]]
        new = par.ai_maximum if par.ai_maximum != par.default else par.ai_minimum
        if new == par.default:
            new = par.maximum
        setattr(p, name, new)
        assert getattr(p, name) == new
        assert p.targets[PARAM_INDEX[name]] == new  # what the kernel reads
        if par.glide != "fixed":
            p.process(np.zeros((FS // 5, 2), np.float32), np.zeros((FS // 5, 2), np.float32))
            assert p.value(name) == pytest.approx(new)  # the chain glided there
    other = next(n.name for n in PARAMS if n.name not in proc.params)
    with pytest.raises(AttributeError):
        setattr(p, other, 0.0)
    with pytest.raises(AttributeError):
        getattr(p, other)
    with pytest.raises(ValueError):
        setattr(p, proc.params[0], float("nan"))


def test_compressor_ratio_attribute_changes_the_sound(rng):
    # The bug this replaces: comp.comp_ratio = 4 read back 4 while the kernel kept ratio 2.
    x = signal(rng, 0.5, 2, level=1.0)
    outs = []
    for ratio in (2.0, 4.0):
        c = Compressor(comp_ratio=2.0, comp_threshold_db=-30.0)
        c.comp_ratio = ratio
        c.prepare(ProcessSpec(FS, 512, 2))
        outs.append(run(c, x, 512))
    ref = Compressor(comp_ratio=4.0, comp_threshold_db=-30.0)
    ref.prepare(ProcessSpec(FS, 512, 2))
    np.testing.assert_array_equal(outs[1], run(ref, x, 512))
    assert not np.array_equal(outs[0], outs[1])


def test_prepare_with_an_unchanged_spec_keeps_the_state_arrays(rng):
    c = MixChain()
    c.set_params({"reverb_send": 0.3})
    spec = ProcessSpec(FS, 512, 2)
    c.prepare(spec)
    args = c.kernel_args()
    arrays = c.state_arrays()
    run(c, signal(rng, 0.2), 512)
    c.prepare(ProcessSpec(FS, 512, 2))  # equal spec: same arrays, reset in place
    assert c.kernel_args() is args
    assert all(c.state_arrays()[k] is a for k, a in arrays.items())
    assert all(not np.any(a) for k, a in arrays.items() if k.startswith("reverb.lines"))
    c.prepare(ProcessSpec(44100, 512, 2))  # a new rate: new arrays
    assert c.kernel_args() is not args
    c.prepare(ProcessSpec(44100, 512, 2))
    args = c.kernel_args()
    c.lookahead_ms = 2.0  # a structural parameter: new arrays and latency
    c.prepare(ProcessSpec(44100, 512, 2))
    assert c.kernel_args() is not args
    assert c.latency_samples == round(2.0 * 44100 / 1000)


def test_a_side_chain_run_ahead_gives_the_bits_of_the_per_sample_tick(rng):
    """The compressor's side chain run over each chunk first (dsp.stage: a split stage) against the
    kernel generated without it (``ahead=False``: the compressor ticks per sample, as before issue 19):
    the same output, statistics and state bits, through glides of its parameters, of the input gain
    and of a later stage's parameter, a bypass and its return, NaN input, and blocks that cross the
    chunk boundary."""
    reference = fused.load(REGISTRY, "chain_no_ahead", ahead=False)
    settings = {"input_gain_db": 6.0, "comp_threshold_db": -30.0, "comp_ratio": 4.0, "comp_knee_db": 6.0}
    fast, slow = MixChain(), MixChain()
    for c in (fast, slow):
        c.set_params(settings)
        c.prepare(ProcessSpec(FS, 1024, 2))
    x = signal(rng, 1.5, level=0.8)
    x[5000, 0] = np.nan
    changes = {
        3: {"comp_threshold_db": -20.0},  # a side-chain parameter glides: per-sample path
        9: {"output_gain_db": -3.0},  # a later parameter glides: the side chain runs ahead
        14: {"input_gain_db": 0.0},
        19: {"comp_attack_ms": 3.0, "comp_release_ms": 300.0},  # coefficients at the control ticks
        25: {"loudness_gain_db": 2.0, "comp_knee_db": 0.0},
        40: {"comp_ratio": 1.0},  # the envelope decays per sample (dsp.compressor._comp_steady)
        46: {"comp_ratio": 4.0},
    }
    sizes = [37, 300, 128, 1024, 1, 255, 257]
    ran_ahead = False
    i = k = 0
    while i < len(x):
        bs = sizes[k % len(sizes)]
        for c in (fast, slow):
            c.set_params(changes.get(k, {}))
            if k in (30, 36):
                c.set_bypass("compressor", k == 30)
        blk = x[i : i + bs]
        y_fast, y_slow = np.zeros_like(blk), np.zeros_like(blk)
        fast.process(blk, y_fast)
        reference.chain_process(blk, y_slow, *slow._pargs, np.zeros((0, 2)))
        assert np.array_equal(y_fast.view(np.uint32), y_slow.view(np.uint32)), f"block {k}"
        assert np.array_equal(fast.stats, slow.stats), f"block {k}"
        ran_ahead |= bool(np.any(fast.state_arrays()["compressor.gains"] != 1.0))
        i += bs
        k += 1
    assert ran_ahead  # the fast path ran (the reference never writes the side chain's gains)
    for name, a in fast.state_arrays().items():
        if name != "compressor.gains":
            assert np.array_equal(a, slow.state_arrays()[name]), name


def test_the_contracted_chain_against_the_plain_float64_chain(rng):
    """The chain kernel is compiled with fastmath 'contract' (issue 19: fused multiply-adds, in the
    biquads explicitly, dsp.biquad._biquad_x2); the reference is the same generated kernel without the
    flag (``contract=False``: the plain float64 arithmetic the chain had before, bit for bit).  Every
    stage active, parameters and the loudness gain gliding, blocks of odd sizes.  Stated bound: the
    float32 outputs differ by at most 2**-24 (about -144 dBFS; measured 2**-26, one float32 step at
    that level) and in under 0.1 % of the samples (measured 0.005 %): the contraction changes only
    float64 roundings, far under float32's resolution."""
    plain_module = fused.load(REGISTRY, "chain_plain", contract=False)
    settings = {k: v for s in REGISTRY for k, v in active_values(s).items()}
    fast, plain = MixChain(), MixChain()
    for c in (fast, plain):
        c.set_params(settings)
        c.prepare(ProcessSpec(FS, 1024, 2))
    x = signal(rng, 3.0, level=0.8)
    changes = {
        5: {"tone_125hz_db": 3.0, "low_gain_db": -4.0},
        20: {"comp_threshold_db": -30.0},
        40: {"reverb_send": 0.5, "loudness_gain_db": 3.0},
    }
    sizes = [37, 300, 128, 1024, 1, 255, 257]
    y_fast, y_plain = np.zeros_like(x), np.zeros_like(x)
    i = k = 0
    while i < len(x):
        bs = sizes[k % len(sizes)]
        for c in (fast, plain):
            c.set_params(changes.get(k, {}))
        fast.process(x[i : i + bs], y_fast[i : i + bs])
        plain_module.chain_process(x[i : i + bs], y_plain[i : i + bs], *plain._pargs, np.zeros((0, 2)))
        i += bs
        k += 1
    assert fast.limiter_gain_reduction_db > 1.0  # the limiter works here too
    diff = np.abs(y_fast.astype(np.float64) - y_plain)
    assert diff.max() <= 2.0**-24
    assert 0 < np.count_nonzero(diff) < 1e-3 * diff.size  # 0 <: the flag did change the arithmetic
