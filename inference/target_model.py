"""The target-conditioned model: running input descriptors + a target -> the tonal-match EQ and the widths.

A model of this kind (card ``"kind": "target-conditioned"``) does not read
the log-mel window.  Its one input is the **conditioning vector**
(:func:`conditioning`, :data:`CONDITIONING_NAMES`, one definition for
training and serving):

* the input's long-term descriptors as the matcher keeps them
  (:class:`dsp.descriptors.DescriptorAccumulator` since the start, or the
  whole file offline): mid level per 1/3-octave band re the integrated
  loudness, side/mid width per band and overall;
* the target (:class:`inference.profile.Profile`: a reference, several
  references, or a shipped profile such as the default): the same
  quantities with their tolerances (0 for a single reference, the spread of
  good masters for a shipped profile);
* the "literal" correction ``target - input`` (mid, mean removed, and
  width per band) and ``log10`` of the seconds of input heard;
* (version 2) how much each band's balance moves across time in the input
  and in the target (``mid_spread_db``: the std over 3 s segments of the
  segment's band level re its loudness; for a profile the mean over its
  tracks): where a band moves a lot, a difference from the target there is
  more likely content than processing.  A card names its version; version 1
  (without the spreads) still loads.

The graph's output ``params [batch, n]`` is the normalised value (0..1,
:func:`dsp.params.normalise`) of the parameters the card lists
(``param_names``: the ten ``tone_*`` bands, ``stereo_width``,
``width_low``, ``width_high``); every other AI parameter is answered "no
move" (its normalised default), exactly as :class:`inference.model.OnnxModel`
does for a model that knows part of the AI set.  Level, loudness and
dynamics are left to the loudness delivery and the analytic rules.

What the model learnt and why it can beat a literal matcher: see
``training/README.md`` ("The target-conditioned model").  Loading checks the
card exactly like :mod:`inference.model` (sha256 of the graph, parameter
names, the conditioning version and size, input/output names and shapes);
every failure is a :class:`~dsp.errors.ModelError` with one line.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mixpilot.dsp.descriptors import N_BANDS
from mixpilot.dsp.errors import ModelError
from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS, denormalise, normalise

from .model import MODELS_DIR, OUTPUT_NAME, resolve_model_path, session_options, sha256_bytes

__all__ = [
    "CONDITIONING_NAMES",
    "CONDITIONING_NAMES_BY_VERSION",
    "CONDITIONING_VERSION",
    "INPUT_NAME",
    "KIND",
    "MODEL_PARAM_NAMES",
    "N_CONDITIONING",
    "PreparedTarget",
    "TargetModel",
    "TargetVector",
    "conditioning",
    "is_target_model",
    "prepare_target",
]

KIND = "target-conditioned"
INPUT_NAME = "conditioning"
#: the conditioning this engine builds for new models; :data:`CONDITIONING_NAMES_BY_VERSION` lists every
#: version a card may name (1: without the time spreads, the first shipped model)
CONDITIONING_VERSION = 2
#: what the shipped target-conditioned model predicts (a part of AI_PARAM_NAMES, in its order)
MODEL_PARAM_NAMES = tuple(
    n for n in AI_PARAM_NAMES if n.startswith("tone_") or n in ("stereo_width", "width_low", "width_high")
)
_LEVEL_LO, _LEVEL_HI = -90.0, 10.0  # band levels re loudness are clipped to this (an empty band reads -90)
_WIDTH_LO, _WIDTH_HI = -40.0, 20.0  # side/mid ratios (dB) likewise
_SECONDS_LO, _SECONDS_HI = 0.5, 3600.0


def _names(version: int = 1) -> tuple[str, ...]:
    b = [f"{int(f) if f >= 100 else f:g}" for f in _bands()]
    out: list[str] = []
    out += [f"in_mid_{x}" for x in b]
    out += [f"in_width_{x}" for x in b]
    out += ["in_width"]
    out += [f"t_mid_{x}" for x in b]
    out += [f"t_mid_tol_{x}" for x in b]
    out += [f"t_width_{x}" for x in b]
    out += [f"t_width_tol_{x}" for x in b]
    out += ["t_width", "t_width_tol"]
    out += [f"d_mid_{x}" for x in b]
    out += [f"d_width_{x}" for x in b]
    out += ["log10_seconds"]
    if version >= 2:  # how much each band's balance moves across time (3 s segments), input and target
        out += [f"in_mid_spread_{x}" for x in b]
        out += [f"t_mid_spread_{x}" for x in b]
    return tuple(out)


def _bands() -> tuple[float, ...]:
    from mixpilot.dsp.descriptors import BAND_NOMINAL_HZ

    return BAND_NOMINAL_HZ


CONDITIONING_NAMES_BY_VERSION: dict[int, tuple[str, ...]] = {1: _names(1), 2: _names(2)}
CONDITIONING_NAMES: tuple[str, ...] = CONDITIONING_NAMES_BY_VERSION[CONDITIONING_VERSION]
N_CONDITIONING = len(CONDITIONING_NAMES)


@dataclass(frozen=True)
class TargetVector:
    """The part of a target the model reads (mean and tolerance of mid levels and widths)."""

    mid_db: np.ndarray
    mid_tol_db: np.ndarray
    width_band_db: np.ndarray
    width_band_tol_db: np.ndarray
    width_db: float
    width_tol_db: float
    #: mean over the target's items of each band's spread across time (dB); None: not known (reads 0)
    mid_spread_db: np.ndarray | None = None

    @classmethod
    def from_profile(cls, p: Any) -> TargetVector:
        """From a :class:`~inference.profile.Profile` (or anything with its attributes)."""
        return cls(
            np.asarray(p.mid_db, np.float64),
            np.asarray(p.mid_tol_db, np.float64),
            np.asarray(p.width_band_db, np.float64),
            np.asarray(p.width_band_tol_db, np.float64),
            float(p.width_db),
            float(p.width_tol_db),
            np.asarray(p.mid_time_spread_db, np.float64) if hasattr(p, "mid_time_spread_db") else None,
        )

    @classmethod
    def from_descriptors(cls, items: list) -> TargetVector:
        """Mean and tolerance (std across items, ddof 1; 0 for one) as :meth:`Profile.from_descriptors` makes them."""
        mid = np.array([np.asarray(d.mid_db, np.float64) for d in items])
        wb = np.array([np.asarray(d.width_band_db, np.float64) for d in items])
        w = np.array([float(d.width_db) for d in items])
        ddof = 1 if len(items) > 1 else 0
        spreads = [getattr(d, "mid_spread_db", None) for d in items]
        spread = None if any(x is None for x in spreads) else np.array(spreads, np.float64).mean(0)
        return cls(
            mid.mean(0),
            mid.std(0, ddof=ddof),
            wb.mean(0),
            wb.std(0, ddof=ddof),
            float(w.mean()),
            float(w.std(ddof=ddof)),
            spread,
        )


def _clean(a: Any, lo: float, hi: float, fill: float) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    return np.clip(np.where(np.isfinite(x), x, fill), lo, hi)


@dataclass(frozen=True)
class PreparedTarget:
    """The target's part of the conditioning, cleaned once (:func:`prepare_target`): it does not change per hop."""

    t_mid: np.ndarray
    t_w: np.ndarray
    t_width: float
    mid_tol: np.ndarray
    w_tol: np.ndarray
    width_tol: float
    spread: np.ndarray  # cleaned mid_spread_db (zeros when not known)


