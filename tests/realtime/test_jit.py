"""First-run compilation (realtime/jit.py): said before it starts, paid once.

References: Numba's own cache log (``NUMBA_DEBUG_CACHE=1`` prints ``[cache] data
saved to`` for every kernel it compiles and stores): after :func:`ensure_compiled`
a render and an analysis in a new process must compile nothing.  The message
and the stamp are checked with the compile replaced by a recorder (the real
compile is what the session fixture in conftest.py runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from mixpilot.realtime import jit
from mixpilot.realtime.cli import main


@pytest.fixture
def fake_cache(tmp_path, monkeypatch):
    """The stamp and the last-compile record in tmp_path; compile_all records its calls."""
    calls = []
    cache = tmp_path / "numba" / "0123456789abcdef"
    monkeypatch.setattr(jit, "cache_dir", lambda: str(cache))
    monkeypatch.setattr(jit, "compile_all", lambda: calls.append(1))
    return cache, calls


def test_the_first_run_says_so_and_compiles_once(fake_cache):
    cache, calls = fake_cache
    said = []
    assert not jit.is_compiled()
    seconds = jit.ensure_compiled(said.append)
    assert said == [f"compiling DSP kernels (once, ~{round(jit.FIRST_ESTIMATE_S)} s)"] and calls == [1]
    assert seconds is not None and jit.is_compiled()
    assert json.loads(open(jit.stamp_path()).read())["seconds"] == round(seconds, 1)
    # the second run: nothing said, nothing compiled
    assert jit.ensure_compiled(said.append) is None
    assert len(said) == 1 and calls == [1]


def test_the_estimate_is_the_last_compile_on_this_machine(fake_cache):
    cache, _ = fake_cache
    os.makedirs(cache.parent, exist_ok=True)
    (cache.parent / "last-compile.json").write_text(json.dumps({"seconds": 63.4}))
    said = []
    jit.ensure_compiled(said.append)
    assert said == ["compiling DSP kernels (once, ~63 s)"]


def test_an_unwritable_cache_only_means_saying_it_again(fake_cache, monkeypatch):
    cache, calls = fake_cache

    def fail(path, text):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr("mixpilot.fileio.write_text_atomic", fail)
    said = []
    jit.ensure_compiled(said.append)
    jit.ensure_compiled(said.append)
    assert len(said) == 2 and calls == [1, 1]


def test_the_cli_says_it_before_the_command_runs(fake_cache, tmp_wav, capsys):
    path = tmp_wav(np.zeros((4410, 2)), 44100)
    assert main(["analyze", str(path), "--model", "none"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"mixpilot: compiling DSP kernels (once, ~{round(jit.FIRST_ESTIMATE_S)} s)"
    assert main(["analyze", str(path), "--model", "none"]) == 0
    assert "compiling" not in capsys.readouterr().err
    # commands without kernels never compile
    os.unlink(jit.stamp_path())
    assert main(["params", "--json"]) == 0
    assert "compiling" not in capsys.readouterr().err and not jit.is_compiled()


def test_after_the_compile_no_command_compiles_again(tmp_path):
    # the session fixture ran ensure_compiled on the real kernels; a render and an analysis in a new
    # process (stereo and mono files) must load every kernel from the cache
    assert jit.is_compiled()
    t = np.arange(44100 * 4) / 44100
    x = 0.2 * np.sin(2 * np.pi * 220 * t)
    sf.write(str(tmp_path / "st.wav"), np.stack([x, 0.7 * x], axis=1), 44100, subtype="PCM_24")
    sf.write(str(tmp_path / "mono.flac"), x, 44100)
    env = {**os.environ, "NUMBA_DEBUG_CACHE": "1"}
    for args in (
        ["render", "st.wav", "o1.wav"],
        ["render", "mono.flac", "o2.wav", "--model", "none", "--bit-depth", "16"],
        ["analyze", "st.wav"],
    ):
        run = subprocess.run(
            [sys.executable, "-m", "mixpilot.realtime.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr
        saved = [line for line in (run.stdout + run.stderr).splitlines() if "data saved" in line]
        assert not saved, f"{args[0]} compiled kernels ensure_compiled did not: {saved[:5]}"
        assert "compiling DSP kernels" not in run.stderr
