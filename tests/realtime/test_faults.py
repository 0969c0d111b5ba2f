"""Bad inputs and faults of ``render`` / ``analyze`` (issue 13 items 2, 5, 6 and 9): one line, never a hang.

Each case is what a hostile user tried; the references are the file formats' own
headers (RIFF/AIFF chunk sizes, MP3's Xing frame count, RFC 3533's end-of-stream
flag on the last Ogg page), POSIX (``open`` of a FIFO with no writer blocks; a
full file system fails ``write`` with ENOSPC) and IEEE 754 single precision
(largest finite value 3.4e38, so a sample of 1e30 squared is +inf).

A full disk is a real one: a 1 MiB tmpfs mounted for the test (root only;
skipped with the reason elsewhere).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixpilot.realtime.audio_io import read_audio
from mixpilot.realtime.cli import main

ROOT = Path(__file__).resolve().parents[2]
SR = 48000


def _cli(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _errors(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("mixpilot: error:")]


def _noise(seconds: float, level: float = 0.2, seed: int = 13) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal((int(seconds * SR), 2))).astype(np.float32)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs at ``tmp_path/disk`` (a real full disk: ENOSPC); skipped where mount is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({p.stderr.strip() or 'not root'})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(folder: Path, leave_bytes: int) -> None:
    """Fill the file system of ``folder`` up to ``leave_bytes`` free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave_bytes))


# --- item 5: analyze a file with samples of 1e30 ---------------------------------------------


def test_analyze_with_1e30_samples_reports_instead_of_failing(tmp_wav, capsys):
    # Before: "mixpilot: error: model ensemble produced NaN or Inf", exit 1, no analysis at all.
    x = _noise(7.0)
    x[int(4.0 * SR) : int(4.0 * SR) + 5] = 1e30  # (1e30)^2 = inf in float32: the window's features overflow
    path = tmp_wav(x, SR, "huge.wav")
    code, out, err = _cli(["analyze", path, "--json", "--model", "ensemble"], capsys)  # a window model
    assert code == 0, err
    rep = json.loads(out)
    times = [s["t"] for s in rep["suggestions"]]
    assert times and all(t < 4.0 for t in times)  # the windows before the burst are read; those over it are not
    (note,) = [n for n in rep["notes"] if "could not read" in n]
    assert "windows" in note and "+600 dBFS" in note  # 20 log10(1e30) = 600
    assert rep["loudness"]["sample_peak_dbfs"] == pytest.approx(600.0, abs=0.01)
    # the default (target-conditioned) model: its running statistics skip the non-finite audio, every
    # suggestion is a finite number (json.loads would have read NaN/Infinity otherwise)
    code, out, err = _cli(["analyze", path, "--json"], capsys)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["suggestions"]
    vals = [v for s in rep["suggestions"] for k, v in s.items() if k != "t"]
    assert vals and all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals)


# --- item 9: a FIFO with no writer -------------------------------------------------------------


@pytest.mark.parametrize("command", ["render", "analyze"])
def test_fifo_input_is_refused_at_once(tmp_path, command):
    # Before: open() of a FIFO with no writer blocks forever (the timeout below fired).
    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)
    argv = [command, str(fifo)] + ([str(tmp_path / "o.wav"), "--model", "none"] if command == "render" else [])
    p = subprocess.run(
        [sys.executable, "-m", "mixpilot.realtime.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(ROOT),
    )
    assert p.returncode == 1
    assert _errors(p.stderr) == [f"mixpilot: error: {fifo}: is a FIFO (named pipe), not a regular file; "
                                 f"mixpilot reads audio from files"]  # fmt: skip
    assert "Traceback" not in p.stderr


# --- item 9: truncated inputs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ext, fmt, subtype, why",
    [
        ("wav", "WAV", "PCM_16", "the RIFF chunk announces"),
        ("aiff", "AIFF", "PCM_16", "the FORM chunk announces"),
        ("ogg", "OGG", "VORBIS", "its last Ogg page is cut off"),
        ("mp3", "MP3", "MPEG_LAYER_III", "its header announces 4.00 s"),
    ],
)
def test_truncated_input_gets_a_note(tmp_path, capfd, ext, fmt, subtype, why):
    # Before: the first half of the file rendered with no word about the missing half.
    whole = tmp_path / f"whole.{ext}"
    sf.write(str(whole), _noise(4.0), SR, format=fmt, subtype=subtype)
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    x, sr, info = read_audio(cut)
    assert 0 < x.shape[0] < 3 * SR
    assert len(info.notes) == 1 and info.notes[0].startswith(f"{cut}: the file looks truncated ({why}")
    assert f"processing the {x.shape[0] / sr:.2f} s it holds" in info.notes[0]
    assert read_audio(whole)[2].notes == []  # the whole file: no note
    # mpg123's own "Xing stream size off by more than 1%" went to stderr: the note says it, once
    assert capfd.readouterr().err == ""


