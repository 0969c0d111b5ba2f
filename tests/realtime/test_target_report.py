"""``mixpilot analyze FILE --reference R... | --target T`` (realtime/target_report.py, realtime/analyze.py).

References, independent of the code under test:

* a gain ``g`` on a reference moves its integrated loudness by exactly
  ``20 log10 g`` (BS.1770-4 is a power measure) and leaves every level *re
  the integrated loudness* unchanged: the file against itself turned up
  6.02 dB differs by -6.02 LU in loudness and by 0 everywhere else;
* a side gain ``w`` moves the width (side/mid energy) by ``20 log10 w``
  (dsp.descriptors' definition) and shifts every mid level re loudness by the
  loudness change (the mid itself is untouched) and every side level by
  ``20 log10 w`` minus it;
* an FFT brick-wall gain of +6.02 dB above a 1/3-octave band edge: the bands
  fully above it lie 6.02 dB higher *relative to* the bands fully below it;
* a profile of two references: mean and standard deviation (ddof 1) of the
  two files' descriptors, recomputed here with numpy from
  ``compute_descriptors`` of each file, not through ``Profile``;
* the JSON output: docs/schemas/analyze.schema.json via ``jsonschema``;
  the chart: the PNG signature and its IHDR size.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixpilot.dsp.descriptors import BAND_LOWER_HZ, BAND_NOMINAL_HZ, BAND_UPPER_HZ, compute_descriptors
from mixpilot.inference.profile import Profile
from mixpilot.realtime.cli import main

jsonschema = pytest.importorskip("jsonschema")

SR = 48000
ROOT = Path(__file__).resolve().parents[2]
SIX = 20 * math.log10(2.0)  # 6.0206 dB


def _noise(seconds: float = 8.0, seed: int = 3, width: float = 0.4) -> np.ndarray:
    """Pink-ish stereo noise with a loudness contour (so LRA > 0): mid + width * independent side."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal((n, 2)), axis=0)
    f = np.fft.rfftfreq(n, 1 / SR)
    spec /= np.sqrt(np.maximum(f, 20.0))[:, None]
    w = np.fft.irfft(spec, n, axis=0)
    mid, side = w[:, 0], width * w[:, 1]
    env = 1.0 + 0.5 * np.sin(2 * np.pi * 0.2 * np.arange(n) / SR)
    x = np.stack([mid + side, mid - side], axis=1) * env[:, None]
    return (0.25 * x / np.max(np.abs(x))).astype(np.float32)


def _write(path: Path, x: np.ndarray) -> Path:
    sf.write(str(path), x, SR, subtype="FLOAT")
    return path


