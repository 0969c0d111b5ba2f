"""Batch mastering (realtime/batch.py): ``mixpilot render IN... | DIR | 'glob' --out-dir OUT``.

References: the issue's acceptance case (20 files, 2 broken -> 18 outputs, 2
errors in the summary, the "partial" exit status, 3 as documented in
docs/INTERFACE.md); a single-file render of the same input with the same
settings (a batch output must be bit-identical to it); the atomic-write
contract (after Ctrl-C or a killed worker the output folder holds only
complete files: each decodes to the input's length).  The batches run as
real ``mixpilot`` processes with a real process pool; signals are real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import soundfile as sf

from mixpilot.demo import synth_demo
from mixpilot.realtime.batch import EXIT_PARTIAL, BatchUsageError, expand_inputs, plan

SR = 22050  # short, light files: the batch machinery is under test, not the chain


def _mixpilot(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mixpilot.realtime.cli", *args], capture_output=True, text=True, timeout=600, **kw
    )


def _songs(folder: Path, n: int, seconds: float, broken: tuple[int, ...] = ()) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"song{i:02d}.wav"
        if i in broken:
            p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt this is not audio" * 4)  # a corrupt WAV
        else:
            sf.write(str(p), synth_demo(seconds, SR, seed=i).astype(np.float32), SR, subtype="FLOAT")
        paths.append(p)
    return paths


def _complete_outputs(out: Path, inputs: dict[str, int]) -> list[str]:
    """Every audio file in ``out`` decodes to its input's length (no half-written file); their names."""
    names = []
    for p in sorted(out.iterdir()):
        assert ".tmp-" not in p.name, f"temporary left behind: {p.name}"
        if p.suffix == ".json":
            continue
        y, _ = sf.read(str(p))
        assert y.shape[0] == inputs[p.stem], p.name
        names.append(p.name)
    return names


def test_twenty_files_with_two_broken_give_eighteen_outputs_and_a_partial_exit(tmp_path, json_schema):
    songs = _songs(tmp_path / "in", 20, 1.0, broken=(4, 13))
    out = tmp_path / "out"
    p = _mixpilot("render", str(tmp_path / "in"), "--out-dir", str(out), "--model", "none", "-j", "2")
    assert p.returncode == EXIT_PARTIAL == 3, p.stderr
    outputs = _complete_outputs(out, {s.stem: int(SR * 1.0) for s in songs})
    assert len(outputs) == 18 and "song04.wav" not in outputs and "song13.wav" not in outputs
    summary = json.loads((out / "mixpilot-summary.json").read_text())
    json_schema("batch", summary)  # docs/schemas/batch.schema.json
    assert summary["status"] == "partial" and summary["exit_code"] == 3
    assert summary["counts"] == {"rendered": 18, "skipped": 0, "failed": 2, "interrupted": 0}
    failed = [r for r in summary["results"] if r["status"] == "failed"]
    assert [Path(r["input"]).name for r in failed] == ["song04.wav", "song13.wav"]
    assert all("not a readable audio file" in r["error"] for r in failed)
    ok = [r for r in summary["results"] if r["status"] == "rendered"]
    assert all(abs(r["output_integrated_lufs"] + 14.0) <= 0.5 and r["output_true_peak_dbtp"] <= -1.0 for r in ok)
    assert all(r["input_integrated_lufs"] is not None for r in ok)
    # each failure is one line on stderr, the batch's line on stdout
    assert sum("warning: failed: " in line for line in p.stderr.splitlines()) == 2
    assert "batch partial: 18 rendered, 0 skipped, 2 failed of 20 files" in p.stdout
    # a second run skips every output that exists (the broken files fail again): still partial
    q = _mixpilot("render", str(tmp_path / "in"), "--out-dir", str(out), "--model", "none", "--json")
    again = json.loads(q.stdout)
    assert q.returncode == 3 and again["counts"]["skipped"] == 18 and again["counts"]["rendered"] == 0


def test_a_batch_output_is_the_single_file_render(tmp_path):
    songs = _songs(tmp_path / "in", 2, 4.0)
    out = tmp_path / "out"
    p = _mixpilot("render", *map(str, songs), "--out-dir", str(out), "--format", "flac", "-q")
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in out.iterdir()) == ["mixpilot-summary.json", "song00.flac", "song01.flac"]
    one = tmp_path / "one.flac"
    assert _mixpilot("render", str(songs[1]), str(one), "-q").returncode == 0
    a, _ = sf.read(str(out / "song01.flac"), dtype="int32")
    b, _ = sf.read(str(one), dtype="int32")
    assert np.array_equal(a, b)  # the AI ran the same way in the pool worker (default model)