def test_truncated_wav_note_reaches_the_render_user(tmp_path, capsys):
    whole = tmp_path / "whole.wav"
    sf.write(str(whole), _noise(4.0), SR, subtype="PCM_24")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:300_000])
    code, _, err = _cli(["render", cut, tmp_path / "o.wav", "--model", "none", "-q"], capsys)
    assert code == 0, err
    assert f"mixpilot: note: {cut}: the file looks truncated" in err


# --- item 9: --midi-map in render without --midi-file ------------------------------------------


def test_broken_midi_map_is_an_error_without_midi_file(tmp_path, tmp_wav, capsys):
    # Before: exit 0, the map never read.
    song = tmp_wav(_noise(1.0), SR, "s.wav")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[cc]]\ncc = 300\nparam = "reverb_send"\n')
    code, _, err = _cli(["render", song, tmp_path / "o.wav", "--model", "none", "-q", "--midi-map", bad], capsys)
    assert code == 2
    (line,) = _errors(err)
    assert str(bad) in line and "cc" in line
    assert not (tmp_path / "o.wav").exists()


def test_good_midi_map_without_midi_file_is_noted(tmp_path, tmp_wav, capsys):
    song = tmp_wav(_noise(1.0), SR, "s.wav")
    good = tmp_path / "good.toml"
    good.write_text('[[cc]]\ncc = 20\nparam = "reverb_send"\n')
    code, _, err = _cli(["render", song, tmp_path / "o.wav", "--model", "none", "-q", "--midi-map", good], capsys)
    assert code == 0, err
    assert f"mixpilot: note: --midi-map {good}: no --midi-file to apply it to" in err


# --- item 2: a mapped control that could lift the ceiling says so ------------------------------


def _cc_file(path: Path, cc: int, value: int) -> None:
    import mido

    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    track.append(mido.Message("control_change", control=cc, value=value, time=480))
    mid.tracks.append(track)
    mid.save(str(path))


@pytest.mark.parametrize("hi, warned", [(0.0, True), (-1.0, False)])
def test_mapped_ceiling_above_the_runs_ceiling_is_a_warning(tmp_path, capsys, hi, warned):
    # Before: the knob's top travel (above --ceiling-dbtp) did nothing, silently.
    song = tmp_path / "s.wav"
    sf.write(str(song), _noise(2.0, level=0.5), SR, subtype="FLOAT")
    mp = tmp_path / "ceil.toml"
    mp.write_text(f'[[cc]]\ncc = 21\nparam = "limiter_ceiling_dbtp"\nmin = -6.0\nmax = {hi}\nsoft_takeover = false\n')
    mid = tmp_path / "up.mid"
    _cc_file(mid, 21, 127)  # the knob all the way up at 0.5 s
    out = tmp_path / "o.wav"
    argv = ["render", song, out, "--model", "none", "-q", "--float", "--ceiling-dbtp", "-1", "--target-lufs", "-6",
            "--loudness-mode", "follow", "--midi-map", mp, "--midi-file", mid]  # fmt: skip
    code, _, err = _cli(argv, capsys)
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if "above the run's ceiling" in ln]
    if warned:
        assert len(lines) == 1 and lines[0].startswith("mixpilot: warning: MIDI map ")
        assert "limiter_ceiling_dbtp" in lines[0] and "reaches 0 dBTP" in lines[0] and "holds -1 dBTP" in lines[0]
    else:
        assert lines == []
    from mixpilot.dsp.meter import measure

    y, _ = sf.read(str(out), dtype="float32", always_2d=True)
    assert measure(y, SR)["true_peak_dbtp"] <= -1.0 + 0.1  # BS.1770-4 4x true peak: the ceiling held all the same


