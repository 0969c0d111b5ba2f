"""Lookahead true-peak limiter.

References: the ceiling is a hard bound on |y| (closed form); the true peak of
the output is measured independently of our detector with
``scipy.signal.resample_poly(y, 4, 1)`` (a 4x Kaiser-windowed polyphase
interpolator, the oversampling ITU-R BS.1770-4 Annex 2 prescribes) and must
stay within +0.1 dB of the ceiling.  Below the ceiling the limiter is a pure
delay of ``latency_samples`` (closed form).
"""

import numpy as np
import pytest
from scipy.signal import resample_poly

from mixpilot.dsp.processors import Limiter
from mixpilot.dsp.spec import ProcessSpec


def run(x, fs, ceiling_db, block=512, **kw):
    """Limit ``x`` followed by 2048 zeros, so the output holds the whole response (the lookahead is flushed)."""
    x = np.concatenate([x, np.zeros((2048, x.shape[1]), np.float32)])
    lim = Limiter(limiter_ceiling_dbtp=ceiling_db, **kw)
    lim.prepare(ProcessSpec(fs, block, x.shape[1]))
    y = np.zeros_like(x)
    for i in range(0, len(x), block):
        lim.process(x[i : i + block], y[i : i + block])
    return y, lim


def independent_true_peak_db(y):
    y = np.asarray(y, np.float64)
    pad = np.zeros((64, y.shape[1]))
    up = resample_poly(np.concatenate([pad, y, pad]), 4, 1, axis=0)
    return 20 * np.log10(np.max(np.abs(up)))


def check(y, ceiling_db):
    assert np.max(np.abs(y)) <= 10 ** (ceiling_db / 20)  # sample peak: hard bound
    assert independent_true_peak_db(y) <= ceiling_db + 0.1


@pytest.mark.parametrize("fs", [44100, 48000, 96000])
@pytest.mark.parametrize("ceiling_db", [0.0, -0.3, -1.0, -6.0])
@pytest.mark.parametrize("freq_hz", [997.0, 7000.0])
def test_sine_plus_20_dbfs(fs, ceiling_db, freq_hz):
    t = np.arange(fs // 2) / fs
    s = 10.0 * np.sin(2 * np.pi * freq_hz * t + 0.3)  # +20 dBFS
    x = np.stack([s, -0.5 * s], axis=1).astype(np.float32)
    y, _ = run(x, fs, ceiling_db)
    check(y, ceiling_db)


@pytest.mark.parametrize("fs", [44100, 48000, 96000])
@pytest.mark.parametrize("ceiling_db", [0.0, -0.3, -1.0, -6.0])
def test_intersample_pattern(fs, ceiling_db):
    # [0, 0, 1, 1, 0, 0]: sample peak 0 dBFS, band-limited peak 2*sinc(1/2) = +2.1 dB between the ones
    x = np.zeros((4096, 2), np.float32)
    for k in range(5):
        x[500 + 700 * k : 506 + 700 * k, :] = np.array([0, 0, 1, 1, 0, 0], np.float32)[:, None]
    y, _ = run(x, fs, ceiling_db)
    check(y, ceiling_db)


@pytest.mark.parametrize("fs", [44100, 48000, 96000])
@pytest.mark.parametrize("ceiling_db", [0.0, -0.3, -1.0, -6.0])
def test_burst_amplitude_two(fs, ceiling_db, rng):
    x = np.zeros((8192, 2), np.float32)
    x[3000:3100, 0] = 2.0  # 100-sample rectangular burst at amplitude 2.0 (+6 dBFS)
    x[3000:3100, 1] = 2.0 * np.sign(rng.standard_normal(100))  # and a full-band random-sign one
    y, _ = run(x, fs, ceiling_db)
    check(y, ceiling_db)


@pytest.mark.parametrize("fs", [44100, 48000, 96000])
def test_below_ceiling_is_a_pure_delay(fs, rng):
    t = np.arange(fs) / fs
    s = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(fs)  # peaks well below -1 dBTP
    x = np.stack([s, np.roll(s, 17)], axis=1).astype(np.float32)
    y, lim = run(x, fs, -1.0)
    lat = lim.latency_samples
    assert lat == round(5.0 * fs / 1000)  # default lookahead_ms = 5
    np.testing.assert_allclose(y[lat : len(x) + lat], x, atol=1e-6, rtol=0)
    assert np.all(y[:lat] == 0)


def test_gain_recovers_with_release(rng):
    # After a loud burst the gain returns to 1 (release ramp, then exact unity).
    fs = 48000
    x = np.zeros((fs, 2), np.float32)
    x[1000:1100] = 3.0
    x[:, :] += (0.1 * np.sin(2 * np.pi * 300 * np.arange(fs) / fs))[:, None].astype(np.float32)
    y, lim = run(x, fs, -1.0, limiter_release_ms=20.0)
    lat = lim.latency_samples
    np.testing.assert_allclose(y[fs // 2 + lat : fs + lat], x[fs // 2 :], atol=1e-6, rtol=0)
