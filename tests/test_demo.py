"""The synthesised demo song (demo.py; ``python -m mixpilot.realtime.demo`` is its alias).

Level references come from the construction, not from a run of the code:
``synth_demo`` scales the finished mix so that its RMS over both channels is
``DEMO_RMS_DBFS`` (-21 dBFS), and turns it down further only if the peak would
pass ``DEMO_PEAK_MAX`` (-3 dBFS), which needs a crest factor above 18 dB; the
kick-led arrangement has 14-15 dB.  So the RMS must equal -21 dBFS to within
float32 rounding (allow 0.05 dB) and the peak must sit below -3 dBFS.

The loudness check uses pyloudnorm (an independent BS.1770-4 meter): for a
stereo signal BS.1770 adds the channels' mean squares (+3.01 dB over their mean)
and subtracts 0.691 dB, i.e. RMS + 2.3 dB before K-weighting; the K-weighting
curve removes a little of this bass-heavy, high-cut mix, so integrated loudness
must land between -21 and -18 LUFS (measured: about -20.1).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from mixpilot.demo import DEMO_PEAK_MAX, DEMO_RMS_DBFS, main, synth_demo, write_demo


def _rms_db(x: np.ndarray) -> float:
    return 20.0 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def song() -> np.ndarray:
    return synth_demo(20.0, 44100, 0)


def test_same_seed_gives_the_same_song(song):
    again = synth_demo(20.0, 44100, 0)
    np.testing.assert_array_equal(song, again)


def test_another_seed_gives_another_song(song):
    other = synth_demo(20.0, 44100, 1)
    assert other.shape == song.shape
    # Different melody (the lead sits about 10 dB under the mix) and drum noise:
    # the difference is about -32 dBFS, far above float32 rounding (~-140).
    assert _rms_db(other - song) > DEMO_RMS_DBFS - 20.0


@pytest.mark.parametrize(("seconds", "sample_rate"), [(20.0, 44100), (3.0, 48000), (0.25, 22050), (1e-3, 8000)])
def test_shape_dtype_finite(seconds, sample_rate):
    audio = synth_demo(seconds, sample_rate, 0)
    assert audio.shape == (int(round(seconds * sample_rate)), 2)
    assert audio.dtype == np.float32
    assert audio.flags.c_contiguous
    assert np.all(np.isfinite(audio))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_level_follows_construction(seed):
    audio = synth_demo(20.0, 44100, seed)
    peak = float(np.max(np.abs(audio)))
    assert peak < DEMO_PEAK_MAX < 1.0
    # The peak guard did not act, so the RMS normalisation stands.
    assert _rms_db(audio) == pytest.approx(DEMO_RMS_DBFS, abs=0.05)


def test_is_stereo_and_leans_right(song):
    # Pads are detuned differently per side and mixed louder on the right.
    left, right = song[:, 0], song[:, 1]
    assert not np.allclose(left, right)
    assert 0.2 < _rms_db(right) - _rms_db(left) < 2.0


def test_loudness_is_about_minus_20_lufs(song):
    pyloudnorm = pytest.importorskip("pyloudnorm")
    lufs = pyloudnorm.Meter(44100).integrated_loudness(song.astype(np.float64))
    assert -21.0 < lufs < -18.0


def test_is_dull_and_bottom_heavy(song):
    # Left for the mixer to fix: most energy below 500 Hz, little above 6 kHz.
    power = np.abs(np.fft.rfft(song.mean(axis=1).astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(song.shape[0], 1.0 / 44100)
    total = power.sum()
    assert power[freqs < 500.0].sum() / total > 0.8
    assert power[freqs > 6000.0].sum() / total < 10.0 ** (-25.0 / 10.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"seconds": 0.0}, "seconds"), ({"seconds": float("nan")}, "seconds"), ({"sample_rate": 1000}, "sample_rate")],
)
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    args = {"seconds": 1.0, "sample_rate": 44100, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        synth_demo(**args)


def test_write_demo_writes_24_bit_wav_atomically(tmp_path):
    out = tmp_path / "sub" / "demo.wav"
    audio = write_demo(out, seconds=1.5, sample_rate=48000, seed=3)
    info = sf.info(str(out))
    assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == (
        "WAV",
        "PCM_24",
        48000,
        2,
        72000,
    )
    back, _ = sf.read(str(out), dtype="float64")
    # 24-bit quantisation error is at most half a step, 2**-24.
    assert np.max(np.abs(back - audio)) <= 2.0**-23
    assert sorted(os.listdir(out.parent)) == ["demo.wav"]  # no temp file left behind


def test_cli(tmp_path, capsys):
    out = tmp_path / "demo.wav"
    assert main([str(out), "--seconds", "0.5", "--sample-rate", "22050", "--seed", "2"]) == 0
    assert sf.info(str(out)).frames == 11025
    assert "wrote" in capsys.readouterr().out
    assert main([str(out), "--seconds", "-1"]) == 2
    assert "seconds must be a positive number" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["mixpilot.demo", "mixpilot.realtime.demo"])
def test_module_command_and_its_old_name(tmp_path, module):
    # README/Makefile: `python -m mixpilot.demo OUT.wav`; the earlier `python -m mixpilot.realtime.demo`
    # still writes the same file (reference: synth_demo with the same arguments, 24-bit rounding).
    import subprocess
    import sys

    out = tmp_path / f"{module}.wav"
    p = subprocess.run(
        [sys.executable, "-m", module, str(out), "--seconds", "0.5", "--sample-rate", "22050", "--seed", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    back, sr = sf.read(str(out), dtype="float64", always_2d=True)
    assert sr == 22050 and np.max(np.abs(back - synth_demo(0.5, 22050, 4))) <= 2.0**-23
