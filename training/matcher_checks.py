"""The analytic matcher's must-holds (issue 14), measured on held-out material.

::

    python -m mixpilot.training.matcher_checks [--system model|analytic] [--corpus DIR] [--cases 100]
        [--audio-dir ../shared/audio] [--tracks N] [--split test|validation] [--json OUT.json]

``--system``: the AI measured (:data:`SYSTEMS`): ``model`` is what the CLI
runs without ``--model`` (the shipped default model), ``analytic`` the
analytic matcher (``--model matcher``; the default of this command).  Below,
``analytic`` stands for the system's name (``--name`` renames its caches).
``--split validation`` takes the cases (``match_eval --split validation``)
and the do-no-harm tracks from the corpus's validation split: the material to
develop on; the test split and ``../shared/audio`` are scored once at the end.
``--cases 0``: items 4-5 only.

1. **Reference matching** on the cases of :mod:`training.match_eval` (the
   corpus's test split): ``analytic`` is ``mixpilot render IN OUT --reference
   REF --model matcher`` (the whole input read first; delivery loudness and ceiling from
   :func:`realtime.references.delivery_for`), ``analytic-play`` the same
   through the real-time path (``--loudness-mode follow``: one pass, the
   loudness follower, the running estimate stepped by the synchronous worker
   every 0.5 s -- exactly what ``mixpilot play --reference`` plays).  Their
   scores go into the cases' score cache (``scores/analytic*.json``) so the
   match_eval table shows them beside bypass, the content floor and
   Matchering.
2. **play vs offline**: RMS over the 1/3-octave bands (within 60 dB of the
   loudest) of the mid-level difference between the two renders over
   t >= 20 s; must be <= 0.5 dB.  Split in two by a third render, the
   offline render's own AI parameters (the whole-file estimate, frozen)
   played through the real-time path: ``level_path_db`` (that render vs
   the offline one: what the loudness follower's gain does differently
   in the compressor and the limiter, no AI estimate involved) and
   ``estimate_path_db`` (the real-time render vs that one: what the
   running estimate does differently from the whole-file one).
3. **Loudness without a fight**: ``|integrated - target|`` of the
   ``analytic-play`` output over its first 30 s (what ``play --reference``
   delivers at 30 s; must be <= 1 LU) and of the ``analytic`` render (<= 0.5 LU).
4. **Do no harm**: the default profile (do-no-harm, no reference) on the
   test-split tracks of the corpus (the middle ``SECONDS`` of each) and the
   files of ``--audio-dir``, each rendered at its own loudness
   (``--target-lufs`` = its integrated loudness) by the matcher and by
   ``--model none``: the tonal difference of the two (as in 2, whole file)
   is what the AI changes in an already-good master; must be <= 0.5 dB.
5. **Stability**: on the same do-no-harm material, rendered through the
   real-time path, the largest move of any tone band (dB) or band width
   (dB of side gain) within any 10 s after the first 30 s; must be < 0.5 dB.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mixpilot.dsp.descriptors import compute_descriptors
from mixpilot.dsp.meter import measure

from . import match_eval as me

__all__ = ["SYSTEMS", "analytic", "analytic_play", "main", "model_play", "model_render", "tonal_change_db"]

SECONDS = 60.0  # do-no-harm / stability excerpt of a corpus track
PLAY_AFTER_S = 20.0
LOUDNESS_AT_S = 30.0
STABLE_AFTER_S = 30.0
STABLE_WINDOW_S = 10.0
_MOVES = ("tone_31hz_db", "tone_63hz_db", "tone_125hz_db", "tone_250hz_db", "tone_500hz_db", "tone_1khz_db",
          "tone_2khz_db", "tone_4khz_db", "tone_8khz_db", "tone_16khz_db")  # fmt: skip
_WIDTHS = ("width_low", "width_high", "stereo_width")


def tonal_change_db(a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
    """RMS over the 1/3-octave bands (within 60 dB of ``b``'s loudest) of the mid-level difference (dB re loudness)."""
    da, db = compute_descriptors(a, sample_rate), compute_descriptors(b, sample_rate)
    ok = np.isfinite(da.mid_db) & np.isfinite(db.mid_db) & (db.mid_db >= np.nanmax(db.mid_db) - me.BAND_FLOOR_DB)
    return float(np.sqrt(np.mean((da.mid_db - db.mid_db)[ok] ** 2))) if ok.any() else 0.0


#: the AI a check measures: ``model`` is what the CLI runs without ``--model`` (the shipped default, a
#: target-conditioned model on the analytic matcher's dynamics: :func:`realtime.api.matcher_for` with a
#: reference, :func:`inference.worker.load_estimator` without), ``analytic`` is ``--model matcher``
SYSTEMS = ("model", "analytic")


def _refuse(msg: str) -> None:
    """A model the product would replace by the analytic matcher (with a warning) fails the measurement."""
    raise RuntimeError(f"the measured system is not the one asked for: {msg}")


def _estimator(system: str, ref_profile):
    """The estimator ``mixpilot render`` builds for ``system`` (:data:`SYSTEMS`, or ``none``): aiming at
    ``ref_profile`` (``--reference``), or with ``None`` at the shipped default profile (do-no-harm)."""
    from mixpilot.inference.worker import load_estimator
    from mixpilot.realtime.api import matcher_for

    if system == "none":
        return None
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}: choose from {', '.join(SYSTEMS)}")
    spec = "matcher" if system == "analytic" else None  # None: the CLI's default model
    return matcher_for(ref_profile, spec, _refuse) if ref_profile is not None else load_estimator(spec, _refuse)


