"""The ONNX model session: load a shipped or user model, check it against its card, predict.

A model is two files side by side: ``<name>.onnx`` (the graph, loaded by
onnxruntime — never a pickle) and ``<name>.json`` (its card: feature config,
parameter names in order, normalisation, training data, metrics, sha256 of
the graph).  :meth:`OnnxModel.load` takes a name from ``models_onnx/``
(``"default"``, ``"cnn"``, ``"ast"``, ``"ensemble"``) or a path to an
``.onnx`` file, and refuses a model whose card disagrees with this engine:

- the card must exist and parse, and carry every required key;
- the sha256 of the ``.onnx`` bytes must match the card (a truncated or
  replaced file is caught before onnxruntime sees it);
- ``param_names`` must be :data:`dsp.params.AI_PARAM_NAMES` or a part of it
  in the same order: a model trained before the AI parameter set grew (the
  shipped ones know the first ten) keeps predicting what it knows, and
  :meth:`OnnxModel.predict` answers "no move" (the normalised default) for
  the parameters it does not know; an unknown name or another order is
  refused;
- ``feature_config`` must equal :data:`inference.features.FEATURE_CONFIG`;
- the graph's input/output names and shapes must match the card and the
  feature shape: ``features [batch, 2, n_mels, n_frames]`` →
  ``params [batch, n_params]``.

Every failure raises :class:`ModelError` with a one-line message naming the
file and the problem; the worker turns it into one warning and falls back to
the heuristic.

The session follows the real-time rules of the engine: one intra-op and one
inter-op thread, sequential execution, spinning off (an idle spinning worker
would steal the audio thread's core), full graph optimisation, CPU provider.

``models_onnx/default.json`` is not a card but a pointer,
``{"default": "<name>", ...}``, naming the shipped default (the best model by
held-out MAE); ``load("default")`` follows it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mixpilot.dsp.errors import ModelError
from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS, denormalise, normalise
from mixpilot.inference.features import FEATURE_CONFIG, FeatureConfig

__all__ = [
    "ModelError",
    "OnnxModel",
    "MODELS_DIR",
    "DEFAULT_MODEL",
    "DEFAULT_POINTER",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "CARD_KEYS",
    "session_options",
    "resolve_model_path",
    "default_model_name",
    "default_window_model_name",
    "sha256_file",
]

#: folder of the shipped models (the ``models_onnx`` package next to ``inference``)
MODELS_DIR = Path(__file__).resolve().parent.parent / "models_onnx"
#: the name :meth:`OnnxModel.load` resolves through ``models_onnx/default.json``
DEFAULT_MODEL = "default"
#: file name of the default pointer inside a models folder
DEFAULT_POINTER = "default.json"
INPUT_NAME = "features"
OUTPUT_NAME = "params"
#: keys every card must carry
CARD_KEYS = (
    "name",
    "version",
    "architecture",
    "opset",
    "feature_config",
    "param_names",
    "normalisation",
    "input",
    "output",
    "training_data",
    "metrics",
    "size_bytes",
    "sha256",
)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def session_options():
    """onnxruntime options for the real-time engine: 1 thread each, sequential, no spinning."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only: loading must not chatter on stderr
    return so


def default_model_name(models_dir: str | os.PathLike = MODELS_DIR) -> str:
    """The model name that ``<models_dir>/default.json`` points to."""
    pointer = Path(models_dir) / DEFAULT_POINTER
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"no default model: {pointer} not found") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"unreadable default pointer {pointer}: {_one_line(exc)}") from None
    name = data.get("default") if isinstance(data, dict) else None
    if not isinstance(name, str) or not name or name == DEFAULT_MODEL or "/" in name or "\\" in name:
        raise ModelError(f'default pointer {pointer} must hold {{"default": "<model name>"}}')
    return name


def default_window_model_name(models_dir: str | os.PathLike = MODELS_DIR) -> str:
    """The best shipped *window* model (log-mel window in, parameters out): ``"window_default"`` in the
    pointer, else the default itself (when the default is a window model).  The default is the
    target-conditioned model since issue 15; the window models stay available by name."""
    pointer = Path(models_dir) / DEFAULT_POINTER
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    name = data.get("window_default") if isinstance(data, dict) else None
    if isinstance(name, str) and name and name != DEFAULT_MODEL and "/" not in name and "\\" not in name:
        return name
    return default_model_name(models_dir)