def prepare_target(target: Any) -> PreparedTarget:
    """The target's cleaned values (a :class:`TargetVector` or a :class:`~inference.profile.Profile`) as
    :func:`conditioning` reads them; pass the result as ``target`` to skip the cleaning per call."""
    t = target if isinstance(target, TargetVector) else TargetVector.from_profile(target)
    return PreparedTarget(
        _clean(t.mid_db, _LEVEL_LO, _LEVEL_HI, _LEVEL_LO),
        _clean(t.width_band_db, _WIDTH_LO, _WIDTH_HI, _WIDTH_LO),
        float(_clean([t.width_db], _WIDTH_LO, _WIDTH_HI, _WIDTH_LO)[0]),
        _clean(t.mid_tol_db, 0.0, 30.0, 0.0),
        _clean(t.width_band_tol_db, 0.0, 30.0, 0.0),
        float(_clean([t.width_tol_db], 0.0, 30.0, 0.0)[0]),
        _clean(np.zeros(N_BANDS) if t.mid_spread_db is None else t.mid_spread_db, 0.0, 30.0, 0.0),
    )


def conditioning(inp: Any, seconds: float, target: Any, version: int = CONDITIONING_VERSION) -> np.ndarray:
    """The conditioning vector of ``version`` (``[N_CONDITIONING]`` float32 for the current one; module docstring).

    ``inp``: the input's descriptors (:class:`~dsp.descriptors.Descriptors` or anything with
    ``mid_db``, ``width_band_db``, ``width_db``); ``seconds``: input heard; ``target``: a
    :class:`TargetVector`, a :class:`~inference.profile.Profile` or a :class:`PreparedTarget`
    (:func:`prepare_target`, the same values).  NaN bands (above Nyquist, or nothing measured yet)
    read as an empty band.
    """
    tp = target if isinstance(target, PreparedTarget) else prepare_target(target)
    in_mid = _clean(inp.mid_db, _LEVEL_LO, _LEVEL_HI, _LEVEL_LO)
    in_w = _clean(inp.width_band_db, _WIDTH_LO, _WIDTH_HI, _WIDTH_LO)
    in_width = float(_clean([inp.width_db], _WIDTH_LO, _WIDTH_HI, _WIDTH_LO)[0])
    t_mid = tp.t_mid
    t_w = tp.t_w
    d_mid = t_mid - in_mid
    live = (t_mid > -60.0) & (in_mid > -60.0)
    if np.any(live):
        d_mid = d_mid - float(np.mean(d_mid[live]))
    d_mid = np.clip(d_mid, -30.0, 30.0)
    sec = min(max(float(seconds), _SECONDS_LO), _SECONDS_HI) if math.isfinite(float(seconds)) else _SECONDS_LO
    v = np.concatenate(
        [
            in_mid,
            in_w,
            [in_width],
            t_mid,
            tp.mid_tol,
            t_w,
            tp.w_tol,
            [tp.t_width, tp.width_tol],
            d_mid,
            np.clip(t_w - in_w, -30.0, 30.0),
            [math.log10(sec)],
        ]
    )
    if version >= 2:
        in_spread = getattr(inp, "mid_spread_db", None)
        v = np.concatenate(
            [
                v,
                _clean(np.zeros(N_BANDS) if in_spread is None else in_spread, 0.0, 30.0, 0.0),
                tp.spread,
            ]
        )
    assert v.shape == (len(CONDITIONING_NAMES_BY_VERSION[version]),), v.shape
    return v.astype(np.float32)


