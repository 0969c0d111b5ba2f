"""``mixpilot compare``: the same song through several systems, level-matched, measured and drawn.

A **system** is a label and the render settings it stands for
(:class:`System`): ``original`` (the excerpt untouched; always one of them)
and one per ``--model`` (``none`` = static parameters, ``matcher`` = the
analytic matcher aiming at the default profile, ``heuristic``, a
shipped ONNX model, ``default``, or a path to an ``.onnx``).  Every system is
rendered like ``mixpilot render`` renders (:func:`realtime.render.render_array`,
the loudness search to ``--target-lufs`` under the ``--ceiling-dbtp``
limiter), in worker processes, ``--jobs`` at a time (2 by default: this
machine's cores), with one progress bar over the whole comparison.

What lands in ``--out`` (all of it at once: it is built in a hidden folder
beside ``--out`` and moved into place only when complete, so an error or
Ctrl-C leaves nothing half-written):

- ``<system>.flac``: what the system delivers (24-bit);
- ``<system>.matched.flac``: the same mix at the **common loudness** -- every
  copy at one integrated loudness (BS.1770-4), the level chosen as the lowest
  at which no copy's true peak passes the ceiling (the quietest system's
  loudness, lowered further if a copy would have to peak above the ceiling).
  A plain gain, no limiting: listening compares the mix, not the level;
- ``compare.json`` (:data:`SCHEMA_PATH` is its JSON Schema): per system the
  delivered loudness, true peak, LRA, PLR, width, its long-term 1/3-octave
  spectrum and tonal distance (per band and RMS) to the tonal reference,
  short-term loudness over time, a waveform envelope, the AI's parameter
  trajectories and mean settings, render passes and time.  Every number is
  the same when the command is run again, except the ``timing`` block
  (wall-clock seconds);
- charts (:mod:`realtime.plots`, drawn from ``compare.json`` alone, so
  ``mixpilot compare --replot DIR`` redraws them without rendering);
- ``index.html``: one page that works offline from the folder -- players
  for each system and its matched copy, the charts, the table, the command.

The tonal distance is measured against the shipped **default profile**
(:class:`inference.profile.Profile`, what mixpilot aims at when no reference
and no target is given): per 1/3-octave band, the mid signal's long-term level
re its integrated loudness (:func:`dsp.descriptors.compute_descriptors`, the
descriptors profiles are made of) minus the profile's, its RMS, and the RMS of
what lies outside the profile's tolerance.

**References and targets as systems**: each ``--reference FILE|DIR`` (a
folder stands for its combined profile) and each ``--target NAME|PATH`` is a
system of its own, rendered by the AI that ``mixpilot render --reference``
/ ``--target`` runs (:func:`realtime.api.estimator_for`: the default target-conditioned
model on the analytic matcher's dynamics) aiming at that profile, at the comparison's common delivery
(``--target-lufs``, ``--ceiling-dbtp``).  Its tonal distance is measured to
its own target (``tonal_target`` in its entry, with the original excerpt's
distance to the same target for comparison); every other system's to the
default profile.

``--blind`` names every audio file by a shuffled letter (``A.flac``,
``A.matched.flac``, ...) and uses the letters everywhere in the folder;
``blind_key.json`` says which letter is which system.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import html
import json
import math
import multiprocessing as mp
import os
import queue
import re
import secrets
import shlex
import shutil
import string
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
from numpy.typing import ArrayLike

from mixpilot.dsp.errors import MixpilotError, OutputError, UsageError

if TYPE_CHECKING:
    from mixpilot.inference.profile import Profile
    from mixpilot.inference.worker import Estimator

    from .audio_io import AudioInfo

__all__ = [
    "CHARTS",
    "SCHEMA_ID",
    "SCHEMA_PATH",
    "CompareError",
    "CompareUsageError",
    "System",
    "add_parser",
    "default_models",
    "known_models",
    "matched_level",
    "replot",
    "run_cli",
    "run_compare",
    "systems_for",
    "tonal_distance",
]

SCHEMA_ID = "mixpilot.compare/1"
SCHEMA_PATH = Path(__file__).with_name("compare.schema.json")
PAGE_TEMPLATE_PATH = Path(__file__).with_name("compare_page.html")
#: chart name -> file in the folder (realtime.plots draws each from compare.json)
CHARTS = {
    "spectrum": "spectrum.png",
    "loudness": "loudness.png",
    "waveforms": "waveforms.png",
    "params": "params.png",
    "param_means": "param_means.png",
}
SHORT_TERM_HOP_S = 0.5
ENVELOPE_BINS = 600
_ROUND = 4  # decimals kept in compare.json for dB/LU/seconds values (0.1 mdB)
_MATCH_TOLERANCE_LU = 0.005


class CompareError(MixpilotError):
    """A comparison that cannot run or finish (exit code 1); the message is one line."""

    exit_code = 1


class CompareUsageError(CompareError, UsageError):
    """A comparison asked for with arguments that cannot work (exit code 2)."""

    exit_code = 2


# --- systems -----------------------------------------------------------------------


@dataclass(frozen=True)
class System:
    """One column of the comparison: a label and the render settings it stands for.

    ``settings`` is ``None`` for the original (no rendering); otherwise the
    keys :func:`_render_kwargs` understands (today ``model``).  A new kind of
    system (a reference, a target profile) is a new key there and a new
    branch in :func:`systems_for`.
    """

    key: str  # file-name safe, unique
    label: str  # what the page and the charts show
    kind: str  # "original" or "render"
    settings: dict | None = None
    # the profile a --reference / --target system aims at (inference.profile.Profile); not in the JSON
    profile: Any = field(default=None, compare=False, repr=False)
    target_kind: str | None = None  # "reference" or "target" with a profile

    def as_dict(self) -> dict:
        return {"key": self.key, "label": self.label, "kind": self.kind, "settings": self.settings}


def _shipped_models() -> list[str]:
    from mixpilot.inference.model import MODELS_DIR

    return sorted(p.stem for p in Path(MODELS_DIR).glob("*.onnx"))


def known_models() -> list[str]:
    """Every ``--model`` name compare accepts (besides a path to an ``.onnx`` file)."""
    return ["none", "default", *_shipped_models(), "matcher", "heuristic"]


def default_models() -> list[str]:
    """``--model`` when none is given: static parameters, every shipped model once, the matcher, the heuristic."""
    from mixpilot.inference.model import ModelError, default_model_name

    try:
        dflt = default_model_name()
    except ModelError:
        dflt = None
    shipped = [m for m in _shipped_models() if m != dflt]
    return ["none", *(["default"] if dflt else []), *shipped, "matcher", "heuristic"]


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return s or "system"


def _model_system(spec: str, warn: Callable[[str], None]) -> System:
    """A ``--model`` value -> its system, the model loaded once here to fail early."""
    from mixpilot.inference.model import ModelError, OnnxModel, default_model_name

    s = spec.strip()
    low = s.lower()
    if low == "none":
        return System("none", "none (static parameters)", "render", {"model": "none"})
    if low == "heuristic":
        return System("heuristic", "heuristic", "render", {"model": "heuristic"})
    if low in ("matcher", "analytic"):  # the name for it is "analytic"
        return System("matcher", "analytic matcher (default profile)", "render", {"model": "matcher"})
    is_path = os.sep in s or "/" in s or s.lower().endswith(".onnx")
    if not is_path and s not in known_models():
        known = ", ".join(known_models())
        raise CompareUsageError(f"--model {s!r}: unknown model (known: {known}; or a path to an .onnx file)")
    from mixpilot.inference.target_model import TargetModel, is_target_model

    try:
        # a target-conditioned model (inference.target_model) runs as the matcher's stream estimator
        model = TargetModel.load(s) if is_target_model(s) else OnnxModel.load(s)
    except ModelError as exc:
        raise CompareUsageError(f"--model {s}: {exc}") from None
    if is_path:
        path = os.path.abspath(s)
        return System(f"model-{_slug(Path(s).stem)}", f"{Path(s).stem} ({s})", "render", {"model": path})
    if s == "default":
        return System("default", f"default ({default_model_name()})", "render", {"model": "default"})
    return System(_slug(s), model.name if model.name == s else f"{s} ({model.name})", "render", {"model": s})


def target_systems(
    references: Sequence[str] = (), targets: Sequence[str] = (), *, warn: Callable[[str], None] = lambda t: None
) -> list[System]:
    """One system per ``--reference`` (a file, or a folder: its combined profile) and per ``--target``.

    The profiles are read here, before anything renders: a reference that
    cannot be read, a silent or too short one, an unknown profile name is a
    one-line error (:class:`inference.profile.ProfileError` / ``AudioFileError``).
    """
    from mixpilot.inference.profile import Profile, ProfileError

    from .references import profile_from_files

    out: list[System] = []
    for ref in references:
        path = os.path.abspath(ref)
        stem = Path(path.rstrip(os.sep)).stem if not os.path.isdir(path) else Path(path).name
        profile = profile_from_files([ref], name=stem or "reference")
        label = (
            f"references {Path(path).name}/ ({profile.tracks} tracks)"
            if os.path.isdir(path)
            else f"reference {Path(ref).name or ref}"
        )
        out.append(
            System(f"ref-{_slug(stem)}", label, "render", {"model": "default", "reference": path}, profile, "reference")
        )
    for t in targets:
        spec = t.strip()
        if not spec:
            continue
        if os.path.isfile(spec) and not spec.lower().endswith(".json"):
            raise ProfileError(f"--target {spec}: not a profile (.json); for an audio file use --reference")
        profile = Profile.load(spec)
        is_path = os.sep in spec or spec.lower().endswith(".json")
        setting = os.path.abspath(spec) if is_path else spec
        out.append(
            System(f"target-{_slug(Path(spec).stem if is_path else spec)}", f"target {spec}", "render",
                   {"model": "default", "target": setting}, profile, "target")
        )  # fmt: skip
    return out


def systems_for(
    models: Sequence[str],
    *,
    warn: Callable[[str], None] = lambda t: None,
    references: Sequence[str] = (),
    targets: Sequence[str] = (),
) -> list[System]:
    """The original, one system per model, then one per reference and target, in the order given;
    duplicate models dropped with a note."""
    from mixpilot.inference.model import ModelError, default_model_name

    if not models and not references and not targets:
        raise CompareUsageError(f"--model needs at least one name (known: {', '.join(known_models())})")
    out = [System("original", "original", "original", None)]
    seen: dict[str | None, str] = {}
    try:
        dflt = default_model_name()
    except ModelError:
        dflt = None
    for spec in models:
        sysm = _model_system(spec, warn)
        same = sysm.settings["model"] if sysm.settings else None
        if same == "default" and dflt is not None:
            same = dflt
        if same in seen:
            warn(f"--model {spec}: the same model as {seen[same]}; rendered once")
            continue
        seen[same] = spec
        if any(s.key == sysm.key for s in out):
            raise CompareUsageError(f"--model {spec}: two systems would share the name {sysm.key!r}")
        out.append(sysm)
    for sysm in target_systems(references, targets, warn=warn):
        if any(s.key == sysm.key for s in out):
            what = "--reference" if sysm.target_kind == "reference" else "--target"
            raise CompareUsageError(f"{what}: two systems would share the name {sysm.key!r}; give each once")
        out.append(sysm)
    return out


# --- one system's render + measurements (runs in a worker process) -------------------


@dataclass
class _Job:
    index: int
    system: System
    audio: np.ndarray  # [frames, channels] float32, the excerpt
    sample_rate: int
    input_lufs: float
    target_lufs: float
    ceiling_dbtp: float
    ai_amount: float
    ai_hop_s: float
    crossfade_s: float
    path: str  # the system's audio file (in the temporary folder)
    subtype: str


_progress_sink: Callable[[int, int, float, float], None] | None = None


def _init_worker(q: Any, sample_rate: int, channels: int) -> None:
    """Pool initializer: progress goes to the parent through ``q``; one BLAS thread; kernels warmed."""
    global _progress_sink
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    _progress_sink = lambda i, p, d, t: q.put((i, p, d, t))  # noqa: E731
    _warm(sample_rate, channels)


def _warm(sample_rate: int, channels: int) -> None:
    """Load the compiled kernels (Numba cache) before anything is timed: ``render_s`` is rendering."""
    from .render import render_array

    render_array(np.zeros((sample_rate // 10, channels), np.float32), sample_rate, input_integrated_lufs=-math.inf)


def _estimator(model: str) -> Estimator | None:
    if model == "none":
        return None
    if model == "matcher":
        from mixpilot.inference.worker import load_estimator

        return load_estimator("matcher", lambda text: None)
    if model == "heuristic":
        from mixpilot.inference.heuristic import HeuristicEstimator

        return HeuristicEstimator()
    from mixpilot.inference.model import OnnxModel
    from mixpilot.inference.target_model import is_target_model

    if is_target_model(model):
        from mixpilot.inference.model_matcher import ModelMatcher

        return ModelMatcher.for_target(model=model)
    return OnnxModel.load(model)


def _r(v: float | None, nd: int = _ROUND) -> float | None:
    """Round for JSON; infinities and NaN become ``None`` (JSON has neither)."""
    if v is None:
        return None
    v = float(v)
    return round(v, nd) if math.isfinite(v) else None


def _trajectories(ai_updates: list, base: dict[str, float], duration_s: float) -> dict:
    """AI targets as step functions per parameter (``--params-out`` events grouped by name) + time means.

    The value in force from ``t`` on is the event's value until the next
    event; before the first AI update it is the static value.  ``mean`` is
    the time-weighted mean of that step function over the excerpt (the
    targets; the chain glides to each over ``--crossfade-s``).
    """
    from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS

    traj: dict[str, dict[str, list]] = {}
    means: dict[str, float | None] = {}
    for name in AI_PARAM_NAMES:
        v0 = float(base.get(name, PARAMS[PARAM_INDEX[name]].default))
        ts, vs = [0.0], [v0]
        for t, vals in ai_updates:
            if name in vals and vals[name] != vs[-1]:
                ts.append(float(t))
                vs.append(float(vals[name]))
        edges = [*ts, duration_s]
        area = sum(v * max(0.0, min(edges[i + 1], duration_s) - min(edges[i], duration_s)) for i, v in enumerate(vs))
        means[name] = _r(area / duration_s, 6) if duration_s > 0 else _r(vs[0], 6)
        traj[name] = {"t_s": [_r(t, 6) for t in ts], "value": [_r(v, 6) for v in vs]}
    units = {n: PARAMS[PARAM_INDEX[n]].unit for n in AI_PARAM_NAMES}
    return {"names": list(AI_PARAM_NAMES), "units": units, "trajectories": traj, "mean": means}


def _measure_system(y: np.ndarray, sr: int) -> dict:
    from mixpilot.dsp.descriptors import compute_descriptors
    from mixpilot.dsp.meter import measure

    from .measures import envelope, short_term_series

    m = measure(y, sr)
    il, tp = m["integrated_lufs"], m["true_peak_dbtp"]
    d = compute_descriptors(y, sr)  # the descriptors profiles are made of: 1/3-octave mid/side re loudness, width
    ts, st = short_term_series(y, sr, SHORT_TERM_HOP_S)
    peak, rms = envelope(y, ENVELOPE_BINS)
    w = d.width_db if y.shape[1] == 2 else None
    return {
        "loudness": {
            "integrated_lufs": _r(il),
            "true_peak_dbtp": _r(tp),
            "sample_peak_dbfs": _r(m["sample_peak_dbfs"]),
            "lra_lu": _r(m["loudness_range_lu"]),
            "plr_db": _r(tp - il) if math.isfinite(tp) and math.isfinite(il) else None,
            "max_short_term_lufs": _r(m["max_short_term_lufs"]),
            "max_momentary_lufs": _r(m["max_momentary_lufs"]),
        },
        "width_side_mid_db": _r(w) if w is not None else None,
        "spectrum_db": [_r(v) for v in d.mid_db],
        "spectrum_side_db": [_r(v) for v in d.side_db] if y.shape[1] == 2 else None,
        "short_term": {"t_s": [_r(t, 3) for t in ts], "lufs": [_r(v, 3) for v in st]},
        "envelope": {"peak": [_r(v, 5) for v in peak], "rms": [_r(v, 5) for v in rms]},
    }


def _render_kwargs(settings: dict, profile: Any = None) -> dict:
    """A system's settings (and the profile it aims at) -> keyword arguments of :func:`realtime.render.render_array`."""
    if profile is not None:  # the AI 'mixpilot render --reference/--target' runs (api.estimator_for -> matcher_for)
        from types import SimpleNamespace

        from .api import estimator_for

        ns: Any = SimpleNamespace(model=settings["model"], profile=profile)
        return {"estimator": estimator_for(ns, lambda text: None)}
    return {"estimator": _estimator(settings["model"])}


