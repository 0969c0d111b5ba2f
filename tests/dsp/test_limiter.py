"""Lookahead true-peak limiter.

References: the ceiling is a hard bound on |y| (closed form); the true peak of
the output is measured independently of our detector with
``scipy.signal.resample_poly(y, 4, 1)`` (a 4x Kaiser-windowed polyphase
interpolator, the oversampling ITU-R BS.1770-4 Annex 2 prescribes) and must
stay under the ceiling (the detector aims 0.06 dB under it, ``TP_HEADROOM_DB``).
Below the ceiling the limiter is a pure delay of ``latency_samples`` (closed form).
"""

import numpy as np
import pytest
from scipy.signal import resample_poly

from mixpilot.dsp.limiter import MIN_RAMP_SAMPLES, TP_COEFFS_T, TP_KAISER_T, TP_LS_T, kaiser_branches
from mixpilot.dsp.oversample import TP_DELAY, TP_TAPS, _tp_chunk_peaks, _tp_peak6, _tp_push
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
    assert independent_true_peak_db(y) <= ceiling_db


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


@pytest.mark.parametrize("fs", [8000, 22050, 44100, 48000, 96000, 192000])
def test_a_lookahead_shorter_than_the_detector_is_compensated(fs):
    # The table allows lookahead_ms = 0.5: 4 samples at 8 kHz, under the detector's own delay of
    # TP_DELAY samples.  The latency is never under TP_DELAY + MIN_RAMP_SAMPLES - 1 (closed form).
    lim = Limiter(lookahead_ms=0.5)
    lim.prepare(ProcessSpec(fs, 256, 2))
    assert lim.latency_samples == max(round(0.5 * fs / 1000), TP_DELAY + MIN_RAMP_SAMPLES - 1)


@pytest.mark.parametrize("fs", [8000, 44100, 48000, 96000])
@pytest.mark.parametrize("kind", ["noise20", "bursts"])
def test_shortest_lookahead_and_release_hold_the_ceiling(fs, kind, rng):
    # Issue 13: {"lookahead_ms": 0.5, "limiter_release_ms": 1} with a big delivery gain went 0.26 dB over.
    if kind == "noise20":
        x = (10.0 * rng.standard_normal((fs // 2, 2))).astype(np.float32)  # +20 dBFS RMS
    else:
        x = np.zeros((fs // 2, 2), np.float32)
        for _ in range(40):  # random-sign bursts of 1..80 samples, up to +18 dBFS
            i = int(rng.integers(0, fs // 2 - 80))
            n = int(rng.integers(1, 80))
            x[i : i + n] = rng.uniform(-8, 8) * np.sign(rng.standard_normal((n, 2)))
    for ceiling_db in (-1.0, -6.0):
        y, _ = run(x, fs, ceiling_db, lookahead_ms=0.5, limiter_release_ms=1.0)
        check(y, ceiling_db)


def test_kaiser_branches_are_resample_polys_interpolator(rng):
    # Reference: scipy.signal.resample_poly(x, 4, 1) itself; branch r at sample n is its output at
    # 4 (n - TP_DELAY) + r.
    x = rng.standard_normal(400)
    up = resample_poly(x, 4, 1)
    b = kaiser_branches()
    for n in range(TP_TAPS + 20, 380, 37):
        hist = x[n - TP_TAPS + 1 : n + 1]
        for r in range(4):
            assert b[r] @ hist == pytest.approx(up[4 * (n - TP_DELAY) + r], abs=1e-12)


def test_float32_output_never_rounds_above_the_ceiling():
    # A DC input far over the ceiling settles exactly at the clamp; as float32 it must stay at or under
    # 10^(ceiling/20) (reference: the ceiling in float64).
    for ceiling_db in (-1.0, -0.3, -17.213, -20.0):
        x = np.full((4096, 2), 5.0, np.float32)
        y, _ = run(x, 48000, ceiling_db)
        assert np.max(np.abs(y.astype(np.float64))) <= 10 ** (ceiling_db / 20)


def test_time_major_detector_equals_the_per_sample_one(rng):
    # Reference: dsp.oversample._tp_peak6 after each _tp_push, sample by sample (the limiter's detector
    # before issue 19); the limiter now reads a chunk as two time-major passes of three branches
    # (least squares, Kaiser), the larger of the two: the same readings, bit for bit.
    x = rng.standard_normal(700) * np.repeat(rng.uniform(0, 4, 7), 100)
    buf = np.zeros(2 * TP_TAPS)
    w = 0
    ref = np.zeros(len(x))
    for k, v in enumerate(x):
        w = _tp_push(buf, w, float(v))
        ref[k] = _tp_peak6(buf, w, TP_COEFFS_T)
    lin = np.concatenate([np.zeros(TP_TAPS - 1), x])
    ls = np.zeros(len(x))
    kaiser = np.zeros(len(x))
    _tp_chunk_peaks(lin, len(x), TP_LS_T, ls)
    _tp_chunk_peaks(lin, len(x), TP_KAISER_T, kaiser)
    np.testing.assert_array_equal(np.maximum(ls, kaiser), ref)
