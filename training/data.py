"""Training data: good mixes, random mix faults, and the AI parameters that undo them.

Every example is one feature window (:data:`inference.features.FEATURE_CONFIG`,
``window_s`` seconds) of a mix that started *good* and was then given 0-3 mix
faults with the project's own chain (:class:`dsp.chain.MixChain`, run at
:data:`training.synth.SAMPLE_RATE` with its parameters settled by ``reset()``
so nothing glides, and without the limiter, so there is no latency).  The
target is the vector of the 10 AI parameters (:data:`dsp.params.AI_PARAM_NAMES`,
in that order) that *undo* the faults when the chain applies them to the
faulty audio, clamped to the AI-safe ranges and normalised to 0..1 with
:func:`dsp.params.normalise`.  A parameter no fault touches keeps its neutral
value (the table's default: 0 dB, ratio 1, sends 0, width 1), so a good mix
maps to the neutral vector.

Good mixes
----------
* synthetic (:mod:`training.synth`): stems mixed at the style's balance,
  equalised to a reference tonal balance (:func:`training.synth.reference_curve_db`,
  plus a small per-mix taste: up to +-0.4 dB/octave of tilt and 1 dB regional
  offsets) and a side/mid ratio of -13.5..-10.5 dB -- so that "good" is a
  definite sound, the 1-4 dB faults stand out against it and the model learns
  to correct *towards* a balance rather than guess at an arbitrary one; a
  quarter of the songs (:data:`UNREFERENCED_FRACTION`) keep their own,
  randomly coloured balance and width instead (material unlike the reference
  that is nevertheless good, so that the model does not pull everything onto
  the reference) --
  brought to :data:`training.synth.REFERENCE_LEVEL_DB` (-18 dBFS RMS), bus
  compressed by the chain at the style's ratio (made up to the reference) with
  the style's reverb / delay sends: the known good amounts (the send that
  puts the chain's wet signal at the style's wet-to-dry level, so they follow
  whatever gain the chain's reverb and delay have; with the current reverb
  they are 0.01-0.08, delay 0.03-0.2).  One 8 s song gives
  :data:`WINDOWS_PER_SONG` windows, each with its own faults.
* real recordings (``real_dirs``): each file (soundfile: wav/flac/ogg/mp3...)
  is resampled to the chain rate with soxr and brought to the reference level
  (gated mean square: 400 ms blocks more than 20 dB under the ungated level are
  ignored) and taken as good as it is; ``real_fraction`` (default 25 %) of the
  examples are real windows, spread evenly over the files, each file its own
  group.  Real windows get only the faults whose
  undo does not need a known good reference (level, EQ, width,
  over-compression); their compression, send and output targets stay neutral.

Faults and their undo targets (``value`` is the fault, ``clamp`` the AI range)
-------------------------------------------------------------------------------
==============  ===============================================  ===========================================
fault           how it is made                                   target
==============  ===============================================  ===========================================
``level``       gain ``g`` dB after everything else,             ``input_gain_db = clamp(-g)``  (-6..6)
                ``|g|`` in 0.5..7
``low``         chain low shelf ``g`` dB at the default 120 Hz,  ``low_gain_db = clamp(-g)``  (-3..3);
                ``|g|`` in 1..4                                  e.g. +4 dB -> -3
``mid``         chain mid bell ``g`` dB (1 kHz, Q 0.7),          ``mid_gain_db = clamp(-g)``  (-2..2)
                ``|g|`` in 0.75..2.5
``high``        chain high shelf ``g`` dB (8 kHz), ``|g|`` 1..4  ``high_gain_db = clamp(-g)``  (-3..3)
``presence``    chain presence bell ``g`` dB (4.5 kHz, Q 1),     ``presence_gain_db = clamp(-g)``  (-2..3)
                ``g`` in -3.5..-1 or 1..2.5
``width``       chain M/S width ``w = 1/t``, ``|t - 1|`` in      ``stereo_width = clamp(1/w)``  (0.9..1.1);
                0.05..0.15 (half) or 0.15..0.4                   e.g. w = 1.3 -> 0.9
``over_comp``   chain compressor, ratio 5..10, threshold         ``comp_ratio = 1`` (neutral: more
                -32..-24 dB, attack 1..5 ms, release 40..120     compression cannot undo it), level made
                ms, then gain back to the pre-fault level        up so the level target is unaffected
``under_comp``  the good mix *without* its bus compression       ``comp_ratio = clamp(r_good)`` (1..4) and
                (level-matched), synthetic only                  ``output_gain_db = clamp(makeup)`` (-1..1):
                                                                 the chain's compressor at the good ratio
                                                                 re-creates the good mix, which was made up
                                                                 by ``makeup`` dB; the AI has no make-up,
                                                                 so the output trim restores the level
``reverb_dry``  reverb send ``a = s_good * u``, u in 0..0.5      ``reverb_send = clamp(s_good - a)``
                (synthetic only)                                 (0..0.3): sends are linear, so adding this
                                                                 send brings the wet back to the good amount
``reverb_wet``  ``a = s_good * 10^(u/20)``, u in 4..10 dB        ``reverb_send = 0`` (a send cannot remove
                                                                 reverb)
``delay_dry``   as ``reverb_dry`` for the delay send             ``delay_send = clamp(s_good - a)`` (0..0.2)
``delay_wet``   as ``reverb_wet`` for the delay send             ``delay_send = 0``
==============  ===============================================  ===========================================

``output_gain_db`` is 0 except for the ``under_comp`` make-up rule.  The order
of the undo is the chain's order (input gain first), the faults are made in
the reverse order (sends, compression, EQ and width, level last), so undoing
them in the chain restores the good mix (exactly for level, EQ and width: the
RBJ shelf / bell with ``-g`` dB is the inverse filter of ``+g`` dB).  Fault
sizes keep the undo inside the AI ranges most of the time; larger ones are
clamped (the AI then undoes as much as it may).

Faults per example: none 15 %, one 35 %, two 30 %, three 20 %, drawn without
replacement (at most one of each compression / reverb / delay pair).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS, normalise
from mixpilot.inference.features import (
    FEATURE_CONFIG,
    FeatureConfig,
    extract_features,
    input_window_frames,
)

from . import synth
from .synth import REFERENCE_LEVEL_DB, SAMPLE_RATE, apply_chain, level_db

__all__ = [
    "Dataset",
    "FAULT_KINDS",
    "REAL_FAULT_KINDS",
    "WINDOWS_PER_SONG",
    "SONG_SECONDS",
    "AUDIO_EXTENSIONS",
    "neutral_params",
    "undo_targets",
    "normalise_targets",
    "sample_faults",
    "apply_faults",
    "build_dataset",
    "split_by_group",
    "save_dataset",
    "load_dataset",
    "find_audio_files",
    "load_real",
]

SONG_SECONDS = 8.0
WINDOWS_PER_SONG = 8
PREROLL_S = 0.5  # audio run through the fault chain before the window (filter/compressor settle)
FIRST_WINDOW_S = 1.5  # earliest window start in a song (reverb and delay tails have built up)
UNREFERENCED_FRACTION = 0.25  # synthetic songs mixed without the tonal / width reference (synth.UNREFERENCED)
REAL_FRACTION = 0.25  # share of examples from real recordings when real_dirs are given
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")

FAULT_KINDS = (
    "level",
    "low",
    "mid",
    "high",
    "presence",
    "width",
    "over_comp",
    "under_comp",
    "reverb_dry",
    "reverb_wet",
    "delay_dry",
    "delay_wet",
)
REAL_FAULT_KINDS = ("level", "low", "mid", "high", "presence", "width", "over_comp")
_FAULT_WEIGHTS = {
    "level": 1.0,
    "low": 1.0,
    "mid": 1.0,
    "high": 1.0,
    "presence": 1.0,
    "width": 1.0,
    "over_comp": 0.5,
    "under_comp": 0.8,
    "reverb_dry": 0.6,
    "reverb_wet": 0.4,
    "delay_dry": 0.6,
    "delay_wet": 0.4,
}
_EXCLUSIVE = ({"over_comp", "under_comp"}, {"reverb_dry", "reverb_wet"}, {"delay_dry", "delay_wet"})
_N_FAULTS_P = (0.15, 0.35, 0.30, 0.20)
_EQ_PARAM = {"low": "low_gain_db", "mid": "mid_gain_db", "high": "high_gain_db", "presence": "presence_gain_db"}


# ---------------------------------------------------------------------------
# the dataset


@dataclass
class Dataset:
    """Feature windows and their normalised undo targets.

    Attributes
    ----------
    features : np.ndarray [shape=(n, 2, n_mels, n_frames), dtype=float32]
    targets : np.ndarray [shape=(n, 10), dtype=float32]
        normalised (0..1) AI parameters, in ``param_names`` order.
    param_names : tuple[str, ...]
        :data:`dsp.params.AI_PARAM_NAMES`.
    groups : np.ndarray [shape=(n,), dtype=int64]
        source song / file id (for a held-out split by song).
    meta : list[dict]
        per example: ``source`` ("synth" or "real"), ``style`` or ``file``,
        ``faults`` ({kind: value}), ``start_s``, ``good`` (known good amounts).
    """

    features: np.ndarray
    targets: np.ndarray
    param_names: tuple[str, ...] = AI_PARAM_NAMES
    groups: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    meta: list = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def subset(self, index) -> Dataset:
        """Examples ``index`` (an integer array or a boolean mask)."""
        idx = np.arange(len(self))[index]
        return Dataset(
            features=self.features[idx],
            targets=self.targets[idx],
            param_names=tuple(self.param_names),
            groups=self.groups[idx],
            meta=[self.meta[i] for i in idx],
        )


def neutral_params() -> dict[str, float]:
    """The neutral (default) value of every AI parameter."""
    return {name: PARAMS[PARAM_INDEX[name]].default for name in AI_PARAM_NAMES}


def _clamp(name: str, value: float) -> float:
    p = PARAMS[PARAM_INDEX[name]]
    return float(min(max(value, p.ai_minimum), p.ai_maximum))


def undo_targets(faults: dict, good: dict | None = None) -> dict[str, float]:
    """Denormalised undo targets (clamped to the AI ranges) for ``faults``.

    Parameters
    ----------
    faults : dict
        ``{kind: value}`` as made by :func:`sample_faults` (see the module
        docstring for what each value means).
    good : dict, optional
        the known good amounts ``reverb_send``, ``delay_send``, ``comp_ratio``,
        ``makeup_db`` (needed for ``under_comp`` and the dry faults).
    """
    good = good or {}
    t = neutral_params()
    for kind, v in faults.items():
        if kind == "level":
            t["input_gain_db"] = _clamp("input_gain_db", -v)
        elif kind in _EQ_PARAM:
            t[_EQ_PARAM[kind]] = _clamp(_EQ_PARAM[kind], -v)
        elif kind == "width":
            t["stereo_width"] = _clamp("stereo_width", 1.0 / v)
        elif kind == "over_comp":
            t["comp_ratio"] = 1.0
        elif kind == "under_comp":
            t["comp_ratio"] = _clamp("comp_ratio", good["comp_ratio"])
            t["output_gain_db"] = _clamp("output_gain_db", good["makeup_db"])
        elif kind == "reverb_dry":
            t["reverb_send"] = _clamp("reverb_send", good["reverb_send"] - v)
        elif kind == "delay_dry":
            t["delay_send"] = _clamp("delay_send", good["delay_send"] - v)
        elif kind in ("reverb_wet", "delay_wet"):
            pass  # neutral: a send only adds
        else:
            raise ValueError(f"unknown fault {kind!r}; faults are {', '.join(FAULT_KINDS)}")
    return t


def normalise_targets(values: dict[str, float]) -> np.ndarray:
    """float32 [10] in :data:`AI_PARAM_NAMES` order, each clamped then normalised to 0..1."""
    return np.array([normalise(n, _clamp(n, values[n])) for n in AI_PARAM_NAMES], dtype=np.float32)


def sample_faults(
    rng: np.random.Generator,
    *,
    kinds: Sequence[str] = FAULT_KINDS,
    good: dict | None = None,
    n_faults: int | None = None,
) -> dict:
    """Draw ``{kind: value}`` mix faults (0-3 of them unless ``n_faults`` is given)."""
    if n_faults is None:
        n_faults = int(rng.choice(len(_N_FAULTS_P), p=_N_FAULTS_P))
    pool = [k for k in kinds]
    faults: dict = {}
    for _ in range(n_faults):
        if not pool:
            break
        w = np.array([_FAULT_WEIGHTS[k] for k in pool])
        kind = pool[int(rng.choice(len(pool), p=w / w.sum()))]
        for ex in _EXCLUSIVE:
            if kind in ex:
                pool = [k for k in pool if k not in ex]
        if kind in pool:
            pool.remove(kind)
        faults[kind] = _fault_value(kind, rng, good or {})
    return faults


def _signed(rng, lo, hi):
    return float(rng.uniform(lo, hi) * (1.0 if rng.random() < 0.5 else -1.0))


def _fault_value(kind: str, rng: np.random.Generator, good: dict):
    if kind == "level":
        return _signed(rng, 0.5, 7.0)
    if kind in ("low", "high"):
        return _signed(rng, 1.0, 4.0)
    if kind == "mid":
        return _signed(rng, 0.75, 2.5)
    if kind == "presence":
        return float(rng.uniform(-3.5, -1.0) if rng.random() < 0.5 else rng.uniform(1.0, 2.5))
    if kind == "width":
        if rng.random() < 0.5:
            t = 1.0 + _signed(rng, 0.05, 0.15)
        else:
            t = 1.0 + _signed(rng, 0.15, 0.4)
        return float(1.0 / t)
    if kind == "over_comp":
        return {
            "comp_ratio": float(rng.uniform(5.0, 10.0)),
            "comp_threshold_db": float(rng.uniform(-32.0, -24.0)),
            "comp_attack_ms": float(rng.uniform(1.0, 5.0)),
            "comp_release_ms": float(rng.uniform(40.0, 120.0)),
            "comp_knee_db": 3.0,
        }
    if kind == "under_comp":
        return float(good["comp_ratio"])
    if kind in ("reverb_dry", "delay_dry"):
        return float(good[kind.split("_")[0] + "_send"] * rng.uniform(0.0, 0.5))
    if kind in ("reverb_wet", "delay_wet"):
        return float(good[kind.split("_")[0] + "_send"] * 10.0 ** (rng.uniform(4.0, 10.0) / 20.0))
    raise ValueError(kind)


def apply_faults(x: np.ndarray, faults: dict, sample_rate: int, *, level_from: int = 0) -> np.ndarray:
    """Apply the chain-made faults (compression, EQ, width, level) to ``x`` [frames, 2].

    The send and ``under_comp`` faults are made by choosing the base mix (see
    :func:`_synth_base`); this applies the rest in the order compression ->
    EQ and width -> level.  The over-compression make-up matches the level of
    ``x[level_from:]`` before and after.  Returns float32 [frames, 2].
    """
    y = np.ascontiguousarray(x, dtype=np.float32)
    if "over_comp" in faults:
        before = level_db(y[level_from:])
        y = apply_chain(y, sample_rate, faults["over_comp"], stages=("compressor",))
        y = (y * 10.0 ** ((before - level_db(y[level_from:])) / 20.0)).astype(np.float32)
    params = {_EQ_PARAM[k]: v for k, v in faults.items() if k in _EQ_PARAM}
    if "width" in faults:
        params["stereo_width"] = faults["width"]
    if params:
        y = apply_chain(y, sample_rate, params, stages=("eq", "width"))
    if "level" in faults:
        y = (y * 10.0 ** (faults["level"] / 20.0)).astype(np.float32)
    return y


def _synth_base(mix: synth.GoodMix, faults: dict, sl: slice) -> np.ndarray:
    """The good mix over ``sl`` with the send / compression faults chosen in."""
    rs = faults.get("reverb_dry", faults.get("reverb_wet", mix.reverb_send))
    ds = faults.get("delay_dry", faults.get("delay_wet", mix.delay_send))
    base = (mix.dry if "under_comp" in faults else mix.compressed)[sl].astype(np.float64)
    if rs:
        base += rs * mix.reverb_wet[sl]
    if ds:
        base += ds * mix.delay_wet[sl]
    return base.astype(np.float32)


def _synth_window(mix: synth.GoodMix, faults: dict, sl: slice, measure_from: int) -> np.ndarray:
    """:func:`_synth_base` held to the mix's tonal and stereo reference over the analysed window.

    A referenced mix meets its balance over the whole song; a 3 s window of it
    can stray (a bar without hats, a bass note that rings).  The correction
    that brings the *good* mix's window (``[measure_from:]`` of the segment) onto
    the song's target, and the side scale that gives it the song's side/mid
    ratio, are measured on the good segment and applied to the base (which
    carries the send and compression faults, so they stay audible), with the
    gain that keeps the good window's level (the level targets stay exact).
    """
    base = _synth_base(mix, faults, sl)
    if mix.tone_target_db is None:
        return base
    sr = mix.sample_rate
    good = mix.mix()[sl]
    corr = synth.tone_correction(good, sr, mix.tone_target_db, iterations=2, measure_from=measure_from)
    eq_good = synth.equalise(good[measure_from:], sr, corr)
    k = synth.side_scale(eq_good, mix.side_mid_target_db)
    # the window keeps the good mix's level there, so the level targets still read the song's level
    g = 10.0 ** ((level_db(good[measure_from:]) - level_db(synth.scale_side(eq_good, k))) / 20.0)
    return (g * synth.scale_side(synth.equalise(base, sr, corr), k)).astype(np.float32)


# ---------------------------------------------------------------------------
# real recordings


def find_audio_files(dirs: Iterable[str | os.PathLike]) -> list[Path]:
    """Audio files (by extension) under ``dirs``, recursively, sorted."""
    files: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"real-recordings folder {str(d)!r} does not exist")
        files.extend(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    return sorted(set(files))


def _readable(files: list[Path]) -> list[Path]:
    """The files soundfile can open; one warning names each that it cannot."""
    import warnings

    import soundfile as sf

    ok = []
    for p in files:
        try:
            info = sf.info(str(p))
            if info.frames > 0:
                ok.append(p)
            else:
                warnings.warn(f"skipping {p}: no audio frames", stacklevel=3)
        except Exception as exc:  # soundfile raises several types for unreadable files
            warnings.warn(f"skipping {p}: {exc}", stacklevel=3)
    return ok


def gated_level_db(x: np.ndarray, sample_rate: int) -> float:
    """Mean-square level (dBFS) over 400 ms blocks within 20 dB of the ungated level."""
    block = max(1, int(0.4 * sample_rate))
    nb = x.shape[0] // block
    if nb < 2:
        return level_db(x)
    ms = np.mean(np.square(x[: nb * block].astype(np.float64)).reshape(nb, block, -1), axis=(1, 2))
    ungated = 10.0 * math.log10(max(float(ms.mean()), 1e-20))
    keep = 10.0 * np.log10(np.maximum(ms, 1e-20)) > ungated - 20.0
    return 10.0 * math.log10(max(float(ms[keep].mean()), 1e-20))


@lru_cache(maxsize=16)
def load_real(path: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A real recording as float32 [frames, 2] at ``sample_rate``, at the reference level."""
    import soundfile as sf

    x, sr = sf.read(path, dtype="float64", always_2d=True)
    if x.shape[1] == 1:
        x = np.repeat(x, 2, axis=1)
    elif x.shape[1] > 2:
        x = x[:, :2]
    x = np.nan_to_num(x)
    if sr != sample_rate:
        import soxr

        x = soxr.resample(x, sr, sample_rate, quality="HQ")
    x *= 10.0 ** ((REFERENCE_LEVEL_DB - gated_level_db(x, sample_rate)) / 20.0)
    out = x.astype(np.float32)
    out.setflags(write=False)
    return out