def _run_job(job: _Job) -> dict:
    """Render (unless original), write the file, measure.  Runs in a worker process."""
    from .audio_io import write_audio_atomic
    from .render import render_array

    t0 = time.perf_counter()
    x = job.audio
    n = x.shape[0]
    duration = n / job.sample_rate
    sink = _progress_sink
    render: dict[str, Any] | None = None
    params = None
    notes: list[str] = []
    if job.system.settings is None:
        y = x
        if sink is not None:
            sink(job.index, 1, duration, duration)
    else:

        def progress(pass_no: int, done_s: float, total_s: float) -> None:
            if sink is not None:
                sink(job.index, pass_no, done_s, total_s)

        res = render_array(
            x,
            job.sample_rate,
            target_lufs=job.target_lufs,
            ceiling_dbtp=job.ceiling_dbtp,
            progress=progress,
            input_integrated_lufs=job.input_lufs,
            ai_amount=job.ai_amount,
            ai_hop_s=job.ai_hop_s,
            crossfade_s=job.crossfade_s,
            **_render_kwargs(job.system.settings, job.system.profile),
        )
        y = res.out
        notes = list(res.notes)
        render = {
            "passes": len(res.passes),
            "loudness_gain_db": _r(res.chosen.gain_db),
            "max_comp_gain_reduction_db": _r(res.chosen.comp_gr_db),
            "max_limiter_gain_reduction_db": _r(res.chosen.limiter_gr_db),
            "ai_updates": len(res.ai_updates),
        }
        params = _trajectories(res.ai_updates, {}, duration)
    seconds = time.perf_counter() - t0
    write_audio_atomic(job.path, y, job.sample_rate, job.subtype)
    out = _measure_system(y, job.sample_rate)
    out.update(
        {
            "files": {"audio": os.path.basename(job.path)},
            "render": render,
            "params": params,
            "notes": notes,
            "timing": {
                "render_s": round(seconds, 3),
                "realtime_factor": round(duration / seconds, 1) if render is not None and seconds > 0 else None,
            },
        }
    )
    return out


