"""Real music: corrupt real recordings with known faults, render blind with the AI, measure what it undid.

::

    python -m mixpilot.training.evaluate_real [--audio-dir ../shared/audio] [--model default[,cnn,...]]
                                     [--seed 0] [--max-seconds 60] [--json out/real_eval.json]
                                     [--markdown] [--readme training/README.md]

The held-out MAE of :mod:`training.evaluate` scores parameters on synthetic
windows; this scores *sound* on real recordings, end to end through the
renderer a user runs.

Method
------
For every audio file in ``--audio-dir`` (extensions of
:data:`training.data.AUDIO_EXTENSIONS`; read with
:func:`realtime.audio_io.read_audio` — mono stays mono, nothing is
resampled, everything runs at the file's own rate; the first
``--max-seconds`` seconds are used):

1. **Cases.**  The file as it is (``original``: taken as an already good
   recording) and the fault cases of :func:`fault_cases`: a fixed catalogue
   (low shelf +-4 dB, mid bell +2 dB, high shelf +-3 dB, presence bell
   +-3 dB, width 0.6 and 1.5, level -8 dB, and one combination) and
   :data:`N_RANDOM_CASES` random cases drawn by
   :func:`training.data.sample_faults` (2-3 faults each, the kinds
   :data:`RANDOM_KINDS`, the training distribution of their sizes) from
   ``numpy.random.default_rng([seed, crc32(file name)])``: the same seed
   gives the same faults, and adding a file does not change another file's
   faults.  Mono files get no width faults (there is no side signal).
   ``over_comp`` is left out: its undo target is neutral (the chain cannot
   remove compression) and the metrics below are long-term, so it would
   measure nothing the AI is asked to do.
2. **Corrupt** with the training code, :func:`training.data.apply_faults`:
   the fault values mean what they mean in training (``low: +4`` is the
   chain's low shelf at its default 120 Hz set to +4 dB; ``width: 0.6`` is
   the chain's M/S width; ``level`` a plain gain), applied by
   :class:`dsp.chain.MixChain` (stages ``eq`` and ``width``, parameters set,
   ``reset()`` so nothing glides, the chain's ``latency_samples`` removed).
   A mono file is run as identical left/right and the left channel kept
   (exact: the EQ is the same on both channels and there is no side).
3. **Render blind**: :func:`realtime.render.render_array` with the
   estimator, ``loudness_mode="search"`` to ``--target-lufs`` (-14; or
   ``original``: each file's own integrated loudness, so that no loudness is
   pushed into the limiter and the comparison sees the mix, not the
   delivery) at the default -1 dBTP ceiling, ``ai_hop_s`` 0.5 s, ``crossfade_s`` 2 s,
   ``ai_amount`` 1 — what ``mixpilot render --model M`` does.  The AI sees
   the corrupted audio only, never the fault.  The same case is also
   rendered with ``estimator=None`` (``--model none``: the static chain,
   same loudness delivery and limiter) as a **control**, so the AI's own
   contribution is the difference between ``after`` and ``control``.
4. **Measure** each of corrupted (``before``), control and AI render
   (``after``) against the *uncorrupted original*, level-independently:

   * **spectral error** (:func:`spectral_error`): the long-term average
     spectrum — Welch, periodic Hann, 50 % overlap, segments of
     ``2**ceil(log2(fs / 2))`` samples (<= 2 Hz resolution), power averaged
     over the channels, i.e. (L^2 + R^2) / 2 — summed into 1/3-octave bands
     with the IEC 61260-1 base-ten centres ``1000 * 10**(k/10)`` Hz
     (nominal 31.5 Hz .. 16 kHz) and edges ``fm * 10**(+-1/20)``; a band
     is used when its upper edge lies below Nyquist and the original's
     level in it is within :data:`BAND_FLOOR_DB` (60 dB) of its loudest
     band (empty bands of a band-limited recording would measure noise).
     The per-band difference ``d_b = L_test - L_orig`` (dB) is normalised
     to equal total level by subtracting its unweighted mean over the used
     bands; the error is ``rms_b(d_b - mean d)`` (and the largest
     ``|d_b - mean d|``).  A pure gain scores 0; a +G dB shelf scores
     about G / 2 when it covers half the bands.
   * **width error** (:func:`side_mid_db`): the side/mid energy ratio
     ``10 log10(sum S^2 / sum M^2)`` with ``M = (L + R) / 2``,
     ``S = (L - R) / 2`` over the whole file; the error is
     ``|ratio(test) - ratio(orig)|`` in dB.  A width ``w`` moves the ratio
     by ``20 log10 w`` (0.6: -4.4 dB, 1.5: +3.5 dB).  None for mono files.
   * for the ``original`` case, ``after`` is the **tonal change** the AI
     makes to an already good recording; it must be <= :data:`NO_HARM_DB`
     (0.5 dB).

   Everything is measured over the whole excerpt, including the first
   seconds before the AI's first window is full and its first crossfade
   (what a listener hears).

Scoring (:func:`summarise`): a case *improves* a metric when ``after <
before``.  A metric is scored on the cases whose corruption moved it by at
least :data:`MEASURABLE_DB` (0.25 dB) — an EQ fault outside the bands a
recording has (a low shelf on a solo trumpet, a high shelf at the Nyquist of
a 16 kHz file) is not a fault the AI could hear, and a width fault also
moves the spectrum a little where the side signal is strong.  On the other
cases (``original``, ``level``, most width-only cases) the spectral
``after`` must stay <= :data:`NO_HARM_DB` (``harm`` counts those that do
not).  Because the control can itself change the sound (the limiter of the
-14 LUFS delivery on a very dynamic recording), every AI render is also
compared with the control render of the same input (``vs_control_rms_db``,
same bands and normalisation): the AI's own change.

Outputs: a text table on stdout (``--markdown``: the Markdown section
instead), JSON for the lead (``--json``), and with ``--readme`` the
"Real music" section of ``training/README.md`` rewritten between its markers
(appended at the end when the markers are missing; nothing else in the file
is touched).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixpilot.dsp.meter import measure
from mixpilot.dsp.params import AI_PARAM_NAMES

__all__ = [
    "BAND_FLOOR_DB",
    "CATALOGUE",
    "MEASURABLE_DB",
    "NO_HARM_DB",
    "N_RANDOM_CASES",
    "RANDOM_KINDS",
    "FaultCase",
    "SpectralError",
    "band_levels_db",
    "corrupt",
    "evaluate",
    "evaluate_file",
    "fault_cases",
    "find_files",
    "format_markdown",
    "format_text",
    "long_term_spectrum",
    "main",
    "resolve_estimators",
    "side_mid_db",
    "spectral_error",
    "summarise",
    "third_octave_bands",
    "update_readme",
    "width_error_db",
]

BAND_FLOOR_DB = 60.0  # bands more than this below the original's loudest band are not scored
NO_HARM_DB = 0.5  # the must-hold: tonal change of an already good recording
MEASURABLE_DB = 0.25  # a corruption that moved a metric less than this is not scored as a fault of it
N_RANDOM_CASES = 2
RANDOM_KINDS = ("level", "low", "mid", "high", "presence", "width")
README_BEGIN = "<!-- real-music:begin (written by python -m mixpilot.training.evaluate_real --readme) -->"
README_END = "<!-- real-music:end -->"
README_TITLE = "## Real music"

# IEC 61260-1:2014, base-ten system: G = 10^(3/10), exact mid-band frequency
# fm = 1000 * G^(x/3) = 1000 * 10^(x/10) (eq. 2 with b = 3); x = -15 .. 12 is 31.5 Hz .. 16 kHz.
_BAND_INDEX = np.arange(-15, 13)
_NOMINAL_HZ = (
    31.5,
    40,
    50,
    63,
    80,
    100,
    125,
    160,
    200,
    250,
    315,
    400,
    500,
    630,
    800,
    1000,
    1250,
    1600,
    2000,
    2500,
    3150,
    4000,
    5000,
    6300,
    8000,
    10000,
    12500,
    16000,
)


@dataclass(frozen=True)
class FaultCase:
    """One corruption of a file.

    ``faults`` uses the keys and meanings of :mod:`training.data`
    (``{"low": 4.0}``: low shelf +4 dB; ``{"width": 0.6}``; ``{"level": -8.0}``).
    """

    name: str
    faults: dict
    origin: str = "catalogue"  # "original", "catalogue" or "random"

    @property
    def tonal(self) -> bool:
        """Has an EQ fault (the spectral metric is scored)."""
        return any(k in self.faults for k in ("low", "mid", "high", "presence"))

    @property
    def width(self) -> bool:
        """Has a width fault (the width metric is scored)."""
        return "width" in self.faults


#: the fixed cases (besides ``original``); values in the units of :mod:`training.data`
CATALOGUE: tuple[FaultCase, ...] = (
    FaultCase("low+4", {"low": 4.0}),
    FaultCase("low-4", {"low": -4.0}),
    FaultCase("mid+2", {"mid": 2.0}),
    FaultCase("high+3", {"high": 3.0}),
    FaultCase("high-3", {"high": -3.0}),
    FaultCase("presence+3", {"presence": 3.0}),
    FaultCase("presence-3", {"presence": -3.0}),
    FaultCase("width0.6", {"width": 0.6}),
    FaultCase("width1.5", {"width": 1.5}),
    FaultCase("level-8", {"level": -8.0}),
    FaultCase("combined", {"low": 3.0, "high": -3.0, "width": 1.3, "level": -6.0}),
)


# ---------------------------------------------------------------------------
# metrics


def third_octave_bands(sample_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """1/3-octave bands (IEC 61260-1 base ten) whose upper edge lies below Nyquist.

    Returns
    -------
    nominal_hz, centre_hz, lower_hz, upper_hz : np.ndarray [shape=(n_bands,)]
        nominal labels (31.5 .. 16000), exact centres ``1000 * 10**(x/10)``,
        edges ``centre * 10**(-+1/20)``.
    """
    centre = 1000.0 * 10.0 ** (_BAND_INDEX / 10.0)
    lower = centre * 10.0 ** (-1.0 / 20.0)
    upper = centre * 10.0 ** (1.0 / 20.0)
    keep = upper < sample_rate / 2.0
    return np.asarray(_NOMINAL_HZ, dtype=np.float64)[keep], centre[keep], lower[keep], upper[keep]


def _segment_length(sample_rate: float) -> int:
    return 1 << math.ceil(math.log2(sample_rate / 2.0))


def long_term_spectrum(
    x: np.ndarray, sample_rate: float, *, nperseg: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Welch long-term power spectrum, averaged over channels.

    Parameters
    ----------
    x : np.ndarray [shape=(frames,) or (frames, channels)]
    sample_rate : float
        Hz.
    nperseg : int, optional
        segment length (default ``2**ceil(log2(fs / 2))``: <= 2 Hz bins);
        shorter input uses one zero-padded segment.

    Returns
    -------
    freqs_hz : np.ndarray [shape=(nperseg // 2 + 1,)]
    power : np.ndarray [shape=(nperseg // 2 + 1,)]
        mean |X|^2 per bin over segments and channels (periodic Hann, 50 %
        overlap; the scale is arbitrary but the same for every signal of the
        same rate and length, which is all a difference needs).
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    n = _segment_length(sample_rate) if nperseg is None else int(nperseg)
    hop = n // 2
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)  # periodic Hann
    frames = a.shape[0]
    if frames < n:
        a = np.concatenate([a, np.zeros((n - frames, a.shape[1]))])
        frames = n
    starts = np.arange(0, frames - n + 1, hop)
    acc = np.zeros(n // 2 + 1)
    batch = 32
    for c in range(a.shape[1]):
        col = a[:, c]
        for i in range(0, len(starts), batch):
            seg = np.stack([col[s : s + n] for s in starts[i : i + batch]]) * win
            acc += np.sum(np.abs(np.fft.rfft(seg, axis=1)) ** 2, axis=0)
    acc /= len(starts) * a.shape[1]
    return np.fft.rfftfreq(n, 1.0 / sample_rate), acc


def band_levels_db(x: np.ndarray, sample_rate: float) -> np.ndarray:
    """Long-term level per 1/3-octave band (dB, arbitrary reference) [n_bands of :func:`third_octave_bands`]."""
    f, p = long_term_spectrum(x, sample_rate)
    _, _, lo, hi = third_octave_bands(sample_rate)
    out = np.empty(lo.shape[0])
    for b in range(lo.shape[0]):
        sel = (f >= lo[b]) & (f < hi[b])
        out[b] = 10.0 * math.log10(max(float(np.sum(p[sel])), 1e-30))
    return out


@dataclass
class SpectralError:
    """Level-normalised 1/3-octave difference of a test signal to a reference."""

    rms_db: float
    max_db: float
    diff_db: np.ndarray  # per band, mean removed; NaN where the band is not scored
    offset_db: float  # the removed mean (the level difference)

    def as_dict(self) -> dict:
        return {
            "rms_db": round(self.rms_db, 4),
            "max_db": round(self.max_db, 4),
            "offset_db": round(self.offset_db, 3),
            "diff_db": [None if not np.isfinite(v) else round(float(v), 3) for v in self.diff_db],
        }


def _score(ref_db: np.ndarray, test_db: np.ndarray, floor_db: float) -> SpectralError:
    used = ref_db >= ref_db.max() - floor_db
    d = test_db - ref_db
    offset = float(np.mean(d[used]))
    dn = np.where(used, d - offset, np.nan)
    r = dn[used]
    return SpectralError(float(np.sqrt(np.mean(r * r))), float(np.max(np.abs(r))), dn, offset)


def spectral_error(
    reference: np.ndarray, test: np.ndarray, sample_rate: float, *, floor_db: float = BAND_FLOOR_DB
) -> SpectralError:
    """Long-term 1/3-octave spectral error of ``test`` against ``reference`` (module docstring, step 4).

    Both are [frames] or [frames, channels] at ``sample_rate``; lengths may differ.
    """
    return _score(band_levels_db(reference, sample_rate), band_levels_db(test, sample_rate), floor_db)


def side_mid_db(x: np.ndarray) -> float | None:
    """Side/mid energy ratio in dB (``M = (L+R)/2``, ``S = (L-R)/2``); None for mono or silence."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2:
        return None
    em = float(np.sum((0.5 * (a[:, 0] + a[:, 1])) ** 2))
    es = float(np.sum((0.5 * (a[:, 0] - a[:, 1])) ** 2))
    if em <= 1e-20:
        return None
    return 10.0 * math.log10(max(es, em * 1e-12) / em)  # floor at -120 dB: identical channels