# ---------------------------------------------------------------------------
# building


def _window_examples(
    audio_fn,
    n_frames_total: int,
    n_windows: int,
    rng: np.random.Generator,
    fault_kinds,
    good: dict | None,
    config: FeatureConfig,
    first_s: float,
):
    """Shared loop: pick windows, draw faults, render, extract features."""
    sr = SAMPLE_RATE
    w = input_window_frames(sr, config)
    pre = int(PREROLL_S * sr)
    first = max(int(first_s * sr), pre)
    last = n_frames_total - w
    feats, targets, metas = [], [], []
    for _ in range(n_windows):
        start = int(rng.integers(first, last + 1)) if last > first else max(0, last)
        s0 = max(0, start - pre)
        faults = sample_faults(rng, kinds=fault_kinds, good=good)
        seg = audio_fn(faults, slice(s0, start + w), start - s0)
        y = apply_faults(seg, faults, sr, level_from=start - s0)
        feats.append(extract_features(y[start - s0 :], sr, config))
        targets.append(normalise_targets(undo_targets(faults, good)))
        metas.append({"faults": _jsonable(faults), "start_s": start / sr})
    return feats, targets, metas


def _jsonable(d):
    if isinstance(d, dict):
        return {k: _jsonable(v) for k, v in d.items()}
    if isinstance(d, (np.floating, np.integer)):
        return d.item()
    return d