def _analyze(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _json(argv, capsys) -> dict:
    code, out, err = _analyze(["analyze", *argv[:1], "--json", "--model", "none", *argv[1:]], capsys)
    assert code == 0, err
    doc = json.loads(out)
    schema = json.loads((ROOT / "docs" / "schemas" / "analyze.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    return doc


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("tr") / "song.wav", _noise())


def test_a_file_against_itself_is_zero_and_against_itself_louder_only_in_loudness(song, tmp_path, capsys):
    same = _json([song, "--reference", song], capsys)["target"]
    assert same["kind"] == "reference" and same["tracks"] == 1 and same["sources"] == ["song.wav"]
    assert same["bands_hz"] == list(BAND_NOMINAL_HZ)
    for part in ("mid", "side"):
        assert all(abs(v) <= 1e-3 for v in same[part]["deviation_db"]) and same[part]["rms_db"] <= 1e-3
        assert all(v == 0.0 for v in same[part]["tolerance_db"])  # one reference: match it exactly
    for key in ("integrated_lufs", "plr_db", "lra_lu", "width_db"):
        assert abs(same[key]["difference"]) <= 1e-3 and same[key]["tolerance"] == 0.0
    x, _ = sf.read(str(song), dtype="float32")
    loud = _write(tmp_path / "louder.wav", 2.0 * x)
    doc = _json([song, "--reference", loud], capsys)
    t = doc["target"]
    assert t["integrated_lufs"]["difference"] == pytest.approx(-SIX, abs=0.01)
    assert t["integrated_lufs"]["value"] == pytest.approx(doc["loudness"]["integrated_lufs"], abs=0.01)
    for key in ("plr_db", "lra_lu", "width_db"):
        assert t[key]["difference"] == pytest.approx(0.0, abs=0.02)
    assert t["mid"]["rms_db"] <= 0.01 and t["side"]["rms_db"] <= 0.01


def test_a_wider_reference_shows_in_width_side_and_mid(song, tmp_path, capsys):
    x, _ = sf.read(str(song), dtype="float64")
    m, s = 0.5 * (x[:, 0] + x[:, 1]), 0.5 * (x[:, 0] - x[:, 1])
    wide = _write(tmp_path / "wide.wav", np.stack([m + 2 * s, m - 2 * s], axis=1).astype(np.float32))
    t = _json([song, "--reference", wide], capsys)["target"]
    assert t["width_db"]["difference"] == pytest.approx(-SIX, abs=0.01)
    d_loud = -t["integrated_lufs"]["difference"]  # how much louder the reference is (its side is)
    assert d_loud > 0.3
    mid = np.array(t["mid"]["deviation_db"], dtype=float)
    side = np.array(t["side"]["deviation_db"], dtype=float)
    np.testing.assert_allclose(mid, d_loud, atol=0.02)  # the same mid, re a louder reference
    np.testing.assert_allclose(side, d_loud - SIX, atol=0.02)


def test_a_brighter_reference_shows_six_db_above_the_edge(song, tmp_path, capsys):
    x, _ = sf.read(str(song), dtype="float64")
    edge = BAND_UPPER_HZ[BAND_NOMINAL_HZ.index(2000.0)]  # = the lower edge of the 2.5 kHz band
    spec = np.fft.rfft(x, axis=0)
    f = np.fft.rfftfreq(x.shape[0], 1 / SR)
    spec[f >= edge] *= 2.0
    bright = _write(tmp_path / "bright.wav", np.fft.irfft(spec, x.shape[0], axis=0).astype(np.float32))
    t = _json([song, "--reference", bright], capsys)["target"]
    dev = np.array(t["mid"]["deviation_db"], dtype=float)
    below = dev[BAND_UPPER_HZ < edge / 1.5]  # bands clear of the edge (the 0.37 s frames' leakage)
    above = dev[BAND_LOWER_HZ > edge * 1.5]
    assert below.size >= 15 and above.size >= 6
    # the file lacks the reference's +6.02 dB above the edge, relative to the bands below it
    np.testing.assert_allclose(above - below.mean(), -SIX, atol=0.1)
    assert np.ptp(below) < 0.1
    # RMS of the per-band deviations, recomputed
    assert t["mid"]["rms_db"] == pytest.approx(float(np.sqrt(np.mean(dev**2))), abs=0.002)


def test_two_references_give_their_mean_and_spread_as_target_and_tolerance(song, tmp_path, capsys):
    a = _write(tmp_path / "a.wav", _noise(seed=11, width=0.2))
    b = _write(tmp_path / "b.wav", 0.5 * _noise(seed=12, width=0.8))
    doc = _json([song, "--reference", a, b], capsys)
    t = doc["target"]
    assert t["kind"] == "reference" and t["tracks"] == 2 and t["label"] == "references (2 tracks)"
    da, db, dx = (compute_descriptors(sf.read(str(p), dtype="float32")[0], SR) for p in (a, b, song))
    for part in ("mid", "side"):
        pair = np.stack([getattr(da, f"{part}_db"), getattr(db, f"{part}_db")])
        mean, tol = pair.mean(axis=0), pair.std(axis=0, ddof=1)
        np.testing.assert_allclose(t[part]["target_db"], mean, atol=2e-3)
        np.testing.assert_allclose(t[part]["tolerance_db"], tol, atol=2e-3)
        dev = getattr(dx, f"{part}_db") - mean
        np.testing.assert_allclose(t[part]["deviation_db"], dev, atol=2e-3)
        outside = np.sign(dev) * np.maximum(np.abs(dev) - tol, 0.0)
        np.testing.assert_allclose(t[part]["outside_db"], outside, atol=2e-3)
        assert t[part]["outside_rms_db"] == pytest.approx(float(np.sqrt(np.mean(outside**2))), abs=2e-3)
    widths = np.array([da.width_db, db.width_db])
    assert t["width_db"]["target"] == pytest.approx(widths.mean(), abs=2e-3)
    assert t["width_db"]["tolerance"] == pytest.approx(widths.std(ddof=1), abs=2e-3)
    plr = np.array([da.plr_db, db.plr_db])
    assert t["plr_db"]["difference"] == pytest.approx(dx.plr_db - plr.mean(), abs=2e-3)
    lufs = np.array([da.integrated_lufs, db.integrated_lufs])
    assert t["integrated_lufs"]["tolerance"] == pytest.approx(lufs.std(ddof=1), abs=2e-3)


def test_a_shipped_target_its_text_report_and_the_models_suggestions(song, capsys):
    prof = Profile.load("dark")
    code, out, err = _analyze(["analyze", song, "--target", "dark"], capsys)
    assert code == 0, err
    assert "against the target dark (" in out and "tonal mid" in out and "tonal side" in out
    assert "AI suggestions (target)" in out  # the AI a render aiming at it runs (the default model)
    d = compute_descriptors(sf.read(str(song), dtype="float32")[0], SR)
    lra = d.lra_lu - prof.lra_lu
    assert f"LRA {d.lra_lu:.1f} LU vs {prof.lra_lu:.1f}: {lra:+.1f} LU" in " ".join(out.split())
    line_1k = next(line for line in out.splitlines() if line.strip().startswith("1k Hz"))
    assert f"{d.mid_db[16] - prof.mid_db[16]:+.1f}" in line_1k and f"\u00b1{prof.mid_tol_db[16]:.1f}" in line_1k


def test_mono_has_no_side_and_no_width(tmp_path, capsys):
    x = _noise()[:, :1]
    mono = _write(tmp_path / "mono.wav", x)
    ref = _write(tmp_path / "ref.wav", _noise(seed=5))
    t = _json([mono, "--reference", ref], capsys)["target"]
    assert t["side"] is None and t["width_db"]["value"] is None and t["width_db"]["difference"] is None
    assert t["mid"]["rms_db"] is not None


def test_the_plot_draws_the_target_and_never_writes_over_an_input(song, tmp_path, capsys):
    png = tmp_path / "a.png"
    code, _, err = _analyze(["analyze", song, "--model", "none", "--plot", png, "--target", "default"], capsys)
    assert code == 0, err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    code, _, err = _analyze(["analyze", song, "--model", "none", "--plot", tmp_path / "b.png"], capsys)
    w2, h2 = struct.unpack(">II", (tmp_path / "b.png").read_bytes()[16:24])
    assert w == w2 == 1100 and h > h2  # the deviation panel joins
    # the reference is an input too: never the plot
    ref = tmp_path / "ref.png"  # an odd name, but audio all the same
    sf.write(str(ref), _noise(seed=2), SR, format="WAV", subtype="FLOAT")
    before = ref.read_bytes()
    code, _, err = _analyze(["analyze", song, "--plot", ref, "--reference", ref], capsys)
    assert code == 2 and "is a reference file" in err and err.count("\n") == 1
    assert ref.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--reference", "{tmp}/missing.wav"], "missing.wav: no such file or folder"),
        (["--reference", "{tmp}/short.wav"], "short.wav: 2.00 s long; a reference needs at least 3 s"),
        (["--reference", "{tmp}/silent.wav"], "silent.wav: silent"),
        (["--reference", "{tmp}/broken.wav"], "broken.wav"),
        (["--target", "nosuch"], "no such shipped profile or file (shipped: default"),
        (["--target", "dark", "--reference", "{tmp}/short.wav"], "--reference and --target both given"),
    ],
)
def test_bad_references_are_one_line_errors_and_nothing_is_written(song, tmp_path, capsys, args, needle):
    sf.write(str(tmp_path / "short.wav"), _noise(2.0), SR)
    sf.write(str(tmp_path / "silent.wav"), np.zeros((4 * SR, 2), np.float32), SR)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not a wave file at all")
    png = tmp_path / "out.png"
    code, out, err = _analyze(["analyze", song, "--plot", png, *[a.format(tmp=tmp_path) for a in args]], capsys)
    assert code == 1 and needle in err and err.count("\n") == 1, err
    assert not png.exists() and out == ""


def test_the_python_api_takes_a_reference(song):
    import mixpilot

    x, _ = sf.read(str(song), dtype="float32")
    rep = mixpilot.analyze(x, SR, model="none", reference=str(song))
    assert rep["target"]["mid"]["rms_db"] <= 1e-3
    rep = mixpilot.analyze(str(song), model="none", target="dark")
    assert rep["target"]["kind"] == "target" and rep["target"]["label"] == "target dark"
