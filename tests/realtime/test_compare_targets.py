"""``mixpilot compare FILE --reference R... --target T,...`` (realtime/compare.py): references and targets as systems.

References, independent of the code under test:

* each reference/target system's tonal distance: ``dsp.descriptors.compute_descriptors``
  of its delivered file minus its own target's numbers -- the reference
  file's own descriptors (one track: tolerance 0), or the shipped profile's
  JSON (``Profile.load``) -- and the part outside the tolerance as
  ``Profile.deviation`` defines it, recomputed here with numpy;
* the original's distance to the same target, recomputed the same way from
  the original excerpt's file;
* compare.json: its JSON Schema (realtime/compare.schema.json) via ``jsonschema``;
* blind: no file stem, profile name or kind of a reference/target in
  compare.json's systems or in the page's players and table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixpilot.dsp.descriptors import BAND_LOWER_HZ, BAND_UPPER_HZ, compute_descriptors
from mixpilot.inference.profile import Profile
from mixpilot.realtime import compare as cmp
from mixpilot.realtime.cli import main

jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("matplotlib")

SR = 48000
SIX = 20 * np.log10(2.0)


def _noise(seconds: float = 6.0, seed: int = 3, level: float = 0.3, width: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal((n, 2)), axis=0)
    f = np.fft.rfftfreq(n, 1 / SR)
    spec /= np.sqrt(np.maximum(f, 20.0))[:, None]
    w = np.fft.irfft(spec, n, axis=0)
    mid, side = w[:, 0], width * w[:, 1]
    env = 1.0 + 0.4 * np.sin(2 * np.pi * 0.3 * np.arange(n) / SR)
    x = np.stack([mid + side, mid - side], axis=1) * env[:, None]
    return (level * x / np.max(np.abs(x))).astype(np.float32)


def _bright(x: np.ndarray, edge_hz: float = 2000.0, gain: float = 2.0) -> np.ndarray:
    spec = np.fft.rfft(x.astype(np.float64), axis=0)
    spec[np.fft.rfftfreq(x.shape[0], 1 / SR) >= edge_hz] *= gain
    return np.fft.irfft(spec, x.shape[0], axis=0).astype(np.float32)


def _run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _spectrum(path: Path) -> np.ndarray:
    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return compute_descriptors(y, sr).mid_db


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("ct")
    song = d / "song.wav"
    sf.write(str(song), _noise(), SR, subtype="FLOAT")
    ref = d / "brightref.wav"  # the song's own material, 6 dB brighter above 2 kHz: a clear tonal target
    sf.write(str(ref), _bright(_noise(seed=8)), SR, subtype="FLOAT")
    return {"dir": d, "song": song, "ref": ref}


@pytest.fixture(scope="module")
def compared(files):
    out = files["dir"] / "cmp"
    code = main(["compare", str(files["song"]), "--out", str(out), "--model", "none", "--target", "dark",
                 "--seconds", "5", "-q", "--reference", str(files["ref"])])  # fmt: skip
    assert code == 0
    return out, json.loads((out / "compare.json").read_text())


def test_each_reference_and_target_is_a_system_measured_to_its_own_target(compared, files):
    out, doc = compared
    jsonschema.Draft202012Validator(json.loads(cmp.SCHEMA_PATH.read_text())).validate(doc)
    assert [s["name"] for s in doc["systems"]] == ["original", "none", "ref-brightref", "target-dark"]
    by = {s["name"]: s for s in doc["systems"]}
    assert by["ref-brightref"]["settings"] == {"model": "default", "reference": str(files["ref"].resolve())}
    assert by["target-dark"]["settings"] == {"model": "default", "target": "dark"}
    assert by["none"]["tonal_target"] is None and by["original"]["tonal_target"] is None
    original = _spectrum(out / by["original"]["files"]["audio"])
    dark = Profile.load("dark")
    ref_mid = _spectrum(files["ref"])
    for name, target, tol in (("target-dark", dark.mid_db, dark.mid_tol_db),
                              ("ref-brightref", ref_mid, np.zeros_like(ref_mid))):  # fmt: skip
        s = by[name]
        tt = s["tonal_target"]
        np.testing.assert_allclose(tt["target_db"], target, atol=2e-3)
        np.testing.assert_allclose(tt["tolerance_db"], tol, atol=2e-3)
        dev = _spectrum(out / s["files"]["audio"]) - target
        np.testing.assert_allclose(s["tonal_distance"]["per_band_db"], dev, atol=0.01)
        assert s["tonal_distance"]["rms_db"] == pytest.approx(float(np.sqrt(np.mean(dev**2))), abs=0.01)
        outside = np.sign(dev) * np.maximum(np.abs(dev) - tol, 0.0)
        assert s["tonal_distance"]["outside_rms_db"] == pytest.approx(float(np.sqrt(np.mean(outside**2))), abs=0.01)
        o = original - target
        assert tt["original"]["rms_db"] == pytest.approx(float(np.sqrt(np.mean(o**2))), abs=0.01)
    assert by["target-dark"]["tonal_target"]["kind"] == "target" and by["target-dark"]["tonal_target"]["tracks"] == 26
    assert by["ref-brightref"]["tonal_target"]["kind"] == "reference"
    # the others stay measured to the default profile
    default = Profile.load("default")
    none_dev = _spectrum(out / by["none"]["files"]["audio"]) - default.mid_db
    np.testing.assert_allclose(by["none"]["tonal_distance"]["per_band_db"], none_dev, atol=0.01)
    # the AI aimed at the brighter reference: its highs came closer than the original's
    ref_sys = by["ref-brightref"]
    assert ref_sys["params"] is not None and ref_sys["render"]["ai_updates"] >= 1
    # the tilt of the deviation, highs (above 3 kHz) against lows (under 1 kHz): the original lacks the reference's
    # +6.02 dB above 2 kHz (both are the same kind of noise); the render aimed at the reference moved toward it
    high, low = BAND_LOWER_HZ > 3000.0, BAND_UPPER_HZ < 1000.0

    def tilt(dev) -> float:
        dev = np.asarray(dev, dtype=float)
        return float(dev[high].mean() - dev[low].mean())

    before, after = tilt(original - ref_mid), tilt(ref_sys["tonal_distance"]["per_band_db"])
    print(f"tilt of the deviation from the reference: original {before:+.2f} dB, rendered {after:+.2f} dB")
    assert before == pytest.approx(-SIX, abs=0.5)
    assert after > before + 2.0


def test_the_page_and_the_charts_show_each_target(compared, capsys):
    out, doc = compared
    page = (out / "index.html").read_text()
    table = page.split('<table id="systems">')[1].split("</table>")[0]
    assert "<th>tonal target</th>" in table
    assert "reference brightref.wav; unprocessed:" in table and "target dark; unprocessed:" in table
    assert "default profile" in table  # the others' target
    assert (out / "spectrum.png").stat().st_size > 10_000
    code, stdout, _ = _run(["compare", "--replot", out], capsys)  # drawn from compare.json alone
    assert code == 0 and "spectrum.png" in stdout


def test_blind_hides_which_reference_or_target_a_letter_is(files, tmp_path, capsys):
    out = tmp_path / "blind"
    code, _, err = _run(["compare", files["song"], "--out", out, "--target", "dark", "--seconds", "4", "--blind",
                         "--seed", "5", "-q", "--reference", files["ref"]], capsys)  # fmt: skip
    assert code == 0, err
    doc = json.loads((out / "compare.json").read_text())
    key = json.loads((out / "blind_key.json").read_text())
    assert sorted(v["key"] for v in key["systems"].values()) == ["original", "ref-brightref", "target-dark"]
    page = (out / "index.html").read_text()
    shown = page.split("<h2>Listen</h2>")[1].split("</table>")[0]

    def strings(v) -> list[str]:  # every text value in the systems (the keys are the format's names)
        if isinstance(v, dict):
            return [t for x in v.values() for t in strings(x)]
        if isinstance(v, list):
            return [t for x in v for t in strings(x)]
        return [v] if isinstance(v, str) else []

    values = " ".join(strings(doc["systems"]))
    for word in ("brightref", "dark", "reference", "target-", "original"):
        assert word not in values and word not in shown, word
    withtt = [s for s in doc["systems"] if s["tonal_target"]]
    assert len(withtt) == 2 and all(s["tonal_target"]["label"] == f"{s['name']}'s target" for s in withtt)


@pytest.mark.parametrize(
    ("args", "needle", "code_want"),
    [
        (["--reference", "{d}/missing.wav"], "missing.wav: no such file or folder", 1),
        (["--target", "nosuch"], "no such shipped profile or file (shipped: default", 1),
        (["--reference", "{d}/short.wav"], "short.wav: 1.00 s long", 1),
        (["--target", "dark,dark"], "two systems would share the name 'target-dark'", 2),
    ],
)
def test_bad_references_and_targets_are_one_line_and_write_nothing(files, tmp_path, capsys, args, needle, code_want):
    sf.write(str(tmp_path / "short.wav"), _noise(1.0), SR)
    out = tmp_path / "cmp"
    argv = ["compare", files["song"], "--out", out, "--seconds", "3", *[a.format(d=tmp_path) for a in args]]
    code, _, err = _run(argv, capsys)
    assert code == code_want and needle in err and err.count("\n") == 1, err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["short.wav"]


def test_a_folder_of_references_is_one_system_with_their_combined_profile(tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    a, b = _noise(4.0, seed=21), _bright(_noise(4.0, seed=22))
    sf.write(str(refs / "a.wav"), a, SR)
    sf.write(str(refs / "b.flac"), b, SR)
    (systems,) = cmp.target_systems([str(refs)])
    assert systems.key == "ref-refs" and systems.label == "references refs/ (2 tracks)"
    assert systems.settings == {"model": "default", "reference": str(refs)}
    pair = np.stack([_spectrum(refs / "a.wav"), _spectrum(refs / "b.flac")])  # the files as written (24-bit)
    np.testing.assert_allclose(systems.profile.mid_db, pair.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(systems.profile.mid_tol_db, pair.std(axis=0, ddof=1), atol=1e-6)