def width_error_db(reference: np.ndarray, test: np.ndarray) -> float | None:
    """``|side_mid_db(test) - side_mid_db(reference)|``; None when either is mono."""
    a, b = side_mid_db(reference), side_mid_db(test)
    return None if a is None or b is None else abs(b - a)


def _metrics(
    ref_bands: np.ndarray,
    ref_sm: float | None,
    y: np.ndarray,
    sample_rate: float,
    control: tuple[np.ndarray, float | None] | None = None,
) -> dict:
    bands = band_levels_db(y, sample_rate)
    se = _score(ref_bands, bands, BAND_FLOOR_DB)
    sm = side_mid_db(y)
    out = {
        "spectral_rms_db": round(se.rms_db, 4),
        "spectral_max_db": round(se.max_db, 4),
        "band_diff_db": se.as_dict()["diff_db"],
        "side_mid_db": None if sm is None else round(sm, 3),
        "width_error_db": None if sm is None or ref_sm is None else round(abs(sm - ref_sm), 4),
    }
    if control is not None:
        # the AI's own change: this render against the control render of the same input (same delivery);
        # the bands scored are the original's
        c_bands, c_sm = control
        used = ref_bands >= ref_bands.max() - BAND_FLOOR_DB
        d = bands[used] - c_bands[used]
        d = d - d.mean()
        out["vs_control_rms_db"] = round(float(np.sqrt(np.mean(d * d))), 4)
        out["vs_control_width_db"] = None if sm is None or c_sm is None else round(abs(sm - c_sm), 4)
    out["_bands"] = bands
    return out


