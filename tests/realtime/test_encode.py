"""Delivery formats (realtime/encode.py): 16-bit TPDF dither, lossy codecs, output rate -- with the ceiling held.

References:

* TPDF dither theory: with non-subtractive dither that is the sum of two
  independent uniform 1-LSB variables (triangular on +-1 LSB), the total
  error of a rounding quantiser has mean 0 and variance Delta^2/6 + Delta^2/12
  = Delta^2/4, both independent of the signal (Lipshitz, Wannamaker &
  Vanderkooy, "Quantization and Dither: A Theoretical Survey", JAES 40(5)
  1992; Wannamaker, "The Theory of Dithered Quantization", 2003).  Undithered
  rounding of a busy signal has Delta^2/12 (Widrow's classical model).
* Loudness: pyloudnorm (``filter_class="DeMan"``), an independent BS.1770-4
  meter; true peak: scipy ``resample_poly`` 4x (the BS.1770-4 Annex 2 method)
  -- both on the decoded file, as a listener's player would decode it
  (libsndfile's mpg123 / libvorbis decoders).
"""

from __future__ import annotations

import math

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy import signal

from mixpilot.demo import synth_demo
from mixpilot.dsp.meter import measure
from mixpilot.realtime.audio_io import UnsupportedOutputError
from mixpilot.realtime.encode import Delivery, deliver, interpolator_gain, quantize
from mixpilot.realtime.render import render_file

SR = 44100
LSB16 = 2.0**-15


def lufs(x: np.ndarray, sample_rate: int) -> float:
    return float(pyloudnorm.Meter(sample_rate, filter_class="DeMan").integrated_loudness(np.asarray(x, np.float64)))


def scipy_true_peak_dbtp(x: np.ndarray) -> float:
    up = signal.resample_poly(np.asarray(x, np.float64), 4, 1, axis=0)
    return 20 * math.log10(max(np.max(np.abs(up)), np.max(np.abs(x))))


# --- 16-bit TPDF dither against the closed form ---------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["silence", "dc_quarter_lsb", "dc_half_lsb", "sine_0.3_lsb", "sine_-20_dbfs"],
)
def test_tpdf_error_is_zero_mean_with_power_delta_squared_over_four_for_any_signal(name):
    n = 1 << 20
    t = np.arange(n) / SR
    x = {
        "silence": np.zeros(n),
        "dc_quarter_lsb": np.full(n, 0.25 * LSB16),
        "dc_half_lsb": np.full(n, 0.5 * LSB16),  # undithered rounding's worst case
        "sine_0.3_lsb": 0.3 * LSB16 * np.sin(2 * np.pi * 997.0 * t),
        "sine_-20_dbfs": 0.1 * np.sin(2 * np.pi * 997.0 * t),
    }[name][:, None]
    q = quantize(x, 16, dither=True, seed=7)
    assert q.dtype == np.int16
    e = q.astype(np.float64) * LSB16 - x[:, 0:1]
    theory = LSB16**2 / 4.0  # Delta^2/4 (Lipshitz et al. 1992)
    var = float(np.mean(e**2))
    # the estimate's relative standard error: sqrt(E[e^4]/E[e^2]^2 - 1)/sqrt(n) < 0.2 % here; 2 % is > 10 sigma
    assert var == pytest.approx(theory, rel=0.02), f"{name}: {10 * math.log10(var):.2f} dBFS"
    assert abs(float(np.mean(e))) < 5 * math.sqrt(theory / n)  # no signal-dependent bias
    assert np.max(np.abs(e)) <= 1.5 * LSB16 + 1e-12  # 1 LSB of dither plus 0.5 of rounding
    # the noise floor in dBFS (RMS re full scale 1.0): 10 log10(2^-30 / 4) = -96.33
    assert 10 * math.log10(var) == pytest.approx(-96.33, abs=0.1)


def test_undithered_rounding_would_depend_on_the_signal():
    # Why the dither is there: plain rounding of a half-LSB DC has error power Delta^2/4 -- but of silence 0,
    # and of a busy -20 dBFS sine Delta^2/12 (Widrow); TPDF makes all of them Delta^2/4 (test above).
    n = 1 << 18
    t = np.arange(n) / SR
    busy = 0.1 * np.sin(2 * np.pi * 997.0 * t)[:, None]
    e = quantize(busy, 16, dither=False).astype(np.float64) * LSB16 - busy
    assert float(np.mean(e**2)) == pytest.approx(LSB16**2 / 12.0, rel=0.03)
    assert np.all(quantize(np.zeros((100, 1)), 16, dither=False) == 0)


