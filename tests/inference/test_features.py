"""inference.features against references.

References: librosa.feature.melspectrogram (center=False, power=2, Slaney mel
and norm) for the whole pipeline; librosa.filters.mel for our own filterbank (the
shipped models were trained on librosa's); librosa.mel_frequencies
for band placement; Slaney's mel scale in closed form (Auditory Toolbox 1998:
200/3 Hz per mel below 1 kHz, 27 mels per factor 6.4 above);
the closed-form DFT of a Hann-windowed bin-centred sine (three spectral lines,
|X| = A N/4 at the bin and A N/8 at its neighbours, Harris 1978) for level.
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from mixpilot.inference.features import (
    FEATURE_CONFIG,
    FeatureConfig,
    FeatureError,
    extract_batch,
    extract_features,
    input_window_frames,
    mel_filterbank,
    window_from,
)
from mixpilot.inference.features import _hz_to_mel as hz_to_mel
from mixpilot.inference.features import _mel_to_hz as mel_to_hz

CFG = FEATURE_CONFIG
SR = CFG.sample_rate


def _sine(freq_hz: float, seconds: float, sample_rate: float, amp: float = 1.0, channels: int = 2):
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    x = amp * np.sin(2.0 * np.pi * freq_hz * t)
    return np.repeat(x[:, None], channels, axis=1)


def test_config_shape_and_dict_round_trip():
    assert CFG.window_samples == 66150
    assert CFG.n_frames == 1 + (66150 - 1024) // 512
    assert CFG.shape == (2, 64, CFG.n_frames)
    assert FeatureConfig.from_dict(CFG.as_dict()) == CFG
    other = FeatureConfig(n_mels=32, window_s=2.0)
    assert FeatureConfig.from_dict(other.as_dict()) == other


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"n_melz": 64}, "n_melz"),
        ({"n_mels": "64"}, "n_mels"),
        ({"hop_length": 1.5}, "hop_length"),
    ],
)
def test_from_dict_names_the_bad_key(bad, key):
    d = CFG.as_dict()
    d.update(bad)
    with pytest.raises(ValueError, match=key):
        FeatureConfig.from_dict(d)


def test_from_dict_missing_key():
    d = CFG.as_dict()
    del d["floor_db"]
    with pytest.raises(ValueError, match="floor_db"):
        FeatureConfig.from_dict(d)


def test_matches_librosa_melspectrogram(rng):
    x = rng.standard_normal((CFG.window_samples, 2)) * 0.1
    feats = extract_features(x, SR)
    for c, sig in enumerate((0.5 * (x[:, 0] + x[:, 1]), 0.5 * (x[:, 0] - x[:, 1]))):
        ref = librosa.feature.melspectrogram(
            y=sig,
            sr=SR,
            n_fft=CFG.n_fft,
            hop_length=CFG.hop_length,
            center=False,
            window="hann",
            power=2.0,
            n_mels=CFG.n_mels,
            fmin=CFG.fmin_hz,
            fmax=CFG.fmax_hz,
            htk=False,
            norm="slaney",
        )
        ref_db = np.maximum(10.0 * np.log10(ref + 1e-10), CFG.floor_db)
        np.testing.assert_allclose(feats[c], ref_db, atol=1e-3)


def test_slaney_mel_scale_closed_form():
    # Slaney (Auditory Toolbox 1998): mel = f / (200/3) below 1 kHz (so 1 kHz = 15 mel), then
    # 27 mels per factor 6.4 in frequency (6.4 kHz = 42 mel, 40.96 kHz = 69 mel).
    np.testing.assert_allclose(hz_to_mel([0.0, 100.0, 1000.0, 6400.0, 40960.0]), [0.0, 1.5, 15.0, 42.0, 69.0])
    f = np.geomspace(10.0, 20000.0, 200)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, rtol=1e-12)


def test_filterbank_triangles_have_unit_area():
    # Slaney's norm scales each triangle (base hi - lo) to a peak of 2 / (hi - lo): area 1 (in Hz).
    # Summed over FFT bins (spacing sr/n_fft) that is 1 once a band spans many bins.
    config = FeatureConfig(sample_rate=22050, n_fft=16384)
    fb = mel_filterbank(config)
    edges = mel_to_hz(np.linspace(hz_to_mel(config.fmin_hz), hz_to_mel(config.fmax_hz), config.n_mels + 2))
    bin_hz = config.sample_rate / config.n_fft
    wide = (edges[2:] - edges[:-2]) > 40 * bin_hz
    assert wide.sum() > 50
    np.testing.assert_allclose(fb[wide].sum(axis=1) * bin_hz, 1.0, rtol=2e-3)
    # each band is zero outside (lo, hi) and peaks next to its centre
    bins = np.fft.rfftfreq(config.n_fft, 1.0 / config.sample_rate)
    for i in range(config.n_mels):
        assert np.all(fb[i][(bins <= edges[i]) | (bins >= edges[i + 2])] == 0.0)
        assert abs(bins[np.argmax(fb[i])] - edges[i + 1]) <= bin_hz


def test_runtime_features_do_not_import_librosa():
    # the runtime builds its own filterbank: librosa (and scikit-learn with it) stays a test-only reference
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from mixpilot.inference.features import extract_features\n"
        "extract_features(np.zeros((44100, 2)), 44100)\n"
        "print(sorted(m for m in ('librosa', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("freq_hz", [110.0, 440.0, 1000.0, 3000.0, 8000.0])
def test_sine_lands_in_its_mel_band(freq_hz):
    feats = extract_features(_sine(freq_hz, CFG.window_s, SR, 0.5), SR)
    band = int(np.argmax(feats[0].mean(axis=1)))
    # band centres: librosa.mel_frequencies gives n_mels + 2 edges, centres are [1:-1]
    centres = librosa.mel_frequencies(CFG.n_mels + 2, fmin=CFG.fmin_hz, fmax=CFG.fmax_hz)[1:-1]
    nearest = int(np.argmin(np.abs(centres - freq_hz)))
    assert abs(band - nearest) <= 1
    lo, hi = librosa.mel_frequencies(CFG.n_mels + 2, fmin=CFG.fmin_hz, fmax=CFG.fmax_hz)[[band, band + 2]]
    assert lo <= freq_hz <= hi


@pytest.mark.parametrize("k0", [20, 93, 300])
def test_full_scale_sine_level_closed_form(k0):
    n = CFG.n_fft
    freq = k0 * SR / n  # bin-centred: the periodic-Hann spectrum is exactly three lines
    feats = extract_features(_sine(freq, CFG.window_s, SR, 1.0), SR)
    power = np.zeros(n // 2 + 1)
    power[k0] = (n / 4.0) ** 2
    power[k0 - 1] = power[k0 + 1] = (n / 8.0) ** 2
    expected_db = 10.0 * np.log10(mel_filterbank(CFG) @ power + 1e-10)
    band = int(np.argmax(expected_db))
    got = feats[0, band]
    assert np.all(np.abs(got - expected_db[band]) < 0.5)


def test_side_of_mono_is_at_floor():
    mono = _sine(440.0, 3.5, 44100, 0.7, channels=1).astype(np.float32)
    feats = extract_features(mono, 44100)
    assert np.all(feats[1] == CFG.floor_db)
    stereo = np.repeat(mono, 2, axis=1)
    np.testing.assert_array_equal(extract_features(stereo, 44100), feats)


@pytest.mark.parametrize("freq_hz", [220.0, 1500.0, 7000.0])
def test_resampled_rate_agrees(freq_hz):
    a = extract_features(_sine(freq_hz, 3.2, 22050, 0.5), 22050)
    b = extract_features(_sine(freq_hz, 3.2, 44100, 0.5), 44100)
    strong = a[0].mean(axis=1) > a[0].mean(axis=1).max() - 30.0
    assert np.abs(a[0][strong] - b[0][strong]).max() < 0.5


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000, 96000])
def test_streaming_window_is_bit_exact(rng, sample_rate):
    long = (rng.standard_normal((int(7.3 * sample_rate), 2)) * 0.2).astype(np.float32)
    w = input_window_frames(sample_rate)
    whole = extract_features(long, sample_rate)
    alone = extract_features(long[-w:].copy(), sample_rate)
    np.testing.assert_array_equal(whole, alone)
    end = int(4.1 * sample_rate)
    win = window_from(long, end, sample_rate)
    assert win.shape == (w, 2)
    np.testing.assert_array_equal(extract_features(win, sample_rate), extract_features(long[:end], sample_rate))
    # deterministic resampling
    np.testing.assert_array_equal(extract_features(long, sample_rate), whole)


def test_short_input_is_zero_padded_at_start(rng):
    x = rng.standard_normal((SR, 2)) * 0.1
    padded = np.concatenate([np.zeros((CFG.window_samples - SR, 2)), x])
    np.testing.assert_array_equal(extract_features(x, SR), extract_features(padded, SR))
    win = window_from(x, SR, SR)
    assert win.shape == (CFG.window_samples, 2)
    assert np.all(win[: CFG.window_samples - SR] == 0.0)


def test_silence_nonfinite_dtype_and_batch(rng):
    x = np.zeros((CFG.window_samples, 2), dtype=np.float32)
    f = extract_features(x, SR)
    assert f.dtype == np.float32 and f.shape == CFG.shape
    assert np.all(f == CFG.floor_db)
    x[100, 0] = np.nan
    x[200, 1] = np.inf
    assert np.all(np.isfinite(extract_features(x, SR)))
    batch = extract_batch([rng.standard_normal((SR * 4, 2)) * 0.1 for _ in range(3)], SR)
    assert batch.shape == (3,) + CFG.shape and batch.dtype == np.float32


def test_bad_audio_is_refused():
    with pytest.raises(FeatureError):
        extract_features(np.zeros((100, 3)), SR)
    with pytest.raises(FeatureError):
        extract_features(np.zeros((100, 2), dtype=np.int16), SR)


def test_filterbank_is_librosas():
    # mel_filterbank is librosa.filters.mel's construction written in numpy (serving never imports
    # librosa); the reference is librosa itself.
    ref = librosa.filters.mel(
        sr=SR,
        n_fft=CFG.n_fft,
        n_mels=CFG.n_mels,
        fmin=CFG.fmin_hz,
        fmax=CFG.fmax_hz,
        htk=False,
        norm="slaney",
        dtype=np.float64,
    )
    np.testing.assert_allclose(mel_filterbank(CFG), ref, rtol=1e-12, atol=1e-15)
    other = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40, fmin_hz=0.0, fmax_hz=8000.0)
    ref = librosa.filters.mel(
        sr=16000, n_fft=512, n_mels=40, fmin=0.0, fmax=8000.0, htk=False, norm="slaney", dtype=np.float64
    )
    np.testing.assert_allclose(mel_filterbank(other), ref, rtol=1e-12, atol=1e-15)


def test_soxr_float32_is_its_float64_output(rng):
    # features._resample feeds soxr float32 because soxr's HQ engine computes in single precision:
    # the float64 interface gives the same samples (the reference is soxr's own float64 path).
    import soxr

    x = rng.standard_normal((3 * 48000, 2)) * 0.3
    ref = soxr.resample(x, 48000, SR, quality="HQ")
    got = soxr.resample(x.astype(np.float32), 48000, SR, quality="HQ")
    np.testing.assert_array_equal(got.astype(np.float64), ref)
