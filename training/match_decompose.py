"""Where the reference-matching mid tonal error comes from: the estimate, the chain, or the EQ's reach.

::

    python -m mixpilot.training.match_decompose [--corpus DIR] [--split validation|test] [--seed S]
        [--cases 100] [--json OUT.json]

On the cases of :mod:`training.match_eval` (``--split validation``, seed 1000,
is the development material; the test split is scored once, for a report),
for the shipped default model (``model``) and the analytic matcher
(``analytic``), each case is rendered several ways with the *same* parameters
(the whole-file values ``render --reference`` uses) and the mid levels
(dB re loudness, the metric's bands) are compared with the truth's:

* ``full``: the product render (``render IN OUT --reference REF``: compressor,
  tone EQ, widths, loudness search, limiter);
* ``eq``: the tone EQ and the width stages only (no compressor, limiter or
  loudness): what the estimate alone does;
* ``eqc``: ``eq`` with the input gain and the compressor in front (no limiter);
* ``loop``: a closed loop on the chain: the full render measured, the tone EQ
  corrected once by the octave-smoothed difference between ``eq`` and ``full``
  (what the compressor and limiter did to the tone), refitted and rendered again;

and per case the **EQ's reach**: the ten ``tone_*`` gains fitted to the wanted
curve ``truth - input`` itself (:func:`inference.matcher.fit_tone_curve`, AI
ranges), rendered ``eq`` and ``full`` (the analytic matcher's dynamics) --
what a perfect estimate would leave -- and the content gap (the reference's
own levels against the truth's).

Printed per row: the mean over cases of the RMS error (the metric), of its
broadband part (|mean over bands|: a loudness-relative offset) and of the rest
(shape), and the mean square per region (lows < 160 Hz, 160-800 Hz,
0.8-3 kHz, 3-8 kHz, > 8 kHz; per case the region's sum of squares over the
number of scored bands, so the five add up to the mean square).  Results
per case are cached in ``DIR/match_eval/<cases>/scores/decompose/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mixpilot.dsp.descriptors import BAND_CENTRES_HZ, Descriptors, compute_descriptors
from mixpilot.dsp.tone import TONE_PARAMS
from mixpilot.dsp.tone import response_db as tone_response_db

from . import match_eval as me

__all__ = ["REGIONS", "decompose_case", "main", "summarise"]

SYSTEMS = ("model", "analytic")
VARIANTS = ("full", "eq", "eqc", "loop")
REGIONS = (
    ("< 160 Hz", BAND_CENTRES_HZ < 160.0),
    ("160-800 Hz", (BAND_CENTRES_HZ >= 160.0) & (BAND_CENTRES_HZ < 800.0)),
    ("0.8-3 kHz", (BAND_CENTRES_HZ >= 800.0) & (BAND_CENTRES_HZ < 3000.0)),
    ("3-8 kHz", (BAND_CENTRES_HZ >= 3000.0) & (BAND_CENTRES_HZ < 8000.0)),
    ("> 8 kHz", BAND_CENTRES_HZ >= 8000.0),
)
_EQ_STAGES = ("tone", "width", "width_bands")
_EQC_STAGES = ("input_gain", "compressor", "tone", "width", "width_bands")


def _chain(x: np.ndarray, values: dict, stages: tuple[str, ...], sample_rate: int) -> np.ndarray:
    """``x`` through only ``stages`` of the chain with ``values`` held static (no loudness, no limiter)."""
    from mixpilot.realtime.engine import Engine

    block = 8192
    eng = Engine(
        sample_rate, 2, max_block_size=block, params=dict(values), ceiling_dbtp=None, loudness_mode="static",
        meters=False, stages=stages,
    )  # fmt: skip
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x32)
    for i in range(0, x32.shape[0], block):
        eng.process_block(x32[i : i + block], out[i : i + block])
    return out.astype(np.float64)


def _mid_diff(d: Descriptors, t: Descriptors) -> list:
    """Per band ``d - t`` of the mid levels on the metric's bands (:func:`match_eval.score`), NaN elsewhere."""
    floor = np.nanmax(t.mid_db) - me.BAND_FLOOR_DB
    ok = np.isfinite(t.mid_db) & (t.mid_db >= floor) & np.isfinite(d.mid_db)
    return [float(v) if k else None for v, k in zip(d.mid_db - t.mid_db, ok)]