def test_dither_is_reproducible_and_channels_independent():
    x = np.zeros((1 << 16, 2))
    a, b = quantize(x, 16, dither=True), quantize(x, 16, dither=True)
    assert np.array_equal(a, b)  # seeded: a render is reproducible bit for bit
    c = np.corrcoef(a[:, 0].astype(float), a[:, 1].astype(float))[0, 1]
    assert abs(c) < 0.02  # left and right get independent dither


def test_24_bit_is_rounded_into_the_top_bytes():
    x = np.array([[0.5], [-1.0], [1.0], [2.0**-23 * 0.49]])
    q = quantize(x, 24, dither=False)
    assert q.dtype == np.int32
    assert list(q[:, 0] >> 8) == [2**22, -(2**23), 2**23 - 1, 0]  # +1.0 clips to the largest code


# --- renders through each format --------------------------------------------------------------


@pytest.fixture(scope="module")
def loud_song(tmp_path_factory):
    """8 s of the demo song at about -8 LUFS: the limiter works hard, as on a real master."""
    x = synth_demo(8.0, SR, seed=11)
    x *= 10 ** ((-8.0 - lufs(x, SR)) / 20.0)
    path = tmp_path_factory.mktemp("enc") / "song.wav"
    sf.write(str(path), x.astype(np.float32), SR, subtype="FLOAT")
    return path


@pytest.mark.parametrize("ext", [".mp3", ".ogg"])
def test_lossy_outputs_decode_at_the_loudness_under_the_ceiling(loud_song, tmp_path, ext):
    out = tmp_path / f"o{ext}"
    rep = render_file(loud_song, out, target_lufs=-14.0, ceiling_dbtp=-1.0)
    y, sr = sf.read(str(out), always_2d=True)  # libsndfile's decoder, as a player would
    info = sf.info(str(out))
    assert info.format == {".mp3": "MP3", ".ogg": "OGG"}[ext] and sr == SR
    measured, tp = lufs(y, sr), scipy_true_peak_dbtp(y)
    print(
        f"\n{ext}: decoded {measured:.2f} LUFS (pyloudnorm), true peak {tp:.2f} dBTP (scipy 4x), {rep.encodes} encodes"
    )
    assert abs(measured - (-14.0)) <= 0.5
    assert tp <= -1.0 + 0.3  # the promise for lossy outputs
    # the report describes the decoded file (its own meter)
    m = measure(y.astype(np.float32), sr)
    assert rep.output_true_peak_dbtp == pytest.approx(m["true_peak_dbtp"], abs=1e-6)
    assert rep.output_true_peak_dbtp <= -1.0 + 1e-9  # re-encoded until the decoded peak held the ceiling
    assert rep.limiter_ceiling_dbtp == pytest.approx(-1.5)  # the lossy margin


def test_16_bit_output_holds_the_ceiling_after_dither(loud_song, tmp_path):
    out = tmp_path / "o16.flac"
    rep = render_file(loud_song, out, bit_depth="16", model="none")
    assert sf.info(str(out)).subtype == "PCM_16"
    y, sr = sf.read(str(out), dtype="float32", always_2d=True)
    assert measure(y, sr)["true_peak_dbtp"] <= -1.0 + 1e-9
    assert scipy_true_peak_dbtp(y) <= -1.0 + 0.1  # EBU Tech 3341's +0.2 dB meter tolerance, halved
    assert abs(lufs(y, sr) - (-14.0)) <= 0.5
    # the limiter ran under the ceiling by the dither's true-peak bound: 1.5 LSB x the interpolator gain
    bound = 1.5 * LSB16 * interpolator_gain()
    assert rep.limiter_ceiling_dbtp == pytest.approx(20 * math.log10(10 ** (-1 / 20) - bound), abs=1e-9)
    # the dither is in the file: against the 24-bit render the residual is TPDF noise of power Delta^2/4, plus a
    # little from the 0.0011 dB lower limiter ceiling of the 16-bit render (measured: +6 %)
    render_file(loud_song, tmp_path / "o24.wav", model="none")
    z, _ = sf.read(str(tmp_path / "o24.wav"), dtype="float64", always_2d=True)
    power = float(np.mean((y.astype(np.float64) - z) ** 2))
    print(f"\n16-bit residual {10 * math.log10(power):.2f} dBFS, theory {10 * math.log10(LSB16**2 / 4):.2f} dBFS")
    assert 0.97 * LSB16**2 / 4 <= power <= 1.15 * LSB16**2 / 4


