"""The fused chain: block-size invariance, click-free parameter changes,
denormals, non-finite input, bypass, and the processor contract.

References are closed forms stated in each test: a block-split run must be
bit-identical to the whole-buffer run (the kernel is sequential per sample
with control ticks on absolute positions); the output of a glided change is
bounded by the steady signals on either side of it.
"""

import numpy as np
import pytest

from mixpilot.dsp.chain import STAGES, MixChain
from mixpilot.dsp.params import PARAM_INDEX, PARAMS
from mixpilot.dsp.processors import ALL_PROCESSORS, Delay, Reverb
from mixpilot.dsp.spec import ProcessSpec

BUSY = {  # every stage doing real work
    "input_gain_db": 3.0,
    "comp_ratio": 3.0,
    "comp_threshold_db": -24.0,
    "low_gain_db": 2.0,
    "mid_gain_db": -1.5,
    "high_gain_db": 2.5,
    "presence_gain_db": 1.5,
    "tone_63hz_db": 3.0,
    "tone_1khz_db": -2.0,
    "tone_16khz_db": 4.0,
    "reverb_send": 0.25,
    "delay_send": 0.15,
    "delay_ms": 123.4,
    "stereo_width": 1.2,
    "width_low": 0.6,
    "width_high": 1.2,
    "output_gain_db": 1.0,
    "loudness_gain_db": 9.0,
}


def music_like(rng, fs, seconds):
    n = int(fs * seconds)
    t = np.arange(n) / fs
    env = np.exp(-((t * 2.0) % 0.5) * 8)  # decaying notes every 250 ms
    s = 0.3 * env * np.sin(2 * np.pi * 220 * t) + 0.1 * rng.standard_normal(n) * env
    return np.stack([s, 0.8 * s + 0.05 * rng.standard_normal(n)], axis=1).astype(np.float32)


def run_blocks(chain, x, block):
    y = np.zeros_like(x)
    for i in range(0, len(x), block):
        chain.process(x[i : i + block], y[i : i + block])
    return y


@pytest.mark.parametrize("block", [1, 64, 65, 128, 8193])
def test_block_size_invariance(block, rng):
    fs = 48000
    x = music_like(rng, fs, 1.0)
    whole = MixChain()
    whole.set_params(BUSY)
    whole.prepare(ProcessSpec(fs, len(x), 2))
    ref = np.zeros_like(x)
    whole.process(x, ref)
    chain = MixChain()
    chain.set_params(BUSY)
    chain.prepare(ProcessSpec(fs, 8193, 2))
    np.testing.assert_array_equal(run_blocks(chain, x, block), ref)


def test_invariance_while_gliding(rng):
    # Targets change at time 0 for both runs, so every ramp starts on the same sample.
    fs = 48000
    x = music_like(rng, fs, 0.5)
    outs = []
    for block in (len(x), 65):
        c = MixChain()
        c.prepare(ProcessSpec(fs, len(x), 2))
        c.set_params(BUSY)
        outs.append(run_blocks(c, x, block))
    np.testing.assert_array_equal(outs[0], outs[1])


STEPS = [  # (parameter, from, to)
    ("input_gain_db", 0.0, 6.0),
    ("comp_ratio", 1.0, 4.0),
    ("comp_threshold_db", -6.0, -30.0),
    ("low_gain_db", 0.0, 6.0),
    ("mid_gain_db", 0.0, -6.0),
    ("mid_freq_hz", 500.0, 2000.0),
    ("high_gain_db", 0.0, 6.0),
    ("presence_gain_db", 0.0, 4.0),
    ("reverb_send", 0.0, 0.3),
    ("delay_send", 0.0, 0.2),
    ("delay_ms", 100.0, 300.0),
    ("tone_125hz_db", 0.0, 6.0),
    ("tone_8khz_db", 0.0, -6.0),
    ("tone_16khz_db", 0.0, 6.0),
    ("stereo_width", 1.0, 1.5),
    ("width_low", 1.0, 0.3),
    ("width_high", 1.0, 1.3),
    ("width_crossover_hz", 160.0, 400.0),
    ("output_gain_db", 0.0, -6.0),
    ("loudness_gain_db", 0.0, 12.0),
    ("limiter_ceiling_dbtp", -1.0, -6.0),
]


