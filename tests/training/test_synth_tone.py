"""The good mixes' tonal and stereo reference (training.synth.match_tone and friends).

References: closed forms (the curve's definition, the side/mid ratio of a
scaled side signal, a white-noise spectrum's equal power per Hz, i.e. +1 dB
per 1/3 octave band step) and scipy's Welch estimate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixpilot.training import synth


def test_reference_curve_closed_form():
    f = np.array([25.0, 50.0, 100.0, 150.0, 300.0, 1200.0, 9600.0])
    expect = [-6.0, 0.0, 0.0, 0.0, -4.0, -12.0, -24.0]  # plateau 50-150 Hz, -4 dB/oct above, 6 dB/oct below
    np.testing.assert_allclose(synth.reference_curve_db(f), expect, atol=1e-9)


def test_third_octave_levels_of_white_noise_follow_the_bin_count(rng):
    # white noise has equal power per FFT bin, so a band's level is 10 log10(bins in the band) + a constant
    sr = 44100
    x = rng.standard_normal((sr * 8, 2))
    lv = synth.third_octave_levels_db(x, sr)
    f = np.fft.rfftfreq(8192, 1.0 / sr)
    fc = synth.TONAL_BANDS_HZ
    count = np.array([np.count_nonzero((f >= c * 10 ** (-1 / 20)) & (f < c * 10 ** (1 / 20))) for c in fc])
    d = lv - 10 * np.log10(count)
    use = count >= 10  # a band of few bins has a noisy estimate
    assert use.sum() >= 15
    np.testing.assert_allclose(d[use] - np.median(d[use]), 0.0, atol=0.25)
    # and the 1/3-octave law itself: +1 dB per band step where bands are wide
    np.testing.assert_allclose(np.diff(10 * np.log10(count[16:])), 1.0, atol=0.15)


def test_match_tone_lands_on_the_target(rng):
    sr = 44100
    x = rng.standard_normal((sr * 6, 2))  # white: the correction is a -4 dB/oct tilt of up to ~40 dB span
    target = synth.reference_curve_db(synth.TONAL_BANDS_HZ)
    y, corr = synth.match_tone(x, sr, target)
    got = synth.smoothed_levels_db(synth.third_octave_levels_db(y, sr))
    want = synth.smoothed_levels_db(target)
    d = got - want
    d -= d.mean()
    live = np.abs(corr) < synth.TONAL_MAX_CORRECTION_DB - 1e-6  # bands held at the correction limit can't land
    assert live.sum() >= 12
    assert np.max(np.abs(d[live])) < 1.0
    assert np.all(np.isfinite(y)) and y.shape == x.shape


def test_match_tone_leaves_a_matching_signal_alone(rng):
    sr = 44100
    x = rng.standard_normal((sr * 4, 2))
    own = synth.third_octave_levels_db(x, sr)
    y, corr = synth.match_tone(x, sr, own)  # already on its own balance: (nearly) nothing to do
    assert np.max(np.abs(corr)) < 0.5
    assert 20 * math.log10(np.std(y) / np.std(x)) == pytest.approx(0.0, abs=0.3)


def test_set_side_mid_exact(rng):
    x = rng.standard_normal((10000, 2))
    y = synth.set_side_mid(x, -12.0)
    m, s = 0.5 * (y[:, 0] + y[:, 1]), 0.5 * (y[:, 0] - y[:, 1])
    assert 10 * math.log10(np.sum(s * s) / np.sum(m * m)) == pytest.approx(-12.0, abs=1e-9)
    np.testing.assert_allclose(m, 0.5 * (x[:, 0] + x[:, 1]))  # the mid is untouched
    mono = np.repeat(x[:, :1], 2, axis=1)
    np.testing.assert_array_equal(synth.set_side_mid(mono, -12.0), mono)  # no side to scale


def test_good_mixes_sit_near_the_reference():
    rng = np.random.default_rng(7)
    sr = synth.SAMPLE_RATE
    ref = synth.smoothed_levels_db(synth.reference_curve_db(synth.TONAL_BANDS_HZ))
    devs, sms = [], []
    for _ in range(4):
        mix = synth.mix_good(synth.synth_song(rng, seconds=5.0), rng)
        lv = synth.smoothed_levels_db(synth.third_octave_levels_db(mix.dry, sr))
        d = lv - ref
        core = slice(6, 24)  # 125 Hz .. 6.3 kHz, where every style has content
        devs.append(d[core] - d[core].mean())
        m, s = 0.5 * (mix.dry[:, 0] + mix.dry[:, 1]), 0.5 * (mix.dry[:, 0] - mix.dry[:, 1])
        sms.append(10 * math.log10(np.sum(s.astype(np.float64) ** 2) / np.sum(m.astype(np.float64) ** 2)))
    # the taste residual: tilt <= 0.4 dB/oct and 1 dB regional offsets -> well inside 6 dB everywhere
    assert np.max(np.abs(devs)) < 6.0
    lo, hi = synth.SIDE_MID_TARGET_DB
    assert all(lo - 0.5 <= v <= hi + 0.5 for v in sms)