def decompose_case(cdir: Path) -> dict:
    """The per-band mid errors of every variant (module docstring) for the case in ``cdir``."""
    from mixpilot.inference.matcher import _smooth, fit_tone_curve
    from mixpilot.inference.profile import Profile
    from mixpilot.realtime.references import delivery_for
    from mixpilot.realtime.render import render_array

    from .matcher_checks import _estimator

    sr = me.SAMPLE_RATE
    inp, ref, _truth, meta = me.load_case(cdir)
    dt = me._desc(meta["truth_descriptors"])
    dr = me._desc(meta["reference_descriptors"])
    di = compute_descriptors(inp, sr)
    rec: dict = {"compress": bool(meta["style"]["compress"]), "bypass": _mid_diff(di, dt), "content": _mid_diff(dr, dt)}
    inp32 = np.ascontiguousarray(inp, dtype=np.float32)
    prof = Profile.from_audio(ref, sr)
    target, ceiling, _ = delivery_for(prof, None, None)
    target = -14.0 if target is None else target
    ceiling = -1.0 if ceiling is None else ceiling

    def render(**kw) -> Descriptors:
        r = render_array(inp32, sr, target_lufs=target, ceiling_dbtp=ceiling, loudness_mode="search", **kw)
        return compute_descriptors(r.out.astype(np.float64), sr)

    for system in SYSTEMS:
        est = _estimator(system, prof)
        d_full = render(estimator=est)
        vals = est.values()
        d_eq = compute_descriptors(_chain(inp, vals, _EQ_STAGES, sr), sr)
        d_eqc = compute_descriptors(_chain(inp, vals, _EQC_STAGES, sr), sr)
        gains = np.array([vals[n] for n in TONE_PARAMS])
        act = np.isfinite(d_eq.mid_db) & (d_eq.mid_db > np.nanmax(d_eq.mid_db) - 50.0) & (BAND_CENTRES_HZ < 0.49 * sr)
        now = tone_response_db(gains, BAND_CENTRES_HZ, sr)
        curve = np.where(
            act, now + _smooth(d_eq.mid_db - d_full.mid_db, act), np.where(act | np.isfinite(d_eq.mid_db), now, np.nan)
        )
        looped = dict(vals)
        looped.update({n: float(g) for n, g in zip(TONE_PARAMS, fit_tone_curve(curve, act, sr)[0])})
        d_loop = render(params=looped)
        rec[system] = {v: _mid_diff(d, dt) for v, d in zip(VARIANTS, (d_full, d_eq, d_eqc, d_loop))}
        rec[system]["values"] = vals
        if system == "analytic":  # the EQ's reach: the ten gains fitted to the wanted curve, the same dynamics
            want = dt.mid_db - di.mid_db
            ok = np.isfinite(want)
            oracle = dict(vals)
            oracle.update(
                {n: float(g) for n, g in zip(TONE_PARAMS, fit_tone_curve(np.where(ok, want, np.nan), ok, sr)[0])}
            )
            rec["reach"] = {
                "full": _mid_diff(render(params=oracle), dt),
                "eq": _mid_diff(compute_descriptors(_chain(inp, oracle, _EQ_STAGES, sr), sr), dt),
            }
    return rec


def _arr(x: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in x], dtype=np.float64)


def _stats(diffs: list[np.ndarray]) -> dict:
    rms = [float(np.sqrt(np.nanmean(d * d))) for d in diffs]
    bias = [abs(float(np.nanmean(d))) for d in diffs]
    shape = [float(np.sqrt(np.nanmean((d - np.nanmean(d)) ** 2))) for d in diffs]
    regions = {
        name: float(np.mean([np.nansum(d[m] ** 2) / np.isfinite(d).sum() for d in diffs])) for name, m in REGIONS
    }
    return {"rms": float(np.mean(rms)), "offset": float(np.mean(bias)), "shape": float(np.mean(shape)), "ms": regions}


def summarise(recs: list[dict]) -> dict[str, dict]:
    """Per row (bypass, content, each system's variants, the chain's own effect, the EQ's reach) :func:`_stats`."""
    rows: dict[str, list[np.ndarray]] = {"bypass": [], "content floor (the reference)": []}
    for r in recs:
        rows["bypass"].append(_arr(r["bypass"]))
        rows["content floor (the reference)"].append(_arr(r["content"]))
        for s in SYSTEMS:
            for v in VARIANTS:
                rows.setdefault(f"{s} {v}", []).append(_arr(r[s][v]))
            rows.setdefault(f"{s}: full - eq (the chain's own)", []).append(_arr(r[s]["full"]) - _arr(r[s]["eq"]))
        for v in ("eq", "full"):
            rows.setdefault(f"EQ's reach {v}", []).append(_arr(r["reach"][v]))
    return {k: _stats(v) for k, v in rows.items()}


def format_summary(summary: dict[str, dict]) -> str:
    head = "| row | mid tonal dB | offset | shape | " + " | ".join(f"MS {n}" for n, _ in REGIONS) + " |"
    lines = [head, "|" + "---|" * (4 + len(REGIONS))]
    for k, s in summary.items():
        ms = " | ".join(f"{s['ms'][n]:.2f}" for n, _ in REGIONS)
        lines.append(f"| {k} | {s['rms']:.2f} | {s['offset']:.2f} | {s['shape']:.2f} | {ms} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from mixpilot.fileio import write_text_atomic
    from mixpilot.training.corpus import default_dir

    ap = argparse.ArgumentParser(prog="python -m mixpilot.training.match_decompose", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--split", default="validation", choices=("validation", "test"))
    ap.add_argument("--seed", type=int, default=None, help="case seed (default 1000 for validation, 0 for test)")
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else (1000 if args.split == "validation" else 0)
    folder = me.prepare_cases(args.corpus or default_dir(), args.cases, seed, split=args.split)
    cache = folder / "scores" / "decompose"
    cache.mkdir(parents=True, exist_ok=True)
    recs, t0 = [], time.monotonic()
    for i in range(args.cases):
        path = cache / f"case_{i:03d}.json"
        if path.is_file():
            recs.append(json.loads(path.read_text(encoding="utf-8")))
            continue
        recs.append(decompose_case(folder / f"case_{i:03d}"))
        write_text_atomic(path, json.dumps(recs[-1]))
        print(f"case {i + 1}/{args.cases} ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)
    summary = {
        "all": summarise(recs),
        "style with a compressor": summarise([r for r in recs if r["compress"]]),
        "style without": summarise([r for r in recs if not r["compress"]]),
    }
    for name, s in summary.items():
        print(f"\n{name} ({sum(1 for r in recs if name == 'all' or r['compress'] == (name != 'style without'))} cases)")
        print(format_summary(s))
    if args.json:
        write_text_atomic(args.json, json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
