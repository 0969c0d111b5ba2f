"""Render time and peak memory against file length: ``mixpilot render`` from the command line.

``python -m mixpilot.benchmarks.render_scaling [--minutes 1,10,60] [--model default|none] [--json PATH]``
(``mixpilot bench --full`` runs the same, :func:`run_lengths`, and prints its rows.)

For each length a stereo 48 kHz 24-bit WAV is written to a temporary folder
(the synthesised demo song, :func:`realtime.demo.synth_demo`, one minute tiled
to the length) and rendered by ``mixpilot render IN OUT --overwrite --json``
(default model, loudness search, -14 LUFS, 24-bit WAV) in a child process.
The child's peak resident memory is GNU time's (``/usr/bin/time -v``: the
render process's own ``ru_maxrss``), its CPU time ``ru_utime + ru_stime``
(``os.wait4``), the render's time is
its own ``seconds`` (decode to encode, after imports and Numba's cache loads,
from ``--json``), and the child's whole run (wall) is beside it.  On a
shared machine the CPU time is the steadier figure: run it with ``nice`` and
compare lengths within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

import numpy as np


def _write_song(path: str, minutes: float, sample_rate: int = 48000) -> None:
    import soundfile as sf

    from mixpilot.realtime.demo import synth_demo

    one = synth_demo(60.0, sample_rate, seed=1).astype(np.float32)
    frames = int(round(minutes * 60 * sample_rate))
    with sf.SoundFile(path, "w", samplerate=sample_rate, channels=2, subtype="PCM_24") as f:
        done = 0
        while done < frames:
            k = min(len(one), frames - done)
            f.write(one[:k])
            done += k


def render_once(in_path: str, out_path: str, model: str) -> dict:
    """``mixpilot render`` in a child process; the report's figures and the child's own peak RSS and CPU.

    The child runs under GNU time (``/usr/bin/time -v``), whose figures are the render process's own
    (``wait4``).  Without GNU time the child's ``wait4`` usage is read here instead; its peak RSS then
    counts this (parent) process's image too -- Linux carries the high-water mark of the forked image
    across ``exec`` (measured: 852 MB for a render whose own peak was 240-300 MB) -- so ``rss_exact``
    says which it is.
    """
    cmd = [sys.executable, "-m", "mixpilot.realtime.cli", "render", in_path, out_path, "--overwrite", "--model", model,
           "--json"]  # fmt: skip
    if os.path.exists("/usr/bin/time"):
        cmd = ["/usr/bin/time", "-v", *cmd]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)  # Linux: ru_maxrss in KiB
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if p.returncode != 0:
        last = [ln for ln in stderr.strip().splitlines() if ln.startswith("mixpilot")][-1:] or ["(no message)"]
        raise RuntimeError(f"render of {in_path} failed ({p.returncode}): {last[0]}")
    rep = json.loads(stdout)
    rss_kb, cpu_s, exact = float(usage.ru_maxrss), usage.ru_utime + usage.ru_stime, False
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    if cmd[0] == "/usr/bin/time" and m is not None:
        rss_kb, exact = float(m.group(1)), True
    return {
        "render_s": rep["seconds"],
        "realtime_factor": rep["realtime_factor"],
        "passes": rep["passes"],
        "process_s": wall,
        "process_cpu_s": cpu_s,
        "peak_rss_mb": rss_kb / 1024.0,
        "rss_exact": exact,
    }


def run_lengths(
    minutes: Sequence[float],
    model: str = "default",
    *,
    folder: str | None = None,
    note: Callable[[str], None] = lambda s: None,
) -> list[dict]:
    """One row per length (:func:`render_once`'s figures and ``minutes``); the files live in a temporary folder."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="mixpilot-render-scaling-", dir=folder) as tmp:
        for m in minutes:
            src = os.path.join(tmp, f"song_{m:g}min.wav")
            note(f"render scaling: writing {m:g} min of audio, then mixpilot render in a child process")
            _write_song(src, m)
            r = render_once(src, os.path.join(tmp, "out.wav"), model)
            r["minutes"] = float(m)
            rows.append(r)
            os.unlink(src)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", default="1,10,60")
    ap.add_argument("--model", default="default")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--dir", default=None, help="folder for the test files (default: a temporary one)")
    a = ap.parse_args(argv)
    rows = []
    for minutes in [float(m) for m in a.minutes.split(",")]:
        (r,) = run_lengths([minutes], a.model, folder=a.dir)
        rows.append(r)
        print(
            f"{minutes:6g} min: render {r['render_s']:8.1f} s ({r['realtime_factor']:6.1f} x real time, "
            f"{r['passes']} passes), process {r['process_s']:8.1f} s wall / {r['process_cpu_s']:8.1f} s CPU "
            f"(imports included), peak RSS {r['peak_rss_mb']:8.0f} MB",
            flush=True,
        )
    if a.json:
        from mixpilot.fileio import write_text_atomic

        write_text_atomic(a.json, json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