# --- loudness-matched copies -------------------------------------------------------------


def matched_level(loudness_lufs: Sequence[float], true_peak_dbtp: Sequence[float], ceiling_dbtp: float) -> float:
    """The common loudness for the matched copies.

    The lowest of the systems' integrated loudness (everyone is turned down
    or left alone, never up) and, for each system, the loudness at which its
    true peak would reach the ceiling (``L + ceiling - TP``).  Systems with no
    measurable loudness are left out; NaN when none is left.
    """
    cands = []
    for lufs, tp in zip(loudness_lufs, true_peak_dbtp):
        if lufs is None or not math.isfinite(lufs):
            continue
        cands.append(lufs)
        if tp is not None and math.isfinite(tp):
            cands.append(lufs + ceiling_dbtp - tp)
    return min(cands) if cands else math.nan


def _match_copy(y: np.ndarray, sr: int, level_lufs: float) -> tuple[np.ndarray, float, dict]:
    """``y`` scaled to ``level_lufs`` (a plain gain, re-measured: the -70 LUFS gate moves with the level)."""
    from mixpilot.dsp.meter import measure

    m = measure(y, sr)
    gain = level_lufs - m["integrated_lufs"]
    for _ in range(4):
        z = (y.astype(np.float64) * 10.0 ** (gain / 20.0)).astype(np.float32)
        m = measure(z, sr)
        err = level_lufs - m["integrated_lufs"]
        if abs(err) <= _MATCH_TOLERANCE_LU or not math.isfinite(err):
            break
        gain += err
    return z, gain, m


