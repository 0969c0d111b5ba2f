"""Render time and peak memory against file length: ``mixpilot render`` from the command line.

``python -m mixpilot.benchmarks.render_scaling [--minutes 1,10,60] [--model default|none] [--json PATH]``

For each length a stereo 48 kHz 24-bit WAV is written (the synthesised demo song,
:func:`realtime.demo.synth_demo`, one minute tiled to the length) and rendered by
``mixpilot render IN OUT --overwrite`` (default model, loudness search, -14 LUFS)
in a child process under ``/usr/bin/time -v`` (GNU time: the child's peak
resident memory).  Wall time is the render's own ``seconds`` (decode to encode,
after imports and Numba's cache loads, from ``--json``); the child's
whole run is reported beside it, wall and CPU (user + system: on a shared
machine the CPU time is the steadier figure).  Run it with ``nice`` on a shared machine and
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
    """``mixpilot render`` in a child under GNU time; the report's figures and the child's peak RSS."""
    cmd = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "mixpilot.realtime.cli",
        "render",
        in_path,
        out_path,
        "--overwrite",
        "--model",
        model,
        "--json",
    ]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"render failed ({p.returncode}): {p.stderr.strip().splitlines()[-1:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    cpu_s = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", p.stderr).group(1)) for k in ("User", "System"))
    rep = json.loads(p.stdout)
    return {
        "render_s": rep["seconds"],
        "realtime_factor": rep["realtime_factor"],
        "passes": rep["passes"],
        "process_s": wall,
        "process_cpu_s": cpu_s,
        "peak_rss_mb": rss_kb / 1024.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", default="1,10,60")
    ap.add_argument("--model", default="default")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--dir", default=None, help="folder for the test files (default: a temporary one)")
    a = ap.parse_args(argv)
    lengths = [float(m) for m in a.minutes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        for minutes in lengths:
            src = os.path.join(tmp, f"song_{minutes:g}min.wav")
            _write_song(src, minutes)
            r = render_once(src, os.path.join(tmp, "out.wav"), a.model)
            r["minutes"] = minutes
            rows.append(r)
            print(
                f"{minutes:6g} min: render {r['render_s']:8.1f} s ({r['realtime_factor']:6.1f} x real time, "
                f"{r['passes']} passes), process {r['process_s']:8.1f} s wall / {r['process_cpu_s']:8.1f} s CPU "
                f"(imports included), peak RSS {r['peak_rss_mb']:8.0f} MB",
                flush=True,
            )
            os.unlink(src)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
