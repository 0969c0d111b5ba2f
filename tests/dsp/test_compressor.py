"""Compressor against Giannoulis, Massberg & Reiss (JAES 2012).

References: the static curve is eq. (4) of the paper; the four values for
T = -20 dB, R = 4, W = 6 dB are worked by hand from it:
  -10 -> T + (x - T)/R = -20 + 10/4 = -17.5
  -20 -> x + (1/R - 1)(x - T + W/2)^2 / (2W) = -20 - 0.75 * 9 / 12 = -20.5625
  -17 -> (knee edge) -20 + 3/4 = -19.25
  -23 -> below the knee, unchanged.
The smooth-branching detector (eq. 12) with alpha = exp(-1/(tau fs)) reaches
1 - 1/e = 63.2 % of a step after tau * fs samples (closed form 1 - alpha^n).
"""

import math

import numpy as np
import pytest

from mixpilot.dsp.compressor import static_curve_db
from mixpilot.dsp.processors import Compressor
from mixpilot.dsp.spec import ProcessSpec

CURVE = {"threshold_db": -20.0, "ratio": 4.0, "knee_db": 6.0}


@pytest.mark.parametrize("x_db,y_db", [(-10, -17.5), (-20, -20.5625), (-17, -19.25), (-23, -23.0)])
def test_static_curve_values(x_db, y_db):
    assert static_curve_db(x_db, **CURVE) == pytest.approx(y_db, abs=1e-12)


def dc_gain_db(comp, level_db, frames, fs):
    x = np.full((frames, 2), 10 ** (level_db / 20), np.float32)
    y = np.zeros_like(x)
    comp.process(x, y)
    return 20 * np.log10(y[:, 0].astype(np.float64) / x[:, 0])


