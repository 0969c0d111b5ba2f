"""``--reference`` / ``--target`` on render and play (realtime/cli.py, realtime/api.py, realtime/references.py).

References: BS.1770-4 integrated loudness of the reference (``dsp.meter.measure``, the project's meter
validated against the EBU Tech 3341 set) is what render delivers without --target-lufs; a reference made
by a known RBJ shelf (closed form, dsp.biquad) is the tonal direction render must move toward; issue 14's
bad-input rule: one line ``mixpilot: error: ...`` naming the problem, a non-zero exit code, nothing written.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.signal import sosfilt

from mixpilot.dsp.biquad import HIGH_SHELF, rbj_coefficients
from mixpilot.dsp.descriptors import BAND_CENTRES_HZ, compute_descriptors
from mixpilot.dsp.meter import measure
from mixpilot.realtime.cli import main

FS = 44100


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _noise(rng, seconds: float, level: float = 0.1) -> np.ndarray:
    n = int(seconds * FS)
    spec = np.fft.rfft(rng.standard_normal((n, 2)), axis=0)
    spec *= (1.0 / np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / FS), 20.0)))[:, None]
    x = np.fft.irfft(spec, n, axis=0)
    return level * x / np.sqrt(np.mean(x**2))


def _dark(x: np.ndarray) -> np.ndarray:
    b0, b1, b2, a1, a2 = rbj_coefficients(HIGH_SHELF, 3000.0, -6.0, math.sqrt(0.5), FS)
    return sosfilt(np.array([[b0, b1, b2, 1.0, a1, a2]]), x, axis=0)


@pytest.fixture
def files(tmp_wav, rng):
    song = tmp_wav(_noise(rng, 10.0), FS, "song.wav")
    ref = tmp_wav(0.5 * _dark(_noise(rng, 10.0)), FS, "ref.wav")
    return song, ref


def test_render_reference_delivers_its_loudness_and_moves_toward_its_balance(files, tmp_path, capsys):
    import soundfile as sf

    song, ref = files
    out = tmp_path / "out.wav"
    log = tmp_path / "params.jsonl"
    code, stdout, err = run(["render", song, out, "--params-out", log, "--reference", ref], capsys)
    assert code == 0, err
    assert "AI: target" in stdout and "the reference's integrated loudness" in err
    y, _ = sf.read(str(out), always_2d=True)
    r, _ = sf.read(str(ref), always_2d=True)
    x, _ = sf.read(str(song), always_2d=True)
    want = measure(r, FS)["integrated_lufs"]
    assert abs(measure(y, FS)["integrated_lufs"] - want) <= 0.5
    ok = (BAND_CENTRES_HZ > 40) & (BAND_CENTRES_HZ < 15000)
    t = compute_descriptors(r, FS).mid_db

    def err_db(a):
        return float(np.sqrt(np.mean((compute_descriptors(a, FS).mid_db - t)[ok] ** 2)))

    assert err_db(y) < 0.5 * err_db(x)
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(row["source"] == "ai" and row["param"] == "tone_8khz_db" and row["value"] < -1.0 for row in rows)


def test_render_target_and_target_lufs(files, tmp_path, capsys):
    song, _ = files
    out = tmp_path / "out.wav"
    code, stdout, err = run(["render", song, out, "--target", "default", "--target-lufs", "-18"], capsys)
    assert code == 0, err
    import soundfile as sf

    y, _ = sf.read(str(out), always_2d=True)
    assert abs(measure(y, FS)["integrated_lufs"] + 18.0) <= 0.5 and "AI: target" in stdout


def _silent(tmp_path, tmp_wav, song):
    return ["--reference", tmp_wav(np.zeros((5 * FS, 2)), FS, "silent.wav")], "silent"


def _short(tmp_path, tmp_wav, song):
    return ["--reference", tmp_wav(0.1 * np.ones((2 * FS, 2)), FS, "short.wav")], "at least 3 s"


def _unreadable(tmp_path, tmp_wav, song):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk" * 10)
    return ["--reference", bad], "bad.wav"


def _missing(tmp_path, tmp_wav, song):
    return ["--reference", tmp_path / "nope.flac"], "nope.flac"


def _other_version(tmp_path, tmp_wav, song):
    p = tmp_path / "old.json"
    p.write_text(json.dumps({"format": "mixpilot-profile", "schema_version": 99}))
    return ["--target", p], "schema version 99"


def _unknown_profile(tmp_path, tmp_wav, song):
    return ["--target", "no-such-style"], "no-such-style"


def _audio_as_target(tmp_path, tmp_wav, song):
    return ["--target", song], "--reference"


def _both(tmp_path, tmp_wav, song):
    return ["--target", "default", "--reference", song], "both given"


def _unknown_aspect(tmp_path, tmp_wav, song):
    return ["--amount", "tone=0.5,colour=1", "--target", "default"], "colour"


@pytest.mark.parametrize(
    "case",
    [
        _silent,
        _short,
        _unreadable,
        _missing,
        _other_version,
        _unknown_profile,
        _audio_as_target,
        _both,
        _unknown_aspect,
    ],
)
def test_bad_reference_or_target_is_one_line_and_writes_nothing(case, files, tmp_path, tmp_wav, capsys):
    song, _ = files
    extra, needle = case(tmp_path, tmp_wav, song)
    out = tmp_path / "out" / "o.wav"
    out.parent.mkdir()
    code, stdout, err = run(["render", song, out, *extra], capsys)
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mixpilot: error: ") and needle in lines[0], err
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("case", [_silent, _short, _other_version, _both])
def test_play_refuses_a_bad_reference_before_anything_opens(case, files, tmp_path, tmp_wav, capsys):
    # play/live resolve --reference/--target first: no device, no JACK server, no --record file
    song, _ = files
    extra, needle = case(tmp_path, tmp_wav, song)
    rec = tmp_path / "rec" / "r.wav"
    rec.parent.mkdir()
    code, _, err = run(["play", song, "--no-ui", "--record", rec, *extra], capsys)
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mixpilot: error: ") and needle in lines[0], err
    assert list(rec.parent.iterdir()) == []


def test_help_says_which_estimate_render_and_play_use(capsys):
    for cmd, words in (("render", "whole input file"), ("play", "running estimate"), ("live", "running estimate")):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "--reference FILE|DIR" in out and "--target NAME|PATH" in out and words in out