def _render(inp: np.ndarray, ref: np.ndarray | None, sample_rate: int, mode: str, *, target_lufs=None,
            system: str = "analytic"):  # fmt: skip
    from mixpilot.inference.profile import Profile
    from mixpilot.realtime.references import delivery_for
    from mixpilot.realtime.render import render_array

    if ref is not None:
        prof = Profile.from_audio(ref, sample_rate)
        target, ceiling, _ = delivery_for(prof, target_lufs, None)
        est = _estimator(system, prof)
    else:
        target, ceiling = target_lufs, None
        est = _estimator(system, None)
    return render_array(
        np.ascontiguousarray(inp, dtype=np.float32),
        sample_rate,
        target_lufs=-14.0 if target is None else target,
        ceiling_dbtp=-1.0 if ceiling is None else ceiling,
        estimator=est,
        loudness_mode=mode,
    ), target


def analytic(inp: np.ndarray, ref: np.ndarray, sample_rate: int) -> np.ndarray:
    """``mixpilot render IN OUT --reference REF --model matcher`` on arrays (the whole input read first)."""
    return _render(inp, ref, sample_rate, "search")[0].out


def analytic_play(inp: np.ndarray, ref: np.ndarray, sample_rate: int) -> np.ndarray:
    """What ``mixpilot play IN --reference REF --model matcher`` plays: the running estimate and the follower."""
    return _render(inp, ref, sample_rate, "follow")[0].out


def model_render(inp: np.ndarray, ref: np.ndarray, sample_rate: int) -> np.ndarray:
    """``mixpilot render IN OUT --reference REF``: the shipped default model's tone and widths on the analytic
    matcher's dynamics, through the same render path as :func:`analytic`."""
    return _render(inp, ref, sample_rate, "search", system="model")[0].out


def model_play(inp: np.ndarray, ref: np.ndarray, sample_rate: int) -> np.ndarray:
    """What ``mixpilot play IN --reference REF`` plays with the shipped default model."""
    return _render(inp, ref, sample_rate, "follow", system="model")[0].out


class _Frozen:
    """A stream estimator that answers the whole-file estimate of ``est`` (after its ``analyse``) and
    ignores the stream: the offline render's AI parameters through the real-time path."""

    wants_audio = True

    def __init__(self, est) -> None:
        self._est = est
        self.name = f"{getattr(est, 'name', 'matcher')} (whole file)"

    def prepare(self, sample_rate: float, channels: int) -> None:
        pass

    def reset(self) -> None:
        pass

    def update(self, block: np.ndarray) -> None:
        pass

    def values(self) -> dict[str, float]:
        return self._est.values()

    def result(self):
        return self._est.result()


