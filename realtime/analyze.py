"""``mixpilot analyze FILE``: loudness, true peak, LRA, spectral balance and the AI's suggestions over time.

- Loudness: BS.1770-4 / EBU R 128 integrated, maximum momentary and short-term,
  loudness range, true peak (4x), sample peak (:func:`dsp.meter.measure`),
  and the crest factor (peak to RMS, dB).
- Spectral balance: the long-term average spectrum (Welch, Hann, 8192-point
  segments, mono sum) in octave bands 31.5 Hz .. 16 kHz below Nyquist, in dB
  relative to the mean over the bands, plus the side/mid energy ratio
  (stereo width; ``-inf`` for mono).
- Against a target (``--reference FILE|DIR ...`` or ``--target NAME|PATH``):
  ``"target"`` holds :func:`realtime.target_report.target_comparison` -- per
  1/3-octave band the mid and side deviation from the profile with its
  tolerance, their RMS, and the loudness, PLR, LRA and width differences.
- AI suggestions: the same worker the engine runs (:class:`inference.worker.InferenceWorker`),
  on the same windows a render would use (every ``hop_s`` seconds of the
  file), unblended (``ai_amount`` 1, from neutral).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np

from mixpilot.dsp.descriptors import BAND_NOMINAL_HZ, compute_descriptors
from mixpilot.dsp.errors import ModelError
from mixpilot.dsp.meter import measure
from mixpilot.dsp.params import AI_PARAM_NAMES

from .audio_io import read_audio
from .engine import AnalysisRing
from .measures import short_term_series
from .parameter_state import ParameterState

if TYPE_CHECKING:
    from mixpilot.inference.profile import Profile

__all__ = ["analyze_array", "analyze_file", "check_plot_path", "OCTAVE_BANDS_HZ", "format_report"]

OCTAVE_BANDS_HZ = (31.5, 63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)


def _spectrum(x: np.ndarray, sr: int) -> dict[str, float]:
    mono = x.mean(axis=1).astype(np.float64)
    nfft = 8192
    if mono.size < nfft:
        mono = np.pad(mono, (0, nfft - mono.size))
    hop = nfft // 2
    w = np.hanning(nfft)
    acc = np.zeros(nfft // 2 + 1)
    count = 0
    for s in range(0, mono.size - nfft + 1, hop):
        spec = np.fft.rfft(mono[s : s + nfft] * w)
        acc += spec.real**2 + spec.imag**2
        count += 1
    psd = acc / max(count, 1)
    f = np.fft.rfftfreq(nfft, 1.0 / sr)
    out = {}
    for fc in OCTAVE_BANDS_HZ:
        lo, hi = fc / math.sqrt(2.0), fc * math.sqrt(2.0)
        if hi > sr / 2:
            break
        sel = (f >= lo) & (f < hi)
        p = psd[sel].sum()
        out[f"{fc:g}"] = 10.0 * math.log10(p) if p > 0 else -math.inf
    finite = [v for v in out.values() if math.isfinite(v)]
    ref = float(np.mean(finite)) if finite else 0.0
    return {k: round(v - ref, 2) if math.isfinite(v) else v for k, v in out.items()}


def check_plot_path(path: str, input_path: str, references: Iterable[str] = ()) -> None:
    """Checks for ``analyze --plot PNG`` before the analysis runs (one-line errors); inputs are never written."""
    import os

    from mixpilot.dsp.errors import MixpilotError, OutputError, UsageError

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        from .compare import PLOT_INSTALL_HINT

        raise MixpilotError(f"--plot needs charts: {PLOT_INSTALL_HINT}") from None
    if not path.lower().endswith(".png"):
        raise UsageError(f"--plot {path}: give a .png file name")
    p = os.path.abspath(path)
    if os.path.exists(input_path) and os.path.realpath(p) == os.path.realpath(input_path):
        raise UsageError(f"--plot {path}: is the input file")
    for ref in references or ():
        if os.path.realpath(p) == os.path.realpath(ref):
            raise UsageError(f"--plot {path}: is a reference file")
    if os.path.isdir(p):
        raise UsageError(f"--plot {path}: is a folder")
    if not os.path.isdir(os.path.dirname(p)):
        raise OutputError(f"--plot {path}: folder {os.path.dirname(p)} does not exist")


def analyze_file(
    path: str,
    *,
    model: str | None = "default",
    hop_s: float = 1.5,
    warn: Callable[[str], None] | None = None,
    profile: Profile | None = None,
    target_kind: str = "target",
) -> dict:
    """Everything ``mixpilot analyze`` prints, as a dict (JSON-ready apart from +-inf).

    ``warn(text)`` gets a model that cannot be used; by default it goes into ``notes``.
    ``profile`` (an :class:`inference.profile.Profile`) adds ``"target"``, the
    comparison with it; ``target_kind`` says what it came from (``reference`` or ``target``).
    """
    x, sr, info = read_audio(path)
    return analyze_array(
        x, sr, notes=info.notes, model=model, hop_s=hop_s, warn=warn, name=path, profile=profile,
        target_kind=target_kind,
    )  # fmt: skip


def analyze_array(
    x: np.ndarray,
    sr: int,
    *,
    notes: list[str] | None = None,
    model: str | None = "default",
    hop_s: float = 1.5,
    warn: Callable[[str], None] | None = None,
    name: str | None = None,
    profile: Profile | None = None,
    target_kind: str = "target",
) -> dict:
    """:func:`analyze_file` of a [frames, 1|2] float32 buffer (``name`` goes into ``"file"``)."""
    from mixpilot.inference.worker import InferenceWorker, load_estimator

    path = name
    m = measure(x, sr)
    desc = compute_descriptors(x, sr)
    mid_db = desc.mid_db  # 1/3-octave mid levels re loudness (what profiles hold)
    finite = mid_db[np.isfinite(mid_db)]
    ref = float(finite.mean()) if finite.size else 0.0
    third = [round(float(v - ref), 2) if math.isfinite(v) else None for v in mid_db]
    st_t, st = short_term_series(x, sr, 0.5)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    peak = float(np.max(np.abs(x)))
    crest = 20.0 * math.log10(peak / rms) if rms > 0 and peak > 0 else None
    width = None
    if x.shape[1] == 2:
        mid = 0.5 * (x[:, 0] + x[:, 1])
        side = 0.5 * (x[:, 0] - x[:, 1])
        em, es = float(np.sum(mid.astype(np.float64) ** 2)), float(np.sum(side.astype(np.float64) ** 2))
        width = 10.0 * math.log10(es / em) if es > 0 and em > 0 else -math.inf
    report = {
        "file": path,
        "sample_rate": sr,
        "channels": int(x.shape[1]),
        "duration_s": round(x.shape[0] / sr, 3),
        "notes": list(notes or []),
        "loudness": {k: (round(v, 2) if isinstance(v, float) and math.isfinite(v) else v) for k, v in m.items()},
        "crest_factor_db": round(crest, 2) if crest is not None else None,
        "side_mid_db": round(width, 2) if width is not None and math.isfinite(width) else width,
        "spectrum_octaves_db": _spectrum(x, sr),
        "spectrum_third_octave_db": {"bands_hz": list(BAND_NOMINAL_HZ), "level_db": third},
        "short_term": {"t_s": [round(t, 3) for t in st_t], "lufs": [None if v is None else round(v, 2) for v in st]},
        "model": "none",
        "suggestions": [],
    }
    if profile is not None:
        from .target_report import target_comparison

        report["target"] = target_comparison(desc, profile, kind=target_kind, channels=int(x.shape[1]))
    say = warn if warn is not None else report["notes"].append
    if profile is not None:  # the AI a render with this target runs (realtime.api.estimator_for)
        from types import SimpleNamespace

        from .api import estimator_for

        est = estimator_for(SimpleNamespace(model=model, profile=profile), say)  # type: ignore[arg-type]
    else:
        est = load_estimator(model, say)
    if est is None:
        return report
    report["model"] = getattr(est, "name", "model")
    from mixpilot.inference.features import FEATURE_CONFIG, input_window_frames

    if x.shape[0] < input_window_frames(sr):
        # loudness and spectrum above are of what exists; the AI looks at whole windows only
        report["notes"].append(
            f"the AI needs {FEATURE_CONFIG.window_s:g} s of audio and the file has {x.shape[0] / sr:.2f} s: "
            f"no AI suggestions"
        )
        return report
    ring = AnalysisRing(x.shape[0] + 1, x.shape[1])
    ring.write(np.ascontiguousarray(x, dtype=np.float32))
    worker = InferenceWorker(est, ring, sr, lambda v, g, e: None, hop_s=hop_s)
    state = ParameterState()  # the AI's suggestions as the chain would take them (static defaults, amount 1)
    hop = worker.hop_frames
    # the windows the engine's worker would compute: every hop from the first whole window
    ends = list(range(worker.first_end, x.shape[0] + 1, hop)) or [x.shape[0]]
    failed: list[float] = []
    reason = ""
    for end in ends:
        try:
            values = state.ai_targets(worker.compute(end))
        except (ModelError, ValueError) as exc:  # e.g. samples of 1e30: their power overflows the features
            failed.append(end / sr)
            reason = reason or " ".join(str(exc).split())
            continue
        report["suggestions"].append({"t": round(end / sr, 3), **{k: round(v, 3) for k, v in values.items()}})
    if failed:
        peak_db = 20.0 * math.log10(peak) if math.isfinite(peak) and peak > 0 else math.inf
        report["notes"].append(
            f"the AI could not read {len(failed)} of {len(ends)} windows (first at {failed[0]:.1f} s: {reason}); "
            f"no suggestions there"
            + (f" (the file peaks at {peak_db:+.0f} dBFS: out-of-range samples?)" if peak_db > 60 else "")
        )
    return report


def format_report(rep: dict) -> str:
    lo = rep["loudness"]

    def f(v, unit):
        return f"{v:.1f} {unit}" if isinstance(v, (int, float)) and math.isfinite(v) else f"-inf {unit}"

    lines = [
        f"{rep['file']}: {rep['sample_rate']} Hz, {rep['channels']} ch, {rep['duration_s']:.1f} s",
        f"  integrated {f(lo['integrated_lufs'], 'LUFS')}, max momentary {f(lo['max_momentary_lufs'], 'LUFS')}, "
        f"max short-term {f(lo['max_short_term_lufs'], 'LUFS')}, LRA {f(lo['loudness_range_lu'], 'LU')}",
        f"  true peak {f(lo['true_peak_dbtp'], 'dBTP')}, sample peak {f(lo['sample_peak_dbfs'], 'dBFS')}, "
        f"crest factor {f(rep['crest_factor_db'] if rep['crest_factor_db'] is not None else -math.inf, 'dB')}"
        + (f", side/mid {f(rep['side_mid_db'], 'dB')}" if rep["side_mid_db"] is not None else ", mono"),
        "  spectral balance (octave bands, dB re mean): "
        + "  ".join(f"{k} Hz {v:+.1f}" for k, v in rep["spectrum_octaves_db"].items()),
    ]
    if rep.get("target"):
        from .target_report import format_comparison

        lines += format_comparison(rep["target"], "the file")
    lines += [f"  note: {n}" for n in rep["notes"]]
    if rep["suggestions"]:
        short = {
            "input_gain_db": "in dB",
            "comp_ratio": "ratio",
            "low_gain_db": "low",
            "mid_gain_db": "mid",
            "high_gain_db": "high",
            "presence_gain_db": "pres",
            "reverb_send": "rev",
            "delay_send": "dly",
            "stereo_width": "width",
            "output_gain_db": "out dB",
            "width_low": "w low",
            "width_high": "w high",
        }
        short.update(
            {n: "t" + n[5:-5] for n in AI_PARAM_NAMES if n.startswith("tone_")}  # tone_1khz_db: t1k
        )
        lines.append(f"  AI suggestions ({rep['model']}), every window of 3 s:")
        lines.append("    " + f"{'t s':>6s} " + " ".join(f"{short.get(n, n)[:6]:>6s}" for n in AI_PARAM_NAMES))
        for s in rep["suggestions"]:
            lines.append("    " + f"{s['t']:6.1f} " + " ".join(f"{s[n]:6.2f}" for n in AI_PARAM_NAMES))
    return "\n".join(lines)
