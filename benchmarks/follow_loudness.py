"""What the real-time loudness follower delivers at 30 s (issue 14's "loudness without a fight").

::

    python -m mixpilot.benchmarks.follow_loudness [--corpus DIR] [--cases 20] [--seed 0]
        [--audio-dir ../shared/audio] [--no-demos] [--json OUT.json]

Everything goes through the product's processing path, :func:`realtime.api.master_core`
(what ``mixpilot render`` runs before encoding), with ``loudness_mode="follow"``: one pass with
the loudness follower, the AI stepped every 0.5 s by the synchronous worker, i.e. exactly what
``mixpilot play`` plays (``play --record`` equals it within 1e-6: tests/realtime).

* **Cases**: the first ``--cases`` reference-matching cases of :mod:`training.match_eval`
  (made and cached by ``python -m mixpilot.training.match_eval --cases N``): input A with the
  reference B (``render A OUT --reference B --loudness-mode follow``, i.e. ``play A --reference
  B``), the delivery target being the reference's integrated loudness.  Reported per case: the
  error of the output's integrated loudness over its first 30 s against the target, and the
  loudness range (EBU Tech 3342) of input, reference and output.
* **Demos** (target -14 LUFS, ceiling -1 dBTP, first 30 s): the synthesised demo song
  (:func:`demo.synth_demo`, 20 s, what ``make demo`` plays on a fresh clone) with the default
  model and with ``--model none``, and ``Kevin_MacLeod_-_Vibe_Ace.ogg`` from ``--audio-dir``
  (``make demo``'s song when present) with both.

The summary says how many cases are within 1 LU and the mean, median and largest error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["deliver_follow", "run_cases", "run_demos", "main"]

AT_S = 30.0  # what `play` has delivered after this long is the figure (issue 14)
TOLERANCE_LU = 1.0
DEMO_TARGET_LUFS = -14.0
VIBE_ACE = "Kevin_MacLeod_-_Vibe_Ace.ogg"


def deliver_follow(
    x: np.ndarray, sample_rate: int, *, target_lufs: float | None, model: str, reference: str | None = None
) -> tuple[np.ndarray, float]:
    """``(output, target_lufs)`` of ``render IN OUT [--reference R] --loudness-mode follow`` on an array."""
    from mixpilot.realtime.api import MasterSettings, master_core

    settings = MasterSettings(
        target_lufs=target_lufs,
        ceiling_dbtp=-1.0,
        model=model,
        loudness_mode="follow",
        reference=None if reference is None else (reference,),
    )
    checked = settings.checked()
    y, rep, _ = master_core(np.ascontiguousarray(x, dtype=np.float32), sample_rate, checked)
    return y, float(rep.target_lufs)


def _first(x: np.ndarray, sample_rate: int) -> np.ndarray:
    return x[: int(AT_S * sample_rate)]


def _figures(y: np.ndarray, sample_rate: int) -> tuple[float, float]:
    from mixpilot.dsp.meter import measure

    m = measure(np.asarray(_first(y, sample_rate), dtype=np.float64), sample_rate)
    return float(m["integrated_lufs"]), float(m["loudness_range_lu"])


def run_cases(corpus: Path, n_cases: int, seed: int, log) -> list[dict]:
    """One row per case: target, delivered loudness at 30 s, error, LRA of input / reference / output."""
    import soundfile as sf

    from mixpilot.training import match_eval as me

    folder = me.prepare_cases(corpus, n_cases, seed, log=log)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mixpilot-follow-") as tmp:
        for i in range(n_cases):
            inp, ref, _, meta = me.load_case(folder / f"case_{i:03d}")
            ref_path = os.path.join(tmp, f"ref_{i:03d}.wav")
            sf.write(ref_path, ref.astype(np.float32), me.SAMPLE_RATE, subtype="FLOAT")
            t0 = time.monotonic()
            y, target = deliver_follow(inp, me.SAMPLE_RATE, target_lufs=None, model="default", reference=ref_path)
            out_lufs, out_lra = _figures(y, me.SAMPLE_RATE)
            _, in_lra = _figures(inp, me.SAMPLE_RATE)
            _, ref_lra = _figures(ref, me.SAMPLE_RATE)
            row = {
                "case": i,
                "track": meta["track"],
                "target_lufs": target,
                "output_lufs": out_lufs,
                "error_lu": out_lufs - target,
                "input_lra_lu": in_lra,
                "reference_lra_lu": ref_lra,
                "output_lra_lu": out_lra,
            }
            rows.append(row)
            log(
                f"case {i:3d}  target {target:7.2f}  out {out_lufs:7.2f}  error {out_lufs - target:+6.2f} LU  "
                f"LRA in {in_lra:5.1f} ref {ref_lra:5.1f} out {out_lra:5.1f}  ({time.monotonic() - t0:.0f} s)"
            )
    return rows


def run_demos(audio_dir: Path | None, log) -> list[dict]:
    """The demo songs at -14 LUFS, with the default model and without AI."""
    from mixpilot.demo import synth_demo
    from mixpilot.dsp.meter import measure

    songs: list[tuple[str, np.ndarray, int]] = []
    sr = 44100
    songs.append(("synthesised demo song", np.asarray(synth_demo(sample_rate=sr), dtype=np.float32), sr))
    if audio_dir is not None and (audio_dir / VIBE_ACE).is_file():
        from mixpilot.realtime.audio_io import read_audio_file

        raw, rate, _ = read_audio_file(str(audio_dir / VIBE_ACE))
        songs.append((VIBE_ACE, np.ascontiguousarray(raw[: int(AT_S * rate) + rate], dtype=np.float32), rate))
    rows = []
    for name, x, rate in songs:
        in_lra = float(measure(np.asarray(_first(x, rate), np.float64), rate)["loudness_range_lu"])
        for model in ("default", "none"):
            y, target = deliver_follow(x, rate, target_lufs=DEMO_TARGET_LUFS, model=model)
            out_lufs, out_lra = _figures(y, rate)
            rows.append(
                {
                    "song": name,
                    "model": model,
                    "target_lufs": target,
                    "output_lufs": out_lufs,
                    "error_lu": out_lufs - target,
                    "input_lra_lu": in_lra,
                    "output_lra_lu": out_lra,
                }
            )
            log(
                f"{name} --model {model}: {out_lufs:.2f} LUFS (target {target:g}); "
                f"LRA in {in_lra:.1f} out {out_lra:.1f} LU"
            )
    return rows


def summary(rows: list[dict]) -> dict:
    err = np.array([abs(r["error_lu"]) for r in rows if math.isfinite(r["error_lu"])])
    if err.size == 0:
        return {"cases": 0}
    lra_d = np.array([r["output_lra_lu"] - r["input_lra_lu"] for r in rows])
    return {
        "cases": int(err.size),
        "within_1_lu": int(np.sum(err <= TOLERANCE_LU)),
        "mean_abs_error_lu": float(err.mean()),
        "median_abs_error_lu": float(np.median(err)),
        "max_abs_error_lu": float(err.max()),
        "mean_signed_error_lu": float(np.mean([r["error_lu"] for r in rows])),
        "mean_output_minus_input_lra_lu": float(lra_d.mean()),
        "mean_output_minus_reference_lra_lu": float(
            np.mean([r["output_lra_lu"] - r["reference_lra_lu"] for r in rows])
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    from mixpilot.training.corpus import default_dir

    ap = argparse.ArgumentParser(
        prog="python -m mixpilot.benchmarks.follow_loudness", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--corpus", type=Path, default=None, help="corpus folder (default: the cache)")
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--audio-dir", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "audio")
    ap.add_argument("--no-demos", action="store_true")
    ap.add_argument("--no-cases", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    ap.add_argument(
        "--without-prediction",
        action="store_true",
        help="the follower as it was before it predicted the AI's loudness changes (the 'before' column)",
    )

    args = ap.parse_args(argv)

    def log(s: str) -> None:
        print(s, flush=True)

    if args.without_prediction:
        from mixpilot.realtime.engine import Engine

        Engine._predict_change = lambda self, old, new, end_frame: 0.0  # type: ignore[method-assign]
    out: dict = {"prediction": not args.without_prediction}
    if not args.no_demos:
        out["demos"] = run_demos(args.audio_dir if args.audio_dir.is_dir() else None, log)
    if not args.no_cases:
        rows = run_cases(args.corpus or default_dir(), args.cases, args.seed, log)
        out["cases"] = rows
        out["summary"] = s = summary(rows)
        log(
            f"{s['within_1_lu']}/{s['cases']} within {TOLERANCE_LU:g} LU at {AT_S:g} s; |error| mean "
            f"{s['mean_abs_error_lu']:.2f}, median {s['median_abs_error_lu']:.2f}, max {s['max_abs_error_lu']:.2f} LU "
            f"(signed mean {s['mean_signed_error_lu']:+.2f}); LRA out - in {s['mean_output_minus_input_lra_lu']:+.2f}, "
            f"out - reference {s['mean_output_minus_reference_lra_lu']:+.2f} LU"
        )
    if args.json is not None:
        from mixpilot.fileio import write_text_atomic

        write_text_atomic(args.json, json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
