"""Reference-matching evaluation on held-out corpus tracks (the DeepAFx-ST protocol of issue 14).

::

    python -m mixpilot.training.match_eval [--corpus DIR] [--cases 100] [--seed 0]
        [--systems bypass,reference,oracle-eq,matchering] [--matchering-python PATH] [--json OUT.json]

**Cases** (:func:`prepare_cases`, cached on disk so every system is scored
on identical audio; ``DIR/match_eval/v1-seed0/case_000/``): for case ``i``
(generator ``default_rng([seed, i])``), a ``test``-split track of the corpus
(at least 65 s; tracks taken in a seeded order, each in turn), resampled to
44.1 kHz, gives two non-overlapping 30 s excerpts **A** and **B**, each
within 8 LU of the track's integrated loudness (not a fade or a break).

* a random **master style** (:func:`draw_style`) is applied to both, built
  with pedalboard so that it does not come from our chain: low shelf
  (60-250 Hz, +-6 dB), peak (250 Hz-5 kHz, +-5 dB, Q 0.5-2), high shelf
  (3-10 kHz, +-6 dB); with probability 1/2 a compressor (threshold 3-12 dB
  below the excerpts' RMS, ratio 2-6, attack 2-30 ms, release 50-300 ms);
  M/S width (side gain 0.6-1.5); pedalboard's limiter with a sample-peak
  ceiling of -2..-0.5 dBFS, driven by one gain for A and B so that the two
  together reach a loudness of -18..-9 LUFS (:func:`_deliver`);
* a random **mix fault** (:func:`draw_fault`) on A only: low shelf (80-300 Hz),
  peak (300 Hz-4 kHz, Q 0.7-2) and high shelf (4-10 kHz), each +-6 dB with
  probability 0.7; M/S width 0.5-1.5 with probability 0.7; level -12..+6 dB;
* **input** = faulted A, **reference** = styled B, **truth** = styled A.

Stored as 24-bit FLAC (each scaled to peak at most -0.1 dBFS, the scale in
``case.json`` and undone on loading, so levels above full scale survive),
with the recipe and the truth's and reference's descriptors.

**Systems** are callables ``(input, reference, sample_rate) -> output`` on
``[frames, 2]`` float arrays: ``bypass`` (the input as it is), ``reference``
(the reference itself: its scores are the **content floor** of the cases,
what no literal matcher gets below: two excerpts differ in content),
``analytic`` (``mixpilot render IN OUT --reference REF --model matcher``: the analytic
matcher, :mod:`inference.matcher`), ``analytic-play`` (the same the way
``mixpilot play --reference`` runs it: the running estimate and the loudness
follower; :mod:`training.matcher_checks`), ``model`` and ``model-play`` (the
same with the shipped default model, what the CLI runs without ``--model``),
``oracle-eq`` (a sanity anchor that cheats: the zero-phase mid and side EQ
that moves the input's long-term 1/3-octave spectra onto the *truth*'s, no
dynamics, no limiter), ``matchering`` (Matchering 2.0 given the same
reference, run in its own virtual environment through a subprocess, default
output: its limiter and normalisation).  :func:`evaluate` takes any other
callables (the analytic matcher, a model); on the command line
``--callable NAME=MODULE:ATTR`` adds one.

**Metrics** against the truth (:func:`score`), from
:func:`dsp.descriptors.compute_descriptors` of the output and the truth:
mid and side tonal error = RMS over the 1/3-octave bands of the difference of
the loudness-relative band levels (i.e. after loudness matching; bands within
60 dB of the truth's loudest mid band), width error = |side/mid difference|
(dB), loudness error (LU), PLR error (dB), and the output's true peak (dBTP;
the share of cases above -1 dBTP).  Scores are cached per system and case
in ``scores/SYSTEM.json``; ``--rescore`` recomputes them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mixpilot.dsp.descriptors import BAND_CENTRES_HZ, Descriptors, compute_descriptors
from mixpilot.dsp.meter import measure

__all__ = [
    "CASES_VERSION",
    "EXCERPT_S",
    "SAMPLE_RATE",
    "MatcheringSystem",
    "bypass",
    "draw_fault",
    "draw_style",
    "evaluate",
    "format_table",
    "load_case",
    "main",
    "oracle_eq",
    "prepare_cases",
    "score",
    "summarise",
]

CASES_VERSION = 1
SAMPLE_RATE = 44100
EXCERPT_S = 30.0
MIN_TRACK_S = 65.0
ACTIVE_WITHIN_LU = 8.0
BAND_FLOOR_DB = 60.0
TP_LIMIT_DBTP = -1.0
STORE_PEAK = 10.0 ** (-0.1 / 20.0)
DEFAULT_MATCHERING_PYTHON = "/work/venvs/matchering/bin/python"

System = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


class EvalError(Exception):
    """A problem running the evaluation; one line."""


# ---------------------------------------------------------------------------
# random style and fault (pedalboard)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_style(rng: np.random.Generator) -> dict:
    """A random master style (module docstring); plain numbers, stored in ``case.json``."""
    return {
        "low_shelf_hz": _log_uniform(rng, 60.0, 250.0),
        "low_shelf_db": float(rng.uniform(-6.0, 6.0)),
        "peak_hz": _log_uniform(rng, 250.0, 5000.0),
        "peak_db": float(rng.uniform(-5.0, 5.0)),
        "peak_q": float(rng.uniform(0.5, 2.0)),
        "high_shelf_hz": _log_uniform(rng, 3000.0, 10000.0),
        "high_shelf_db": float(rng.uniform(-6.0, 6.0)),
        "compress": bool(rng.uniform() < 0.5),
        "comp_below_rms_db": float(rng.uniform(3.0, 12.0)),
        "comp_ratio": float(rng.uniform(2.0, 6.0)),
        "comp_attack_ms": float(rng.uniform(2.0, 30.0)),
        "comp_release_ms": float(rng.uniform(50.0, 300.0)),
        "width": _log_uniform(rng, 0.6, 1.5),
        "target_lufs": float(rng.uniform(-18.0, -9.0)),
        "limiter_db": float(rng.uniform(-2.0, -0.5)),
    }


def draw_fault(rng: np.random.Generator) -> dict:
    """A random mix fault (module docstring); 0 dB / width 1 where a part is not drawn."""
    on = rng.uniform(size=4) < 0.7
    return {
        "low_shelf_hz": _log_uniform(rng, 80.0, 300.0),
        "low_shelf_db": float(rng.uniform(-6.0, 6.0)) if on[0] else 0.0,
        "peak_hz": _log_uniform(rng, 300.0, 4000.0),
        "peak_db": float(rng.uniform(-6.0, 6.0)) if on[1] else 0.0,
        "peak_q": float(rng.uniform(0.7, 2.0)),
        "high_shelf_hz": _log_uniform(rng, 4000.0, 10000.0),
        "high_shelf_db": float(rng.uniform(-6.0, 6.0)) if on[2] else 0.0,
        "width": _log_uniform(rng, 0.5, 1.5) if on[3] else 1.0,
        "level_db": float(rng.uniform(-12.0, 6.0)),
    }


def _eq(x: np.ndarray, p: dict, sr: int) -> np.ndarray:
    import pedalboard as pb

    board = pb.Pedalboard(
        [
            pb.LowShelfFilter(cutoff_frequency_hz=p["low_shelf_hz"], gain_db=p["low_shelf_db"]),
            pb.PeakFilter(cutoff_frequency_hz=p["peak_hz"], gain_db=p["peak_db"], q=p["peak_q"]),
            pb.HighShelfFilter(cutoff_frequency_hz=p["high_shelf_hz"], gain_db=p["high_shelf_db"]),
        ]
    )
    return board(np.ascontiguousarray(x.T, dtype=np.float32), sr).T.astype(np.float64)


def _width(x: np.ndarray, w: float) -> np.ndarray:
    m = 0.5 * (x[:, 0] + x[:, 1])
    s = 0.5 * (x[:, 0] - x[:, 1]) * w
    return np.stack([m + s, m - s], axis=1)


def apply_style(a: np.ndarray, b: np.ndarray, p: dict, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """The same style on excerpts ``a`` and ``b`` (one loudness gain for both, measured on the two together)."""
    import pedalboard as pb

    ys = [_eq(x, p, sr) for x in (a, b)]
    if p["compress"]:
        rms_db = 10.0 * math.log10(max(np.mean(np.concatenate(ys) ** 2), 1e-20))
        comp = pb.Compressor(
            threshold_db=rms_db - p["comp_below_rms_db"],
            ratio=p["comp_ratio"],
            attack_ms=p["comp_attack_ms"],
            release_ms=p["comp_release_ms"],
        )
        ys = [comp(np.ascontiguousarray(y.T, dtype=np.float32), sr, reset=True).T.astype(np.float64) for y in ys]
    ys = [_width(y, p["width"]) for y in ys]
    return _deliver(ys[0], ys[1], p, sr)


def _deliver(a: np.ndarray, b: np.ndarray, p: dict, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Loudness and ceiling: one gain for both into pedalboard's limiter, solved so A and B together reach the target.

    pedalboard's ``Limiter`` (JUCE ``dsp::Limiter``) compresses above -10 dBFS (4:1), adds 3.75 dB of make-up,
    limits at ``threshold_db`` and hard-clips at 0 dBFS; at threshold 0 its output peaks at 0 dBFS, scaled
    here to the style's ceiling.  The input gain is found by four secant-free steps (the loudness rises
    monotonically with it).
    """
    import pedalboard as pb

    ceiling = 10.0 ** (p["limiter_db"] / 20.0)

    def run(g: float) -> tuple[np.ndarray, np.ndarray]:
        lim = pb.Limiter(threshold_db=0.0, release_ms=100.0)
        out = []
        for y in (a, b):
            z = lim(np.ascontiguousarray((y * g).T, dtype=np.float32), sr, reset=True).T.astype(np.float64)
            out.append(z * ceiling)
        return out[0], out[1]

    lufs = measure(np.concatenate([a, b]), sr)["integrated_lufs"]
    if not math.isfinite(lufs):
        return run(1.0)
    g = 10.0 ** ((p["target_lufs"] - lufs - 3.75 - p["limiter_db"]) / 20.0)  # the linear-region guess
    for _ in range(4):
        ya, yb = run(g)
        now = measure(np.concatenate([ya, yb]), sr)["integrated_lufs"]
        if abs(now - p["target_lufs"]) < 0.05:
            break
        g *= 10.0 ** ((p["target_lufs"] - now) / 20.0)
    return ya, yb