def test_output_rate_is_resampled_before_mastering(loud_song, tmp_path):
    out = tmp_path / "o48.wav"
    rep = render_file(loud_song, out, output_rate=48000, model="none")
    y, sr = sf.read(str(out), always_2d=True)
    n_in = sf.info(str(loud_song)).frames
    assert sr == 48000 and rep.sample_rate == 48000 and rep.input_sample_rate == SR
    assert abs(y.shape[0] - n_in * 48000 / SR) <= 1
    assert abs(lufs(y, sr) - (-14.0)) <= 0.5
    assert scipy_true_peak_dbtp(y) <= -1.0 + 0.1
    assert any("resampled 44100 -> 48000 Hz" in n for n in rep.notes)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("o.mp3", {"bit_depth": "16"}, "lossy codec; --bit-depth applies to .wav and .flac"),
        ("o.flac", {"bit_depth": "32f"}, "FLAC cannot hold floating-point"),
        ("o.wav", {"bit_depth": "8"}, "--bit-depth must be one of 16, 24, 32f"),
        ("o.wav", {"output_rate": 1000}, "--output-rate 1000 is outside 8000..192000 Hz"),
        ("o.aiff", {}, "output formats are .wav, .flac, .ogg, .mp3"),
    ],
)
def test_bad_delivery_settings_are_one_line_errors(tmp_path, name, kwargs, match):
    with pytest.raises(UnsupportedOutputError, match=match):
        Delivery.for_path(tmp_path / name, **kwargs)


def test_mp3_refuses_rates_it_cannot_hold(tmp_wav, tmp_path):
    inp = tmp_wav(np.zeros((9600, 2)), 96000)
    with pytest.raises(UnsupportedOutputError, match="MP3 cannot hold 96000 Hz.*--output-rate 48000"):
        render_file(inp, tmp_path / "o.mp3")
    assert list(tmp_path.iterdir()) == [inp]  # nothing written


def test_long_vorbis_write_does_not_crash(tmp_path, rng):
    # One libsndfile write of ~70 s of stereo Vorbis overflows libvorbis's stack (alloca, libsndfile#1095);
    # written in chunks it works.  100 s of noise at -20 dBFS, then decoded back to the same length.
    x = (0.1 * rng.standard_normal((100 * SR, 2))).astype(np.float32)
    d = deliver(x, SR, Delivery.for_path(tmp_path / "long.ogg"), tmp_path / "long.ogg", ceiling_dbtp=-1.0)
    assert sf.info(str(tmp_path / "long.ogg")).frames == x.shape[0] and d.encodes >= 1


def test_an_encoder_overshoot_is_trimmed_and_encoded_again(loud_song, tmp_path, monkeypatch):
    # Without the limiter margin the decoded Vorbis peaks land over the ceiling (measured +0.2 dB): deliver()
    # must see it on the decoded file, trim by the excess and encode again until it holds.
    from mixpilot.realtime import encode

    monkeypatch.setattr(encode, "LOSSY_MARGIN_DB", 0.0)
    rep = render_file(loud_song, tmp_path / "o.ogg", model="none")
    y, sr = sf.read(str(tmp_path / "o.ogg"), dtype="float32", always_2d=True)
    assert rep.limiter_ceiling_dbtp == -1.0 and rep.encodes >= 2 and rep.trim_db < 0.0
    assert measure(y, sr)["true_peak_dbtp"] <= -1.0 + 1e-9
    assert abs(lufs(y, sr) - (-14.0)) <= 0.5
    assert any("encoder overshot the ceiling" in n for n in rep.notes)