def resolve_model_path(name_or_path: str | os.PathLike, *, models_dir: str | os.PathLike = MODELS_DIR) -> Path:
    """Where ``name_or_path`` lives: a name in ``models_dir`` or a path to an ``.onnx`` file.

    A bare name (no folder, no suffix) is looked up in ``models_dir``;
    ``"default"`` follows the pointer.  Anything with a suffix other than
    ``.onnx`` is refused (models are never unpickled).
    """
    text = os.fspath(name_or_path)
    if not text:
        raise ModelError("empty model name")
    p = Path(text)
    is_name = isinstance(name_or_path, str) and p.name == text and p.suffix == ""
    if is_name:
        if text == DEFAULT_MODEL:
            text = default_model_name(models_dir)
        p = Path(models_dir) / f"{text}.onnx"
        if not p.is_file():
            known = sorted(q.stem for q in Path(models_dir).glob("*.onnx"))
            raise ModelError(
                f"model {text!r} not found in {models_dir} "
                f"(known: {', '.join(known) or 'none'}; or give a path to an .onnx file)"
            )
        return p
    if p.suffix.lower() != ".onnx":
        raise ModelError(f"refusing to load {p}: only .onnx model files are loaded (never pickles)")
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    return p


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _check_card(card: Any, card_path: Path, data: bytes) -> FeatureConfig:
    """Validate a parsed card against the graph bytes and this engine; return its feature config."""
    if not isinstance(card, dict):
        raise ModelError(f"model card {card_path} is not a JSON object")
    missing = [k for k in CARD_KEYS if k not in card]
    if missing:
        raise ModelError(f"model card {card_path} lacks {', '.join(missing)}")
    digest = sha256_bytes(data)
    if card["sha256"] != digest:
        raise ModelError(
            f"model file does not match its card {card_path.name} (sha256 {digest[:12]}… "
            f"!= {str(card['sha256'])[:12]}…): corrupt, truncated or replaced"
        )
    names = card["param_names"]
    got = names if isinstance(names, list) else []
    known = [n for n in AI_PARAM_NAMES if n in got]
    if not got or known != got:
        extra = [n for n in got if n not in AI_PARAM_NAMES]
        if not got:
            detail = "no parameter names"
        elif extra:
            detail = f"unknown {extra}"
        else:
            detail = "names in another order than the engine's table"
        raise ModelError(f"model card {card_path.name}: param_names mismatch with this engine ({detail})")
    fc = card["feature_config"]
    try:
        cfg = FeatureConfig.from_dict(fc)
    except (ValueError, TypeError) as exc:
        raise ModelError(f"model card {card_path.name}: bad feature_config: {_one_line(exc)}") from None
    if cfg != FEATURE_CONFIG:
        want = FEATURE_CONFIG.as_dict()
        diffs = [f"{k} card={v!r} engine={want[k]!r}" for k, v in cfg.as_dict().items() if want[k] != v]
        raise ModelError(f"model card {card_path.name}: feature_config mismatch: {'; '.join(diffs)}")
    io = (card["input"], card["output"])
    if not all(isinstance(d, dict) and "name" in d and "shape" in d for d in io):
        raise ModelError(f"model card {card_path.name}: input/output must give name and shape")
    want_in = ["batch", *FEATURE_CONFIG.shape]
    want_out = ["batch", len(names)]
    if card["input"]["name"] != INPUT_NAME or list(card["input"]["shape"]) != want_in:
        raise ModelError(
            f"model card {card_path.name}: input must be {INPUT_NAME} {want_in}, "
            f"card says {card['input']['name']} {card['input']['shape']}"
        )
    if card["output"]["name"] != OUTPUT_NAME or list(card["output"]["shape"]) != want_out:
        raise ModelError(
            f"model card {card_path.name}: output must be {OUTPUT_NAME} {want_out}, "
            f"card says {card['output']['name']} {card['output']['shape']}"
        )
    return cfg


def _dims_match(graph_shape: list, want: list) -> bool:
    """A graph shape matches when fixed dims agree; the batch dim may be symbolic or 1."""
    if len(graph_shape) != len(want):
        return False
    for g, w in zip(graph_shape, want):
        if w == "batch":
            if isinstance(g, int) and g not in (1,):
                return False
        elif g != w:
            return False
    return True