def apply_fault(x: np.ndarray, p: dict, sr: int) -> np.ndarray:
    """The mix fault: EQ, width, level."""
    return _width(_eq(x, p, sr), p["width"]) * 10.0 ** (p["level_db"] / 20.0)


# ---------------------------------------------------------------------------
# cases on disk


def _cases_dir(corpus_dir: Path, seed: int, split: str = "test") -> Path:
    tag = "" if split == "test" else f"{split}-"  # the test split's folders keep their original names
    return corpus_dir / "match_eval" / f"v{CASES_VERSION}-{tag}seed{seed}"


def _store(path: Path, x: np.ndarray) -> float:
    """Write ``x`` as 24-bit FLAC scaled to peak <= -0.1 dBFS; returns the scale to undo (x = stored * scale)."""
    import soundfile as sf

    peak = float(np.max(np.abs(x))) if x.size else 0.0
    scale = peak / STORE_PEAK if peak > STORE_PEAK else 1.0
    tmp = path.with_name(f".{path.name}.tmp")
    sf.write(str(tmp), (x / scale).astype(np.float32), SAMPLE_RATE, subtype="PCM_24", format="FLAC")
    os.replace(tmp, path)
    return scale


def _read_track(corpus_dir: Path, track: dict) -> np.ndarray:
    import soxr

    from mixpilot.realtime.audio_io import read_audio

    x, sr, _ = read_audio(corpus_dir / track["path"])
    x = x.astype(np.float64)
    if x.shape[1] == 1:
        x = np.repeat(x, 2, axis=1)
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE, quality="VHQ")
    return x