def _synth_task(args):
    seed, n_windows, group, config = args
    rng = np.random.default_rng(seed)
    song = synth.synth_song(rng, seconds=SONG_SECONDS)
    referenced = bool(rng.random() >= UNREFERENCED_FRACTION)
    mix = synth.mix_good(song, rng, referenced=referenced)
    good = {
        "reverb_send": mix.reverb_send,
        "delay_send": mix.delay_send,
        "comp_ratio": mix.comp_ratio,
        "makeup_db": mix.makeup_db,
    }
    feats, targets, metas = _window_examples(
        lambda faults, sl, measure_from: _synth_window(mix, faults, sl, measure_from),
        mix.compressed.shape[0],
        n_windows,
        rng,
        FAULT_KINDS,
        good,
        config,
        FIRST_WINDOW_S,
    )
    for m in metas:
        m.update(
            {
                "source": "synth",
                "style": song.style,
                "referenced": referenced,
                "instruments": dict(song.instruments),
                "tempo_bpm": round(song.tempo_bpm, 2),
                "good": dict(good),
            }
        )
    return feats, targets, [group] * n_windows, metas


def _real_task(args):
    seed, n_windows, group, config, path = args
    rng = np.random.default_rng(seed)
    audio = load_real(path)
    if audio.shape[0] < input_window_frames(SAMPLE_RATE, config):
        audio = np.concatenate(
            [np.zeros((input_window_frames(SAMPLE_RATE, config) - audio.shape[0], 2), np.float32), audio]
        )
    feats, targets, metas = _window_examples(
        lambda faults, sl, measure_from: audio[sl], audio.shape[0], n_windows, rng, REAL_FAULT_KINDS, None, config, 0.0
    )
    for m in metas:
        m.update({"source": "real", "file": os.path.basename(path)})
    return feats, targets, [group] * n_windows, metas