def _frozen_play(inp: np.ndarray, ref: np.ndarray, sample_rate: int, system: str):
    """The real-time path (``--loudness-mode follow``) with the offline render's AI parameters from the first
    hop on: what :func:`_render` in ``search`` mode applies, through the follower."""
    from mixpilot.inference.profile import Profile
    from mixpilot.realtime.references import delivery_for
    from mixpilot.realtime.render import render_array

    x = np.ascontiguousarray(inp, dtype=np.float32)
    prof = Profile.from_audio(ref, sample_rate)
    target, ceiling, _ = delivery_for(prof, None, None)
    target = -14.0 if target is None else target
    ceiling = -1.0 if ceiling is None else ceiling
    est = _estimator(system, prof)
    est.configure(delivery_lufs=target, ceiling_dbtp=ceiling, follow_changes=False)
    est.prepare(sample_rate, x.shape[1])
    est.analyse(x)
    return render_array(
        x, sample_rate, target_lufs=target, ceiling_dbtp=ceiling, estimator=_Frozen(est), loudness_mode="follow"
    )


def _largest_move(updates: list[tuple[float, dict]]) -> float:
    """Largest change of a tone band (dB) or a width (dB of side gain) within any 10 s after 30 s."""
    rows = [(t, v) for t, v in updates if t >= STABLE_AFTER_S]
    worst = 0.0
    for i, (t0, v0) in enumerate(rows):
        for t1, v1 in rows[i + 1 :]:
            if t1 - t0 > STABLE_WINDOW_S + 1e-9:
                break
            for n in _MOVES:
                worst = max(worst, abs(v1[n] - v0[n]))
            for n in _WIDTHS:
                worst = max(worst, abs(20.0 * math.log10(v1[n] / v0[n])))
    return worst


def run_cases(
    folder: Path,
    n_cases: int,
    log,
    play_cases: int | None = None,
    *,
    system: str = "analytic",
    name: str | None = None,
    rescore: bool = False,
) -> dict:
    """Items 1-3 on the match_eval cases for ``system`` (:data:`SYSTEMS`); scores cached like
    :func:`match_eval.evaluate`'s as ``scores/NAME.json``, ``NAME-play.json`` and ``NAME-checks.json``
    (``name`` default: the system's); ``rescore`` recomputes them."""
    from mixpilot.fileio import write_text_atomic

    off_name = name or system
    (folder / "scores").mkdir(exist_ok=True)
    play_name = f"{off_name}-play"
    scores: dict[str, dict] = {off_name: {}, play_name: {}}
    for n in scores:
        p = folder / "scores" / f"{n}.json"
        if p.is_file() and not rescore:
            scores[n] = {int(k): v for k, v in json.loads(p.read_text(encoding="utf-8")).items()}
    extra_p = folder / "scores" / f"{off_name}-checks.json"
    extra = (
        {int(k): v for k, v in json.loads(extra_p.read_text(encoding="utf-8")).items()}
        if extra_p.is_file() and not rescore
        else {}
    )
    t0 = time.monotonic()
    n_play = n_cases if play_cases is None else min(play_cases, n_cases)
    for i in range(n_cases):
        play = i < n_play
        if i in scores[off_name] and (
            not play or (i in extra and "level_path_db" in extra[i] and i in scores[play_name])
        ):
            continue
        inp, ref, _truth, meta = me.load_case(folder / f"case_{i:03d}")
        off, target = _render(inp, ref, me.SAMPLE_RATE, "search", system=system)
        row = me.score(np.asarray(off.out, np.float64), meta["truth_descriptors"])
        row["case"] = i
        scores[off_name][i] = row
        if not play:
            write_text_atomic(
                folder / "scores" / f"{off_name}.json",
                json.dumps({str(k): v for k, v in sorted(scores[off_name].items())}),
            )
            log(f"case {i + 1}/{n_cases} ({time.monotonic() - t0:.0f} s)")
            continue
        live, _ = _render(inp, ref, me.SAMPLE_RATE, "follow", system=system)
        row = me.score(np.asarray(live.out, np.float64), meta["truth_descriptors"])
        row["case"] = i
        scores[play_name][i] = row
        frozen = _frozen_play(inp, ref, me.SAMPLE_RATE, system)
        k = int(PLAY_AFTER_S * me.SAMPLE_RATE)
        m = int(LOUDNESS_AT_S * me.SAMPLE_RATE)
        extra[i] = {
            "play_vs_offline_db": tonal_change_db(live.out[k:], off.out[k:], me.SAMPLE_RATE),
            "level_path_db": tonal_change_db(frozen.out[k:], off.out[k:], me.SAMPLE_RATE),
            "estimate_path_db": tonal_change_db(live.out[k:], frozen.out[k:], me.SAMPLE_RATE),
            "play_loudness_err_lu": abs(measure(live.out[:m], me.SAMPLE_RATE)["integrated_lufs"] - target),
            "render_loudness_err_lu": abs(measure(off.out, me.SAMPLE_RATE)["integrated_lufs"] - target),
            "target_lufs": target,
        }
        for n, rows in scores.items():
            text = json.dumps({str(k): v for k, v in sorted(rows.items())})
            write_text_atomic(folder / "scores" / f"{n}.json", text)
        write_text_atomic(extra_p, json.dumps({str(k): v for k, v in sorted(extra.items())}))
        dt = time.monotonic() - t0
        e = extra[i]
        log(
            f"case {i + 1}/{n_cases}: play vs offline {e['play_vs_offline_db']:.2f} dB (level path "
            f"{e['level_path_db']:.2f}, estimate {e['estimate_path_db']:.2f}) ({dt:.0f} s)"
        )
    return {
        "scores": {n: [rows[i] for i in sorted(rows)] for n, rows in scores.items()},
        "checks": [extra[i] for i in range(n_play)],
    }


