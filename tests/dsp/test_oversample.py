"""Tests for the 4x true-peak interpolator (:mod:`dsp.oversample`, ITU-R BS.1770-4 Annex 2).

References, per test:

* exact delay of branch 0 — by construction (the design pins it to a unit impulse);
* fs/4 sine at 45 degrees — closed form: samples are ``sin(45 deg) = 0.7071`` and
  the peak of the underlying band-limited sine is 1.0;
* band-limited noise — ``scipy.signal.resample_poly(x, 8, 1)`` as the
  independent 8x reconstruction;
* the pattern ``[0, 0, 1, 1, 0, 0]`` — closed form of ideal (sinc)
  reconstruction: midway between the two ones the value is
  ``sinc(0.5) + sinc(-0.5) = 2 sinc(0.5) = 4 / pi = 1.2732``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal as ss

from mixpilot.dsp.oversample import TP_COEFFS, TP_DELAY, TP_FACTOR, TP_TAPS, true_peak_linear


def _db(ratio: float) -> float:
    return 20.0 * np.log10(ratio)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


def test_coefficient_shape() -> None:
    # Reference: dsp/oversample.py module contract (4 polyphase branches of TP_TAPS taps).
    assert TP_COEFFS.shape == (TP_FACTOR, TP_TAPS)
    assert TP_COEFFS.flags.c_contiguous


def test_branch0_is_exact_delay(rng: np.random.Generator) -> None:
    # Reference: by construction branch 0 is a pure delay of TP_DELAY samples,
    # so it must reproduce the input bit for bit, TP_DELAY samples late.
    one_hot = np.zeros(TP_TAPS)
    one_hot[TP_TAPS - 1 - TP_DELAY] = 1.0  # coefficients are reversed (oldest sample first)
    np.testing.assert_array_equal(TP_COEFFS[0], one_hot)

    x = rng.standard_normal(500)
    windows = np.lib.stride_tricks.sliding_window_view(x, TP_TAPS)  # oldest .. newest
    y = windows @ TP_COEFFS[0]
    # window i ends at sample i + TP_TAPS - 1; branch 0 gives x[end - TP_DELAY]
    np.testing.assert_array_equal(y, x[TP_TAPS - 1 - TP_DELAY : len(x) - TP_DELAY])


def test_quarter_rate_sine_45deg_reads_full_scale() -> None:
    # Reference: closed form. A full-scale sine at fs/4 with 45 deg phase has its
    # samples at +-0.7071 (sample peak -3.01 dBFS) and its peak halfway between
    # samples, at exactly 1.0 (0 dBTP). The buffer starts and ends abruptly, as
    # the brief specifies; true_peak_linear sees silence around it.
    n = np.arange(4800)
    x = np.sin(2.0 * np.pi * n / 4.0 + np.pi / 4.0)
    assert np.abs(x).max() == pytest.approx(np.sqrt(0.5), abs=1e-12)
    assert abs(_db(true_peak_linear(x))) <= 0.1


def test_quarter_rate_sine_45deg_steady_state_reads_full_scale() -> None:
    # Reference: closed form, as above, but for the steady-state sine: the first and
    # last 10 ms are faded with a raised cosine so that the truncation of the
    # buffer (whose ideal reconstruction overshoots, see the test below) does not
    # mask the interpolator's own error at fs/4.
    n = np.arange(48000)
    x = np.sin(2.0 * np.pi * n / 4.0 + np.pi / 4.0)
    ramp = 480
    fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    x[:ramp] *= fade
    x[-ramp:] *= fade[::-1]
    assert abs(_db(true_peak_linear(x))) <= 0.1


def test_quarter_rate_sine_45deg_abrupt_matches_ideal_reconstruction() -> None:
    # Reference: scipy.signal.resample_poly with a long Kaiser window (beta 12,
    # i.e. an almost ideal band-limited reconstruction) of the same abrupt
    # buffer padded with silence: the truncated sine genuinely peaks a little
    # above 1.0 near its ends.
    n = np.arange(4800)
    x = np.sin(2.0 * np.pi * n / 4.0 + np.pi / 4.0)
    padded = np.concatenate([np.zeros(1000), x, np.zeros(1000)])
    ideal = np.abs(ss.resample_poly(padded, 16, 1, window=("kaiser", 12.0))).max()
    assert abs(_db(true_peak_linear(x) / ideal)) <= 0.1


@pytest.mark.parametrize("trial", range(8))
def test_band_limited_noise_matches_resample_poly(trial: int) -> None:
    # Reference: scipy.signal.resample_poly(x, 8, 1) (8x polyphase, Kaiser window)
    # peak of seeded white noise low-passed at 0.4 fs (511-tap firwin).
    lowpass = ss.firwin(511, 0.8)  # cutoff 0.8 x Nyquist = 0.4 fs
    noise = np.random.default_rng(1000 + trial).standard_normal(4800 + lowpass.size)
    x = ss.lfilter(lowpass, 1.0, noise)[lowpass.size :]
    x /= np.abs(x).max()
    reference = np.abs(ss.resample_poly(x, 8, 1)).max()
    assert abs(_db(true_peak_linear(x) / reference)) <= 0.2


def test_two_sample_pulse_reads_two_sinc_half() -> None:
    # Reference: closed form of ideal reconstruction, 2 sinc(0.5) = 4/pi = 1.2732.
    x = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    expected = 2.0 * np.sinc(0.5)
    assert expected == pytest.approx(4.0 / np.pi)
    assert abs(_db(true_peak_linear(x) / expected)) <= 0.15


def test_true_peak_never_below_sample_peak_and_stereo_is_max(rng: np.random.Generator) -> None:
    # Reference: definition (branch 0 reproduces every sample, so the 4x peak is at
    # least the sample peak); a stereo buffer's true peak is the max over channels.
    x = rng.standard_normal((2000, 2)) * np.array([0.3, 0.6])
    tp = true_peak_linear(x)
    assert tp >= np.abs(x).max()
    assert tp == max(true_peak_linear(x[:, 0]), true_peak_linear(x[:, 1]))


def test_tap_major_branch_sums_are_the_sequential_sums():
    # _tp_peak3 / _tp_peak6 walk the history once with one accumulator per branch; each branch's sum
    # is the same sequence of multiply-adds as the plain dot product in history order (reference: a
    # Python loop, float64, in that order), so the peak is bit-identical.
    from mixpilot.dsp.limiter import LIMITER_TP_COEFFS
    from mixpilot.dsp.limiter import TP_COEFFS_T as LIM_T
    from mixpilot.dsp.oversample import TP_COEFFS_T, _tp_peak3, _tp_peak6

    rng = np.random.default_rng(3)
    for coeffs, ct, fn in ((TP_COEFFS, TP_COEFFS_T, _tp_peak3), (LIMITER_TP_COEFFS, LIM_T, _tp_peak6)):
        for _ in range(200):
            buf = rng.standard_normal(2 * TP_TAPS) * rng.choice([1e-3, 1.0, 30.0])
            w = int(rng.integers(0, TP_TAPS))
            ref = abs(buf[w + TP_TAPS - 1 - TP_TAPS // 2])
            for r in range(1, coeffs.shape[0]):
                acc = 0.0
                for i in range(TP_TAPS):
                    acc += coeffs[r, i] * buf[w + i]
                ref = max(ref, abs(acc))
            assert fn(buf, w, ct) == ref


def test_block_true_peak_is_the_per_sample_peak_bit_for_bit():
    # _tp_channel_peak (time-major, the taps unrolled and vectorised across time; the meter and
    # true_peak_linear use it) against the per-sample reference: push every sample with _tp_push and
    # evaluate _tp_peak3 after each (itself checked against plain float64 sums above).  Blocks of 1 to
    # 2 TP_CHUNK + 1 frames (chunk edges, blocks shorter than the history), non-finite samples read
    # as 0: the peak, the history ring and its index are identical.
    from mixpilot.dsp.oversample import TP_CHUNK, TP_COEFFS_T, _tp_channel_peak, _tp_peak3, _tp_push, tp_scratch

    rng = np.random.default_rng(19)
    x = rng.standard_normal((12000, 2)) * rng.choice([1e-3, 0.5, 3.0], size=(12000, 1))
    x[[100, 4000], 0] = np.nan
    x[[200, 5000], 1] = np.inf
    for c in range(2):
        buf_ref, w_ref = np.zeros(2 * TP_TAPS), 0
        buf, w = np.zeros(2 * TP_TAPS), 0
        scratch = tp_scratch()
        pos = 0
        for m in (1, 3, TP_TAPS - 1, TP_TAPS, TP_TAPS + 1, TP_CHUNK, TP_CHUNK + 1, 2 * TP_CHUNK + 1, 500, 0, 1, 7000):
            blk = x[pos : pos + m]
            ref = 0.0
            for v in blk[:, c]:
                w_ref = _tp_push(buf_ref, w_ref, float(v) if np.isfinite(v) else 0.0)
                ref = max(ref, _tp_peak3(buf_ref, w_ref, TP_COEFFS_T))
            peak, w = _tp_channel_peak(blk, c, buf, w, TP_COEFFS_T, scratch)
            assert peak == ref
            assert w == w_ref
            assert np.array_equal(buf, buf_ref)
            pos += blk.shape[0]


def test_block_true_peak_above_a_floor_is_exact_and_skips_what_cannot_reach_it():
    # issue 19: _tp_channel_peak(..., floor) leaves out a chunk whose every interpolated value is bounded by
    # the floor (or the peak so far): TP_GAIN_BOUND x its largest |sample|.  Reference: the per-sample
    # _tp_peak3 after every push (as above).  A meter passes its true peak so far as the floor, so
    # max(peak, floor) must equal max(reference, floor) bit for bit -- for loud, quiet and worst-case
    # blocks (samples of one branch's coefficient signs: the interpolated value reaches the bound's sum);
    # and a quiet block after a loud one must really be left out (its returned peak below the reference).
    from mixpilot.dsp.oversample import (
        TP_CHUNK,
        TP_COEFFS_T,
        TP_GAIN_BOUND,
        _tp_channel_peak,
        _tp_peak3,
        _tp_push,
        tp_scratch,
    )

    assert TP_GAIN_BOUND >= float(np.abs(TP_COEFFS_T).sum(axis=0).max())
    rng = np.random.default_rng(20)
    worst = np.tile(np.sign(TP_COEFFS_T[::-1, 1]), 200)  # one branch's sum of |c| at every TP_TAPS-th sample
    blocks = [rng.standard_normal(3000) * 0.5, rng.standard_normal(2 * TP_CHUNK + 5) * 1e-2]
    blocks += [worst * 0.2, worst * 0.2 * (1 + 1e-12), rng.standard_normal(700) * 0.3, worst * 0.21]
    blocks += [np.zeros(TP_CHUNK), rng.standard_normal(5000) * 0.05]
    buf_ref, w_ref = np.zeros(2 * TP_TAPS), 0
    buf, w = np.zeros(2 * TP_TAPS), 0
    scratch = tp_scratch()
    running_ref = running = 0.0
    skipped = False
    for blk in blocks:
        ref = 0.0
        for v in blk:
            w_ref = _tp_push(buf_ref, w_ref, float(v))
            ref = max(ref, _tp_peak3(buf_ref, w_ref, TP_COEFFS_T))
        peak, w = _tp_channel_peak(blk[:, None], 0, buf, w, TP_COEFFS_T, scratch, running)
        assert max(peak, running) == max(ref, running)
        assert w == w_ref and np.array_equal(buf, buf_ref)
        skipped |= peak < ref
        running, running_ref = max(running, peak), max(running_ref, ref)
        assert running == running_ref
    assert skipped
