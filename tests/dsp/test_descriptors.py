"""Long-term descriptors (dsp/descriptors.py).

References: closed forms — a sine's mean square ``A**2 / 2``; the K-weighting
gain from the BS.1770-4 Annex 1 tables (48 kHz coefficients, evaluated with
scipy.signal.freqz); pink noise has equal power in every 1/3-octave band
(power density ``1/f`` integrates to ``ln(f_hi / f_lo)``, the same for all
bands); for independent mid and side noises of the same spectrum the side/mid
ratio is ``20 log10(g)`` in every band; Parseval for the band partition.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal as ss

from mixpilot.dsp.descriptors import (
    BAND_CENTRES_HZ,
    BAND_LOWER_HZ,
    BAND_NOMINAL_HZ,
    BAND_UPPER_HZ,
    LEVEL_FLOOR_DB,
    N_BANDS,
    WIDTH_FLOOR_DB,
    DescriptorAccumulator,
    band_matrix,
    compute_descriptors,
    frame_length,
)

FS = 48000

# BS.1770-4 Annex 1, Tables 1 and 2 (48 kHz): pre-filter and RLB high-pass
_K_STAGE1 = ([1.53512485958697, -2.69169618940638, 1.19839281085285], [1.0, -1.69065929318241, 0.73248077421585])
_K_STAGE2 = ([1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621])


def _k_gain_db(freq_hz: float) -> float:
    """K-weighting power gain at ``freq_hz`` (48 kHz tables, scipy.signal.freqz)."""
    g = 0.0
    for b, a in (_K_STAGE1, _K_STAGE2):
        _, h = ss.freqz(b, a, worN=[freq_hz], fs=FS)
        g += 20.0 * math.log10(abs(h[0]))
    return g


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with power density exactly proportional to 1/f (FFT-shaped white noise), DC removed."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / FS)
    spec[0] = 0.0
    spec[1:] /= np.sqrt(f[1:])
    return np.fft.irfft(spec, n)


def test_band_layout_is_iec_base_ten_third_octaves() -> None:
    # IEC 61260-1: centres 1000 * 10**(k/10), edges centre * 10**(+-1/20); nominal labels ISO 266.
    assert N_BANDS == len(BAND_NOMINAL_HZ) == 29 >= 24
    assert BAND_CENTRES_HZ[16] == pytest.approx(1000.0)
    np.testing.assert_allclose(BAND_UPPER_HZ[:-1], BAND_LOWER_HZ[1:], rtol=1e-12)  # contiguous
    np.testing.assert_allclose(BAND_CENTRES_HZ, BAND_NOMINAL_HZ, rtol=0.03)


def test_band_matrix_partitions_the_bins() -> None:
    # Each bin's power is counted at most once; bins wholly inside the covered range exactly once.
    n = frame_length(FS)
    w = band_matrix(FS, n)
    df = FS / n
    col = w.sum(axis=0)
    assert np.all(col <= 1.0 + 1e-12)
    k = np.arange(n // 2 + 1)
    inside = ((k - 0.5) * df >= BAND_LOWER_HZ[0]) & ((k + 0.5) * df <= BAND_UPPER_HZ[-1])
    np.testing.assert_allclose(col[inside], 1.0, atol=1e-12)
    assert np.all(col[((k + 0.5) * df <= BAND_LOWER_HZ[0]) | ((k - 0.5) * df >= BAND_UPPER_HZ[-1])] == 0.0)
    # a band's width in bins is its bandwidth / df (fractional edges included)
    np.testing.assert_allclose(w.sum(axis=1), (BAND_UPPER_HZ - BAND_LOWER_HZ) / df, rtol=1e-9)


@pytest.mark.parametrize("freq_hz", [100.0, 1000.0, 5000.0])
def test_sine_level_relative_to_loudness(freq_hz: float) -> None:
    # Closed form: a dual-mono sine of amplitude A has mid mean square A^2/2 and loudness
    # -0.691 + 10 log10(2 * A^2/2 * |K(f)|^2) (BS.1770-4 eq. 2), so its band reads
    # 10 log10(A^2/2) - L = -3.0103 + 0.691 - K_dB(f), whatever A; PLR = 20 log10 A - L.
    amp = 0.25
    t = np.arange(20 * FS) / FS
    x = np.repeat((amp * np.sin(2.0 * np.pi * freq_hz * t))[:, None], 2, axis=1)
    d = compute_descriptors(x, FS)
    b = BAND_NOMINAL_HZ.index(freq_hz)
    loudness = -0.691 + 20.0 * math.log10(amp) + _k_gain_db(freq_hz)
    assert d.integrated_lufs == pytest.approx(loudness, abs=0.01)
    assert d.mid_db[b] == pytest.approx(-10.0 * math.log10(2.0) + 0.691 - _k_gain_db(freq_hz), abs=0.02)
    assert np.nanmax(np.delete(d.mid_db, b)) < d.mid_db[b] - 40.0  # the other bands hold only leakage
    assert d.plr_db == pytest.approx(20.0 * math.log10(amp) - loudness, abs=0.02)
    assert np.all(d.side_db == LEVEL_FLOOR_DB)  # dual mono: no side
    assert d.width_db == WIDTH_FLOOR_DB
    assert d.lra_lu == pytest.approx(0.0, abs=0.02)
    np.testing.assert_allclose(d.st_percentiles_lu, 0.0, atol=0.02)


def test_pink_noise_is_flat_in_third_octaves(rng) -> None:
    # Closed form: 1/f power integrates to ln(hi/lo), equal for every 1/3-octave band.
    # Bands from 63 Hz hold >= 4 FFT bins; statistical scatter of 60 s of noise < 0.3 dB there.
    n = 60 * FS
    p = _pink(n, rng)
    x = np.stack([p, p], axis=1) * (0.1 / np.std(p))
    d = compute_descriptors(x, FS)
    lvl = d.mid_db[BAND_NOMINAL_HZ.index(63.0) :]
    assert np.max(np.abs(lvl - np.median(lvl))) < 0.3
    assert np.max(d.mid_spread_db[BAND_NOMINAL_HZ.index(500.0) :]) < 0.3  # stationary: little spread in time


def test_width_of_independent_mid_and_side(rng) -> None:
    # Closed form: independent white noises M and S = g * N2 -> side/mid = 20 log10 g in every band.
    n = 30 * FS
    g = 0.5
    m = 0.1 * rng.standard_normal(n)
    s = g * 0.1 * rng.standard_normal(n)
    d = compute_descriptors(np.stack([m + s, m - s], axis=1), FS)
    assert d.width_db == pytest.approx(20.0 * math.log10(g), abs=0.05)
    # per band: ~20+ bins x ~90 independent frames from 200 Hz up -> scatter of ~0.2 dB (2.5 sigma: 0.5)
    wb = d.width_band_db[BAND_NOMINAL_HZ.index(200.0) :]
    np.testing.assert_allclose(wb, 20.0 * math.log10(g), atol=0.5)
    assert np.mean(wb) == pytest.approx(20.0 * math.log10(g), abs=0.1)
    np.testing.assert_allclose(d.side_db - d.mid_db, d.width_band_db, atol=1e-9)


def test_gain_changes_only_the_loudness(rng) -> None:
    # Relative levels, width, PLR and LRA are independent of a gain; loudness moves by it.
    x = 0.1 * rng.standard_normal((20 * FS, 2))
    x[: 5 * FS] *= 0.3
    a = compute_descriptors(x, FS)
    b = compute_descriptors(0.25 * x, FS)
    assert b.integrated_lufs - a.integrated_lufs == pytest.approx(20.0 * math.log10(0.25), abs=0.01)
    np.testing.assert_allclose(b.mid_db, a.mid_db, atol=0.02)
    np.testing.assert_allclose(b.side_db, a.side_db, atol=0.02)
    np.testing.assert_allclose(b.width_band_db, a.width_band_db, atol=1e-9)
    assert b.plr_db == pytest.approx(a.plr_db, abs=0.02)
    assert b.lra_lu == pytest.approx(a.lra_lu, abs=0.02)


def test_block_by_block_equals_whole_buffer(rng) -> None:
    # The running form is the offline form: any block size gives the same descriptors.
    x = 0.1 * rng.standard_normal((11 * FS + 123, 2))
    whole = compute_descriptors(x, FS)
    acc = DescriptorAccumulator(FS, 2)
    for start in range(0, x.shape[0], 1000):
        acc.update(x[start : start + 1000])
        if start == 5 * FS:
            acc.descriptors()  # reading midway does not disturb the state
    acc.flush()
    part = acc.descriptors()
    assert acc.seconds == pytest.approx(x.shape[0] / FS)
    for name in ("mid_db", "side_db", "mid_spread_db", "width_band_db", "st_percentiles_lu"):
        np.testing.assert_allclose(getattr(part, name), getattr(whole, name), atol=1e-9, err_msg=name)
    assert part.integrated_lufs == whole.integrated_lufs
    assert part.true_peak_dbtp == whole.true_peak_dbtp


def test_mono_is_measured_as_dual_mono(rng) -> None:
    m = 0.1 * rng.standard_normal(8 * FS)
    a = compute_descriptors(m, FS)
    b = compute_descriptors(np.stack([m, m], axis=1), FS)
    np.testing.assert_allclose(a.mid_db, b.mid_db, atol=1e-9)
    assert a.integrated_lufs == pytest.approx(b.integrated_lufs, abs=1e-9)


def test_silence_and_reset(rng) -> None:
    d = compute_descriptors(np.zeros((5 * FS, 2)), FS)
    assert d.silent and d.segments == 0
    assert np.all(np.isnan(d.mid_db)) and math.isnan(d.width_db)
    acc = DescriptorAccumulator(FS, 2)
    acc.update(0.1 * rng.standard_normal((4 * FS, 2)))
    assert not acc.descriptors().silent
    acc.reset()
    assert acc.seconds == 0.0 and acc.descriptors().silent


def test_non_finite_samples_are_measured_as_zero(rng) -> None:
    x = 0.1 * rng.standard_normal((6 * FS, 2))
    y = x.copy()
    y[1000:1010] = np.nan
    x[1000:1010] = 0.0
    np.testing.assert_allclose(compute_descriptors(y, FS).mid_db, compute_descriptors(x, FS).mid_db, atol=1e-9)


def test_bands_above_nyquist_are_nan(rng) -> None:
    d = compute_descriptors(0.1 * rng.standard_normal((5 * 22050, 2)), 22050)
    valid = BAND_UPPER_HZ < 22050 / 2
    assert np.all(np.isnan(d.mid_db[~valid])) and np.all(np.isfinite(d.mid_db[valid]))


def test_bad_shape_is_refused() -> None:
    acc = DescriptorAccumulator(FS, 2)
    with pytest.raises(ValueError, match="frames, 2"):
        acc.update(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="1 or 2"):
        DescriptorAccumulator(FS, 3)


@pytest.mark.parametrize("fs", [8000, 44100, 48000, 96000, 192000])
def test_band_powers_equal_the_band_matrix_product(fs: int, rng) -> None:
    # _band_powers sums each bin's power into its (at most two adjacent) bands; reference: the dense
    # float64 product with band_matrix and the K-weighting power, as the accumulator computed it
    # before.  Only the summation order differs: relative error under 1e-12.
    from mixpilot.dsp.descriptors import _band_powers, band_pairs, k_weighting_power

    n = frame_length(fs)
    bands = band_matrix(fs, n)
    lo, w_lo, w_hi = band_pairs(bands)
    x = rng.standard_normal((6, n)) * rng.choice([1e-4, 1.0], size=(6, 1))
    spec = np.fft.rfft(x, axis=1)
    scale = rng.uniform(0.5, 2.0, n // 2 + 1)
    kpow = k_weighting_power(np.fft.rfftfreq(n, 1.0 / fs), fs)
    out = np.empty((6, N_BANDS))
    kk = np.empty(3)
    _band_powers(spec, scale, lo, w_lo, w_hi, kpow, out, kk)
    p = np.abs(spec) ** 2 * scale
    ref = p @ bands.T
    ref_k = 2.0 * ((p[:3] + p[3:]) @ kpow)
    assert np.all(np.abs(out - ref) <= 1e-12 * np.maximum(ref, 1e-300))
    assert np.all(np.abs(kk - ref_k) <= 1e-12 * ref_k)