def _pick_excerpts(x: np.ndarray, track_lufs: float, rng: np.random.Generator) -> tuple[int, int] | None:
    n = int(EXCERPT_S * SAMPLE_RATE)
    if x.shape[0] < 2 * n + SAMPLE_RATE:
        return None
    for _ in range(60):
        a, b = sorted(rng.integers(0, x.shape[0] - n, size=2))
        if b - a < n:
            continue
        if rng.uniform() < 0.5:
            a, b = b, a
        ok = all(measure(x[s : s + n], SAMPLE_RATE)["integrated_lufs"] >= track_lufs - ACTIVE_WITHIN_LU for s in (a, b))
        if ok:
            return int(a), int(b)
    return None


def prepare_cases(
    corpus_dir: Path,
    n_cases: int,
    seed: int = 0,
    *,
    split: str = "test",
    log: Callable[[str], None] = lambda s: None,
) -> Path:
    """Make (or reuse) the first ``n_cases`` cases of ``seed``; returns their folder. Resumable.

    ``split``: the corpus split the tracks come from -- ``test`` for the held-out evaluation;
    ``validation`` (folder ``v1-validation-seedS``) for model selection, which must never read the test split.
    """
    from mixpilot.fileio import write_text_atomic
    from mixpilot.training.corpus import load_manifest

    manifest = load_manifest(corpus_dir)
    tracks = sorted(
        (t for t in manifest["tracks"] if t["split"] == split and t["duration_s"] >= MIN_TRACK_S),
        key=lambda t: t["id"],
    )
    if not tracks:
        raise EvalError(f"no {split}-split track of at least 65 s in the corpus manifest")
    order = np.random.default_rng(seed).permutation(len(tracks))
    folder = _cases_dir(corpus_dir, seed, split)
    folder.mkdir(parents=True, exist_ok=True)
    import pedalboard

    t0 = time.monotonic()
    cache: dict[str, tuple[np.ndarray, float]] = {}
    todo = [i for i in range(n_cases) if not (folder / f"case_{i:03d}" / "case.json").is_file()]
    # made track by track (a case's track and audio depend only on its index): each track is decoded once
    todo.sort(key=lambda i: (i % len(tracks), i))
    for done, i in enumerate(todo, 1):
        cdir = folder / f"case_{i:03d}"
        rng = np.random.default_rng([seed, i])
        # a track in the seeded order; skip on to the next when it has no two active excerpts
        for k in range(len(tracks)):
            track = tracks[order[(i + k) % len(tracks)]]
            if track["id"] not in cache:
                cache.clear()  # keep one decoded track in memory
                y = _read_track(corpus_dir, track)
                cache[track["id"]] = (y, measure(y, SAMPLE_RATE)["integrated_lufs"])
            x, track_lufs = cache[track["id"]]
            starts = _pick_excerpts(x, track_lufs, rng)
            if starts is not None:
                break
        else:
            raise EvalError(f"no {split} track has two active 30 s excerpts")
        n = int(EXCERPT_S * SAMPLE_RATE)
        a_raw, b_raw = x[starts[0] : starts[0] + n], x[starts[1] : starts[1] + n]
        style, fault = draw_style(rng), draw_fault(rng)
        truth, reference = apply_style(a_raw, b_raw, style, SAMPLE_RATE)
        inp = apply_fault(a_raw, fault, SAMPLE_RATE)
        cdir.mkdir(exist_ok=True)
        scales = {
            name: _store(cdir / f"{name}.flac", y)
            for name, y in (("input", inp), ("reference", reference), ("truth", truth))
        }
        # descriptors of what was stored (after 24-bit quantisation), so scoring reads them back exactly
        _, ref_q, truth_q, _ = load_case(cdir, meta={"scales": scales})
        meta = {
            "version": CASES_VERSION,
            "index": i,
            "seed": seed,
            "track": track["id"],
            "package": track["package"],
            "licence": track["licence"],
            "a_start_s": starts[0] / SAMPLE_RATE,
            "b_start_s": starts[1] / SAMPLE_RATE,
            "style": style,
            "fault": fault,
            "scales": scales,
            "pedalboard": pedalboard.__version__,
            "truth_descriptors": compute_descriptors(truth_q, SAMPLE_RATE).as_dict(),
            "reference_descriptors": compute_descriptors(ref_q, SAMPLE_RATE).as_dict(),
        }
        write_text_atomic(cdir / "case.json", json.dumps(meta, indent=1))
        log(f"[{done}/{len(todo)}] case {i}: {track['id']} ({time.monotonic() - t0:.0f} s)")
    return folder