def _run_task(task):
    kind, args = task
    return _synth_task(args) if kind == "synth" else _real_task(args)


def _init_worker():
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


def build_dataset(
    n_examples: int,
    seed: int,
    *,
    real_dirs: Iterable[str | os.PathLike] = (),
    config: FeatureConfig = FEATURE_CONFIG,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    real_fraction: float = REAL_FRACTION,
) -> Dataset:
    """Synthesise (and optionally read) good mixes, corrupt them and extract features.

    Parameters
    ----------
    n_examples : int
        number of feature windows.
    seed : int
        everything is derived from it; the result does not depend on ``workers``.
    real_dirs : iterable of paths
        folders of real recordings; with at least one file, ``real_fraction``
        of the examples come from them (spread evenly over the files).
    config : FeatureConfig
        the feature definition (default :data:`FEATURE_CONFIG`).
    progress : callable(done, total), optional
        called after each song / file chunk.
    workers : int
        processes (1 = in this process).
    """
    if n_examples < 0:
        raise ValueError(f"n_examples must be >= 0, got {n_examples}")
    files = _readable(find_audio_files(real_dirs)) if real_dirs else []
    n_real = int(round(n_examples * real_fraction)) if files else 0
    n_synth = n_examples - n_real
    root = np.random.SeedSequence(int(seed))
    synth_ss, real_ss = root.spawn(2)
    tasks = []
    n_songs = int(math.ceil(n_synth / WINDOWS_PER_SONG))
    for i, ss in enumerate(synth_ss.spawn(n_songs)):
        k = min(WINDOWS_PER_SONG, n_synth - i * WINDOWS_PER_SONG)
        tasks.append(("synth", (ss, k, i, config)))
    if n_real:
        per_file = [n_real // len(files) + (1 if j < n_real % len(files) else 0) for j in range(len(files))]
        file_ss = real_ss.spawn(len(files))
        for j, (path, k) in enumerate(zip(files, per_file)):
            chunks = [16] * (k // 16) + ([k % 16] if k % 16 else [])
            for c, ss in zip(chunks, file_ss[j].spawn(len(chunks))):
                tasks.append(("real", (ss, c, n_songs + j, config, str(path))))

    feats: list = []
    targets: list = []
    groups: list = []
    meta: list = []
    done = 0

    def collect(res):
        nonlocal done
        f, t, g, m = res
        feats.extend(f)
        targets.extend(t)
        groups.extend(g)
        meta.extend(m)
        done += len(t)
        if progress is not None:
            progress(done, n_examples)

    if workers > 1 and len(tasks) > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as ex:
            for res in ex.map(_run_task, tasks, chunksize=4):
                collect(res)
    else:
        for task in tasks:
            collect(_run_task(task))

    shape = (0,) + config.shape
    return Dataset(
        features=np.stack(feats).astype(np.float32, copy=False) if feats else np.zeros(shape, np.float32),
        targets=np.stack(targets).astype(np.float32) if targets else np.zeros((0, len(AI_PARAM_NAMES)), np.float32),
        param_names=tuple(AI_PARAM_NAMES),
        groups=np.asarray(groups, dtype=np.int64),
        meta=meta,
    )


# ---------------------------------------------------------------------------
# split, save, load


def split_by_group(ds: Dataset, held_out_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train, test) with no song / file in both.

    Synthetic and real groups are split separately (each source keeps its
    share in the test set); within each, ``round(held_out_fraction * groups)``
    groups (at least one when there are two or more) are held out at random.
    """
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    rng = np.random.default_rng(seed)
    sources = np.array([m.get("source", "synth") for m in ds.meta]) if ds.meta else np.full(len(ds), "synth")
    test_groups: set = set()
    for src in sorted(set(sources.tolist())):
        g = np.unique(ds.groups[sources == src])
        n = int(round(held_out_fraction * len(g)))
        if held_out_fraction > 0 and n == 0 and len(g) >= 2:
            n = 1
        test_groups.update(rng.permutation(g)[:n].tolist())
    test = np.isin(ds.groups, np.array(sorted(test_groups), dtype=np.int64))
    return ds.subset(~test), ds.subset(test)


def save_dataset(ds: Dataset, path: str | os.PathLike) -> None:
    """Write ``ds`` to ``path`` (.npz, no pickles), atomically (temp file, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                features=ds.features.astype(np.float32, copy=False),
                targets=ds.targets.astype(np.float32, copy=False),
                param_names=np.array(list(ds.param_names), dtype=str),
                groups=ds.groups.astype(np.int64, copy=False),
                meta_json=np.array(json.dumps(ds.meta)),
            )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Read a dataset written by :func:`save_dataset`."""
    with np.load(path, allow_pickle=False) as z:
        missing = {"features", "targets", "param_names", "groups", "meta_json"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: not a mixpilot dataset (missing {', '.join(sorted(missing))})")
        return Dataset(
            features=z["features"].astype(np.float32, copy=False),
            targets=z["targets"].astype(np.float32, copy=False),
            param_names=tuple(str(s) for s in z["param_names"]),
            groups=z["groups"].astype(np.int64, copy=False),
            meta=json.loads(str(z["meta_json"])),
        )
