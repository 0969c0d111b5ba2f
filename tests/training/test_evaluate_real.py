"""training.evaluate_real: the real-music metrics against closed forms, and the pipeline end to end.

References: IEC 61260-1:2014 (base-ten 1/3-octave mid-band frequencies
``1000 * 10**(x/10)`` and edges ``fm * 10**(+-1/20)``); the RBJ Audio EQ
Cookbook (R. Bristow-Johnson) shelf formulas, restated here independently of
:mod:`dsp.biquad`, whose band-averaged power response is the expected
1/3-octave difference for white noise; M/S width ``w`` scales the side signal,
so the side/mid energy ratio moves by exactly ``20 log10 w``.  Every signal is
synthesised here (never ../shared).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mixpilot.dsp.chain import MixChain
from mixpilot.dsp.spec import ProcessSpec
from mixpilot.training import evaluate_real as er

SR = 48000


def _cookbook_shelf_power(kind: str, f0: float, gain_db: float, fs: float, f: np.ndarray) -> np.ndarray:
    """|H(e^jw)|^2 of the RBJ cookbook shelf (slope S = 1) at frequencies ``f``."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * f0 / fs
    cw, sw = math.cos(w0), math.sin(w0)
    slope = 1.0
    alpha = sw / 2.0 * math.sqrt((a + 1.0 / a) * (1.0 / slope - 1.0) + 2.0)
    sa = 2.0 * math.sqrt(a) * alpha
    if kind == "low":
        b = [a * ((a + 1) - (a - 1) * cw + sa), 2 * a * ((a - 1) - (a + 1) * cw), a * ((a + 1) - (a - 1) * cw - sa)]
        den = [(a + 1) + (a - 1) * cw + sa, -2 * ((a - 1) + (a + 1) * cw), (a + 1) + (a - 1) * cw - sa]
    else:
        b = [a * ((a + 1) + (a - 1) * cw + sa), -2 * a * ((a - 1) + (a + 1) * cw), a * ((a + 1) + (a - 1) * cw - sa)]
        den = [(a + 1) - (a - 1) * cw + sa, 2 * ((a - 1) - (a + 1) * cw), (a + 1) - (a - 1) * cw - sa]
    z = np.exp(-1j * 2.0 * np.pi * f / fs)
    h = (b[0] + b[1] * z + b[2] * z * z) / (den[0] + den[1] * z + den[2] * z * z)
    return np.abs(h) ** 2


def _chain(x: np.ndarray, params: dict) -> np.ndarray:
    ch = MixChain(("eq", "width"))
    ch.prepare(ProcessSpec(float(SR), max_block_size=x.shape[0], num_channels=x.shape[1]))
    ch.set_params(params)
    ch.reset()
    out = np.empty_like(x)
    ch.process(x, out)
    assert ch.latency_samples == 0
    return out


@pytest.fixture
def noise(rng) -> np.ndarray:
    """5 s of partly correlated stereo white noise (side/mid 10 log10(1/9) = -9.5 dB)."""
    a = rng.standard_normal((5 * SR, 1))
    b = rng.standard_normal((5 * SR, 2))
    return np.ascontiguousarray(0.1 * (a + 0.5 * b), dtype=np.float32)


def test_bands_are_iec_61260_third_octaves_below_nyquist():
    nominal, centre, lo, hi = er.third_octave_bands(44100)
    assert nominal[0] == 31.5 and nominal[-1] == 16000 and len(nominal) == 28
    # nominal labels are the exact base-ten centres rounded (IEC 61260-1 Annex E): within 3 %
    assert np.all(np.abs(centre / nominal - 1.0) < 0.03)
    assert np.allclose(hi / lo, 10.0**0.1) and np.allclose(np.sqrt(lo * hi), centre)
    assert np.allclose(lo[1:], hi[:-1])  # contiguous
    nominal16, _, _, hi16 = er.third_octave_bands(16000)
    assert nominal16[-1] == 6300 and np.all(hi16 < 8000)


@pytest.mark.parametrize("kind,f0,param", [("high", 8000.0, "high_gain_db"), ("low", 120.0, "low_gain_db")])
def test_shelf_plus_3_db_gives_the_closed_form_band_difference(noise, kind, f0, param):
    y = _chain(noise, {param: 3.0})
    got = er.spectral_error(noise, y, SR)
    _, _, lo, hi = er.third_octave_bands(SR)
    # white noise: the band difference is the band mean of |H|^2 (fine grid, in dB), mean over bands removed
    expect = np.array(
        [
            10.0 * np.log10(np.mean(_cookbook_shelf_power(kind, f0, 3.0, SR, np.linspace(a, b, 2001))))
            for a, b in zip(lo, hi)
        ]
    )
    expect_n = expect - expect.mean()
    assert np.all(np.isfinite(got.diff_db))  # white noise: every band is scored
    np.testing.assert_allclose(got.diff_db, expect_n, atol=0.05)
    assert got.rms_db == pytest.approx(float(np.sqrt(np.mean(expect_n**2))), abs=0.02)
    assert got.max_db == pytest.approx(float(np.max(np.abs(expect_n))), abs=0.05)
    assert got.offset_db == pytest.approx(float(expect.mean()), abs=0.02)
    # the far end of the shelf is +3 dB above the other end
    d = got.diff_db
    assert (d[-1] - d[0]) * (1 if kind == "high" else -1) == pytest.approx(3.0, abs=0.1)