def load_case(cdir: Path, meta: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """``(input, reference, truth, meta)`` of a stored case, levels restored (float64 [frames, 2])."""
    import soundfile as sf

    if meta is None:
        meta = json.loads((cdir / "case.json").read_text(encoding="utf-8"))
    out = []
    for name in ("input", "reference", "truth"):
        y, sr = sf.read(str(cdir / f"{name}.flac"), dtype="float64", always_2d=True)
        out.append(y * meta["scales"][name])
    return out[0], out[1], out[2], meta


# ---------------------------------------------------------------------------
# metrics


def _desc(d: dict | Descriptors) -> Descriptors:
    if isinstance(d, Descriptors):
        return d
    from mixpilot.training.profiles import descriptors_from_dict

    return descriptors_from_dict(d)


def score(output: np.ndarray | Descriptors, truth: Descriptors | dict, sample_rate: int = SAMPLE_RATE) -> dict:
    """Metrics of ``output`` (audio or its descriptors) against the truth's descriptors (module docstring)."""
    t = _desc(truth)
    d = output if isinstance(output, Descriptors) else compute_descriptors(np.asarray(output, np.float64), sample_rate)
    floor = np.nanmax(t.mid_db) - BAND_FLOOR_DB
    mid_bands = np.isfinite(t.mid_db) & (t.mid_db >= floor) & np.isfinite(d.mid_db)
    side_bands = np.isfinite(t.side_db) & (t.side_db >= floor) & np.isfinite(d.side_db)

    def rms(a: np.ndarray) -> float | None:
        return float(np.sqrt(np.mean(a * a))) if a.size else None

    def absdiff(a: float, b: float) -> float | None:
        return abs(a - b) if math.isfinite(a) and math.isfinite(b) else None

    return {
        "mid_tonal_db": rms((d.mid_db - t.mid_db)[mid_bands]),
        "side_tonal_db": rms((d.side_db - t.side_db)[side_bands]),
        "width_db": absdiff(d.width_db, t.width_db),
        "loudness_lu": absdiff(d.integrated_lufs, t.integrated_lufs),
        "plr_db": absdiff(d.plr_db, t.plr_db),
        "true_peak_dbtp": d.true_peak_dbtp if math.isfinite(d.true_peak_dbtp) else None,
    }


# ---------------------------------------------------------------------------
# systems


def bypass(inp: np.ndarray, ref: np.ndarray, sample_rate: int) -> np.ndarray:
    """The input as it is (the unprocessed row of the table)."""
    return inp


def _band_curve(gains_db: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """Per-band dB gains -> a smooth per-bin gain (linear in log frequency between band centres, held outside)."""
    ok = np.isfinite(gains_db)
    lf = np.log(np.maximum(freqs_hz, 1.0))
    return np.interp(lf, np.log(BAND_CENTRES_HZ[ok]), gains_db[ok])


def oracle_eq(inp: np.ndarray, truth: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cheating anchor: zero-phase mid and side EQ from the input's to the *truth*'s long-term band levels."""
    di = compute_descriptors(inp, sample_rate)
    dt = compute_descriptors(truth, sample_rate)
    n = inp.shape[0]
    nfft = 1 << int(math.ceil(math.log2(n + sample_rate)))
    f = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
    m = 0.5 * (inp[:, 0] + inp[:, 1])
    s = 0.5 * (inp[:, 0] - inp[:, 1])
    out = []
    for sig, a, b in (
        (m, di.mid_db + di.integrated_lufs, dt.mid_db + dt.integrated_lufs),
        (s, di.side_db + di.integrated_lufs, dt.side_db + dt.integrated_lufs),
    ):
        g = np.clip(b - a, -40.0, 40.0)
        spec = np.fft.rfft(sig, nfft) * 10.0 ** (_band_curve(g, f) / 20.0)
        out.append(np.fft.irfft(spec, nfft)[:n])
    return np.stack([out[0] + out[1], out[0] - out[1]], axis=1)


_MATCHERING_WORKER = r"""
import json, sys
import matchering as mg
mg.log(lambda *a, **k: None)
for line in sys.stdin:
    job = json.loads(line)
    try:
        mg.process(target=job["input"], reference=job["reference"], results=[mg.pcm24(job["output"])])
        print("ok", flush=True)
    except Exception as exc:
        print("error " + " ".join(str(exc).split()), flush=True)
"""


class MatcheringSystem:
    """Matchering 2.0 (``mg.process`` with its default 24-bit result: limiter and normalisation on).

    Runs in a persistent subprocess of ``python`` (a virtual environment with
    ``pip install matchering``: not a dependency of mixpilot); audio passes
    through temporary WAV files.
    """

    def __init__(self, python: str = DEFAULT_MATCHERING_PYTHON) -> None:
        if not os.path.isfile(python):
            raise EvalError(
                f"{python}: no such interpreter; install Matchering into a throwaway venv: "
                f"python3 -m venv /work/venvs/matchering && /work/venvs/matchering/bin/pip install matchering"
            )
        check = subprocess.run([python, "-c", "import matchering"], capture_output=True, text=True)
        if check.returncode != 0:
            raise EvalError(f"{python}: cannot import matchering ({check.stderr.strip().splitlines()[-1:]})")
        self._python = python
        self._tmp = tempfile.TemporaryDirectory(prefix="mixpilot-matchering-")
        self._proc: subprocess.Popen | None = None

    def __call__(self, inp: np.ndarray, ref: np.ndarray, sample_rate: int) -> np.ndarray:
        import soundfile as sf

        if self._proc is None:  # started on first use: cached scores need no Matchering
            self._proc = subprocess.Popen(
                [self._python, "-c", _MATCHERING_WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        d = self._tmp.name
        paths = {k: os.path.join(d, f"{k}.wav") for k in ("input", "reference", "output")}
        sf.write(paths["input"], inp.astype(np.float32), sample_rate, subtype="FLOAT")
        sf.write(paths["reference"], ref.astype(np.float32), sample_rate, subtype="FLOAT")
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(paths) + "\n")
        self._proc.stdin.flush()
        reply = self._proc.stdout.readline().strip()
        if reply != "ok":
            raise EvalError(f"matchering: {reply or 'the worker ended'}")
        y, _ = sf.read(paths["output"], dtype="float64", always_2d=True)
        return y

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(timeout=30)
        self._tmp.cleanup()


# ---------------------------------------------------------------------------
# running and reporting


def evaluate(
    systems: dict[str, System | str],
    cases_dir: Path,
    n_cases: int,
    *,
    rescore: bool = False,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, list[dict]]:
    """Score each system on cases ``0 .. n_cases - 1`` of ``cases_dir``; per-case scores cached in ``scores/``.

    ``systems`` maps a name to a callable ``(input, reference, sample_rate) -> output``, or to one of
    the built-in names ``"reference"`` (content floor: the reference's own descriptors) and
    ``"oracle-eq"`` (needs the truth).
    """
    from mixpilot.fileio import write_text_atomic

    out: dict[str, list[dict]] = {}
    (cases_dir / "scores").mkdir(exist_ok=True)
    for name, system in systems.items():
        path = cases_dir / "scores" / f"{name}.json"
        cached = {}
        if path.is_file() and not rescore:
            cached = {int(k): v for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
        rows: list[dict] = []
        t0 = time.monotonic()
        for i in range(n_cases):
            if i in cached:
                rows.append(cached[i])
                continue
            cdir = cases_dir / f"case_{i:03d}"
            inp, ref, truth, meta = load_case(cdir)
            if system == "reference":
                row = score(_desc(meta["reference_descriptors"]), meta["truth_descriptors"])
            else:
                if system == "oracle-eq":
                    y = oracle_eq(inp, truth, SAMPLE_RATE)
                else:
                    y = np.asarray(system(inp, ref, SAMPLE_RATE), dtype=np.float64)
                if y.ndim != 2 or y.shape[1] != 2 or not np.all(np.isfinite(y)):
                    raise EvalError(f"{name}: case {i}: the output is not finite stereo audio ({y.shape})")
                row = score(y, meta["truth_descriptors"])
            row["case"] = i
            rows.append(row)
            cached[i] = row
            write_text_atomic(path, json.dumps({str(k): v for k, v in sorted(cached.items())}, indent=0))
            log(f"{name}: case {i + 1}/{n_cases} ({time.monotonic() - t0:.0f} s)")
        out[name] = rows
    return out


METRICS = (
    ("mid_tonal_db", "mid tonal dB"),
    ("side_tonal_db", "side tonal dB"),
    ("width_db", "width dB"),
    ("loudness_lu", "loudness LU"),
    ("plr_db", "PLR dB"),
)


def summarise(results: dict[str, list[dict]]) -> dict[str, dict]:
    """Mean and median of every metric per system, true-peak mean/max and the share above -1 dBTP."""
    out = {}
    for name, rows in results.items():
        s: dict = {"cases": len(rows)}
        for key, _ in METRICS:
            v = np.array([r[key] for r in rows if r.get(key) is not None], dtype=np.float64)
            s[key] = {"mean": float(v.mean()) if v.size else None, "median": float(np.median(v)) if v.size else None}
        tp = np.array([r["true_peak_dbtp"] for r in rows if r.get("true_peak_dbtp") is not None])
        s["true_peak_dbtp"] = {
            "mean": float(tp.mean()) if tp.size else None,
            "max": float(tp.max()) if tp.size else None,
            "over_minus1_pct": float(100.0 * np.mean(tp > TP_LIMIT_DBTP + 1e-9)) if tp.size else None,
        }
        out[name] = s
    return out


def format_table(summary: dict[str, dict]) -> str:
    """Markdown table of :func:`summarise` (means; medians in brackets)."""
    head = "| system | " + " | ".join(label for _, label in METRICS) + " | true peak dBTP mean / max | > -1 dBTP |"
    lines = [head, "|" + "---|" * (len(METRICS) + 3)]
    for name, s in summary.items():
        cells = []
        for key, _ in METRICS:
            m = s[key]
            cells.append("-" if m["mean"] is None else f"{m['mean']:.2f} ({m['median']:.2f})")
        tp = s["true_peak_dbtp"]
        tp_cell = "-" if name == "reference" or tp["mean"] is None else f"{tp['mean']:.2f} / {tp['max']:.2f}"
        over = "-" if name == "reference" or tp["over_minus1_pct"] is None else f"{tp['over_minus1_pct']:.0f} %"
        label = "content floor (the reference itself)" if name == "reference" else name
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {tp_cell} | {over} |")
    return "\n".join(lines)


README_BEGIN = "<!-- match-eval:begin (written by python -m mixpilot.training.match_eval --readme) -->"
README_END = "<!-- match-eval:end -->"


def update_readme(path: Path, measured: str) -> None:
    """Replace the text between the match-eval markers of ``path`` (EvalError when they are missing)."""
    from mixpilot.fileio import write_text_atomic

    text = path.read_text(encoding="utf-8")
    if README_BEGIN not in text or README_END not in text:
        raise EvalError(f"{path}: no {README_BEGIN} ... {README_END} markers to write between")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    write_text_atomic(path, f"{head}{README_BEGIN}\n{measured.rstrip()}\n{README_END}{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    from mixpilot.training.corpus import CorpusError, default_dir

    ap = argparse.ArgumentParser(prog="python -m mixpilot.training.match_eval", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=None, help=f"corpus folder (default {default_dir()})")
    ap.add_argument("--cases", type=int, default=100, help="number of cases (default 100; at least 50)")
    ap.add_argument("--seed", type=int, default=0, help="case seed (default 0)")
    ap.add_argument(
        "--split",
        default="test",
        choices=("test", "validation", "train"),
        help="tracks of this corpus split (default test; validation for model selection)",
    )
    ap.add_argument("--systems", default="bypass,reference,oracle-eq,matchering", help="comma-separated systems")
    ap.add_argument("--matchering-python", default=DEFAULT_MATCHERING_PYTHON, help="python of the Matchering venv")
    ap.add_argument(
        "--callable",
        action="append",
        default=[],
        metavar="NAME=MODULE:ATTR",
        help="also score this system: a callable (input, reference, sample_rate) -> output (repeatable)",
    )
    ap.add_argument("--rescore", action="store_true", help="recompute cached scores")
    ap.add_argument("--json", type=Path, default=None, help="write the summary and per-case scores here")
    ap.add_argument("--readme", type=Path, default=None, help="write the table between the match-eval markers")
    args = ap.parse_args(argv)
    corpus = args.corpus or default_dir()

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    known = {"bypass", "reference", "oracle-eq", "matchering", "analytic", "analytic-play", "model", "model-play"}
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    matchering = None
    try:
        bad = [n for n in names if n not in known]
        if bad:
            raise EvalError(f"unknown system(s) {', '.join(bad)}: choose from {', '.join(sorted(known))}")
        if args.cases < 1:
            raise EvalError("--cases must be at least 1")
        folder = prepare_cases(corpus, args.cases, args.seed, split=args.split, log=log)
        systems: dict[str, System | str] = {}
        for n in names:
            if n == "bypass":
                systems[n] = bypass
            elif n == "matchering":
                matchering = MatcheringSystem(args.matchering_python)
                systems[n] = matchering
            elif n in ("analytic", "analytic-play", "model", "model-play"):
                from . import matcher_checks as mc

                systems[n] = {"analytic": mc.analytic, "analytic-play": mc.analytic_play,
                              "model": mc.model_render, "model-play": mc.model_play}[n]  # fmt: skip
            else:
                systems[n] = n
        for spec in args.callable:
            name, _, target = spec.partition("=")
            module, _, attr = target.partition(":")
            if not name or not module or not attr:
                raise EvalError(f"--callable {spec}: expected NAME=MODULE:ATTR")
            try:
                import importlib

                fn = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise EvalError(f"--callable {spec}: {exc}") from None
            if not callable(fn):
                raise EvalError(f"--callable {spec}: {module}.{attr} is not callable")
            systems[name] = fn
            names.append(name)
        results = evaluate(systems, folder, args.cases, rescore=args.rescore, log=log)
    except (EvalError, CorpusError) as exc:
        print(f"match_eval: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    finally:
        if matchering is not None:
            matchering.close()
    summary = summarise(results)
    head = (
        f"{args.cases} cases (seed {args.seed}) from the corpus's {args.split} split; means over the cases, medians "
        f"in brackets; `python -m mixpilot.training.match_eval --cases {args.cases} --seed {args.seed} "
        + ("" if args.split == "test" else f"--split {args.split} ")
        + f"--systems {','.join(names)}`."
    )
    table = format_table(summary)
    print(head)
    print(table)
    if args.readme:
        try:
            update_readme(args.readme, head + "\n\n" + table)
        except EvalError as exc:
            print(f"match_eval: error: {exc}", file=sys.stderr)
            return 1
    if args.json:
        from mixpilot.fileio import write_text_atomic

        write_text_atomic(args.json, json.dumps({"summary": summary, "cases": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