# ---------------------------------------------------------------------------
# cases and corruption


def fault_cases(file_name: str, channels: int, seed: int, *, n_random: int = N_RANDOM_CASES) -> list[FaultCase]:
    """The cases for one file: ``original``, the :data:`CATALOGUE`, then ``n_random`` seeded draws.

    Random draws come from :func:`training.data.sample_faults` with
    ``default_rng([seed, crc32(file_name)])``, 2 or 3 faults of
    :data:`RANDOM_KINDS` each.  Mono files (``channels == 1``) lose every
    width fault (a case left with none is dropped).
    """
    from .data import sample_faults

    stereo = channels == 2
    cases = [FaultCase("original", {}, "original")]
    for c in CATALOGUE:
        f = {k: v for k, v in c.faults.items() if stereo or k != "width"}
        if f == c.faults:
            cases.append(c)
        elif f and any(k != "level" for k in f):
            cases.append(FaultCase(c.name + "-nowidth", f, c.origin))
    kinds = tuple(k for k in RANDOM_KINDS if stereo or k != "width")
    rng = np.random.default_rng([int(seed), zlib.crc32(os.path.basename(file_name).encode())])
    for i in range(n_random):
        f = sample_faults(rng, kinds=kinds, n_faults=int(rng.integers(2, 4)))
        f = {k: round(float(v), 3) for k, v in sorted(f.items())}
        cases.append(FaultCase(f"random{i + 1}", f, "random"))
    return cases