def _start_batch(folder: Path, out: Path) -> subprocess.Popen:
    """``mixpilot render FOLDER --out-dir OUT`` in its own process group (Ctrl-C reaches the pool's workers too)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mixpilot.realtime.cli", "render", str(folder), "--out-dir", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_ctrl_c_leaves_only_complete_outputs(tmp_path, json_schema):
    songs = _songs(tmp_path / "in", 6, 12.0)
    out = tmp_path / "out"
    proc = _start_batch(tmp_path / "in", out)
    try:
        deadline = time.monotonic() + 300
        while not (out.exists() and any(p.suffix == ".wav" for p in out.iterdir())):  # one file done, others running
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    outputs = _complete_outputs(out, {s.stem: int(SR * 12.0) for s in songs})
    assert 1 <= len(outputs) < 6
    summary = json.loads((out / "mixpilot-summary.json").read_text())
    json_schema("batch", summary)
    # every complete output is "rendered" in the summary (also one whose worker finished it as the stop
    # arrived), every other file "interrupted"
    assert summary["status"] == "interrupted" and summary["counts"]["interrupted"] == 6 - len(outputs)
    assert sorted(Path(r["output"]).name for r in summary["results"] if r["status"] == "rendered") == outputs
    assert "Traceback" not in err


def test_an_output_finished_as_the_stop_arrives_is_rendered_not_interrupted(tmp_path, monkeypatch, json_schema):
    # The race the Ctrl-C test can hit under load: a worker renames its output into place, then the stop
    # reaches the parent before the result does.  The file is complete, so the summary must not call it
    # interrupted (a re-run would skip it as existing).
    from mixpilot.realtime import batch
    from mixpilot.realtime.api import MasterSettings

    songs = _songs(tmp_path / "in", 3, 1.0)
    out = tmp_path / "out"

    def run_local(jobs, options, *, workers, bar=None, on_result=None):
        job = next(j for j in jobs if j.input.endswith("song01.wav"))
        sf.write(job.output, np.zeros((10, 2)), SR)  # what the worker delivered
        raise KeyboardInterrupt  # ...and the stop arrives before its result

    monkeypatch.setattr(batch, "run_local", run_local)
    (out).mkdir()
    sf.write(str(out / "song02.wav"), np.zeros((10, 2)), SR)  # an output from an earlier run
    opts = batch.BatchOptions(MasterSettings(model="none"), overwrite=True)
    code, summary = batch.run_batch([str(p) for p in songs], str(out), opts, progress_stream=None)
    json_schema("batch", summary)
    assert code == 130 and summary["status"] == "interrupted"
    status = {Path(r["input"]).name: r["status"] for r in summary["results"]}
    assert status == {"song00.wav": "interrupted", "song01.wav": "rendered", "song02.wav": "interrupted"}
    row = next(r for r in summary["results"] if r["status"] == "rendered")
    assert row["output_integrated_lufs"] is None and "not measured" in row["notes"][0]


def test_a_killed_worker_is_retried_once(tmp_path):
    songs = _songs(tmp_path / "in", 4, 10.0)
    out = tmp_path / "out"
    proc = _start_batch(tmp_path / "in", out)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # the first progress line: a worker is rendering
        assert "files" in first, first
        workers = [
            c for c in psutil.Process(proc.pid).children(recursive=True) if "spawn_main" in " ".join(c.cmdline())
        ]
        assert workers
        workers[0].kill()  # SIGKILL: no clean-up of its own
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    assert len(_complete_outputs(out, {s.stem: int(SR * 10.0) for s in songs})) == 4
    summary = json.loads((out / "mixpilot-summary.json").read_text())
    assert summary["counts"]["rendered"] == 4
    assert max(r["attempts"] for r in summary["results"]) == 2  # the lost file(s) ran a second time


def test_folders_globs_and_mirrored_subfolders(tmp_path):
    a = _songs(tmp_path / "lib" / "a", 2, 0.5)
    b = _songs(tmp_path / "lib" / "b" / "c", 1, 0.5)
    (tmp_path / "lib" / "notes.txt").write_text("not audio")
    got = expand_inputs([str(tmp_path / "lib")])
    assert [rel for _, rel in got] == ["a/song00.wav", "a/song01.wav", "b/c/song00.wav"]
    got = expand_inputs([str(tmp_path / "lib" / "**" / "song00.wav")])
    assert [rel for _, rel in got] == ["a/song00.wav", "b/c/song00.wav"]
    jobs = plan([str(tmp_path / "lib")], str(tmp_path / "out"), "mp3", overwrite=False)
    assert [Path(j.output).relative_to(tmp_path / "out").as_posix() for j in jobs] == [
        "a/song00.mp3",
        "a/song01.mp3",
        "b/c/song00.mp3",
    ]
    assert {Path(j.input) for j in jobs} == set(a + b)
    with pytest.raises(BatchUsageError, match="would both be written to"):
        plan([str(a[0]), str(b[0])], str(tmp_path / "out"), "wav", overwrite=False)
    with pytest.raises(BatchUsageError, match="would overwrite an input"):
        plan([str(a[0])], str(tmp_path / "lib" / "a"), "wav", overwrite=True)
    with pytest.raises(BatchUsageError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.nothing")])


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--params-out", "p.jsonl"], "--params-out is for one file"),
        (["--format", "aiff"], "invalid choice: 'aiff'"),
        (["--bit-depth", "16", "--format", "mp3"], "lossy codec"),
        (["--jobs", "0"], "--jobs 0 is outside 1..64"),
    ],
)
def test_bad_batch_arguments_are_one_line(tmp_path, extra, needle):
    songs = _songs(tmp_path / "in", 1, 0.5)
    p = _mixpilot("render", str(songs[0]), "--out-dir", str(tmp_path / "out"), *extra, cwd=tmp_path)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and needle in p.stderr, p.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
