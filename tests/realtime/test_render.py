"""Offline render (realtime/render.py, realtime/audio_io.py).

References, all independent of the code under test:

* integrated loudness: pyloudnorm, an independent ITU-R BS.1770-4
  implementation (its own block gating and filtering), with
  ``filter_class="DeMan"``: the exact BS.1770 K-weighting at any sample rate.
  pyloudnorm's default ``"K-weighting"`` class is an approximation (shelf at
  1500 Hz / +4 dB, high-pass at 38 Hz) that reads white noise 0.04 LU low at
  48 kHz and 0.22 LU low at 8 kHz;
* true peak: BS.1770-4 Annex 2 (4x oversampling, then the largest absolute
  value), computed here with ``scipy.signal.resample_poly`` (a Kaiser-windowed
  polyphase FIR, not the interpolator in dsp/oversample.py);
* alignment and the linear path: with every parameter at its table default
  the chain is a gain (ratio 1 compressor, 0 dB EQ, zero sends, width 1) and
  the limiter is transparent below its ceiling, so the output must equal the
  input times the delivery gain, sample for sample (the 24-bit file adds at
  most 2**-24 of quantisation error);
* downmix: ITU-R BS.775 Table 2 (Lo = L + 0.7071 C + 0.7071 Ls, Ro = R +
  0.7071 C + 0.7071 Rs; LFE not used), computed by hand below;
* stereo width 0: the M/S matrix gives L = R = (L + R) / 2.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from mixpilot.dsp.params import ParameterError
from mixpilot.realtime.audio_io import AudioFileError, UnsupportedOutputError
from mixpilot.realtime.render import MAX_PASSES, RenderError, RenderUsageError, render_file

pyloudnorm = pytest.importorskip("pyloudnorm")

SQRT_HALF = 0.7071067811865476  # ITU-R BS.775: -3 dB


def music_like(
    rng: np.random.Generator, seconds: float, sample_rate: int, *, channels: int = 2, rms_dbfs: float = -20.0
) -> np.ndarray:
    """Tones in changing chords plus gated, low-passed noise bursts (drum-like), float64."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    out = np.zeros((n, channels))
    beat = 0.25  # s
    env = np.exp(-(t % beat) / 0.08)  # decaying hit on every beat
    b, a = signal.butter(4, min(5000.0, 0.4 * sample_rate) / (sample_rate / 2))
    for c in range(channels):
        roots = np.array([110.0, 146.8, 164.8, 123.5]) * (1.0 + 0.01 * c)
        root = roots[(t // 1.0).astype(int) % roots.size]
        phase = 2 * np.pi * np.cumsum(root) / sample_rate
        tones = np.sin(phase) + 0.5 * np.sin(1.5 * phase) + 0.25 * np.sin(2.0 * phase)
        noise = signal.lfilter(b, a, rng.standard_normal(n))
        out[:, c] = 0.3 * tones * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t + c)) + 2.0 * noise * env
    out *= 10 ** (rms_dbfs / 20) / np.sqrt(np.mean(out**2))
    return out


def lufs(x: np.ndarray, sample_rate: int) -> float:
    meter = pyloudnorm.Meter(sample_rate, filter_class="DeMan")
    return float(meter.integrated_loudness(np.asarray(x, dtype=np.float64)))