def test_spectral_error_ignores_level_and_empty_bands(noise):
    got = er.spectral_error(noise, 0.5 * noise, SR)
    assert got.rms_db < 1e-9 and got.offset_db == pytest.approx(20 * math.log10(0.5), abs=1e-6)
    # a band-limited reference: bands more than BAND_FLOOR_DB under its loudest are not scored
    t = np.arange(5 * SR) / SR
    tone = np.repeat(np.sin(2 * np.pi * 1000 * t)[:, None], 2, axis=1).astype(np.float32)
    tone_err = er.spectral_error(tone, tone + 1e-6 * noise, SR)
    assert np.isnan(tone_err.diff_db[0]) and tone_err.rms_db < 0.01


def test_width_error_is_20_log10_w(noise):
    for w in (0.6, 1.5):
        y = _chain(noise, {"stereo_width": w})
        assert er.width_error_db(noise, y) == pytest.approx(abs(20 * math.log10(w)), abs=1e-3)
    # M = a + (b1 + b2) / 4, S = (b1 - b2) / 4: E[S^2] / E[M^2] = (1/8) / (9/8)
    assert er.side_mid_db(noise) == pytest.approx(10 * math.log10(1 / 9), abs=0.1)
    assert er.side_mid_db(noise[:, :1]) is None and er.width_error_db(noise, noise[:, :1]) is None


def test_corrupt_uses_the_training_faults(noise):
    from mixpilot.training.data import apply_faults

    f = {"low": 4.0, "width": 0.6, "level": -8.0}
    np.testing.assert_array_equal(er.corrupt(noise, SR, f), apply_faults(noise, f, SR))
    np.testing.assert_allclose(er.corrupt(noise, SR, {"level": -6.0}), noise * 10 ** (-6 / 20), rtol=1e-6)
    # mono: the left channel of the dual-mono run (the EQ is the same on both channels)
    mono = np.ascontiguousarray(noise[:, :1])
    np.testing.assert_array_equal(
        er.corrupt(mono, SR, {"high": 3.0})[:, 0], apply_faults(np.repeat(mono, 2, axis=1), {"high": 3.0}, SR)[:, 0]
    )
    with pytest.raises(ValueError, match="stereo"):
        er.corrupt(mono, SR, {"width": 1.5})


def test_fault_cases_are_seeded_and_mono_has_no_width():
    a = er.fault_cases("song.flac", 2, seed=0)
    assert [c.faults for c in a] == [c.faults for c in er.fault_cases("song.flac", 2, seed=0)]
    assert [c.faults for c in a] != [c.faults for c in er.fault_cases("song.flac", 2, seed=1)]
    assert a[0].name == "original" and a[0].faults == {}
    assert {c.name for c in er.CATALOGUE} <= {c.name for c in a}
    rnd = [c for c in a if c.origin == "random"]
    assert len(rnd) == er.N_RANDOM_CASES and all(2 <= len(c.faults) <= 3 for c in rnd)
    assert all(set(c.faults) <= set(er.RANDOM_KINDS) for c in rnd)
    m = er.fault_cases("speech.ogg", 1, seed=0)
    assert all("width" not in c.faults for c in m)
    assert "combined-nowidth" in {c.name for c in m} and "width0.6" not in {c.name for c in m}