# --- item 9: a full disk: which file, why, and what exists -------------------------------------


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_render_onto_a_full_disk_names_the_file_and_the_reason(tmp_path, small_disk, capsys, ext):
    # Before: "mixpilot: error: .../o.wav: cannot write (System error.)".
    song = tmp_path / "s.wav"
    sf.write(str(song), _noise(3.0), SR, subtype="FLOAT")
    _fill(small_disk, 4096)
    out = small_disk / f"o.{ext}"
    code, _, err = _cli(["render", song, out, "--model", "none", "-q"], capsys)
    assert code == 1
    kind = "" if ext in ("wav", "flac") else ext.upper() + " "
    assert _errors(err) == [f"mixpilot: error: {out}: cannot write {kind}(no space left on the device)"]
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no partial or temporary file


def test_params_out_on_a_full_disk_says_the_audio_is_complete(tmp_path, small_disk, capsys):
    # Before: exit 1 with "[Errno 28] No space left on device": no file named, nothing about the audio.
    song = tmp_path / "s.wav"
    sf.write(str(song), _noise(2.0), SR, subtype="FLOAT")
    _fill(small_disk, 0)
    out, po = tmp_path / "o.wav", small_disk / "params.jsonl"
    code, _, err = _cli(["render", song, out, "--model", "none", "-q", "--params-out", po], capsys)
    assert code == 1
    assert _errors(err) == [
        f"mixpilot: error: --params-out {po}: cannot write (No space left on device); the output {out} is "
        f"complete, the parameter log was not written"
    ]
    y, sr = sf.read(str(out), dtype="float32")
    assert sr == SR and y.shape == (2 * SR, 2)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_atomic_text_write_failure_names_the_target(small_disk):
    from mixpilot.fileio import write_text_atomic

    _fill(small_disk, 0)
    target = small_disk / "stats.json"
    with pytest.raises(OSError) as info:
        write_text_atomic(target, "x" * 100_000)
    assert info.value.errno == 28 and info.value.filename == str(target)  # was None: "[Errno 28] ..." alone
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_built_in_midi_map_loads_outside_the_source_tree(tmp_path):
    # Before: a traceback (ModuleNotFoundError: No module named 'realtime') from any folder but the
    # repository root: the built-in map was looked up as the top-level package 'realtime'.
    song = tmp_path / "s.wav"
    sf.write(str(song), _noise(1.5), SR, subtype="FLOAT")
    mid = tmp_path / "cc.mid"
    _cc_file(mid, 75, 100)  # reverb_send in the built-in map
    p = subprocess.run(
        [sys.executable, "-m", "mixpilot.realtime.cli", "render", "s.wav", "o.wav", "--midi-file", "cc.mid",
         "--model", "none", "-q"],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and (tmp_path / "o.wav").exists()


# --- item 9: a long render's memory -------------------------------------------------------------


@pytest.mark.parametrize("bits, dither", [(16, True), (16, False), (24, False)])
def test_chunked_quantize_is_the_whole_buffer_formula(bits, dither):
    # quantize works in chunks (a 10-minute render peaked at 1.77 GB, 1.3 GB of it three float64 copies here);
    # reference: the whole-buffer formula it replaced, TPDF = first N doubles - next N doubles of one generator.
    from mixpilot.realtime.encode import _QUANTIZE_CHUNK_FRAMES, DITHER_SEED, quantize

    x = np.random.default_rng(4).uniform(-1.1, 1.1, (2 * _QUANTIZE_CHUNK_FRAMES + 123, 2))
    scale = float(2 ** (bits - 1))
    v = x * scale
    if dither:
        rng = np.random.default_rng(DITHER_SEED)
        v += rng.random(v.shape) - rng.random(v.shape)
    q = np.clip(np.rint(v), -scale, scale - 1.0)
    want = q.astype(np.int16) if bits == 16 else q.astype(np.int32) << (32 - bits)
    got = quantize(x, bits, dither=dither)
    assert got.dtype == want.dtype and np.array_equal(got, want)