# --- the whole comparison -----------------------------------------------------------------


@dataclass
class CompareOptions:
    input: str
    out: str
    models: list[str]
    references: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    seconds: float | None = None
    start_s: float = 0.0
    target_lufs: float = -14.0
    ceiling_dbtp: float = -1.0
    ai_amount: float = 1.0
    ai_hop_s: float = 0.5
    crossfade_s: float = 2.0
    jobs: int = 2
    blind: bool = False
    seed: int | None = None
    audio_format: str = "flac"
    overwrite: bool = False
    command: list[str] = field(default_factory=list)


class _Progress:
    """``[#####.......]  40%  2/6 systems  cnn pass 2, ast pass 1`` over the whole comparison (stderr)."""

    WIDTH = 24

    def __init__(self, labels: list[str], stream: TextIO | None) -> None:
        self.labels = labels
        self.stream = stream
        self.tty = bool(stream is not None and stream.isatty())
        self.frac = [0.0] * len(labels)
        self.active: dict[int, int] = {}
        self.done: set[int] = set()
        self._last: tuple | None = None
        self._drawn = False

    def update(self, i: int, pass_no: int, done_s: float, total_s: float) -> None:
        if i in self.done:
            return
        f = min(max(done_s / total_s, 0.0), 1.0) if total_s > 0 else 1.0
        est = (pass_no - 1 + f) / max(2, pass_no)  # most renders take two passes
        self.frac[i] = max(self.frac[i], min(est, 0.97))
        self.active[i] = pass_no
        self._draw()

    def finish_one(self, i: int) -> None:
        self.done.add(i)
        self.frac[i] = 1.0
        self.active.pop(i, None)
        self._draw()

    def _draw(self) -> None:
        if self.stream is None:
            return
        total = sum(self.frac) / len(self.frac)
        pct = int(total * 100 + 1e-9)
        key = (pct, len(self.done), tuple(sorted(self.active.items()))) if self.tty else (pct // 10, len(self.done))
        if key == self._last:
            return
        self._last = key
        filled = int(total * self.WIDTH + 1e-9)
        busy = ", ".join(f"{self.labels[i]} pass {p}" for i, p in sorted(self.active.items()))
        line = (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {pct:3d}%  {len(self.done)}/{len(self.labels)} systems"
            + (f"  {busy}" if busy else "")
        )
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
            self._drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _check_out(out: str, protect: Sequence[str], overwrite: bool) -> Path:
    """Checks on ``--out`` before anything is rendered; returns its absolute path."""
    p = Path(os.path.abspath(out))
    for q in protect:
        try:
            if Path(os.path.realpath(q)).is_relative_to(os.path.realpath(p)):
                raise CompareUsageError(f"--out {out}: holds the input {q}; choose another folder (inputs are kept)")
        except ValueError:
            pass
    if p.exists() and not p.is_dir():
        raise CompareUsageError(f"--out {out}: exists and is not a folder")
    if p.is_dir() and any(p.iterdir()):
        if not (p / "compare.json").is_file():
            raise CompareUsageError(
                f"--out {out}: exists and is not an earlier comparison (no compare.json); choose a new or empty folder"
            )
        if not overwrite:
            raise CompareUsageError(f"--out {out}: holds an earlier comparison; pass --overwrite to replace it")
    parent = p.parent
    if not parent.is_dir():
        raise OutputError(f"--out {out}: its folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"--out {out}: its folder {parent} is not writable")
    return p


def _install_folder(tmp: Path, dest: Path) -> None:
    """Move the finished folder into place: a rename, the earlier comparison (if any) removed after."""
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)  # mkdtemp made it 0700
    old = None
    if dest.exists():
        if any(dest.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.rename(dest, old / dest.name)
        else:
            dest.rmdir()
    os.rename(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _file_names(systems: list[System], blind: bool, seed: int | None) -> tuple[list[str], dict | None]:
    """Shown name of each system (its key, or a shuffled letter) and, when blind, the key."""
    if not blind:
        return [s.key for s in systems], None
    if seed is None:
        seed = secrets.randbits(32)
    letters = _letters(len(systems))
    order = np.random.default_rng(seed).permutation(len(systems))
    names = [letters[int(k)] for k in order]
    key = {
        "seed": seed,
        "systems": {
            n: {"label": s.label, "key": s.key, "settings": s.settings}
            for n, s in sorted(zip(names, systems), key=lambda q: q[0])
        },
    }
    return names, key


def _letters(n: int) -> list[str]:
    abc = string.ascii_uppercase
    return [abc[i] if n <= 26 else f"{abc[i // 26]}{abc[i % 26]}" for i in range(n)]


def _tonal_target() -> Profile:
    """The profile every system's tonal distance is measured against: the shipped default profile.

    It is what the product aims at when no reference and no target is given
    (issue 14); its tolerance is the spread of good masters per band.
    """
    from mixpilot.inference.profile import Profile

    return Profile.load("default")


def _schema_doc_top(
    opts: CompareOptions, info: AudioInfo, sr: int, frames: int, start_s: float, target: Profile
) -> dict:
    from mixpilot import __version__ as version

    return {
        "schema": SCHEMA_ID,
        "mixpilot_version": version,
        "command": shlex.join(opts.command) if opts.command else "",
        "input": {
            "path": opts.input,
            "sample_rate": sr,
            "channels": int(info.channels),
            "start_s": _r(start_s, 6),
            "duration_s": _r(frames / sr, 6),
            "frames": int(frames),
        },
        "settings": {
            "target_lufs": opts.target_lufs,
            "ceiling_dbtp": opts.ceiling_dbtp,
            "ai_amount": opts.ai_amount,
            "ai_hop_s": opts.ai_hop_s,
            "crossfade_s": opts.crossfade_s,
            "audio_format": opts.audio_format,
            "blind": opts.blind,
        },
        "bands_hz": [_r(float(b), 3) for b in target.bands_hz],
        "tonal_reference": {
            "kind": "target",
            "label": f"{target.name} profile",
            "note": f"distance of the mid signal's long-term 1/3-octave balance (dB re integrated loudness) to the "
            f"shipped '{target.name}' profile ({target.tracks} tracks); 'outside' counts only what lies beyond "
            f"its tolerance (the spread of the tracks per band)",
            "target_db": [_r(float(v)) for v in target.mid_db],
            "tolerance_db": [_r(float(v)) for v in target.mid_tol_db],
        },
    }


def _validate_numbers(opts: CompareOptions) -> None:
    """Every number against the run-level settings table (:mod:`dsp.settings`): one-line usage errors."""
    from mixpilot.dsp.settings import validate

    opts.target_lufs = validate("target_lufs", opts.target_lufs)
    opts.ceiling_dbtp = validate("ceiling_dbtp", opts.ceiling_dbtp)
    opts.ai_amount = validate("ai_amount", opts.ai_amount)
    opts.ai_hop_s = validate("ai_hop_s", opts.ai_hop_s)
    opts.crossfade_s = validate("crossfade_s", opts.crossfade_s)
    opts.start_s = validate("start_s", opts.start_s)
    opts.seconds = validate("seconds", opts.seconds)
    opts.jobs = validate("jobs", opts.jobs)
    if opts.audio_format not in ("flac", "wav"):
        raise CompareUsageError(f"--format {opts.audio_format!r}: use flac or wav")


def run_compare(
    opts: CompareOptions,
    *,
    note: Callable[[str], None] = lambda t: None,
    progress_stream: TextIO | None = None,
) -> dict:
    """Run a whole comparison into ``opts.out``; returns the ``compare.json`` document.

    Raises :class:`CompareError` / :class:`CompareUsageError` (and the audio
    file errors of :mod:`realtime.audio_io`) with one-line messages; nothing
    is left in ``opts.out`` or beside it when it raises.
    """
    from mixpilot.dsp.meter import measure

    from .audio_io import LAYOUTS, AudioFileError, read_audio_file, to_processing_layout

    _validate_numbers(opts)
    systems = systems_for(opts.models, warn=note, references=opts.references, targets=opts.targets)
    target = _tonal_target()
    dest = _check_out(opts.out, [opts.input, *opts.references], opts.overwrite)
    plots_ok = _plots_available()
    if not plots_ok:
        note(f"charts skipped: {PLOT_INSTALL_HINT}; then 'mixpilot compare --replot {opts.out}' draws them")

    raw, sr, info = read_audio_file(opts.input)
    total_frames = raw.shape[0]
    start = int(round(opts.start_s * sr))
    if start >= total_frames:
        raise CompareUsageError(
            f"--start {opts.start_s:g} s is at or past the end of {opts.input} ({total_frames / sr:.2f} s)"
        )
    stop = total_frames if opts.seconds is None else min(total_frames, start + int(round(opts.seconds * sr)))
    if opts.seconds is not None and start + int(round(opts.seconds * sr)) > total_frames:
        note(f"{opts.input} ends {(total_frames - start) / sr:.2f} s after --start; the excerpt is that long")
    for t in info.notes:
        note(t)
    x = np.ascontiguousarray(to_processing_layout(raw[start:stop]))
    del raw
    if x.shape[0] == 0:
        raise AudioFileError(f"{opts.input}: the excerpt has no audio frames")
    weights = LAYOUTS[x.shape[1]].weights if x.shape[1] in LAYOUTS else None
    in_lufs = measure(x, sr, channel_weights=weights)["integrated_lufs"]
    ext = "." + opts.audio_format
    names, key = _file_names(systems, opts.blind, opts.seed)

    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        results = _render_all(opts, systems, names, x, sr, in_lufs, tmp, ext, progress_stream)
        doc = _schema_doc_top(opts, info, sr, x.shape[0], start / sr, target)
        doc["systems"] = _assemble(systems, names, results, opts.blind, target)
        _write_matched(doc, tmp, sr, ext, opts.ceiling_dbtp, note)
        if opts.blind:
            doc["systems"].sort(key=lambda s: s["name"])
            from mixpilot.fileio import write_text_atomic

            write_text_atomic(str(tmp / "blind_key.json"), json.dumps(key, indent=1) + "\n")
        _write_doc(tmp, doc)
        if plots_ok:
            from . import plots

            plots.compare_charts(doc, tmp)
        write_page(doc, tmp)
        _install_folder(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return doc


def _render_all(
    opts: CompareOptions,
    systems: list[System],
    names: list[str],
    x: np.ndarray,
    sr: int,
    in_lufs: float,
    tmp: Path,
    ext: str,
    progress_stream: TextIO | None,
) -> list[dict]:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    jobs = []
    for i, (s, name) in enumerate(zip(systems, names)):
        e, subtype = ext, "PCM_24"
        if s.settings is None and peak > 1.0:  # an original past full scale keeps its overs: float WAV
            e, subtype = ".wav", "FLOAT"
        jobs.append(
            _Job(
                i,
                s,
                x,
                sr,
                in_lufs,
                opts.target_lufs,
                opts.ceiling_dbtp,
                opts.ai_amount,
                opts.ai_hop_s,
                opts.crossfade_s,
                str(tmp / f"{name}{e}"),
                subtype,
            )
        )
    bar = _Progress([s.label.split(" (")[0] for s in systems], progress_stream)
    results: list[dict | None] = [None] * len(jobs)
    try:
        if opts.jobs == 1:
            global _progress_sink
            _warm(sr, x.shape[1])
            _progress_sink = bar.update
            try:
                for j in jobs:
                    results[j.index] = _run_job(j)
                    bar.finish_one(j.index)
            finally:
                _progress_sink = None
        else:
            ctx = mp.get_context("spawn")  # no fork of a process with onnxruntime / BLAS threads
            q = ctx.Queue()
            with cf.ProcessPoolExecutor(
                max_workers=min(opts.jobs, len(jobs)),
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(q, sr, x.shape[1]),
            ) as pool:
                futs = {pool.submit(_run_job, j): j.index for j in jobs}
                pending = set(futs)
                try:
                    while pending:
                        done, pending = cf.wait(pending, timeout=0.1, return_when=cf.FIRST_COMPLETED)
                        _drain(q, bar)
                        for f in done:
                            results[futs[f]] = f.result()
                            bar.finish_one(futs[f])
                except BaseException:
                    for f in pending:
                        f.cancel()
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    except cf.process.BrokenProcessPool as exc:
        raise CompareError(f"a render process died ({exc}); nothing was written") from None
    finally:
        bar.close()
    return [r for r in results if r is not None]


def _drain(q: Any, bar: _Progress) -> None:
    while True:
        try:
            i, p, d, t = q.get_nowait()
        except queue.Empty:
            return
        bar.update(i, p, d, t)


def tonal_distance(levels_db: Sequence[float | None], target_db: ArrayLike, tolerance_db: ArrayLike) -> dict:
    """Per band ``level - target`` (dB; None where either is missing), its RMS, and the RMS of what lies
    outside the tolerance (``sign(d) * max(|d| - tol, 0)``, :meth:`inference.profile.Profile.deviation`)."""
    lv = np.array([np.nan if v is None else v for v in levels_db], dtype=np.float64)
    tg = np.asarray(target_db, dtype=np.float64)
    tol = np.nan_to_num(np.asarray(tolerance_db, dtype=np.float64))
    dev = lv - tg
    ok = np.isfinite(dev)
    outside = np.sign(dev) * np.maximum(np.abs(dev) - tol, 0.0)
    rms = float(np.sqrt(np.mean(dev[ok] ** 2))) if ok.any() else math.nan
    out_rms = float(np.sqrt(np.mean(outside[ok] ** 2))) if ok.any() else math.nan
    return {"per_band_db": [_r(v) for v in dev], "rms_db": _r(rms), "outside_rms_db": _r(out_rms)}


def _assemble(systems: list[System], names: list[str], results: list[dict], blind: bool, target: Profile) -> list[dict]:
    out = []
    original = results[0]["spectrum_db"]  # systems[0] is always the original excerpt
    for s, name, r in zip(systems, names, results):
        prof = s.profile if s.profile is not None else target
        entry = {
            "name": name,
            "label": name if blind else s.label,
            "kind": None if blind else s.kind,
            "settings": None if blind else s.settings,
            **r,
            "tonal_distance": tonal_distance(r["spectrum_db"], prof.mid_db, prof.mid_tol_db),
            "tonal_target": None,
        }
        if s.profile is not None:  # measured to its own target; the original's distance to it beside
            orig = tonal_distance(original, prof.mid_db, prof.mid_tol_db)
            entry["tonal_target"] = {
                "kind": None if blind else s.target_kind,
                "label": f"{name}'s target" if blind else s.label,
                "tracks": int(prof.tracks),
                "target_db": [_r(float(v)) for v in prof.mid_db],
                "tolerance_db": [_r(float(v)) for v in prof.mid_tol_db],
                "original": {"rms_db": orig["rms_db"], "outside_rms_db": orig["outside_rms_db"]},
            }
        if blind:  # a render's notes name the AI that made them ("AI (matcher): ..."): keep what, not who
            entry["notes"] = [re.sub(r"^AI \([^)]*\)", "AI", n) for n in entry.get("notes") or []]
        out.append(entry)
    return out


def _write_matched(doc: dict, tmp: Path, sr: int, ext: str, ceiling: float, note: Callable[[str], None]) -> None:
    """Read each system's file back, write its loudness-matched copy; fill ``doc['matched']``."""
    import soundfile as sf

    from .audio_io import write_audio_atomic

    files = {s["name"]: tmp / s["files"]["audio"] for s in doc["systems"]}
    audio = {}
    for name, p in files.items():
        y, _ = sf.read(str(p), dtype="float32", always_2d=True)
        audio[name] = y
    from mixpilot.dsp.meter import measure

    meas = {n: measure(y, sr) for n, y in audio.items()}
    level = matched_level(
        [meas[n]["integrated_lufs"] for n in audio], [meas[n]["true_peak_dbtp"] for n in audio], ceiling
    )
    limited = None
    if math.isfinite(level):
        for n in audio:
            il, tp = meas[n]["integrated_lufs"], meas[n]["true_peak_dbtp"]
            if math.isfinite(il) and abs(il - level) < 1e-9:
                limited = {"system": n, "by": "loudness (the quietest system)"}
            elif math.isfinite(il) and math.isfinite(tp) and abs(il + ceiling - tp - level) < 1e-9:
                limited = {"system": n, "by": f"true peak (its peak reaches {ceiling:g} dBTP at this level)"}
    got = []
    for s in doc["systems"]:
        n = s["name"]
        if not math.isfinite(level) or not math.isfinite(meas[n]["integrated_lufs"]):
            s["matched"] = None
            note(f"{s['label']}: no measurable loudness; no matched copy")
            continue
        z, gain, m = _match_copy(audio[n], sr, level)
        path = tmp / f"{n}.matched{files[n].suffix}"
        write_audio_atomic(str(path), z, sr, "FLOAT" if files[n].suffix == ".wav" and ext != ".wav" else "PCM_24")
        s["files"]["matched"] = path.name
        s["matched"] = {
            "gain_db": _r(gain),
            "integrated_lufs": _r(m["integrated_lufs"]),
            "true_peak_dbtp": _r(m["true_peak_dbtp"]),
        }
        got.append(m["integrated_lufs"])
    doc["matched"] = {
        "integrated_lufs": _r(level),
        "limited_by": limited,
        "spread_lu": _r(max(got) - min(got)) if got else None,
        "ceiling_dbtp": ceiling,
    }


def _write_doc(folder: Path, doc: dict) -> None:
    from mixpilot.fileio import write_text_atomic

    write_text_atomic(str(folder / "compare.json"), json.dumps(doc, indent=1, allow_nan=False) + "\n")


# --- charts, page, replot ----------------------------------------------------------------

PLOT_INSTALL_HINT = (
    "matplotlib is not installed (pip install matplotlib, or pip install -e '.[plot]' in a mixpilot checkout)"
)


def _plots_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def load_doc(folder: str | os.PathLike[str]) -> dict:
    """Read and check a folder's ``compare.json`` (one-line errors)."""
    p = Path(folder) / "compare.json"
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CompareUsageError(f"{folder}: no compare.json here (not a 'mixpilot compare' folder)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CompareError(f"{p}: cannot read ({exc})") from None
    except ValueError as exc:
        raise CompareError(f"{p}: not valid JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise CompareError(f"{p}: schema {got!r}, this mixpilot reads {SCHEMA_ID!r}")
    try:
        import jsonschema
    except ImportError:
        return doc
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if err is not None:
        where = "/".join(str(q) for q in err.absolute_path) or "(top)"
        raise CompareError(f"{p}: does not match its schema at {where}: {' '.join(err.message.split())[:200]}")
    return doc


def replot(folder: str | os.PathLike[str]) -> list[str]:
    """Redraw the charts and ``index.html`` of a comparison folder from its ``compare.json``."""
    if not _plots_available():
        raise CompareError(f"--replot needs the charts: {PLOT_INSTALL_HINT}")
    from . import plots

    doc = load_doc(folder)
    drawn = plots.compare_charts(doc, Path(folder))
    write_page(doc, Path(folder))
    return [*drawn, "index.html"]


def _fmt(v: Any, nd: int = 1, unit: str = "") -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, float) and not math.isfinite(v):
        return "&ndash;"
    return f"{v:.{nd}f}{(' ' + unit) if unit else ''}"


def _mime(name: str) -> str:
    return "audio/flac" if name.endswith(".flac") else "audio/wav"


def _target_cell(s: dict, doc: dict) -> str:
    """What a system's tonal distance is measured to: its own target (and the original's distance to it)."""
    tt = s.get("tonal_target")
    if not tt:
        return doc["tonal_reference"]["label"]
    orig = (tt.get("original") or {}).get("rms_db")
    return tt["label"] + (f"; unprocessed: {orig:.2f} dB RMS" if orig is not None else "")


def write_page(doc: dict, folder: Path) -> None:
    """``index.html`` from the document and the chart files present in ``folder`` (atomic)."""
    from mixpilot.fileio import write_text_atomic

    esc = html.escape
    rows = []
    players = []
    for s in doc["systems"]:
        lo = s["loudness"]
        tim = s.get("timing") or {}
        rend = s.get("render") or {}
        m = s.get("matched") or {}
        rows.append(
            "<tr>"
            f"<th scope='row'>{esc(s['label'])}</th>"
            f"<td>{_fmt(lo['integrated_lufs'])}</td><td>{_fmt(lo['true_peak_dbtp'])}</td>"
            f"<td>{_fmt(lo['lra_lu'])}</td><td>{_fmt(lo['plr_db'])}</td>"
            f"<td>{_fmt(s['width_side_mid_db'])}</td>"
            f"<td class='target'>{esc(_target_cell(s, doc))}</td><td>{_fmt(s['tonal_distance']['rms_db'], 2)}</td>"
            f"<td>{_fmt(s['tonal_distance']['outside_rms_db'], 2)}</td>"
            f"<td>{_fmt(m.get('gain_db'))}</td><td>{_fmt(m.get('true_peak_dbtp'), 2)}</td>"
            f"<td>{rend.get('passes', '&ndash;')}</td><td>{_fmt(tim.get('render_s'), 2)}</td>"
            f"<td>{esc('; '.join(s.get('notes') or []))}</td>"
            "</tr>"
        )
        files = s.get("files") or {}
        audios = []
        for kind, title in (("audio", "as delivered"), ("matched", "loudness-matched")):
            f = files.get(kind)
            if not f:
                continue
            audios.append(
                f"<figure><figcaption>{title} &middot; <a href='{esc(f)}'>{esc(f)}</a></figcaption>"
                f"<audio controls preload='metadata' data-system='{esc(s['name'])}' data-kind='{kind}'>"
                f"<source src='{esc(f)}' type='{_mime(f)}'></audio></figure>"
            )
        players.append(f"<div class='system'><h3>{esc(s['label'])}</h3>{''.join(audios)}</div>")
    charts = []
    titles = {
        "spectrum": "Long-term spectrum (1/3 octave, mid)",
        "loudness": "Short-term loudness over time",
        "waveforms": "Waveform overview",
        "params": "AI parameters over time",
        "param_means": "Mean AI setting per parameter",
    }
    for name, fname in CHARTS.items():
        if (folder / fname).is_file():
            charts.append(
                f"<figure class='chart'><figcaption>{esc(titles[name])}</figcaption>"
                f"<img src='{esc(fname)}' alt='{esc(titles[name])}' data-chart='{name}'></figure>"
            )
    if not charts:
        hint = f"No charts: {PLOT_INSTALL_HINT}; then run: mixpilot compare --replot {folder.name}"
        charts.append(f"<p class='note'>{esc(hint)}</p>")
    mt = doc.get("matched") or {}
    lim = mt.get("limited_by") or {}
    matched_text = (
        f"Matched copies: {_fmt(mt.get('integrated_lufs'))} LUFS integrated each "
        f"(spread {_fmt(mt.get('spread_lu'), 3)} LU), set by {esc(str(lim.get('system', '?')))}'s "
        f"{esc(str(lim.get('by', '?')))}; true peak &le; {_fmt(mt.get('ceiling_dbtp'))} dBTP."
        if mt.get("integrated_lufs") is not None
        else "No matched copies (no measurable loudness)."
    )
    inp = doc["input"]
    st = doc["settings"]
    blind = (
        "<p class='blind'><strong>Blind:</strong> systems are named by letter; <code>blind_key.json</code> says which "
        "is which. Listen to the matched copies first &mdash; the numbers and charts may give systems away.</p>"
        if st.get("blind")
        else ""
    )
    tmpl = string.Template(PAGE_TEMPLATE_PATH.read_text(encoding="utf-8"))
    page = tmpl.substitute(
        title=esc(f"mixpilot compare: {Path(inp['path']).name}"),
        input=esc(inp["path"]),
        excerpt=esc(f"{inp['start_s']:g} s + {inp['duration_s']:.2f} s, {inp['sample_rate']} Hz, {inp['channels']} ch"),
        delivery=esc(f"{st['target_lufs']:g} LUFS, ceiling {st['ceiling_dbtp']:g} dBTP"),
        tonal=esc(
            doc["tonal_reference"]["note"]
            + (
                "; a reference or target system is measured to its own target instead"
                if any(s.get("tonal_target") for s in doc["systems"])
                else ""
            )
        ),
        blind=blind,
        matched=matched_text,
        rows="\n".join(rows),
        players="\n".join(players),
        charts="\n".join(charts),
        command=esc(doc.get("command", "")),
        version=esc(doc.get("mixpilot_version", "")),
    )
    write_text_atomic(str(folder / "index.html"), page)


# --- command line ----------------------------------------------------------------------


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``compare`` on the ``mixpilot`` sub-parsers (ranges and help from :mod:`dsp.settings`)."""
    from mixpilot.dsp.settings import argparse_kwargs as opt

    c = sub.add_parser(
        "compare",
        help="the same song through several models, level-matched, with charts and index.html",
        description="Render FILE (or an excerpt) through every system asked for -- the original is always one -- "
        "and write into --out one audio file per system, a loudness-matched copy of each (all at one "
        "integrated loudness, none above the true-peak ceiling), compare.json, charts and index.html "
        "(open it in a browser; it works offline). Systems render in parallel processes.",
    )
    c.add_argument("file", metavar="FILE", nargs="?", help="the song (any format 'render' reads)")
    c.add_argument("--out", metavar="DIR", help="folder to create (or an empty one); written only when complete")
    c.add_argument(
        "--model",
        default=None,
        metavar="LIST",
        help="comma-separated: none, default, a model in models_onnx/ (cnn, ast, ensemble), matcher (the analytic "
        "matcher; also 'analytic'), heuristic, or a path to an .onnx (default: none, default, every other shipped "
        "model, matcher, heuristic)",
    )
    c.add_argument(
        "--target",
        default=None,
        metavar="LIST",
        help="comma-separated profiles (shipped names, 'mixpilot profile list', or profile JSONs): one system each, "
        "rendered by the AI 'render --target' runs aiming at it; its tonal distance is to that target",
    )
    c.add_argument(
        "--reference",
        nargs="+",
        action="extend",
        default=None,
        metavar="FILE|DIR",
        help="reference tracks (a folder: its combined profile): one system each, rendered by the AI "
        "'render --reference' runs aiming at it; its tonal distance is to that reference. Without --model only the "
        "original and these systems are rendered. Put it after the other arguments",
    )
    c.add_argument("--seconds", **opt("seconds", help="excerpt length", default_text="to the end"))
    c.add_argument("--start", **opt("start_s"))
    c.add_argument("--target-lufs", **opt("target_lufs"))
    c.add_argument("--ceiling-dbtp", **opt("ceiling_dbtp"))
    c.add_argument("--ai-amount", **opt("ai_amount"))
    c.add_argument("--ai-hop-s", **opt("ai_hop_s"))
    c.add_argument("--crossfade-s", **opt("crossfade_s"))
    c.add_argument("--jobs", **opt("jobs", default=min(2, os.cpu_count() or 1)))
    c.add_argument("--format", dest="audio_format", choices=("flac", "wav"), default="flac", help="audio files")
    c.add_argument("--blind", action="store_true", help="shuffled letter names; the key in blind_key.json")
    c.add_argument("--seed", type=int, default=None, metavar="N", help="--blind order (default: random)")
    c.add_argument("--overwrite", action="store_true", help="replace an earlier comparison in --out")
    c.add_argument(
        "--replot",
        nargs="?",
        const=True,
        default=None,
        metavar="DIR",
        help="redraw the charts and index.html of DIR (or --out) from its compare.json; renders nothing",
    )
    c.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    return c


def run_cli(args: argparse.Namespace, argv: Sequence[str], note: Callable[[str], None]) -> int:
    """``mixpilot compare`` (``argv``: the command line after ``mixpilot``, recorded in compare.json)."""
    if args.replot is not None:
        folder = args.replot if isinstance(args.replot, str) else args.out
        if folder is None:
            raise CompareUsageError("--replot needs a folder: mixpilot compare --replot DIR")
        drawn = replot(folder)
        if not args.quiet:
            print(f"redrew {', '.join(drawn)} in {folder}")
        return 0
    if args.file is None:
        raise CompareUsageError("FILE is required (or --replot DIR)")
    if args.out is None:
        raise CompareUsageError("--out DIR is required")
    references = list(args.reference or [])
    targets = [t for t in (args.target or "").split(",") if t.strip()]
    if args.model is None:
        models = [] if (references or targets) else default_models()
    else:
        models = [m for m in args.model.split(",") if m.strip()]
    opts = CompareOptions(
        input=args.file,
        out=args.out,
        models=models,
        references=references,
        targets=targets,
        seconds=args.seconds,
        start_s=args.start,
        target_lufs=args.target_lufs,
        ceiling_dbtp=args.ceiling_dbtp,
        ai_amount=args.ai_amount,
        ai_hop_s=args.ai_hop_s,
        crossfade_s=args.crossfade_s,
        jobs=args.jobs,
        blind=args.blind,
        seed=args.seed,
        audio_format=args.audio_format,
        overwrite=args.overwrite,
        command=["mixpilot", *argv],
    )
    doc = run_compare(opts, note=note, progress_stream=None if args.quiet else sys.stderr)
    if not args.quiet:
        _summary(doc, args.out, sys.stdout)
    return 0


def _summary(doc: dict, out: str, stream: TextIO) -> None:
    def f(v, nd=1):
        return f"{v:7.{nd}f}" if isinstance(v, (int, float)) else f"{'-':>7s}"

    stream.write(f"compared {doc['input']['path']} ({doc['input']['duration_s']:.1f} s) -> {out}\n")
    w = min(max([len("system")] + [len(s["label"]) for s in doc["systems"]]), 56)  # the labels, whole (to 56)
    stream.write(f"  {'system':{w}s} {'LUFS':>7s} {'dBTP':>7s} {'LRA':>7s} {'PLR':>7s} {'tonal':>7s} {'time s':>7s}\n")
    for s in doc["systems"]:
        lo = s["loudness"]
        stream.write(
            f"  {s['label'][:w]:{w}s} {f(lo['integrated_lufs'])} {f(lo['true_peak_dbtp'])} {f(lo['lra_lu'])} "
            f"{f(lo['plr_db'])} {f(s['tonal_distance']['rms_db'], 2)} {f(s['timing']['render_s'], 2)}\n"
        )
    mt = doc["matched"]
    if mt["integrated_lufs"] is not None:
        stream.write(
            f"  matched copies at {mt['integrated_lufs']:.2f} LUFS (spread {mt['spread_lu']:.3f} LU), "
            f"true peak <= {mt['ceiling_dbtp']:g} dBTP\n"
        )
    stream.write(f"  open {os.path.join(out, 'index.html')}\n")