def corrupt(x: np.ndarray, sample_rate: int, faults: Mapping[str, float]) -> np.ndarray:
    """``x`` [frames, 1 or 2] with ``faults`` applied by :func:`training.data.apply_faults` (float32, same shape)."""
    from .data import apply_faults

    if not faults:
        return np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[1] == 1:
        if "width" in faults:
            raise ValueError("a width fault needs a stereo signal")
        y = apply_faults(np.repeat(x, 2, axis=1), dict(faults), sample_rate)
        return np.ascontiguousarray(y[:, :1])
    return np.ascontiguousarray(apply_faults(x, dict(faults), sample_rate), dtype=np.float32)


# ---------------------------------------------------------------------------
# estimators


@dataclass
class ResolvedModel:
    label: str  # what was asked for (--model)
    estimator: object
    name: str  # what runs: the card's name, or "heuristic"
    source: str  # path of the .onnx, or "heuristic"
    warnings: list = field(default_factory=list)


def resolve_estimators(specs: Sequence[str], warn: Callable[[str], None] = print) -> list[ResolvedModel]:
    """``--model`` entries -> estimators; ``heuristic`` is the rule-based one.

    A model that cannot load falls back to the heuristic (one warning, as in
    the renderer) and is recorded as such; two entries that resolve to the
    same model (``default`` and the model it points to, or a fallback and
    ``heuristic``) are evaluated once, under the first label.
    """
    from mixpilot.inference.heuristic import HeuristicEstimator
    from mixpilot.inference.worker import load_estimator

    out: list[ResolvedModel] = []
    seen: dict[str, ResolvedModel] = {}
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        if spec.lower() == "none":
            raise ValueError("--model none is the control and is always rendered; name a model or 'heuristic'")
        notes: list[str] = []
        if spec.lower() == "heuristic":
            est = HeuristicEstimator()
            est.name = "heuristic"
        else:
            est = load_estimator(spec, notes.append)
        for n in notes:
            warn(f"--model {spec}: {n}")
        path = getattr(est, "path", None)
        source = str(path) if path is not None else "heuristic"
        if source in seen:
            warn(f"--model {spec} is the same estimator as --model {seen[source].label} ({source}); evaluated once")
            seen[source].warnings.append(f"also requested as {spec}")
            continue
        label = spec
        if ("/" in spec or "\\" in spec or spec.endswith(".onnx")) and Path(spec).stem not in {m.label for m in out}:
            label = Path(spec).stem  # a path: the column is named by the file, the path is in `source`
        r = ResolvedModel(label, est, str(getattr(est, "name", spec)), source, notes)
        seen[source] = r
        out.append(r)
    if not out:
        raise ValueError("no model to evaluate")
    return out


# ---------------------------------------------------------------------------
# evaluation