def _material(
    corpus: Path, audio_dir: Path | None, n_tracks: int, split: str = "test"
) -> list[tuple[str, np.ndarray, int]]:
    from mixpilot.realtime.audio_io import read_audio
    from mixpilot.training.corpus import load_manifest

    out = []
    tracks = sorted((t for t in load_manifest(corpus)["tracks"] if t["split"] == split), key=lambda t: t["id"])
    for t in tracks[:n_tracks]:
        x, sr, _ = read_audio(corpus / t["path"])
        n = int(SECONDS * sr)
        a = max(0, (x.shape[0] - n) // 2)
        out.append((t["id"], x[a : a + n], sr))
    if audio_dir is not None:
        for p in sorted(audio_dir.iterdir()):
            if p.suffix.lower() in (".ogg", ".wav", ".flac", ".mp3"):
                x, sr, _ = read_audio(p)
                out.append((p.name, x, sr))
    return out


def run_do_no_harm(
    corpus: Path, audio_dir: Path | None, n_tracks: int, log, *, system: str = "analytic", split: str = "test"
) -> list[dict]:
    """Items 4-5 for ``system``: the default profile on already-good masters (``n_tracks`` of the corpus's
    ``split``, then the files of ``audio_dir``)."""
    rows = []
    for name, x, sr in _material(corpus, audio_dir, n_tracks, split):
        lufs = measure(x, sr)["integrated_lufs"]
        own = lufs if math.isfinite(lufs) else -14.0
        own = min(max(own, -60.0), 0.0)
        ai, _ = _render(x, None, sr, "search", target_lufs=own, system=system)
        ctl, _ = _render(x, None, sr, "search", target_lufs=own, system="none")
        live, _ = _render(x, None, sr, "follow", target_lufs=own, system=system)
        row = {
            "file": name,
            "seconds": round(x.shape[0] / sr, 1),
            "tonal_change_db": tonal_change_db(ai.out, ctl.out, sr),
            "largest_move_10s_db": _largest_move(live.ai_updates) if x.shape[0] / sr > STABLE_AFTER_S + 5 else None,
            "moves": {k: round(v, 2) for k, v in (ai.ai_updates[0][1] if ai.ai_updates else {}).items()
                      if k in _MOVES + _WIDTHS + ("comp_ratio",)},
        }  # fmt: skip
        rows.append(row)
        log(f"do no harm: {name}: {row['tonal_change_db']:.2f} dB, largest move {row['largest_move_10s_db']}")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    from mixpilot.training.corpus import default_dir

    ap = argparse.ArgumentParser(prog="python -m mixpilot.training.matcher_checks", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None, help="case seed (default 0; 1000 with --split validation)")
    ap.add_argument("--play-cases", type=int, default=None, help="cases also rendered the real-time way (default all)")
    ap.add_argument(
        "--system",
        default="analytic",
        choices=SYSTEMS,
        help="the AI measured: model = the CLI's default (no --model), analytic = --model matcher (default)",
    )
    ap.add_argument("--name", default=None, help="cache the case scores as scores/NAME*.json (default the system)")
    ap.add_argument("--rescore", action="store_true", help="recompute the cached case scores")
    ap.add_argument(
        "--split",
        default="test",
        choices=("test", "validation"),
        help="corpus split of the cases and the do-no-harm tracks (default test; validation for development)",
    )
    ap.add_argument("--tracks", type=int, default=24, help="tracks of the split for do-no-harm/stability (default 24)")
    ap.add_argument("--audio-dir", type=Path, default=None, help="also these files (e.g. ../shared/audio)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    corpus = args.corpus or default_dir()
    seed = args.seed if args.seed is not None else (1000 if args.split == "validation" else 0)

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    if args.cases > 0:
        folder = me.prepare_cases(corpus, args.cases, seed, split=args.split, log=log)
        res = run_cases(
            folder, args.cases, log, args.play_cases, system=args.system, name=args.name, rescore=args.rescore
        )
    else:
        res = {"scores": {}, "checks": []}
    harm = run_do_no_harm(corpus, args.audio_dir, args.tracks, log, system=args.system, split=args.split)
    checks = res["checks"]

    limits = {"play_vs_offline_db": 0.5, "play_loudness_err_lu": 1.0, "render_loudness_err_lu": 0.5}

    def stat(key: str) -> tuple[float, float, int]:
        v = np.array([c[key] for c in checks])
        return float(v.mean()), float(v.max()), int(np.sum(v <= limits[key]))

    summary = {k: stat(k) for k in limits} if checks else {}
    tc = [h["tonal_change_db"] for h in harm]
    mv = [h["largest_move_10s_db"] for h in harm if h["largest_move_10s_db"] is not None]
    n = len(checks)

    def line(label: str, key: str, unit: str) -> str:
        mean, mx, ok = summary[key]
        return f"- {label}: mean {mean:.2f}, max {mx:.2f} {unit}; <= {limits[key]:g} {unit} in {ok}/{n}"

    def part(label: str, key: str) -> str:
        v = np.array([c[key] for c in checks])
        over = int(np.sum(v > 0.5))
        return f"  - of it, {label}: mean {v.mean():.2f}, max {v.max():.2f} dB; over 0.5 dB in {over}/{n}"

    lines = [f"{args.system} ({args.split} split)"]
    if checks:
        lines += [
            line(f"play vs offline after {PLAY_AFTER_S:g} s (tonal)", "play_vs_offline_db", "dB"),
            part("level path (the whole-file AI parameters played in real time vs offline)", "level_path_db"),
            part("running estimate (real time vs those)", "estimate_path_db"),
            line(f"play --reference loudness at {LOUDNESS_AT_S:g} s, |error|", "play_loudness_err_lu", "LU"),
            line("render --reference loudness, |error|", "render_loudness_err_lu", "LU"),
        ]
    if tc:
        lines.append(
            f"- do no harm (default profile) on {len(harm)} good masters: tonal change mean {np.mean(tc):.2f}, "
            f"max {np.max(tc):.2f} dB; <= 0.5 dB in {sum(v <= 0.5 for v in tc)}/{len(tc)}"
        )
    if mv:
        lines.append(
            f"- stable: largest move within {STABLE_WINDOW_S:g} s after {STABLE_AFTER_S:g} s: mean {np.mean(mv):.2f}, "
            f"max {np.max(mv):.2f} dB; < 0.5 dB in {sum(v < 0.5 for v in mv)}/{len(mv)}"
        )
    print("\n".join(lines))
    for h in harm:
        print(f"  {h['file']}: tonal change {h['tonal_change_db']:.2f} dB, largest move {h['largest_move_10s_db']}")
    if args.json:
        from mixpilot.fileio import write_text_atomic

        write_text_atomic(
            args.json, json.dumps({"summary": summary, "lines": lines, "do_no_harm": harm, "checks": checks}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