def test_end_to_end_on_a_5_s_synthetic_file_with_the_heuristic(tmp_path, tmp_wav, rng, capsys):
    t = np.arange(5 * SR) / SR
    freqs = (110.0, 220.0, 330.0, 659.0, 1320.0, 3100.0)
    notes = sum(np.sin(2 * np.pi * f * t + p) / k for k, (f, p) in enumerate(zip(freqs, rng.uniform(0, 6, 6)), start=1))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 2.0 * t) ** 2
    left = 0.1 * notes * env + 0.01 * rng.standard_normal(t.size)
    right = 0.1 * np.roll(notes, 37) * env + 0.01 * rng.standard_normal(t.size)
    tmp_wav(np.stack([left, right], axis=1), SR, name="audio/song.wav")
    readme = tmp_path / "README.md"
    readme.write_text("# training\n\nsomeone else's text\n", encoding="utf-8")
    out_json = tmp_path / "real.json"
    argv = [
        "--audio-dir",
        str(tmp_path / "audio"),
        "--model",
        "heuristic",
        "--seed",
        "0",
        "--cases",
        "original,high+3,width1.5",
        "--json",
        str(out_json),
        "--readme",
        str(readme),
        "--quiet",
    ]
    assert er.main(argv) == 0
    rep = json.loads(out_json.read_text())
    (f,) = rep["files"]
    assert f["file"] == "song.wav" and f["sample_rate"] == SR and f["channels"] == 2
    rows = {r["case"]: r for r in f["cases"]}
    assert set(rows) == {"original", "high+3", "width1.5"}
    assert rows["original"]["before"]["spectral_rms_db"] == 0.0 and rows["original"]["before"]["width_error_db"] == 0.0
    assert rows["high+3"]["before"]["spectral_rms_db"] > 0.2  # the fault is measurable
    assert rows["width1.5"]["before"]["width_error_db"] == pytest.approx(20 * math.log10(1.5), abs=1e-3)
    for r in rows.values():
        # the control only delivers loudness: it leaves the spectrum and width where the input had them
        assert abs(r["control"]["spectral_rms_db"] - r["before"]["spectral_rms_db"]) < 0.2
        assert abs(r["control"]["output_lufs"] + 14.0) < 0.5
        a = r["after"]["heuristic"]
        assert math.isfinite(a["spectral_rms_db"]) and math.isfinite(a["width_error_db"])
        assert abs(a["output_lufs"] + 14.0) < 0.5 and a["ai_mean"] is not None
        assert a["vs_control_rms_db"] >= 0.0 and "_bands" not in a
    for r in rows.values():  # scored where the corruption moved the metric by MEASURABLE_DB or more
        assert r["spectral_scored"] == (r["before"]["spectral_rms_db"] >= er.MEASURABLE_DB)
        assert r["width_scored"] == (r["before"]["width_error_db"] >= er.MEASURABLE_DB)
    assert rows["high+3"]["spectral_scored"] and rows["width1.5"]["width_scored"]
    assert not rows["original"]["spectral_scored"] and not rows["original"]["width_scored"]
    s = rep["summary"]["heuristic"]
    assert s["spectral_cases"] == sum(r["spectral_scored"] for r in rows.values())
    assert s["spectral_cases"] + s["no_fault_cases"] == 3
    assert s["width_cases"] == sum(r["width_scored"] for r in rows.values())
    assert s["original_ai_vs_control_db"]["song.wav"] == rows["original"]["after"]["heuristic"]["vs_control_rms_db"]
    assert set(s["original_tonal_change_db"]) == {"song.wav"}
    text = readme.read_text()
    assert text.startswith("# training\n\nsomeone else's text\n")
    assert text.count(er.README_TITLE) == 1 and er.README_BEGIN in text and "| `heuristic` |" in text
    # a second write replaces the measured block only
    er.update_readme(readme, "new numbers")
    text2 = readme.read_text()
    assert text2.count(er.README_TITLE) == 1 and "new numbers" in text2 and "| `heuristic` |" not in text2
    assert text2.startswith("# training\n\nsomeone else's text\n")
    assert "original" in capsys.readouterr().out


def test_model_none_is_refused_and_heuristic_resolves():
    with pytest.raises(ValueError, match="control"):
        er.resolve_estimators(["none"])
    (m,) = er.resolve_estimators(["heuristic", "heuristic"], warn=lambda s: None)
    assert m.name == "heuristic" and m.source == "heuristic"


def test_target_lufs_original_delivers_each_file_at_its_own_loudness(tmp_path, tmp_wav, rng):
    # pink-ish noise at about -30 LUFS: rendered at its own loudness the control lands there (not at -14)
    x = 0.02 * rng.standard_normal((4 * SR, 2))
    tmp_wav(x, SR, name="audio/quiet.wav")
    out_json = tmp_path / "real.json"
    argv = [
        "--audio-dir",
        str(tmp_path / "audio"),
        "--model",
        "heuristic",
        "--cases",
        "original",
        "--target-lufs",
        "original",
        "--json",
        str(out_json),
        "--quiet",
    ]
    assert er.main(argv) == 0
    rep = json.loads(out_json.read_text())
    (f,) = rep["files"]
    assert rep["settings"]["target_lufs"] == "original"
    assert f["target_lufs"] == pytest.approx(f["original_lufs"], abs=0.01)
    assert f["original_lufs"] < -25.0
    (row,) = f["cases"]
    assert row["control"]["output_lufs"] == pytest.approx(f["original_lufs"], abs=0.5)


@pytest.mark.parametrize("text", ["loud", "5", "nan", "-120"])
def test_target_lufs_rejects_bad_values(text, capsys):
    with pytest.raises(SystemExit):
        er._parser().parse_args(["--target-lufs", text])
    assert "target" in capsys.readouterr().err