class OnnxModel:
    """An onnxruntime session over a validated model; see the module docstring.

    Attributes
    ----------
    name : str
        the card's name.
    path : Path
        the ``.onnx`` file.
    card : dict
        the parsed card.
    param_names : tuple[str, ...]
        output order of :meth:`predict` (== :data:`dsp.params.AI_PARAM_NAMES`).
    model_param_names : tuple[str, ...]
        what the graph predicts (the card's names: all of ``param_names`` or
        the part it was trained on); the rest are answered "no move".
    feature_config : FeatureConfig
    """

    def __init__(self, path: Path, card: dict, session: Any, feature_config: FeatureConfig) -> None:
        self.path = path
        self.card = card
        self.name = str(card.get("name", path.stem))
        self.param_names: tuple[str, ...] = AI_PARAM_NAMES
        self.model_param_names: tuple[str, ...] = tuple(card["param_names"])
        self._slots = np.array([AI_PARAM_NAMES.index(n) for n in self.model_param_names], dtype=np.int64)
        # the normalised default of every AI parameter: "no move" for those the graph does not predict
        self._neutral = np.array([normalise(n, PARAMS[PARAM_INDEX[n]].default) for n in AI_PARAM_NAMES], np.float32)
        self.feature_config = feature_config
        self._session = session
        self._input = INPUT_NAME
        self._output = OUTPUT_NAME
        self._shape = feature_config.shape
        self._single = np.zeros((1, *self._shape), dtype=np.float32)  # single-window input buffer
        self._feed = {self._input: self._single}
        self._outputs = [self._output]
        rows = [PARAMS[PARAM_INDEX[n]] for n in AI_PARAM_NAMES]
        self._ai_lo = np.array([p.ai_minimum for p in rows])
        self._ai_hi = np.array([p.ai_maximum for p in rows])

    def __repr__(self) -> str:
        return f"OnnxModel({self.name!r}, {str(self.path)!r})"

    @classmethod
    def load(
        cls, name_or_path: str | os.PathLike = DEFAULT_MODEL, *, models_dir: str | os.PathLike = MODELS_DIR
    ) -> OnnxModel:
        """Load and validate a model; raises :class:`ModelError` on any problem."""
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
            raise ModelError(f"onnxruntime is not installed: {_one_line(exc)}") from None
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
        cfg = _check_card(card, card_path, data)
        try:
            session = ort.InferenceSession(data, sess_options=session_options(), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception family
            raise ModelError(f"corrupt ONNX model {path.name}: {_one_line(exc)}") from None
        ins, outs = session.get_inputs(), session.get_outputs()
        want_in = ["batch", *cfg.shape]
        want_out = ["batch", len(card["param_names"])]
        if len(ins) != 1 or ins[0].name != INPUT_NAME or not _dims_match(list(ins[0].shape), want_in):
            got = [(i.name, i.shape) for i in ins]
            raise ModelError(f"model {path.name}: graph input {got} does not match {INPUT_NAME} {want_in}")
        if len(outs) != 1 or outs[0].name != OUTPUT_NAME or not _dims_match(list(outs[0].shape), want_out):
            got = [(o.name, o.shape) for o in outs]
            raise ModelError(f"model {path.name}: graph output {got} does not match {OUTPUT_NAME} {want_out}")
        if ins[0].type != "tensor(float)" or outs[0].type != "tensor(float)":
            raise ModelError(f"model {path.name}: input and output must be float32 tensors")
        return cls(path, card, session, cfg)

    # ------------------------------------------------------------------ predict

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Normalised AI parameters (0..1, ``param_names`` order).

        Parameters
        ----------
        features : np.ndarray [shape=(2, n_mels, n_frames) or (n, 2, n_mels, n_frames)]
            dB features from :func:`inference.features.extract_features`.

        Returns
        -------
        np.ndarray [shape=(n_params,) or (n, n_params)], float32, clipped to 0..1.

        Raises ModelError on a wrong shape, non-finite input or non-finite output.
        """
        x = np.asarray(features)
        if x.shape == self._shape:
            np.copyto(self._single[0], x, casting="unsafe")
            if not np.isfinite(self._single).all():
                raise ModelError("features contain NaN or Inf")
            out = self._session.run(self._outputs, self._feed)[0][0]
        elif x.ndim == 4 and x.shape[1:] == self._shape:
            xb = np.ascontiguousarray(x, dtype=np.float32)
            if not np.isfinite(xb).all():
                raise ModelError("features contain NaN or Inf")
            if len(xb) == 0:
                return np.zeros((0, len(self.param_names)), np.float32)
            out = self._session.run(self._outputs, {self._input: xb})[0]
        else:
            raise ModelError(f"features must have shape {self._shape} or (n, *{self._shape}), got {x.shape}")
        if not np.isfinite(out).all():
            raise ModelError(f"model {self.name} produced NaN or Inf")
        out = np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
        if len(self._slots) == len(AI_PARAM_NAMES):
            return out
        full = np.broadcast_to(self._neutral, (*out.shape[:-1], len(AI_PARAM_NAMES))).copy()
        full[..., self._slots] = out
        return full

    def denormalise(self, normalised: np.ndarray) -> np.ndarray:
        """Normalised ``[n_params]`` → values via :func:`dsp.params.denormalise`, clamped to the AI ranges."""
        x = np.clip(np.asarray(normalised, np.float64), 0.0, 1.0)
        if x.shape != (len(self.param_names),):
            raise ModelError(f"expected {len(self.param_names)} normalised values, got shape {x.shape}")
        v = np.array([denormalise(n, float(xi)) for n, xi in zip(self.param_names, x)])
        return np.clip(v, self._ai_lo, self._ai_hi)

    def predict_params(self, features: np.ndarray) -> dict[str, float]:
        """``{name: value}`` for one window: denormalised and clamped to the AI-safe ranges."""
        x = np.asarray(features)
        if x.shape != self._shape:
            raise ModelError(f"predict_params takes one window of shape {self._shape}, got {x.shape}")
        values = self.denormalise(self.predict(x))
        return {n: float(v) for n, v in zip(self.param_names, values)}

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.card.get("metrics", {})