def max_jump(y):
    return float(np.max(np.abs(np.diff(y.astype(np.float64), axis=0))))


def step_response(name, a, b, glide_ms):
    """Max jump around a change a -> b, and the largest jump of the steady signals at a and at b.

    The steady reference at ``b`` is a separate run with ``b`` from the start, so a
    setting's own natural transients (a reverb's build-up on the sine) count as steady.
    """
    fs = 48000
    t = np.arange(3 * fs) / fs
    s = 0.25 * np.sin(2 * np.pi * 440.25 * t)  # at the step (t = 1 s) the sine is at its peak
    x = np.stack([s, 0.5 * s], axis=1).astype(np.float32)
    extra = {"delay_ms": {"delay_send": 0.2}, "width_crossover_hz": {"width_low": 0.5}}.get(name, {})

    def run(first, second):
        c = MixChain(glide_ms=glide_ms)
        c.set_params({name: first, **extra})
        c.prepare(ProcessSpec(fs, 128, 2))
        y = np.zeros_like(x)
        for i in range(0, len(x), 128):
            if i == fs:  # the step, one second in
                c.set_param(name, second)
            c.process(x[i : i + 128], y[i : i + 128])
        return y

    y = run(a, b)
    steady_b = run(b, b)
    skip = 1024  # the abrupt start of the test sine itself
    steady = max(max_jump(y[skip:fs]), max_jump(steady_b[skip:]))
    during = max_jump(y[fs - 256 : fs + fs // 2])
    return during, steady


@pytest.mark.parametrize("name,a,b", STEPS)
def test_parameter_step_is_click_free(name, a, b):
    # No sample-to-sample jump during the change beyond the steady signal's own (+1e-3).
    during, steady = step_response(name, a, b, glide_ms=50.0)
    assert during <= steady + 1e-3


def test_unglided_step_would_click():
    # Control for the test above: the same gain step without a glide is caught.
    during, steady = step_response("input_gain_db", 0.0, 12.0, glide_ms=0.0)
    assert during > steady + 1e-3


def test_no_denormals_after_impulse(rng):
    fs = 48000
    c = MixChain()
    c.set_params({**BUSY, "reverb_room_size": 1.0, "delay_feedback": 0.95, "loudness_gain_db": 0.0})
    c.prepare(ProcessSpec(fs, 4096, 2))
    x = np.zeros((5 * fs + 1, 2), np.float32)
    x[0] = 1.0
    y = run_blocks(c, x, 4096)
    tiny32 = np.finfo(np.float32).tiny
    assert not np.any((y != 0) & (np.abs(y) < tiny32))
    for name, a in c.state_arrays().items():
        if a.dtype.kind != "f":
            continue  # indexes and counters
        tiny = np.finfo(a.dtype).tiny
        assert not np.any((a != 0) & (np.abs(a) < tiny)), name


def test_nonfinite_input_never_reaches_state(rng):
    fs = 48000
    x = music_like(rng, fs, 1.0)
    bad = x.copy()
    bad[1000:1010, 0] = np.nan
    bad[2000, 1] = np.inf
    bad[3000, :] = -np.inf
    clean = x.copy()
    clean[1000:1010, 0] = 0.0
    clean[2000, 1] = 0.0
    clean[3000, :] = 0.0
    outs = []
    for sig in (bad, clean):
        c = MixChain()
        c.set_params(BUSY)
        c.prepare(ProcessSpec(fs, len(sig), 2))
        y = np.zeros_like(sig)
        c.process(sig, y)
        outs.append(y)
        assert all(np.all(np.isfinite(a)) for a in c.state_arrays().values())
    assert np.all(np.isfinite(outs[0]))
    np.testing.assert_array_equal(outs[0], outs[1])  # recovered: identical to zeros in their place


def test_latency_and_default_transparency(rng):
    # Defaults are neutral (ratio 1, EQ 0 dB, sends 0, width 1, gains 0 dB): the chain is a pure delay
    # by its reported latency for a signal below the ceiling.
    fs = 44100
    x = (0.1 * rng.standard_normal((fs, 2))).astype(np.float32)
    c = MixChain()
    c.prepare(ProcessSpec(fs, fs, 2))
    assert c.latency_samples == round(PARAMS[PARAM_INDEX["lookahead_ms"]].default * fs / 1000)
    y = np.zeros_like(x)
    c.process(x, y)
    lat = c.latency_samples
    np.testing.assert_allclose(y[lat:], x[:-lat], atol=1e-7, rtol=0)


def test_bypass_crossfades_and_keeps_latency(rng):
    fs = 48000
    x = music_like(rng, fs, 1.0)
    c = MixChain()
    c.set_params({"low_gain_db": 6.0})
    c.prepare(ProcessSpec(fs, 128, 2))
    for s in STAGES:
        c.set_bypass(s, True)
    c.reset()  # settle on the bypassed state
    y = run_blocks(c, x, 128)
    lat = c.latency_samples
    np.testing.assert_allclose(y[lat:], x[:-lat], atol=1e-6, rtol=0)  # everything bypassed: pure delay


@pytest.mark.parametrize("proc", ALL_PROCESSORS, ids=lambda p: p.__name__)
def test_processor_contract(proc, rng):
    # pedalboard-style sweep: empty, one-sample, mono and stereo buffers; output finite.
    p = proc()
    for ch in (1, 2):
        p.prepare(ProcessSpec(48000, 1024, ch))
        for frames in (0, 1, 1024):
            x = (0.5 * rng.standard_normal((frames, ch))).astype(np.float32)
            y = np.zeros_like(x)
            p.process(x, y)
            assert np.all(np.isfinite(y))
    with pytest.raises(TypeError):
        p.process(np.zeros((4, 2)), np.zeros((4, 2)))  # float64: rejected at the boundary


def test_mono_equals_stereo_with_equal_channels(rng):
    # Mono is processed as identical left/right and written back as their mean.
    x = (0.3 * rng.standard_normal((4800, 1))).astype(np.float32)
    outs = []
    for ch in (1, 2):
        c = MixChain()
        c.set_params(BUSY)
        c.prepare(ProcessSpec(48000, 4800, ch))
        xi = np.repeat(x, ch, axis=1)
        y = np.zeros_like(xi)
        c.process(xi, y)
        outs.append(y.mean(axis=1))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-7)


@pytest.mark.parametrize("proc,params", [(Reverb, {"reverb_send": 0.5}), (Delay, {"delay_send": 0.5})])
def test_reset_cuts_tails_and_not_resetting_keeps_them(proc, params):
    p = proc(**params)
    p.prepare(ProcessSpec(48000, 48000, 2))
    imp = np.zeros((48000, 2), np.float32)
    imp[0] = 1.0
    y = np.zeros_like(imp)
    p.process(imp, y)
    zeros = np.zeros((4800, 2), np.float32)
    kept = np.zeros_like(zeros)
    p.process(zeros, kept)
    assert np.max(np.abs(kept)) > 1e-6  # the tail goes on (an RT60 of 1 s: about -60 dB after 1 s)
    p.reset()
    cut = np.zeros_like(zeros)
    p.process(zeros, cut)
    assert np.max(np.abs(cut)) == 0.0


def test_reverb_send_one_returns_noise_at_the_dry_level():
    # Calibration (dsp/reverb.py WET_TRIM_DB): send 1 at the default room size and damping gives wet
    # power equal to dry power on white noise (reference: the dry power itself), within 0.5 dB.
    sr = 48000
    x = (0.05 * np.random.default_rng(0).standard_normal((6 * sr, 2))).astype(np.float32)

    def run(send):
        c = MixChain(stages=("reverb",))
        c.set_params({"reverb_send": send})
        c.prepare(ProcessSpec(sr, 4096, 2))
        y = np.zeros_like(x)
        for i in range(0, len(x), 4096):
            c.process(x[i : i + 4096], y[i : i + 4096])
        return y.astype(np.float64)

    dry = run(0.0)
    wet = run(1.0) - dry
    ratio_db = 10 * np.log10(np.mean(wet[2 * sr :] ** 2) / np.mean(dry[2 * sr :] ** 2))
    assert abs(ratio_db) < 0.5, ratio_db
