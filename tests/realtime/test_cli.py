"""The ``mixpilot`` command line (realtime/cli.py).

References: the contract in INTERFACE.md (command names, flags, the
``--params-out`` JSON lines) and the issue's rule for bad input: exactly one
line ``mixpilot: error: ...`` on stderr, a non-zero exit code (2 for a usage
problem, 1 for a file problem at run time), never a traceback, the input file
byte-for-byte unchanged and no temporary file left behind.  The parameter
names come from the table itself (``dsp.params.PARAMS``).

The CLI runs in-process through ``main([...])`` (fast); one test runs a real
``python -m mixpilot.realtime.cli`` process.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixpilot.dsp.params import PARAM_NAMES
from mixpilot.realtime.cli import ProgressBar, main

REPO = Path(__file__).resolve().parents[2]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


@pytest.fixture
def song(tmp_wav, rng) -> Path:
    """2 s of stereo tone plus noise at 44.1 kHz (24-bit WAV)."""
    n = 2 * 44100
    t = np.arange(n) / 44100
    x = 0.2 * np.sin(2 * np.pi * 220 * t)[:, None] + 0.05 * rng.standard_normal((n, 2))
    return tmp_wav(x, 44100, "song.wav", subtype="PCM_24")


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- success -----------------------------------------------------------------------------


def test_render_prints_progress_and_summary(song, tmp_path, capsys):
    before = _digest(song)
    out_path = tmp_path / "out.wav"
    code, out, err = run(["render", song, out_path, "--target-lufs", "-16", "--ceiling-dbtp", "-1.5"], capsys)
    assert code == 0, err
    for word in (
        "integrated loudness",
        "LUFS",
        "true peak",
        "dBTP",
        "loudness range",
        "gain reduction",
        "compressor",
        "limiter",
        "real time",
        "(target -16",
        "(ceiling -1.5",
        str(out_path),
    ):
        assert word in out
    # stderr is not a TTY under capsys: one progress line every 10 %
    assert "100%" in err and "\r" not in err and "Traceback" not in err
    info = sf.info(str(out_path))
    assert (info.frames, info.channels, info.subtype) == (2 * 44100, 2, "PCM_24")
    assert _digest(song) == before and _temp_files(tmp_path) == []


def test_quiet_prints_nothing(song, tmp_path, capsys):
    code, out, err = run(["render", song, tmp_path / "o.wav", "--quiet"], capsys)
    assert (code, out, err) == (0, "", "")


def test_params_file_params_out_float_and_overwrite(song, tmp_path, capsys, json_schema):
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"stereo_width": 0.0, "low_gain_db": 1.5}))
    out_path = tmp_path / "o.wav"
    log = tmp_path / "changes.jsonl"
    argv = [
        "render",
        song,
        out_path,
        "--params",
        params,
        "--params-out",
        log,
        "--float",
        "--quiet",
        "--model",
        "none",
        "--ai-amount",
        "0.5",
        "--block-size",
        "333",
    ]
    assert run(argv, capsys)[0] == 0
    y, _ = sf.read(str(out_path))
    assert sf.info(str(out_path)).subtype == "FLOAT"
    assert np.max(np.abs(y[:, 0] - y[:, 1])) <= 1e-6  # stereo_width 0 (M/S): L = R
    lines = [json.loads(s) for s in log.read_text().splitlines()]
    assert [d["param"] for d in lines] == ["stereo_width", "low_gain_db", "loudness_gain_db"]
    assert all(set(d) == {"t", "param", "value", "source"} for d in lines)
    for d in lines:
        json_schema("params-out", d)  # docs/schemas/params-out.schema.json
    # a second run needs --overwrite (for the output and the log), then replaces both
    code, _, err = run(argv, capsys)
    assert code == 2 and "exists; pass --overwrite" in err
    assert run(argv + ["--overwrite"], capsys)[0] == 0
    assert _temp_files(tmp_path) == []


def test_progress_bar_format():
    s = io.StringIO()
    bar = ProgressBar(s, tty=True)
    bar(1, 12.15, 27.0)
    bar(1, 12.16, 27.0)  # same percent: not redrawn
    bar.finish()
    assert s.getvalue() == "\r[#########...........]  45%  12.2 s / 27.0 s  pass 1\n"
    # not a terminal: the first line, then one line per 5 s (tqdm's behaviour), and the finishing line
    s = io.StringIO()
    now = [0.0]
    bar = ProgressBar(s, tty=False, clock=lambda: now[0])
    for i in range(1, 1001):
        now[0] = i * 0.021  # 1000 updates over 21 s
        bar(1, i * 0.027, 27.0)
    lines = s.getvalue().splitlines()
    assert len(lines) == 6  # at 0.02 s, 5.02, 10.02, 15.02, 20.02 and the 100 % line
    assert lines[0].startswith("[....................]   0%") and lines[-1].startswith("[####################] 100%")


def test_params_json_and_table(capsys):
    code, out, _ = run(["params", "--json"], capsys)
    assert code == 0
    table = json.loads(out)
    assert [row["name"] for row in table] == list(PARAM_NAMES)
    code, out, _ = run(["params"], capsys)
    assert code == 0
    for name in PARAM_NAMES:
        assert name in out
    assert "AI range" in out and "glide" in out


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "render" in out and "params" in out


# --- bad input: one line, no traceback, nothing lost ---------------------------------------


def _case_missing(tmp_path, song):
    return [tmp_path / "nope.wav", tmp_path / "o.wav"], 1, "no such file"


def _case_text(tmp_path, song):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n")
    return [p, tmp_path / "o.wav"], 1, "not a readable audio file"


def _case_zero_length(tmp_path, song):
    p = tmp_path / "empty.wav"
    sf.write(str(p), np.zeros((0, 2)), 44100)
    return [p, tmp_path / "o.wav"], 1, "zero length"


def _case_input_dir(tmp_path, song):
    return [tmp_path, tmp_path / "o.wav"], 1, "is a directory"


def _case_low_rate(tmp_path, song):
    p = tmp_path / "low.wav"
    sf.write(str(p), np.zeros((4000, 2)), 4000)
    return [p, tmp_path / "o.wav"], 1, "8000..192000"


def _case_nine_channels(tmp_path, song):
    p = tmp_path / "nine.wav"
    sf.write(str(p), np.zeros((100, 9)), 44100)
    return [p, tmp_path / "o.wav"], 1, "9 channels"


def _case_bad_extension(tmp_path, song):
    return [song, tmp_path / "o.aiff"], 2, "output formats are .wav, .flac, .ogg, .mp3"


def _case_float_flac(tmp_path, song):
    return [song, tmp_path / "o.flac", "--float"], 2, "FLAC cannot hold"


def _case_same_path(tmp_path, song):
    return [song, song, "--overwrite"], 2, "same file as the input"


def _case_same_via_relative(tmp_path, song):
    (tmp_path / "sub").mkdir()
    return [song, tmp_path / "sub" / ".." / song.name, "--overwrite"], 2, "same file as the input"


def _case_same_via_symlink(tmp_path, song):
    link = tmp_path / "link.wav"
    link.symlink_to(song)
    return [song, link, "--overwrite"], 2, "same file as the input"


def _case_same_via_hardlink(tmp_path, song):
    link = tmp_path / "hard.wav"
    os.link(song, link)
    return [song, link, "--overwrite"], 2, "same file as the input"


def _case_output_exists(tmp_path, song):
    p = tmp_path / "exists.wav"
    p.write_bytes(b"keep me")
    return [song, p], 2, "exists; pass --overwrite"


def _case_output_is_dir(tmp_path, song):
    (tmp_path / "d.wav").mkdir()
    return [song, tmp_path / "d.wav", "--overwrite"], 2, "is a directory"


def _case_dir_is_a_file(tmp_path, song):
    f = tmp_path / "file.txt"
    f.write_text("x")
    return [song, f / "o.wav"], 1, "is not a directory"


def _case_dir_missing(tmp_path, song):
    return [song, tmp_path / "no" / "o.wav"], 1, "does not exist"


def _params(tmp_path, text):
    p = tmp_path / "params.json"
    p.write_text(text)
    return p


def _case_unknown_param(tmp_path, song):
    return [song, tmp_path / "o.wav", "--params", _params(tmp_path, '{"bogus_db": 1}')], 2, "'bogus_db'"


def _case_out_of_range(tmp_path, song):
    p = _params(tmp_path, '{"comp_ratio": 50}')
    return [song, tmp_path / "o.wav", "--params", p], 2, "comp_ratio = 50 is outside its range 1..20"


def _case_not_a_number(tmp_path, song):
    p = _params(tmp_path, '{"low_gain_db": "loud"}')
    return [song, tmp_path / "o.wav", "--params", p], 2, "low_gain_db must be a number in -18..18 dB"


def _case_malformed_json(tmp_path, song):
    p = _params(tmp_path, '{\n  "low_gain_db": 1,,\n}')
    return [song, tmp_path / "o.wav", "--params", p], 2, "params.json: not valid JSON at line 2"


def _case_json_not_object(tmp_path, song):
    p = _params(tmp_path, "[1, 2]")
    return [song, tmp_path / "o.wav", "--params", p], 2, "must be a JSON object"


def _case_json_duplicate(tmp_path, song):
    p = _params(tmp_path, '{"low_gain_db": 1, "low_gain_db": 2}')
    return [song, tmp_path / "o.wav", "--params", p], 2, "given twice"


def _case_params_missing(tmp_path, song):
    return [song, tmp_path / "o.wav", "--params", tmp_path / "none.json"], 2, "--params"


def _case_ai_hop(tmp_path, song):
    return [song, tmp_path / "o.wav", "--ai-hop-s", "0"], 2, "--ai-hop-s 0 is outside"


def _case_ai_amount(tmp_path, song):
    return [song, tmp_path / "o.wav", "--ai-amount", "1.5"], 2, "0..1"


def _case_target(tmp_path, song):
    return [song, tmp_path / "o.wav", "--target-lufs", "loud"], 2, "not a number"


def _case_target_range(tmp_path, song):
    return [song, tmp_path / "o.wav", "--target-lufs", "-90"], 2, "-60..0 LUFS"


def _case_ceiling(tmp_path, song):
    return [song, tmp_path / "o.wav", "--ceiling-dbtp", "1"], 2, "-20..0 dBTP"


def _case_block_size(tmp_path, song):
    return [song, tmp_path / "o.wav", "--block-size", "0"], 2, "block-size"


def _case_unknown_option(tmp_path, song):
    return [song, tmp_path / "o.wav", "--loud"], 2, "unrecognized arguments"


CASES = [v for k, v in sorted(globals().items()) if k.startswith("_case_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[6:] for c in CASES])
def test_bad_input_gets_one_line(case, song, tmp_path, capsys):
    argv, expected_code, message = case(tmp_path, song)
    before = _digest(song)
    listing = sorted(p.name for p in tmp_path.iterdir())
    exists_before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p != song}
    code, out, err = run(["render", *argv], capsys)
    lines = err.splitlines()
    assert code == expected_code, err
    assert len(lines) == 1 and lines[0].startswith("mixpilot: error: "), err
    assert message in lines[0]
    assert "Traceback" not in out + err
    assert _digest(song) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # nothing written, no temp file
    for p, data in exists_before.items():
        assert p.read_bytes() == data


def test_unwritable_output_dir(song, tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root writes through chmod 0o500: make os.access report what it would for a user
        real_access = os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda p, mode, **kw: False if Path(p) == locked and mode & os.W_OK else real_access(p, mode, **kw),
        )
    try:
        code, _, err = run(["render", song, locked / "o.wav"], capsys)
    finally:
        locked.chmod(0o700)
    assert code == 1 and err.startswith("mixpilot: error: ") and "not writable" in err
    assert len(err.splitlines()) == 1 and list(locked.iterdir()) == []


def test_no_command_is_one_line(capsys):
    code, _, err = run([], capsys)
    expected = (
        "mixpilot: error: a command is required: play, live, render, analyze, compare, devices, params or "
        "midi-learn (see mixpilot --help)"
    )
    assert code == 2 and err.splitlines() == [expected]


def test_real_process_prints_no_traceback(song, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "mixpilot.realtime.cli", "render"]
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    p = subprocess.run(
        cmd + [str(bad), str(tmp_path / "o.wav")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert p.returncode == 1
    assert p.stderr.splitlines() == [f"mixpilot: error: {bad}: not a readable audio file (Format not recognised.)"]
    p = subprocess.run(
        cmd + [str(song), str(tmp_path / "o.wav")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "integrated loudness" in p.stdout
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bad.wav", "o.wav", "song.wav"]


def test_write_failure_is_one_line(song, tmp_path, capsys, monkeypatch):
    from mixpilot.realtime import audio_io

    real = audio_io.sf.SoundFile

    def disk_full(path, mode="r", *args, **kwargs):
        if mode != "w":
            return real(path, mode, *args, **kwargs)
        raise OSError(28, "No space left on device", path)

    monkeypatch.setattr(audio_io.sf, "SoundFile", disk_full)
    code, _, err = run(["render", song, tmp_path / "o.wav", "--quiet"], capsys)
    assert code == 1 and len(err.splitlines()) == 1
    # the output named, the reason in words (as for a really full disk: test_faults.py)
    assert err.startswith("mixpilot: error: ") and f"{tmp_path / 'o.wav'}: cannot write (no space left" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.wav"]