def _licence(path: Path) -> str | None:
    txt = path.with_suffix(".txt")
    try:
        lines = [ln.strip() for ln in txt.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[0] if lines else None


def _ai_mean(updates: list) -> dict | None:
    if not updates:
        return None
    return {n: round(float(np.mean([u[1][n] for u in updates])), 3) for n in AI_PARAM_NAMES}


def evaluate_file(
    path: str | os.PathLike,
    models: Sequence[ResolvedModel],
    *,
    seed: int = 0,
    max_seconds: float = 60.0,
    target_lufs: float | None = -14.0,
    ai_amount: float = 1.0,
    ai_hop_s: float = 0.5,
    crossfade_s: float = 2.0,
    n_random: int = N_RANDOM_CASES,
    cases: Sequence[FaultCase] | None = None,
    only: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Every case of one file: corrupted, control and AI renders, scored against the original."""
    from mixpilot.realtime.audio_io import read_audio
    from mixpilot.realtime.render import render_array

    path = Path(path)
    x, sr, _ = read_audio(path)
    n = min(x.shape[0], round(max_seconds * sr)) if max_seconds > 0 else x.shape[0]
    x = np.ascontiguousarray(x[:n])
    ref_bands = band_levels_db(x, sr)
    ref_sm = side_mid_db(x)
    original_lufs = measure(x, sr)["integrated_lufs"]
    if target_lufs is None:  # deliver at the original's own loudness: no loudness push, the mix is compared
        target_lufs = round(float(original_lufs), 2)
    nominal, _, _, _ = third_octave_bands(sr)
    used = ref_bands >= ref_bands.max() - BAND_FLOOR_DB
    if cases is None:
        cases = fault_cases(path.name, x.shape[1], seed, n_random=n_random)
    if only:
        cases = [c for c in cases if c.name in only]
    render_kw = {
        "target_lufs": target_lufs,
        "loudness_mode": "search",
        "ai_amount": ai_amount,
        "ai_hop_s": ai_hop_s,
        "crossfade_s": crossfade_s,
    }
    rows = []
    for case in cases:
        t0 = time.perf_counter()
        y = corrupt(x, sr, case.faults)
        lufs_in = measure(y, sr)["integrated_lufs"]
        row: dict = {
            "case": case.name,
            "origin": case.origin,
            "faults": dict(case.faults),
            "tonal_fault": case.tonal,
            "width_fault": case.width and x.shape[1] == 2,
            "before": _metrics(ref_bands, ref_sm, y, sr),
        }
        row["before"].pop("_bands")
        ctl = render_array(y, sr, estimator=None, input_integrated_lufs=lufs_in, **render_kw)
        row["control"] = _metrics(ref_bands, ref_sm, ctl.out, sr)
        row["control"]["output_lufs"] = round(ctl.chosen.integrated_lufs, 2)
        row["control"]["limiter_gr_db"] = round(ctl.chosen.limiter_gr_db, 2)
        ctl_ref = (row["control"].pop("_bands"), side_mid_db(ctl.out))
        row["spectral_scored"] = row["before"]["spectral_rms_db"] >= MEASURABLE_DB
        row["width_scored"] = (
            row["before"]["width_error_db"] is not None and row["before"]["width_error_db"] >= MEASURABLE_DB
        )
        row["after"] = {}
        for m in models:
            r = render_array(y, sr, estimator=m.estimator, input_integrated_lufs=lufs_in, **render_kw)
            met = _metrics(ref_bands, ref_sm, r.out, sr, control=ctl_ref)
            met.pop("_bands")
            met["output_lufs"] = round(r.chosen.integrated_lufs, 2)
            met["limiter_gr_db"] = round(r.chosen.limiter_gr_db, 2)
            met["first_ai_update_s"] = round(r.ai_updates[0][0], 3) if r.ai_updates else None
            met["ai_mean"] = _ai_mean(r.ai_updates)
            met["ai_last"] = {k: round(v, 3) for k, v in r.ai_updates[-1][1].items()} if r.ai_updates else None
            row["after"][m.label] = met
        rows.append(row)
        if progress is not None:
            after = ", ".join(f"{k} {v['spectral_rms_db']:.2f}" for k, v in row["after"].items())
            progress(
                f"{path.name} {case.name}: before {row['before']['spectral_rms_db']:.2f} dB, "
                f"control {row['control']['spectral_rms_db']:.2f}, after {after} "
                f"({time.perf_counter() - t0:.1f} s)"
            )
    return {
        "file": path.name,
        "source": _licence(path),
        "sample_rate": int(sr),
        "channels": int(x.shape[1]),
        "seconds": round(n / sr, 3),
        "original_lufs": round(float(original_lufs), 2),
        "target_lufs": target_lufs,
        "bands_hz": [float(b) for b in nominal],
        "bands_used": int(np.count_nonzero(used)),
        "original_side_mid_db": None if ref_sm is None else round(ref_sm, 3),
        "cases": rows,
    }


def find_files(audio_dir: str | os.PathLike) -> list[Path]:
    """Audio files directly in ``audio_dir`` (by extension), sorted."""
    from .data import AUDIO_EXTENSIONS

    d = Path(audio_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"audio folder {str(d)!r} does not exist")
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def evaluate(
    audio_dir: str | os.PathLike,
    models: Sequence[ResolvedModel],
    *,
    seed: int = 0,
    max_seconds: float = 60.0,
    target_lufs: float | None = -14.0,
    ai_amount: float = 1.0,
    ai_hop_s: float = 0.5,
    crossfade_s: float = 2.0,
    n_random: int = N_RANDOM_CASES,
    only: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    command: str | None = None,
) -> dict:
    """The whole report (JSON-safe dict): settings, per-file results, :func:`summarise`."""
    files = find_files(audio_dir)
    if not files:
        raise FileNotFoundError(f"no audio files (wav, flac, ogg, mp3 ...) in {audio_dir}")
    t0 = time.perf_counter()
    results = [
        evaluate_file(
            p,
            models,
            seed=seed,
            max_seconds=max_seconds,
            target_lufs=target_lufs,
            ai_amount=ai_amount,
            ai_hop_s=ai_hop_s,
            crossfade_s=crossfade_s,
            n_random=n_random,
            only=only,
            progress=progress,
        )
        for p in files
    ]
    report = {
        "command": command,
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "settings": {
            "audio_dir": str(audio_dir),
            "seed": seed,
            "max_seconds": max_seconds,
            "target_lufs": "original" if target_lufs is None else target_lufs,
            "loudness_mode": "search",
            "ai_amount": ai_amount,
            "ai_hop_s": ai_hop_s,
            "crossfade_s": crossfade_s,
            "n_random": n_random,
            "band_floor_db": BAND_FLOOR_DB,
            "no_harm_db": NO_HARM_DB,
            "cases": list(only) if only else "all",
        },
        "models": [
            {"label": m.label, "name": m.name, "source": m.source, "warnings": list(m.warnings)} for m in models
        ],
        "files": results,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    report["summary"] = summarise(report)
    return report


def summarise(report: dict) -> dict:
    """Per model: how many scored cases improved, harm counts, the original's tonal change."""
    out = {}
    for m in report["models"]:
        label = m["label"]
        s = {
            "spectral_cases": 0,
            "spectral_improved": 0,
            "spectral_better_than_control": 0,
            "width_cases": 0,
            "width_improved": 0,
            "no_fault_cases": 0,
            "harm": 0,
            "original_tonal_change_db": {},
            "original_ai_vs_control_db": {},
            "original_control_change_db": {},
            "original_width_change_db": {},
            "mean_spectral_before_db": None,
            "mean_spectral_after_db": None,
            "mean_spectral_control_db": None,
            "mean_width_before_db": None,
            "mean_width_after_db": None,
        }
        sb, sa, sc, wb, wa = [], [], [], [], []
        for f in report["files"]:
            for row in f["cases"]:
                a = row["after"][label]
                if row["case"] == "original":
                    s["original_tonal_change_db"][f["file"]] = a["spectral_rms_db"]
                    s["original_ai_vs_control_db"][f["file"]] = a["vs_control_rms_db"]
                    s["original_control_change_db"][f["file"]] = row["control"]["spectral_rms_db"]
                    s["original_width_change_db"][f["file"]] = a["width_error_db"]
                if row["spectral_scored"]:
                    s["spectral_cases"] += 1
                    s["spectral_improved"] += a["spectral_rms_db"] < row["before"]["spectral_rms_db"]
                    s["spectral_better_than_control"] += a["spectral_rms_db"] < row["control"]["spectral_rms_db"]
                    sb.append(row["before"]["spectral_rms_db"])
                    sa.append(a["spectral_rms_db"])
                    sc.append(row["control"]["spectral_rms_db"])
                else:
                    s["no_fault_cases"] += 1
                    s["harm"] += a["spectral_rms_db"] > NO_HARM_DB
                if row["width_scored"]:
                    s["width_cases"] += 1
                    s["width_improved"] += a["width_error_db"] < row["before"]["width_error_db"]
                    wb.append(row["before"]["width_error_db"])
                    wa.append(a["width_error_db"])
        for key, v in (
            ("mean_spectral_before_db", sb),
            ("mean_spectral_after_db", sa),
            ("mean_spectral_control_db", sc),
            ("mean_width_before_db", wb),
            ("mean_width_after_db", wa),
        ):
            s[key] = round(float(np.mean(v)), 3) if v else None
        tc = list(s["original_tonal_change_db"].values())
        s["original_max_tonal_change_db"] = max(tc) if tc else None
        s["no_harm_ok"] = bool(tc) and max(tc) <= NO_HARM_DB
        vc = list(s["original_ai_vs_control_db"].values())
        s["original_max_ai_vs_control_db"] = max(vc) if vc else None
        s["spectral_most_improved"] = s["spectral_improved"] * 2 > s["spectral_cases"]
        s["width_most_improved"] = s["width_improved"] * 2 > s["width_cases"]
        out[label] = s
    return out


# ---------------------------------------------------------------------------
# output


def _f(v, nd=2) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def _fault_text(faults: dict) -> str:
    if not faults:
        return "none"
    parts = []
    for k, v in faults.items():
        parts.append(f"{k} {v:g}" if k == "width" else f"{k} {v:+g} dB")
    return ", ".join(parts)


def _labels(report: dict) -> list[str]:
    return [m["label"] for m in report["models"]]


def format_text(report: dict) -> str:
    """A plain table per file (stdout)."""
    labels = _labels(report)
    lines = []
    for f in report["files"]:
        lines.append(
            f"{f['file']}  ({f['sample_rate']} Hz, {'stereo' if f['channels'] == 2 else 'mono'}, "
            f"{f['seconds']:g} s, {f['bands_used']} bands)"
        )
        head = f"  {'case':<16}{'spec before':>12}{'control':>9}" + "".join(f"{lb[:10]:>11}" for lb in labels)
        head += f"{'wid before':>12}{'control':>9}" + "".join(f"{lb[:10]:>11}" for lb in labels)
        lines.append(head)
        for row in f["cases"]:
            s = f"  {row['case']:<16}{_f(row['before']['spectral_rms_db']):>12}"
            s += f"{_f(row['control']['spectral_rms_db']):>9}"
            s += "".join(f"{_f(row['after'][lb]['spectral_rms_db']):>11}" for lb in labels)
            s += f"{_f(row['before']['width_error_db']):>12}{_f(row['control']['width_error_db']):>9}"
            s += "".join(f"{_f(row['after'][lb]['width_error_db']):>11}" for lb in labels)
            lines.append(s)
        lines.append("")
    for lb, s in report["summary"].items():
        lines.append(
            f"{lb}: spectral improved {s['spectral_improved']}/{s['spectral_cases']} "
            f"(mean {_f(s['mean_spectral_before_db'])} -> {_f(s['mean_spectral_after_db'])} dB, "
            f"control {_f(s['mean_spectral_control_db'])}), width improved "
            f"{s['width_improved']}/{s['width_cases']} (mean {_f(s['mean_width_before_db'])} -> "
            f"{_f(s['mean_width_after_db'])} dB), harm on cases without a tonal fault {s['harm']}/"
            f"{s['no_fault_cases']}, original tonal change max {_f(s['original_max_tonal_change_db'])} dB "
            f"({'ok' if s['no_harm_ok'] else 'FAILS'} <= {NO_HARM_DB} dB; the AI's own part, vs "
            f"control, max {_f(s['original_max_ai_vs_control_db'])} dB)"
        )
    return "\n".join(lines)


def _target_text(t) -> str:
    return "each file's own loudness" if t == "original" else f"{t:g} LUFS"


def format_markdown(report: dict) -> str:
    """The measured part of the README's "Real music" section (between the markers)."""
    labels = _labels(report)
    st = report["settings"]
    out = []
    out.append(
        f"Measured {report.get('measured', '?')}, seed {st['seed']}, first {st['max_seconds']:g} s of each "
        f"file, target {_target_text(st['target_lufs'])}, AI hop {st['ai_hop_s']:g} s, crossfade "
        f"{st['crossfade_s']:g} s, ai_amount {st['ai_amount']:g} ({report['seconds']:.0f} s wall):"
    )
    out.append("")
    out.append("```sh")
    out.append(report.get("command") or "python -m mixpilot.training.evaluate_real")
    out.append("```")
    out.append("")
    for m in report["models"]:
        extra = "" if m["label"] == m["name"] else f" (runs `{m['name']}`)"
        warn = f" — {'; '.join(m['warnings'])}" if m["warnings"] else ""
        out.append(f"- `--model {m['label']}`{extra}: {m['source']}{warn}")
    out.append("")
    out.append(
        "| model | spectral error improved | mean before → after (control) dB | width error improved "
        "| mean before → after dB | original: tonal change max dB | original: AI vs control max dB "
        "| harm on cases without a tonal fault |"
    )
    out.append("|---|---|---|---|---|---|---|---|")
    for lb, s in report["summary"].items():
        out.append(
            f"| `{lb}` | {s['spectral_improved']}/{s['spectral_cases']} | "
            f"{_f(s['mean_spectral_before_db'])} → {_f(s['mean_spectral_after_db'])} "
            f"({_f(s['mean_spectral_control_db'])}) | {s['width_improved']}/{s['width_cases']} | "
            f"{_f(s['mean_width_before_db'])} → {_f(s['mean_width_after_db'])} | "
            f"{_f(s['original_max_tonal_change_db'])} ({'≤' if s['no_harm_ok'] else '>'} {NO_HARM_DB:g}) | "
            f"{_f(s['original_max_ai_vs_control_db'])} | {s['harm']}/{s['no_fault_cases']} |"
        )
    out.append("")
    out.append(
        "Per file and case: 1/3-octave spectral error (RMS over bands, dB, level-normalised) and width "
        "error (|Δ side/mid| dB) to the uncorrupted original; *before* = the corrupted input, "
        "*control* = `--model none` render, then the AI render per model. A metric counts as a fault "
        f"(scored for improvement) where *before* ≥ {MEASURABLE_DB:g} dB; the `original` row's AI "
        "columns are the tonal change to a good recording."
    )
    out.append("")
    head = "| file | case | faults | spectral before | control | " + " | ".join(labels)
    head += " | width before | control | " + " | ".join(labels) + " |"
    out.append(head)
    out.append("|" + "---|" * (5 + len(labels) + 2 + len(labels)))
    for f in report["files"]:
        short = f["file"].rsplit(".", 1)[0][:24]
        for row in f["cases"]:
            cells = [
                short,
                row["case"],
                _fault_text(row["faults"]),
                _f(row["before"]["spectral_rms_db"]),
                _f(row["control"]["spectral_rms_db"]),
            ]
            cells += [_f(row["after"][lb]["spectral_rms_db"]) for lb in labels]
            cells += [_f(row["before"]["width_error_db"]), _f(row["control"]["width_error_db"])]
            cells += [_f(row["after"][lb]["width_error_db"]) for lb in labels]
            out.append("| " + " | ".join(cells) + " |")
    out.append("")
    notes = _notes(report)
    if notes:
        out.append("Notes (from the numbers above):")
        out.append("")
        out.extend(f"- {n}" for n in notes)
        out.append("")
    srcs = [f"`{f['file']}`: {f['source']}" for f in report["files"] if f.get("source")]
    if srcs:
        out.append("Recordings (licences in `../shared/audio/*.txt`): " + "; ".join(srcs) + ".")
    return "\n".join(out)


def _notes(report: dict) -> list[str]:
    """Facts a reader needs to read the table right: delivery side effects, files the AI barely covers."""
    notes = []
    xf = report["settings"]["crossfade_s"]
    for f in report["files"]:
        orig = next((r for r in f["cases"] if r["case"] == "original"), None)
        if orig is None:
            continue
        c = orig["control"]
        if c["spectral_rms_db"] >= MEASURABLE_DB:
            gr = c.get("limiter_gr_db")
            notes.append(
                f"`{f['file']}`: the {_target_text(report['settings']['target_lufs'])} delivery alone "
                f"(control, no AI) changes the tone of the "
                f"original by {c['spectral_rms_db']:.2f} dB"
                + (f" (limiter up to {gr:.1f} dB gain reduction)" if gr is not None else "")
                + "; the `AI vs control` column separates the AI's own part."
            )
        firsts = [a.get("first_ai_update_s") for a in orig["after"].values() if a.get("first_ai_update_s") is not None]
        if firsts and min(firsts) + xf > 0.5 * f["seconds"]:
            notes.append(
                f"`{f['file']}` is {f['seconds']:g} s long: the AI's first update comes at "
                f"{min(firsts):g} s (a full analysis window) and glides over {xf:g} s, so it acts on "
                f"less than half of the file and its rows stay close to the control."
            )
    return notes


_SECTION_INTRO = """\
{title}

`python -m mixpilot.training.evaluate_real` (method in its module docstring) takes the recordings in
`../shared/audio`, corrupts each with known, seeded faults made by the training code
(`training.data.apply_faults`: the chain's low shelf, mid bell, high shelf, presence bell, M/S
width and level; a fixed catalogue plus random draws from the training distribution), renders the
corrupted file blind with the AI (`realtime.render.render_array`, loudness search to -14 LUFS or,
with `--target-lufs original`, to each file's own loudness so that no loudness push colours it), and
compares the result with the uncorrupted original: long-term 1/3-octave spectrum (IEC 61260 bands
31.5 Hz–16 kHz below Nyquist, level-normalised by the mean band difference, RMS over bands) and the
side/mid energy ratio. The same case rendered with `--model none` is the control. The `original`
row is the already-good recording: its *after* is the tonal change the AI makes to a good mix
(must be ≤ 0.5 dB).
"""


def update_readme(path: str | os.PathLike, measured: str) -> None:
    """Write ``measured`` between the Real-music markers of ``path`` (append the section if absent)."""
    p = Path(path)
    text = p.read_text(encoding="utf-8") if p.exists() else ""
    block = f"{README_BEGIN}\n{measured.rstrip()}\n{README_END}"
    if README_BEGIN in text and README_END in text:
        head, rest = text.split(README_BEGIN, 1)
        _, tail = rest.split(README_END, 1)
        new = head + block + tail
    else:
        new = text.rstrip("\n") + "\n\n" + _SECTION_INTRO.format(title=README_TITLE) + "\n" + block + "\n"
    from mixpilot.fileio import write_text_atomic

    write_text_atomic(p, new)


def _target_lufs(text: str) -> float | None:
    if text.strip().lower() == "original":
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LUFS (e.g. -14) or 'original', got {text!r}") from None
    if not math.isfinite(v) or not -70.0 <= v <= 0.0:
        raise argparse.ArgumentTypeError(f"target loudness must be between -70 and 0 LUFS, got {text}")
    return v


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m mixpilot.training.evaluate_real",
        description="Corrupt real recordings with known faults, render blind with the AI, "
        "report the 1/3-octave spectral and width error to the original.",
    )
    ap.add_argument("--audio-dir", default="../shared/audio", help="folder of recordings (default ../shared/audio)")
    ap.add_argument(
        "--model",
        default="default",
        help="comma-separated models: NAME (models_onnx/), PATH.onnx, or 'heuristic' (default: default)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the random fault cases (default 0)")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="seconds of each file used (default 60)")
    ap.add_argument(
        "--random-cases",
        type=int,
        default=N_RANDOM_CASES,
        help=f"random fault cases per file (default {N_RANDOM_CASES})",
    )
    ap.add_argument(
        "--cases",
        default=None,
        help="comma-separated case names to run (default all: original, the catalogue, random1..N)",
    )
    ap.add_argument(
        "--target-lufs",
        type=_target_lufs,
        default=-14.0,
        help="loudness every render delivers: LUFS, or 'original' for each file's own integrated "
        "loudness (no loudness push, so the limiter does not colour the comparison; default -14)",
    )
    ap.add_argument("--ai-amount", type=float, default=1.0)
    ap.add_argument("--ai-hop-s", type=float, default=0.5)
    ap.add_argument("--crossfade-s", type=float, default=2.0)
    ap.add_argument("--json", default=None, help="write the full report here")
    ap.add_argument("--markdown", action="store_true", help="print the Markdown section instead of the text table")
    ap.add_argument("--readme", default=None, help="rewrite the 'Real music' section of this README")
    ap.add_argument(
        "--from-json",
        default=None,
        metavar="PATH",
        help="render nothing: print / write the README section from a report saved with --json",
    )
    ap.add_argument("--quiet", action="store_true", help="no per-case progress on stderr")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = "python -m mixpilot.training.evaluate_real " + " ".join(shlex.quote(a) for a in argv_list)

    def warn(msg: str) -> None:
        print(f"warning: {msg}", file=sys.stderr)

    if args.from_json:
        report = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        report["summary"] = summarise(report)
        md = format_markdown(report)
        if args.readme:
            update_readme(args.readme, md)
        print(md if args.markdown else format_text(report))
        return 0
    try:
        models = resolve_estimators(args.model.split(","), warn)
        report = evaluate(
            args.audio_dir,
            models,
            seed=args.seed,
            max_seconds=args.max_seconds,
            target_lufs=args.target_lufs,
            ai_amount=args.ai_amount,
            ai_hop_s=args.ai_hop_s,
            crossfade_s=args.crossfade_s,
            n_random=args.random_cases,
            command=command.strip(),
            only=[c.strip() for c in args.cases.split(",") if c.strip()] if args.cases else None,
            progress=None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True)),
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        p = Path(args.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        from mixpilot.fileio import write_text_atomic

        write_text_atomic(p, json.dumps(report, indent=1) + "\n")
    md = format_markdown(report)
    if args.readme:
        update_readme(args.readme, md)
    print(md if args.markdown else format_text(report))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