CARD_KEYS = (
    "name",
    "kind",
    "version",
    "architecture",
    "opset",
    "conditioning",
    "param_names",
    "normalisation",
    "input",
    "output",
    "training_data",
    "metrics",
    "size_bytes",
    "sha256",
)


def is_target_model(name_or_path: str | os.PathLike, *, models_dir: str | os.PathLike = MODELS_DIR) -> bool:
    """True when the card next to the resolved model says ``"kind": "target-conditioned"`` (False if unreadable)."""
    try:
        path = resolve_model_path(name_or_path, models_dir=models_dir)
        card = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (ModelError, OSError, ValueError):
        return False
    return isinstance(card, dict) and card.get("kind") == KIND


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class TargetModel:
    """An onnxruntime session over a validated target-conditioned model (module docstring)."""

    def __init__(self, path: Path, card: dict, session: Any) -> None:
        self.path = path
        self.card = card
        self.name = str(card.get("name", path.stem))
        self.param_names: tuple[str, ...] = AI_PARAM_NAMES
        self.model_param_names: tuple[str, ...] = tuple(card["param_names"])
        self._slots = np.array([AI_PARAM_NAMES.index(n) for n in self.model_param_names], dtype=np.int64)
        self._neutral = np.array([normalise(n, PARAMS[PARAM_INDEX[n]].default) for n in AI_PARAM_NAMES], np.float32)
        self._session = session
        self.conditioning_version = int(card["conditioning"]["version"])
        #: the model's share of the tone and width moves; the rest is the analytic matcher's (1: the model alone)
        self.model_share = float(card.get("model_share", 1.0))
        self.n_conditioning = len(CONDITIONING_NAMES_BY_VERSION[self.conditioning_version])
        self._single = np.zeros((1, self.n_conditioning), np.float32)
        self._feed = {INPUT_NAME: self._single}
        rows = [PARAMS[PARAM_INDEX[n]] for n in AI_PARAM_NAMES]
        self._ai_lo = np.array([p.ai_minimum for p in rows])
        self._ai_hi = np.array([p.ai_maximum for p in rows])
        self._defaults = {p.name: p.default for p in rows}
        #: :meth:`params`' cache of the target's cleaned part (:func:`prepare_target`), by the target's identity
        self._target_of: Any = None
        self._target_prep: PreparedTarget | None = None

    def __repr__(self) -> str:
        return f"TargetModel({self.name!r}, {str(self.path)!r})"

    @classmethod
    def load(cls, name_or_path: str | os.PathLike = "default", *, models_dir: str | os.PathLike = MODELS_DIR) -> Any:
        """Load and validate; :class:`ModelError` (one line) on any problem."""
        import onnxruntime as ort

        path = resolve_model_path(name_or_path, models_dir=models_dir)
        card_path = path.with_suffix(".json")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model file {path}: {_one_line(exc)}") from None
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"model card not found: {card_path} (every .onnx needs its .json card)") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"model card {card_path} does not parse: {_one_line(exc)}") from None
        _check_card(card, card_path, data)
        try:
            session = ort.InferenceSession(data, sess_options=session_options(), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception family
            raise ModelError(f"corrupt ONNX model {path.name}: {_one_line(exc)}") from None
        ins, outs = session.get_inputs(), session.get_outputs()
        n_cond = len(CONDITIONING_NAMES_BY_VERSION[card["conditioning"]["version"]])
        if len(ins) != 1 or ins[0].name != INPUT_NAME or list(ins[0].shape)[1:] != [n_cond]:
            raise ModelError(f"model {path.name}: graph input {[(i.name, i.shape) for i in ins]} is not conditioning")
        n_out = len(card["param_names"])
        if len(outs) != 1 or outs[0].name != OUTPUT_NAME or list(outs[0].shape)[1:] != [n_out]:
            raise ModelError(f"model {path.name}: graph output {[(o.name, o.shape) for o in outs]} != params [{n_out}]")
        return cls(path, card, session)

    def predict(self, cond: np.ndarray) -> np.ndarray:
        """Normalised AI parameters (``AI_PARAM_NAMES`` order, 0..1) for ``cond`` [N] or [n, N]."""
        x = np.asarray(cond)
        n_cond = self.n_conditioning
        if x.shape == (n_cond,):
            np.copyto(self._single[0], x, casting="unsafe")
            if not np.isfinite(self._single).all():
                raise ModelError("conditioning contains NaN or Inf")
            out = self._session.run([OUTPUT_NAME], self._feed)[0][0]
        elif x.ndim == 2 and x.shape[1] == n_cond:
            xb = np.ascontiguousarray(x, np.float32)
            if not np.isfinite(xb).all():
                raise ModelError("conditioning contains NaN or Inf")
            out = self._session.run([OUTPUT_NAME], {INPUT_NAME: xb})[0]
        else:
            raise ModelError(f"conditioning must have shape ({n_cond},) or (n, {n_cond}), got {x.shape}")
        if not np.isfinite(out).all():
            raise ModelError(f"model {self.name} produced NaN or Inf")
        out = np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
        full = np.broadcast_to(self._neutral, (*out.shape[:-1], len(AI_PARAM_NAMES))).copy()
        full[..., self._slots] = out
        return full

    def denormalise(self, normalised: np.ndarray) -> np.ndarray:
        x = np.clip(np.asarray(normalised, np.float64), 0.0, 1.0)
        v = np.array([denormalise(n, float(xi)) for n, xi in zip(self.param_names, x)])
        return np.clip(v, self._ai_lo, self._ai_hi)

    def params(self, inp: Any, seconds: float, target: Any) -> dict[str, float]:
        """``{name: value}`` of every AI parameter for the input's descriptors after ``seconds`` and the target.

        The parameters the graph does not predict are their defaults (no move).
        """
        if target is not self._target_of:  # the target's cleaned part, kept while the same target object comes
            self._target_prep = prepare_target(target)
            self._target_of = target
        np.copyto(
            self._single[0], conditioning(inp, seconds, self._target_prep, self.conditioning_version), casting="unsafe"
        )
        if not np.isfinite(self._single).all():
            raise ModelError("conditioning contains NaN or Inf")
        out = self._session.run([OUTPUT_NAME], self._feed)[0][0]
        if not np.isfinite(out).all():
            raise ModelError(f"model {self.name} produced NaN or Inf")
        values = dict(self._defaults)
        for n, x in zip(self.model_param_names, np.clip(out, 0.0, 1.0)):
            i = PARAM_INDEX[n]
            values[n] = min(max(denormalise(n, float(x)), PARAMS[i].ai_minimum), PARAMS[i].ai_maximum)
        return values

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.card.get("metrics", {})


def _check_card(card: Any, card_path: Path, data: bytes) -> None:
    if not isinstance(card, dict):
        raise ModelError(f"model card {card_path} is not a JSON object")
    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise ModelError(f"model card {card_path} lacks {', '.join(missing)}")
    if card["kind"] != KIND:
        raise ModelError(f"model card {card_path.name}: kind {card['kind']!r} is not {KIND!r}")
    digest = sha256_bytes(data)
    if card["sha256"] != digest:
        raise ModelError(
            f"model file does not match its card {card_path.name} (sha256 {digest[:12]}… "
            f"!= {str(card['sha256'])[:12]}…): corrupt, truncated or replaced"
        )
    names = card["param_names"]
    got = names if isinstance(names, list) else []
    if not got or [n for n in AI_PARAM_NAMES if n in got] != got:
        raise ModelError(f"model card {card_path.name}: param_names mismatch with this engine")
    cond = card["conditioning"]
    if (
        not isinstance(cond, dict)
        or not isinstance(cond.get("version"), int)
        or cond["version"] not in CONDITIONING_NAMES_BY_VERSION
        or list(cond.get("names", [])) != list(CONDITIONING_NAMES_BY_VERSION[cond["version"]])
    ):
        known = ", ".join(f"{v} ({len(n)} values)" for v, n in CONDITIONING_NAMES_BY_VERSION.items())
        raise ModelError(f"model card {card_path.name}: conditioning mismatch (this engine reads versions {known})")
    share = card.get("model_share", 1.0)
    if not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
        raise ModelError(f"model card {card_path.name}: model_share must be a number in 0..1, got {share!r}")
    if card["input"].get("name") != INPUT_NAME or card["output"].get("name") != OUTPUT_NAME:
        raise ModelError(f"model card {card_path.name}: input/output must be {INPUT_NAME} -> {OUTPUT_NAME}")
    if N_BANDS != 29:  # pragma: no cover - the conditioning names pin the band count
        raise ModelError("band count changed")
