"""Held-out evaluation of the target-conditioned model (issue 15), side by side with the other systems.

::

    python -m mixpilot.training.target_eval [--model target] [--cases 100] [--seed 0] [--corpus DIR]
        [--json OUT.json] [--readme training/README.md] [--skip-matching] [--latency]

Everything runs on the **test** split only (cases of :mod:`training.match_eval`;
the model never saw these tracks, in training or in model selection):

1. **Reference matching** (the DeepAFx-ST protocol, :func:`training.match_eval.evaluate`,
   the same cached cases for every system): the model (input descriptors of the
   whole input + the reference's profile -> its tone and widths; dynamics by the
   analytic rule when :mod:`inference.matcher` exists, else none), and the
   analytic matcher (:func:`inference.matcher.match_parameters`) if it exists,
   each rendered offline with :func:`mixpilot.master` (static parameters, the
   delivery loudness = the reference's integrated loudness, -1 dBTP ceiling);
   plus the rows already scored there (bypass, content floor, Matchering).
2. **Real time**: the parameters a system holds after ``t`` = 1, 3, 5, 10, 20 s
   of input (the running descriptors of the first ``t`` seconds, what the
   worker's estimate holds then), applied to the whole input excerpt with the
   chain's tone and width stages (no limiter: the tonal and width errors are
   relative to the loudness), scored against the truth.
3. **Parameter MAE** (normalised by each parameter's AI range): against the
   *oracle* parameters, i.e. the analytic mapping given the truth itself as the
   target (the parameters that move the input onto the truth); for the model,
   the analytic matcher and the neutral predictor.  The widths compare the
   effective side gain below/above the crossover (``stereo_width * width_low``
   and ``stereo_width * width_high``).
4. **Do no harm** (target: the shipped ``default`` profile): the tonal change the
   model makes to good masters (30 s from the middle of every test track, and the
   music files of ``../shared/audio`` when present): RMS over bands of the
   loudness-relative mid levels, output against input (tone and width stages).
5. ``--latency``: per-hop cost of what the worker runs for this model (the
   running descriptors' update with 0.5 s of 48 kHz stereo, the readout, the
   conditioning vector and one inference), p50/p99 over 240 hops.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mixpilot.dsp.descriptors import compute_descriptors
from mixpilot.dsp.params import PARAM_INDEX, PARAMS
from mixpilot.inference.profile import Profile
from mixpilot.inference.target_model import MODEL_PARAM_NAMES, TargetModel, TargetVector

from .match_eval import SAMPLE_RATE, _desc, evaluate, format_table, load_case, score, summarise

__all__ = ["SECONDS", "main", "model_values", "render_static", "tone_width_render"]

SECONDS = (1.0, 3.0, 5.0, 10.0, 20.0)
_TONE_STAGES = ("tone", "width", "width_bands")


def _matcher():
    try:
        from mixpilot.inference import matcher  # the analytic matcher (issue 14), when it exists
    except ImportError:
        return None
    return matcher


def analytic_values(d, profile: Profile, *, do_no_harm: bool = False) -> dict[str, float]:
    m = _matcher()
    if m is None:
        raise RuntimeError("inference.matcher is not available")
    return dict(m.match_parameters(d, profile, sample_rate=SAMPLE_RATE, do_no_harm=do_no_harm).values)


def model_values(model: TargetModel, d, seconds: float, profile: Profile, *, do_no_harm: bool = False):
    """What :class:`inference.model_matcher.ModelMatcher` decides for descriptors ``d`` after ``seconds``."""
    from mixpilot.inference.matcher import match_parameters
    from mixpilot.inference.model_matcher import model_result

    base = match_parameters(d, profile, sample_rate=SAMPLE_RATE, do_no_harm=do_no_harm)
    return dict(model_result(model, d, seconds, profile, base, sample_rate=SAMPLE_RATE, do_no_harm=do_no_harm).values)


def render_static(x: np.ndarray, values: dict[str, float], target_lufs: float) -> np.ndarray:
    """The whole chain with static parameters, delivered at ``target_lufs`` under -1 dBTP (mixpilot.master)."""
    import mixpilot

    lufs = float(min(max(target_lufs, -60.0), 0.0)) if math.isfinite(target_lufs) else -14.0
    y, _ = mixpilot.master(np.asarray(x, np.float32), SAMPLE_RATE, target_lufs=lufs, model="none", params=values)
    return np.asarray(y, np.float64)


def tone_width_render(x: np.ndarray, values: dict[str, float]) -> np.ndarray:
    """Only the tone EQ and the width stages with static parameters (what the tonal/width metrics read)."""
    from mixpilot.dsp.chain import MixChain
    from mixpilot.dsp.spec import ProcessSpec

    xf = np.ascontiguousarray(x, np.float32)
    ch = MixChain(_TONE_STAGES)
    ch.prepare(ProcessSpec(float(SAMPLE_RATE), max_block_size=xf.shape[0], num_channels=2))
    ch.set_params(
        {k: v for k, v in values.items() if k in ("stereo_width", "width_low", "width_high") or k.startswith("tone_")}
    )
    ch.reset()
    y = np.empty_like(xf)
    ch.process(xf, y)
    return y.astype(np.float64)


def _norm_err(name: str, a: float, b: float) -> float:
    p = PARAMS[PARAM_INDEX[name]]
    return abs(a - b) / (p.ai_maximum - p.ai_minimum)


def _effective(values: dict[str, float]) -> dict[str, float]:
    """Tone gains and the effective side gains (stereo_width x band width) of a parameter set."""
    sw = values.get("stereo_width", 1.0)
    out = {n: values.get(n, 0.0) for n in MODEL_PARAM_NAMES if n.startswith("tone_")}
    out["width_low"] = sw * values.get("width_low", 1.0)
    out["width_high"] = sw * values.get("width_high", 1.0)
    return out


MAE_NAMES = tuple(n for n in MODEL_PARAM_NAMES if n.startswith("tone_")) + ("width_low", "width_high")


def _fmt(v, nd=2):
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{nd}f}"


def run(
    model: TargetModel,
    corpus: Path,
    n_cases: int,
    seed: int,
    *,
    matching: bool = True,
    rt_cases: int = 50,
    shared_audio: Path | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    from .match_eval import prepare_cases

    folder = prepare_cases(corpus, n_cases, seed, log=log)
    m = _matcher()
    # the score cache is per system name: the model's graph, and whether the analytic rules set its dynamics
    tag = f"model-{model.card['sha256'][:8]}{'-dyn' if m is not None else ''}"
    res: dict = {"model": model.name, "sha256": model.card["sha256"], "system": tag, "cases": n_cases, "seed": seed}
    have_matcher = m is not None
    res["analytic_available"] = have_matcher
    res["rt_cases"] = rt_cases

    # 1. reference matching, offline renders of the whole input
    if matching:

        def model_sys(inp, ref, sr):
            d = compute_descriptors(inp, sr)
            prof = Profile.from_audio(ref, sr)
            return render_static(inp, model_values(model, d, d.duration_s, prof), prof.integrated_lufs)

        def analytic_sys(inp, ref, sr):
            d = compute_descriptors(inp, sr)
            prof = Profile.from_audio(ref, sr)
            return render_static(inp, analytic_values(d, prof), prof.integrated_lufs)

        systems: dict = {"bypass": None, "reference": "reference"}
        systems[tag] = model_sys
        if have_matcher:
            systems["analytic"] = analytic_sys
        have = {p.stem for p in (folder / "scores").glob("*.json")} if (folder / "scores").is_dir() else set()
        run_sys = {}
        for k, v in systems.items():
            if k == "bypass":
                from .match_eval import bypass

                run_sys[k] = bypass
            else:
                run_sys[k] = v
        if "matchering" in have:
            run_sys["matchering"] = None  # cached scores only
        results = {}
        for k, v in run_sys.items():
            if v is None:
                results[k] = _cached(folder, k, n_cases)
            else:
                results.update(evaluate({k: v}, folder, n_cases, log=log))
        results = {k: v for k, v in results.items() if v is not None}
        res["matching"] = {
            "summary": summarise(results),
            "table": format_table(summarise(results)).replace(tag, "**model**"),
        }

    # 2-3. real time and parameter MAE (descriptors of prefixes; tone + width stages)
    rt: dict[str, dict[str, list]] = {"model": {}, "analytic": {}, "bypass": {}}
    mae: dict[str, dict[str, list]] = {"model": {n: [] for n in MAE_NAMES}, "analytic": {n: [] for n in MAE_NAMES},
                                       "neutral": {n: [] for n in MAE_NAMES}}  # fmt: skip
    neutral = {n: PARAMS[PARAM_INDEX[n]].default for n in MODEL_PARAM_NAMES}
    t0 = time.monotonic()
    for i in range(n_cases):
        inp, ref, truth, meta = load_case(folder / f"case_{i:03d}")
        prof = Profile.from_descriptors([_desc(meta["reference_descriptors"])], name="reference")
        truth_d = _desc(meta["truth_descriptors"])
        d_full = compute_descriptors(inp, SAMPLE_RATE)
        rt["bypass"].setdefault("full", []).append(score(d_full, truth_d))
        for t in (*SECONDS, None) if i < rt_cases else ():
            key = "full" if t is None else f"{t:g}"
            d = d_full if t is None else compute_descriptors(inp[: int(t * SAMPLE_RATE)], SAMPLE_RATE)
            secs = d.duration_s
            mv = model_values(model, d, secs, prof)
            rt["model"].setdefault(key, []).append(score(tone_width_render(inp, mv), truth_d))
            if have_matcher:
                av = analytic_values(d, prof)
                rt["analytic"].setdefault(key, []).append(score(tone_width_render(inp, av), truth_d))
        if have_matcher:
            oracle = _effective(analytic_values(d_full, Profile.from_descriptors([truth_d], name="truth")))
            for sysname, vals in (
                ("model", _effective(model_values(model, d_full, d_full.duration_s, prof))),
                ("analytic", _effective(analytic_values(d_full, prof))),
                ("neutral", _effective(neutral)),
            ):
                for n in MAE_NAMES:
                    mae[sysname][n].append(_norm_err(n, vals[n], oracle[n]))
        log(f"real time / MAE: case {i + 1}/{n_cases} ({time.monotonic() - t0:.0f} s)")
    res["real_time"] = {
        s: {k: {m_: _mean([r[m_] for r in rows]) for m_ in ("mid_tonal_db", "side_tonal_db", "width_db")}
            for k, rows in v.items()}
        for s, v in rt.items() if v
    }  # fmt: skip
    if have_matcher:
        res["param_mae"] = {
            s: {"per_param": {n: float(np.mean(v)) for n, v in d.items()},
                "overall": float(np.mean([np.mean(v) for v in d.values()]))}
            for s, d in mae.items()
        }  # fmt: skip

    # 4. do no harm with the default profile
    res["do_no_harm"] = do_no_harm(model, corpus, shared_audio, log=log)
    return res


def _mean(v):
    a = np.array([x for x in v if x is not None], dtype=np.float64)
    return float(a.mean()) if a.size else None


def _cached(folder: Path, name: str, n: int):
    path = folder / "scores" / f"{name}.json"
    data = {int(k): v for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    if not all(i in data for i in range(n)):
        return None
    return [data[i] for i in range(n)]


def _tonal_change(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    a, b = compute_descriptors(x, SAMPLE_RATE), compute_descriptors(y, SAMPLE_RATE)
    ok = np.isfinite(a.mid_db) & np.isfinite(b.mid_db) & (a.mid_db > np.nanmax(a.mid_db) - 60.0)
    oks = ok & np.isfinite(a.side_db) & np.isfinite(b.side_db) & (a.side_db > np.nanmax(a.mid_db) - 60.0)
    mid = float(np.sqrt(np.mean((b.mid_db - a.mid_db)[ok] ** 2)))
    side = float(np.sqrt(np.mean((b.side_db - a.side_db)[oks] ** 2))) if oks.any() else float("nan")
    return mid, side


def do_no_harm(model: TargetModel, corpus: Path, shared_audio: Path | None, *, log=lambda s: None) -> dict:
    """Tonal change to good masters with the default profile (module docstring)."""
    import soxr

    from mixpilot.realtime.audio_io import read_audio

    from .corpus import load_manifest

    prof = Profile.load("default")
    items = []
    manifest = load_manifest(corpus)
    for t in sorted((t for t in manifest["tracks"] if t["split"] == "test"), key=lambda t: t["id"]):
        items.append((t["id"], Path(corpus) / t["path"]))
    if shared_audio is not None and shared_audio.is_dir():
        for p in sorted(shared_audio.glob("*.ogg")):
            items.append((f"shared/{p.name}", p))
    rows = []
    for name, path in items:
        x, sr, _ = read_audio(path)
        x = x.astype(np.float64)
        if x.shape[1] == 1:
            x = np.repeat(x, 2, axis=1)
        if sr != SAMPLE_RATE:
            x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ")
        n = int(30 * SAMPLE_RATE)
        if x.shape[0] > n:
            s = (x.shape[0] - n) // 2
            x = x[s : s + n]
        d = compute_descriptors(x, SAMPLE_RATE)
        if d.silent:
            continue
        row = {"item": name, "seconds": round(x.shape[0] / SAMPLE_RATE, 1)}
        mv = model_values(model, d, d.duration_s, prof, do_no_harm=True)
        row["model_mid_db"], row["model_side_db"] = _tonal_change(x, tone_width_render(x, mv))
        if _matcher() is not None:
            av = analytic_values(d, prof, do_no_harm=True)
            row["analytic_mid_db"], row["analytic_side_db"] = _tonal_change(x, tone_width_render(x, av))
        rows.append(row)
        log(f"do no harm: {name}: model {row['model_mid_db']:.2f} dB")
    out = {"rows": rows}
    for k in ("model_mid_db", "analytic_mid_db"):
        v = [r[k] for r in rows if k in r]
        if v:
            out[k] = {"mean": float(np.mean(v)), "max": float(np.max(v)), "over_0_5": int(np.sum(np.array(v) > 0.5))}
    return out


def latency(model: TargetModel, hops: int = 240, hop_s: float = 0.5, sample_rate: int = 48000) -> dict:
    """Per-hop cost (ms) of this model's path against the window model's, interleaved in one run (module docstring).

    ``target``: the running descriptors' update with the hop's audio, their readout, the conditioning
    vector and one inference with denormalisation (what :class:`inference.model_matcher.ModelMatcher`
    adds to a hop is the last two; the first two are the analytic matcher's own).  ``window``: the
    shipped window model's hop (the log-mel features of the last 3 s and one inference).
    """
    from mixpilot.dsp.descriptors import DescriptorAccumulator
    from mixpilot.inference.features import extract_features, input_window_frames
    from mixpilot.inference.model import OnnxModel

    rng = np.random.default_rng(0)
    prof = TargetVector.from_profile(Profile.load("default"))
    n = int(hop_s * sample_rate)
    x = (0.1 * rng.standard_normal((n * 8, 2))).astype(np.float32)
    acc = DescriptorAccumulator(sample_rate, 2)
    win = np.zeros((input_window_frames(sample_rate), 2), np.float32)
    try:
        window_model = OnnxModel.load("ensemble")
    except Exception:  # noqa: BLE001 - no window model shipped: only our own path
        window_model = None
    t_desc, t_model, t_win = [], [], []
    for i in range(hops + 10):
        blk = x[(i % 8) * n : (i % 8 + 1) * n]
        t0 = time.perf_counter()
        acc.update(blk)
        d = acc.descriptors()
        t1 = time.perf_counter()
        model.params(d, acc.seconds, prof)
        t2 = time.perf_counter()
        if window_model is not None:
            win[:-n] = win[n:]
            win[-n:] = blk
            window_model.predict(extract_features(win, sample_rate))
        t3 = time.perf_counter()
        if i >= 10:
            t_desc.append((t1 - t0) * 1e3)
            t_model.append((t2 - t1) * 1e3)
            t_win.append((t3 - t2) * 1e3)

    def pct(t):
        return {"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99))}

    out = {"hop_s": hop_s, "sample_rate": sample_rate, "hops": hops, "descriptors": pct(t_desc),
           "model": pct(t_model), "total": pct(np.add(t_desc, t_model))}  # fmt: skip
    if window_model is not None:
        out["window_model"] = {"name": window_model.name, **pct(t_win)}
    return out


def format_report(res: dict) -> str:
    lines = []
    if "matching" in res:
        lines += [
            f"Reference matching: {res['cases']} held-out cases (seed {res['seed']}, test split), means (medians); "
            f"model `{res['model']}` (sha256 {res['sha256'][:12]}).",
            "",
            res["matching"]["table"],
            "",
        ]
    rt = res.get("real_time", {})
    if rt:
        keys = [f"{t:g}" for t in SECONDS] + ["full"]
        n_rt = min(res.get("rt_cases", res["cases"]), res["cases"])
        lines += [f"Real time ({n_rt} cases): mid tonal error (dB) against the truth after t seconds of input heard "
                  "(side tonal / width in brackets):", "",
                  "| system | " + " | ".join(f"{k} s" if k != "full" else "30 s (whole)" for k in keys) + " |",
                  "|---|" + "---|" * len(keys)]  # fmt: skip
        for s, v in rt.items():
            cells = []
            for k in keys:
                if k in v:
                    c = v[k]
                    cells.append(f"{_fmt(c['mid_tonal_db'])} ({_fmt(c['side_tonal_db'])} / {_fmt(c['width_db'])})")
                else:
                    cells.append("-")
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        lines.append("")
    if "param_mae" in res:
        pm = res["param_mae"]
        heads = " | ".join(n.replace("tone_", "").replace("_db", "") for n in MAE_NAMES)
        lines += ["Held-out parameter MAE (normalised by the AI range) against the oracle parameters:", "",
                  "| system | overall | " + heads + " |", "|---|---|" + "---|" * len(MAE_NAMES)]  # fmt: skip
        for s, v in pm.items():
            cells = " | ".join(f"{v['per_param'][n]:.3f}" for n in MAE_NAMES)
            lines.append(f"| {s} | {v['overall']:.3f} | {cells} |")
        lines.append("")
    dnh = res.get("do_no_harm")
    if dnh:
        parts = []
        for k, label in (("model_mid_db", "model"), ("analytic_mid_db", "analytic matcher")):
            if k in dnh:
                s = dnh[k]
                parts.append(f"{label}: mean {s['mean']:.2f} dB, max {s['max']:.2f} dB, {s['over_0_5']} over 0.5 dB")
        lines += [
            f"Do no harm (default profile, {len(dnh['rows'])} good masters, mid tonal change): " + "; ".join(parts),
            "",
        ]
    if "latency" in res:
        la = res["latency"]
        txt = (f"Per hop ({la['hop_s']} s of {la['sample_rate']} Hz stereo, one process, interleaved): running "
               f"descriptors p50 {la['descriptors']['p50_ms']:.2f} / p99 {la['descriptors']['p99_ms']:.2f} ms, the "
               f"model's conditioning + inference p50 {la['model']['p50_ms']:.3f} / "
               f"p99 {la['model']['p99_ms']:.3f} ms, "
               f"together p50 {la['total']['p50_ms']:.2f} / p99 {la['total']['p99_ms']:.2f} ms")  # fmt: skip
        if "window_model" in la:
            w = la["window_model"]
            txt += f"; the window model `{w['name']}` (log-mel + inference) p50 {w['p50_ms']:.2f}"
            txt += f" / p99 {w['p99_ms']:.2f} ms"
        lines += [txt + "."]
    return "\n".join(lines)


README_BEGIN = "<!-- target-eval:begin (written by python -m mixpilot.training.target_eval --readme) -->"
README_END = "<!-- target-eval:end -->"


def main(argv: Sequence[str] | None = None) -> int:
    from .corpus import default_dir

    ap = argparse.ArgumentParser(prog="python -m mixpilot.training.target_eval", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="target")
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    root = Path(__file__).resolve().parents[1]
    shared = next(
        (p for p in (root.parent / "shared" / "audio", root.parent.parent / "shared" / "audio") if p.is_dir()), None
    )
    ap.add_argument(
        "--shared-audio", type=Path, default=shared, help="the four evaluation recordings (../shared/audio)"
    )
    ap.add_argument("--skip-matching", action="store_true")
    ap.add_argument("--rt-cases", type=int, default=50, help="cases of the real-time curve (the first N)")
    ap.add_argument("--latency", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--from-json", type=Path, default=None, help="only format an earlier --json result")
    ap.add_argument("--readme", type=Path, default=None)
    args = ap.parse_args(argv)

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    if args.from_json is not None:
        res = json.loads(args.from_json.read_text(encoding="utf-8"))
        return _report(res, args)
    model = TargetModel.load(args.model)
    res = run(model, args.corpus or default_dir(), args.cases, args.seed, matching=not args.skip_matching,
              rt_cases=args.rt_cases, shared_audio=args.shared_audio, log=log)  # fmt: skip
    if args.latency:
        res["latency"] = latency(model)
    if args.json:
        from mixpilot.fileio import write_text_atomic

        write_text_atomic(args.json, json.dumps(res, indent=1))
    return _report(res, args)


def _report(res: dict, args) -> int:
    text = format_report(res)
    print(text)
    if args.readme:
        import mixpilot.training.match_eval as me

        from .match_eval import update_readme

        old = (me.README_BEGIN, me.README_END)
        me.README_BEGIN, me.README_END = README_BEGIN, README_END
        try:
            update_readme(args.readme, text)
        finally:
            me.README_BEGIN, me.README_END = old
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