def true_peak_dbtp(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    up = signal.resample_poly(x, 4, 1, axis=0)
    return 20 * math.log10(max(np.max(np.abs(up)), np.max(np.abs(x))))


# --- loudness delivery and true peak --------------------------------------------------


@pytest.fixture(scope="module")
def music_file(tmp_path_factory):
    rng = np.random.default_rng(1770)
    x = music_like(rng, 12.0, 44100)
    path = tmp_path_factory.mktemp("music") / "music.wav"
    sf.write(str(path), x, 44100, subtype="FLOAT")
    return path, x


@pytest.fixture(scope="module", params=[-14.0, -23.0])
def delivered(request, music_file, tmp_path_factory):
    path, x = music_file
    out = tmp_path_factory.mktemp("out") / f"out{request.param:g}.wav"
    rep = render_file(path, out, target_lufs=request.param, ceiling_dbtp=-1.0)
    y, sr = sf.read(str(out))
    return request.param, rep, x, y, sr, out


def test_hits_target_loudness(delivered):
    target, rep, _, y, sr, _ = delivered
    measured = lufs(y, sr)  # pyloudnorm, independent of dsp.meter
    assert abs(measured - target) <= 0.5
    assert abs(rep.output_integrated_lufs - target) <= 0.1  # our own meter: the aim
    assert rep.target_reached and 1 <= rep.passes <= MAX_PASSES


def test_no_true_peak_overs(delivered):
    _, rep, _, y, _, _ = delivered
    assert true_peak_dbtp(y) <= -1.0 + 0.1
    assert rep.output_true_peak_dbtp <= -1.0 + 0.1


def test_same_shape_rate_and_24_bit(delivered):
    _, rep, x, y, sr, out = delivered
    info = sf.info(str(out))
    assert y.shape == x.shape
    assert sr == 44100 and info.format == "WAV" and info.subtype == "PCM_24"
    assert rep.frames == x.shape[0] and rep.output_channels == 2 and rep.latency_samples > 0


def test_output_is_aligned_with_input(delivered):
    # cross-correlation of the mono sums peaks at lag 0 (the lookahead is compensated)
    _, _, x, y, _, _ = delivered
    a = x.sum(axis=1)
    b = y.sum(axis=1)
    n = 1 << int(np.ceil(np.log2(2 * a.size)))
    xc = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    lags = np.concatenate([np.arange(0, 2048), np.arange(-2048, 0)])
    assert lags[np.argmax(xc[lags])] == 0


def test_quiet_signal_is_only_scaled(tmp_wav, tmp_path, rng):
    # Below the ceiling the default chain is a pure gain: out == in * g to 24-bit precision.
    x = music_like(rng, 6.0, 48000, rms_dbfs=-38.0)
    inp = tmp_wav(x, 48000)
    rep = render_file(inp, tmp_path / "out.wav", target_lufs=-23.0, model="none")
    y, _ = sf.read(str(tmp_path / "out.wav"))
    assert rep.max_limiter_gain_reduction_db == 0.0
    # the delivery gain is what pyloudnorm says the input needs
    assert rep.loudness_gain_db == pytest.approx(-23.0 - lufs(x, 48000), abs=0.1)
    expected = x * 10 ** (rep.loudness_gain_db / 20)
    assert np.max(np.abs(y - expected)) < 1e-4


def test_unreachable_target_is_reported_not_raised(music_file, tmp_path):
    path, _ = music_file
    rep = render_file(path, tmp_path / "loud.wav", target_lufs=-2.0, ceiling_dbtp=-1.0)
    y, _ = sf.read(str(tmp_path / "loud.wav"))
    assert not rep.target_reached
    assert any("not" in n and "LUFS" in n for n in rep.notes)
    assert rep.passes <= MAX_PASSES
    assert true_peak_dbtp(y) <= -1.0 + 0.1  # the ceiling still holds


# --- layouts, rates, formats ----------------------------------------------------------


def test_mono_in_mono_out(tmp_wav, tmp_path, rng):
    x = music_like(rng, 5.0, 44100, channels=1)[:, 0]
    rep = render_file(tmp_wav(x), tmp_path / "m.wav", target_lufs=-16.0)
    y, sr = sf.read(str(tmp_path / "m.wav"), always_2d=True)
    assert y.shape == (x.size, 1) and rep.output_channels == 1
    assert abs(lufs(y[:, 0], sr) - (-16.0)) <= 0.5


def test_six_channels_are_downmixed_per_bs775(tmp_wav, tmp_path, rng):
    sr = 44100
    n = 3 * sr
    t = np.arange(n) / sr
    tones = [0.05 * np.sin(2 * np.pi * f * t) for f in (220.0, 330.0, 440.0, 55.0, 550.0, 660.0)]
    x = np.stack(tones, axis=1)  # L R C LFE Ls Rs
    x[:, 3] *= 8.0  # a loud LFE that must not appear in the output
    rep = render_file(tmp_wav(x, sr), tmp_path / "dm.wav", target_lufs=-23.0, model="none")  # the downmix alone
    y, _ = sf.read(str(tmp_path / "dm.wav"))
    assert y.shape == (n, 2) and rep.input_channels == 6
    assert any("BS.775" in note for note in rep.notes)
    assert rep.max_limiter_gain_reduction_db == 0.0
    L, R, C, _lfe, Ls, Rs = x.T
    by_hand = np.stack([L + SQRT_HALF * C + SQRT_HALF * Ls, R + SQRT_HALF * C + SQRT_HALF * Rs], axis=1)
    assert np.max(np.abs(y - by_hand * 10 ** (rep.loudness_gain_db / 20))) < 1e-4


def test_nine_channels_are_refused(tmp_wav, tmp_path):
    with pytest.raises(AudioFileError, match="9 channels"):
        render_file(tmp_wav(np.zeros((1000, 9))), tmp_path / "o.wav")


@pytest.mark.parametrize("sample_rate", [8000, 192000])
def test_extreme_sample_rates(tmp_wav, tmp_path, rng, sample_rate):
    x = music_like(rng, 2.0, sample_rate)
    rep = render_file(tmp_wav(x, sample_rate), tmp_path / "o.wav", target_lufs=-14.0)
    y, sr = sf.read(str(tmp_path / "o.wav"))
    assert sr == sample_rate and y.shape == x.shape and rep.sample_rate == sample_rate
    assert abs(lufs(y, sr) - (-14.0)) <= 0.5
    assert true_peak_dbtp(y) <= -1.0 + 0.1


def test_flac_and_float_outputs(music_file, tmp_path):
    path, x = music_file
    render_file(path, tmp_path / "o.flac")
    render_file(path, tmp_path / "o24.wav")
    render_file(path, tmp_path / "o.wav", float_output=True)
    fi, wi = sf.info(str(tmp_path / "o.flac")), sf.info(str(tmp_path / "o.wav"))
    assert (fi.format, fi.subtype) == ("FLAC", "PCM_24")
    assert (wi.format, wi.subtype) == ("WAV", "FLOAT")
    a, _ = sf.read(str(tmp_path / "o.flac"))
    a24, _ = sf.read(str(tmp_path / "o24.wav"))
    b, _ = sf.read(str(tmp_path / "o.wav"))
    assert a.shape == b.shape == x.shape
    assert np.array_equal(a, a24)  # FLAC is lossless: the same 24-bit samples as the WAV
    # the 24-bit render runs its limiter 1.4e-6 dB lower than the float one (realtime.encode: the rounding
    # error's true-peak bound), so beyond the 2**-24 rounding the two differ by a few units of 2**-24
    assert np.max(np.abs(a - b)) <= 4 * 2.0**-23
    with pytest.raises(UnsupportedOutputError, match="FLAC cannot hold"):
        render_file(path, tmp_path / "f.flac", float_output=True)


def test_block_size_does_not_change_the_result(tmp_wav, tmp_path, rng):
    x = music_like(rng, 2.0, 44100)
    inp = tmp_wav(x)
    outs = []
    for bs in (1024, 64, 65, 8193):
        render_file(inp, tmp_path / f"b{bs}.wav", float_output=True, block_size=bs, target_lufs=-10.0)
        outs.append(sf.read(str(tmp_path / f"b{bs}.wav"))[0])
    for o in outs[1:]:
        assert np.max(np.abs(o - outs[0])) <= 1e-6


# --- parameters, notes, odd input -----------------------------------------------------


def test_params_are_applied_and_logged(tmp_wav, tmp_path, rng):
    x = music_like(rng, 2.0, 44100)
    log = tmp_path / "params.jsonl"
    rep = render_file(
        tmp_wav(x),
        tmp_path / "w.wav",
        params={"stereo_width": 0.0, "comp_ratio": 1.0},
        float_output=True,
        params_out=log,
    )
    y, _ = sf.read(str(tmp_path / "w.wav"))
    assert np.max(np.abs(y[:, 0] - y[:, 1])) <= 1e-6  # width 0: L = R = mid
    lines = [json.loads(s) for s in log.read_text().splitlines()]
    user = [d for d in lines if d["source"] == "user"]  # the AI's own changes follow with "source": "ai"
    assert [d["param"] for d in user] == ["stereo_width", "comp_ratio", "loudness_gain_db"]
    assert all(d["t"] == 0.0 for d in user) and all(d["source"] == "ai" for d in lines if d not in user)
    assert user[-1]["value"] == pytest.approx(rep.loudness_gain_db)


def test_bad_params_name_the_parameter_and_range(tmp_wav, tmp_path):
    inp = tmp_wav(np.zeros((4410, 2)))
    with pytest.raises(ParameterError, match="bogus_db"):
        render_file(inp, tmp_path / "o.wav", params={"bogus_db": 1.0})
    with pytest.raises(ParameterError, match=r"low_gain_db.*-18\.\.18 dB"):
        render_file(inp, tmp_path / "o.wav", params={"low_gain_db": 40.0})
    assert not (tmp_path / "o.wav").exists()


def test_silence_and_too_short_input_get_a_note(tmp_wav, tmp_path, rng):
    for name, x in (
        ("silence.wav", np.zeros((2 * 44100, 2))),
        ("short.wav", 0.1 * rng.standard_normal((int(0.2 * 44100), 2))),
    ):
        out = tmp_path / f"out-{name}"
        rep = render_file(tmp_wav(x, name=name), out)
        y, _ = sf.read(str(out))
        assert y.shape == x.shape and rep.passes == 1 and rep.loudness_gain_db == 0.0
        assert math.isinf(rep.input_integrated_lufs)
        assert any("silent or too short" in n for n in rep.notes)
    assert np.all(sf.read(str(tmp_path / "out-silence.wav"))[0] == 0.0)


def test_nan_samples_are_counted_and_silenced(tmp_wav, tmp_path, rng):
    x = music_like(rng, 2.0, 44100)
    x[1000, 0] = np.nan
    x[2000, 1] = np.inf
    rep = render_file(tmp_wav(x), tmp_path / "o.wav")
    y, _ = sf.read(str(tmp_path / "o.wav"))
    assert np.all(np.isfinite(y))
    assert rep.nonfinite_samples == 2
    assert any("NaN/Inf" in n for n in rep.notes)


def test_progress_reports_every_pass_to_the_end(tmp_wav, tmp_path, rng):
    x = music_like(rng, 2.0, 44100)
    calls = []
    rep = render_file(tmp_wav(x), tmp_path / "o.wav", progress=lambda p, d, t: calls.append((p, d, t)))
    # pass 0: the streamed render's first read of the input (it measures it), then every render pass
    assert {c[0] for c in calls} == set(range(0, rep.passes + 1))
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert calls[-1][1] == pytest.approx(2.0) and calls[-1][2] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"ai_hop_s": 0.0}, RenderUsageError, "--ai-hop-s"),
        ({"crossfade_s": -1.0}, RenderUsageError, "--crossfade-s"),
        ({"ai_amount": 1.5}, RenderUsageError, "0..1"),
        ({"target_lufs": -80.0}, RenderUsageError, "target-lufs"),
        ({"ceiling_dbtp": 2.0}, RenderUsageError, "ceiling-dbtp"),
        ({"block_size": 0}, RenderUsageError, "block-size"),
    ],
)
def test_bad_arguments(tmp_wav, tmp_path, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        render_file(tmp_wav(np.zeros((100, 2))), tmp_path / "o.wav", **kwargs)
    assert issubclass(exc, RenderError)
    assert not (tmp_path / "o.wav").exists()


# --- audio_io: downmix table and atomic writes ------------------------------------------


@pytest.mark.parametrize(
    ("channels", "left", "right"),
    [
        # ITU-R BS.775 Table 2 coefficients by hand, WAV channel order per realtime/audio_io.py
        (3, {"L": 1, "C": SQRT_HALF}, {"R": 1, "C": SQRT_HALF}),
        (4, {"L": 1, "Ls": SQRT_HALF}, {"R": 1, "Rs": SQRT_HALF}),
        (5, {"L": 1, "C": SQRT_HALF, "Ls": SQRT_HALF}, {"R": 1, "C": SQRT_HALF, "Rs": SQRT_HALF}),
        (
            7,
            {"L": 1, "C": SQRT_HALF, "Ls": SQRT_HALF, "Cs": SQRT_HALF},
            {"R": 1, "C": SQRT_HALF, "Rs": SQRT_HALF, "Cs": SQRT_HALF},
        ),
        (
            8,
            {"L": 1, "C": SQRT_HALF, "Ls": SQRT_HALF, "Lb": SQRT_HALF},
            {"R": 1, "C": SQRT_HALF, "Rs": SQRT_HALF, "Rb": SQRT_HALF},
        ),
    ],
)
def test_downmix_matrices(channels, left, right, rng):
    from mixpilot.realtime.audio_io import LAYOUTS, downmix_to_stereo

    names = {3: "L R C", 4: "L R Ls Rs", 5: "L R C Ls Rs", 7: "L R C LFE Ls Rs Cs", 8: "L R C LFE Ls Rs Lb Rb"}[
        channels
    ].split()
    assert list(LAYOUTS[channels].names) == names
    x = rng.standard_normal((64, channels))
    col = {n: x[:, i] for i, n in enumerate(names)}
    expected = np.stack([sum(g * col[n] for n, g in left.items()), sum(g * col[n] for n, g in right.items())], 1)
    np.testing.assert_allclose(downmix_to_stereo(x), expected, atol=1e-5)  # float32 output


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    from mixpilot.realtime import audio_io

    target = tmp_path / "o.wav"
    target.write_bytes(b"old")

    real = audio_io.sf.SoundFile

    def disk_full(path, mode="r", *args, **kwargs):
        if mode != "w":
            return real(path, mode, *args, **kwargs)
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device", path)

    monkeypatch.setattr(audio_io.sf, "SoundFile", disk_full)
    with pytest.raises(OSError, match="No space left"):
        audio_io.write_audio_atomic(target, np.zeros((10, 2), np.float32), 44100)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.wav"]


def test_search_passes_report_what_measure_reads_on_the_delivered_samples():
    # The search measures each pass without the true peak and the chosen pass with it; the chosen
    # pass's figures must be exactly what dsp.meter.measure (the reference meter) reads on the
    # delivered samples.
    from mixpilot.dsp.meter import measure
    from mixpilot.realtime.render import render_array

    rng = np.random.default_rng(5)
    x = music_like(rng, 8.0, 48000).astype(np.float32)
    r = render_array(
        np.ascontiguousarray(x), 48000, target_lufs=-9.0, input_integrated_lufs=measure(x, 48000)["integrated_lufs"]
    )
    assert len(r.passes) >= 2, "the test needs a render with more than one pass"
    m = measure(r.out, 48000)
    assert r.chosen.integrated_lufs == m["integrated_lufs"]
    assert r.chosen.lra_lu == m["loudness_range_lu"]
    assert r.chosen.true_peak_dbtp == m["true_peak_dbtp"]
    assert all(math.isnan(p.true_peak_dbtp) for p in r.passes if p is not r.chosen)


class _Varying:
    """An estimator whose output gain and compression follow the window's level (AI updates that move)."""

    name = "varying"

    def predict(self, features):
        from mixpilot.dsp.params import AI_PARAM_NAMES

        level = float(np.mean(features[0]))
        out = np.full(len(AI_PARAM_NAMES), 0.5, np.float32)
        out[AI_PARAM_NAMES.index("output_gain_db")] = 0.5 + 0.4 * math.sin(level)
        out[AI_PARAM_NAMES.index("comp_ratio")] = 0.5 + 0.4 * math.cos(level)
        return out


@pytest.mark.parametrize("with_ai", [False, True])
def test_replayed_loudness_passes_equal_full_passes(monkeypatch, with_ai):
    # Passes 2+ of the loudness search run only the output gain and the limiter on pass 1's tap
    # (render._replay_pass).  Reference: the same render with every pass through the whole chain
    # (REPLAY_MAX_BYTES = 0): the same gains, loudness and samples, bit for bit.
    import mixpilot.realtime.render as render_mod
    from mixpilot.dsp.meter import measure

    rng = np.random.default_rng(11)
    x = np.ascontiguousarray(music_like(rng, 7.0, 48000).astype(np.float32))
    lufs = measure(x, 48000)["integrated_lufs"]
    kw = dict(target_lufs=-8.0, input_integrated_lufs=lufs, estimator=_Varying() if with_ai else None, ai_hop_s=0.5)
    replays = []
    real = render_mod._replay_pass
    monkeypatch.setattr(render_mod, "_replay_pass", lambda *a: (replays.append(a[5]), real(*a)))
    fast = render_mod.render_array(x, 48000, **kw)
    assert replays == list(range(2, len(fast.passes) + 1))  # every pass after the first was a replay
    assert len(fast.passes) >= 2, "the test needs a render with more than one pass"
    monkeypatch.setattr(render_mod, "REPLAY_MAX_BYTES", 0)
    full = render_mod.render_array(x, 48000, **kw)
    assert [p.gain_db for p in fast.passes] == [p.gain_db for p in full.passes]
    assert [p.integrated_lufs for p in fast.passes] == [p.integrated_lufs for p in full.passes]
    assert [p.limiter_gr_db for p in fast.passes] == [p.limiter_gr_db for p in full.passes]
    np.testing.assert_array_equal(fast.out, full.out)
    assert fast.ai_updates == full.ai_updates
    if with_ai:
        # every window ran once; an update takes effect AI_APPLY_DELAY_S (0.5 s) after its window ends
        # (realtime.session): the last window's, ending with the 7 s file, would start after the end
        assert len(fast.ai_updates) > 3 and fast.inference["runs"] == len(fast.ai_updates) + 1
        assert all(t <= 7.0 for t, _ in fast.ai_updates)