@pytest.mark.parametrize("x_db,y_db", [(-10, -17.5), (-20, -20.5625), (-17, -19.25), (-23, -23.0)])
def test_processor_settles_on_static_curve(x_db, y_db):
    fs = 48000
    comp = Compressor(comp_threshold_db=-20, comp_ratio=4, comp_knee_db=6, comp_attack_ms=1, comp_release_ms=10)
    comp.prepare(ProcessSpec(fs, fs, 2))
    g = dc_gain_db(comp, x_db, fs // 2, fs)
    assert g[-1] == pytest.approx(y_db - x_db, abs=1e-3)  # float32 DC input/output


@pytest.mark.parametrize("fs", [44100, 48000])
@pytest.mark.parametrize("attack_ms,release_ms", [(5.0, 100.0), (20.0, 250.0)])
def test_attack_and_release_time_constants(fs, attack_ms, release_ms):
    comp = Compressor(
        comp_threshold_db=-20, comp_ratio=4, comp_knee_db=6, comp_attack_ms=attack_ms, comp_release_ms=release_ms
    )
    comp.prepare(ProcessSpec(fs, 4 * fs, 2))
    quiet = dc_gain_db(comp, -40.0, fs, fs)  # below the knee: no reduction, detector at rest
    assert np.max(np.abs(quiet)) < 1e-4
    loud = dc_gain_db(comp, -10.0, 2 * fs, fs)  # static reduction 7.5 dB
    reduction = -loud
    final = reduction[-1]
    assert final == pytest.approx(7.5, abs=1e-3)
    k_attack = int(np.argmax(reduction >= (1 - math.exp(-1)) * final)) + 1  # samples processed
    assert abs(k_attack - attack_ms * fs / 1000) <= 1
    back = -dc_gain_db(comp, -40.0, 2 * fs, fs)
    k_release = int(np.argmax(back <= math.exp(-1) * final)) + 1
    assert abs(k_release - release_ms * fs / 1000) <= 1


def test_ratio_one_is_transparent(rng):
    # R = 1: the static curve is the identity, so the compressor must not touch the signal.
    comp = Compressor(comp_ratio=1.0, comp_threshold_db=-40)
    comp.prepare(ProcessSpec(48000, 48000, 2))
    x = (0.5 * rng.standard_normal((48000, 2))).astype(np.float32)
    y = np.zeros_like(x)
    comp.process(x, y)
    np.testing.assert_array_equal(y, x)


def test_stereo_link_applies_one_gain(rng):
    # Linked detection (max of |l|, |r|): both channels get the same gain, so their ratio is preserved.
    comp = Compressor(comp_ratio=4.0, comp_threshold_db=-30)
    comp.prepare(ProcessSpec(48000, 48000, 2))
    left = (0.5 * rng.standard_normal(48000)).astype(np.float32)
    x = np.stack([left, 0.25 * left], axis=1).astype(np.float32)
    y = np.zeros_like(x)
    comp.process(x, y)
    nz = np.abs(left) > 1e-3
    np.testing.assert_allclose(y[nz, 1] / y[nz, 0], 0.25, rtol=1e-5)


@pytest.mark.parametrize("knee_db", [0.0, 6.0, 24.0])
def test_detector_equals_the_papers_formulas_sample_by_sample(knee_db, rng):
    # Reference: eq. (4) and eq. (12) of Giannoulis et al. 2012 evaluated in plain Python per sample
    # (20 log10 of the linked peak, the soft-knee curve, smooth branching, make-up), with no shortcut:
    # the kernel skips the log where a level is surely under the knee and takes the natural log.
    fs, th, ratio, att, rel, makeup = 48000, -24.0, 3.0, 5.0, 80.0, 2.0
    n = fs // 4
    env = np.repeat(rng.uniform(0.0, 1.5, n // 1000 + 1), 1000)[:n]  # levels across the knee and far under it
    x = (env[:, None] * rng.standard_normal((n, 2))).astype(np.float32)
    comp = Compressor(
        comp_threshold_db=th,
        comp_ratio=ratio,
        comp_knee_db=knee_db,
        comp_attack_ms=att,
        comp_release_ms=rel,
        comp_makeup_db=makeup,
    )
    comp.prepare(ProcessSpec(fs, n, 2))
    y = np.zeros_like(x)
    comp.process(x, y)
    aa, ar = math.exp(-1000.0 / (att * fs)), math.exp(-1000.0 / (rel * fs))
    ref = np.zeros((n, 2))
    state = 0.0
    xd = x.astype(np.float64)
    for i in range(n):
        level = max(abs(xd[i, 0]), abs(xd[i, 1]), 1e-12)
        x_db = 20.0 * math.log10(level)
        over = x_db - th
        if 2 * over < -knee_db:
            y_db = x_db
        elif knee_db > 0 and 2 * abs(over) <= knee_db:
            y_db = x_db + (1 / ratio - 1) * (over + knee_db / 2) ** 2 / (2 * knee_db)
        else:
            y_db = th + over / ratio
        x_g = x_db - y_db
        a = aa if x_g > state else ar
        state = a * state + (1 - a) * x_g
        state = 0.0 if state < 1e-30 else state
        ref[i] = xd[i] * 10 ** ((makeup - state) / 20)
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-9)


def test_the_side_chain_log_and_exp_against_libm():
    # The compressor's log and exponential (dsp.approx: musl's log method, a degree-13 Taylor
    # exponential after reduction by ln 2) instead of libm's, so that its side chain vectorises
    # (issue 19).  Reference: libm (numpy's log/exp, correctly rounded to within 0.5-1 ulp here).
    # Stated bound: within 1 ulp of libm's result (measured 1 ulp at most over these 2**20 + 2**18
    # arguments, plain and with fastmath 'contract', as the chain kernel compiles them), which is a
    # level error under 2e-15 dB and a gain error under 3e-16 relative: far below float32 audio.
    from numba import njit

    from mixpilot.dsp.approx import exp, ln

    def logs(a):
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            out[i] = ln(a[i])
        return out

    def exps(a):
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            out[i] = exp(a[i])
        return out

    rng = np.random.default_rng(0)
    levels = np.concatenate(
        [
            np.exp(rng.uniform(math.log(1e-12), math.log(1e30), 1 << 20)),  # the compressor's level range
            1.0 + rng.uniform(-1e-3, 1e-3, 1 << 12),  # near 1, where the log goes to 0
            [1e-12, math.sqrt(0.5), 1.0, math.sqrt(2.0), 2.0, 1e30],
        ]
    )
    args = np.concatenate(
        [rng.uniform(-700.0, 700.0, 1 << 18), rng.uniform(-80.0, 10.0, 1 << 18), [0.0, -700.0, 700.0]]
    )
    for flags in ({}, {"fastmath": {"contract"}, "error_model": "numpy"}):
        got_ln = njit(**flags)(logs)(levels)
        got_exp = njit(**flags)(exps)(args)
        ref_ln = np.log(levels)
        ref_exp = np.exp(args)
        assert np.all(np.abs(got_ln - ref_ln) <= np.spacing(np.abs(ref_ln)))
        assert np.all(np.abs(got_exp - ref_exp) <= np.spacing(ref_exp))
        assert np.max(20.0 / math.log(10.0) * np.abs(got_ln - ref_ln)) < 2e-15  # dB
        assert np.max(np.abs(got_exp - ref_exp) / ref_exp) < 3e-16
