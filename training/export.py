"""ONNX export and model cards.

:func:`export_model` writes ``<name>.onnx`` (opset 17, input ``features
[batch, 2, n_mels, n_frames]`` with a dynamic batch, output ``params [batch,
n_params]``) and its card ``<name>.json``, both atomically (written to a
temporary file in the same folder, then renamed), checks that onnxruntime
reproduces the torch outputs, and measures the single-window latency with the
engine's own session options (:func:`inference.model.session_options`: one
thread, no spinning).

The card is what :class:`inference.model.OnnxModel` checks a model against;
see :func:`build_card` for its keys.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS
from mixpilot.inference.features import FEATURE_CONFIG, FeatureConfig
from mixpilot.inference.model import (
    DEFAULT_MODEL,
    DEFAULT_POINTER,
    INPUT_NAME,
    OUTPUT_NAME,
    session_options,
    sha256_file,
)

__all__ = [
    "OPSET",
    "CARD_VERSION",
    "export_onnx",
    "onnx_parity",
    "measure_latency",
    "normalisation_table",
    "build_card",
    "write_json_atomic",
    "export_model",
    "update_card",
    "write_default_pointer",
]

OPSET = 17
CARD_VERSION = "1.0"
_FILE_MODE = 0o644  # mkstemp creates 0600; shipped files are world-readable


def _replace_via_temp(path: Path, write_tmp: Callable[[str], None]) -> None:
    """``write_tmp(tmp)`` on a temp file beside ``path``, then mode 0o644 and ``os.replace``.

    The temp file is removed on any failure, KeyboardInterrupt included.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write_tmp(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file in the same folder and a rename."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")

    _replace_via_temp(Path(path), write)


def export_onnx(
    model: nn.Module, path: str | os.PathLike, *, feature_config: FeatureConfig = FEATURE_CONFIG, opset: int = OPSET
) -> Path:
    """Export ``model`` (eval mode) to ``path`` atomically; returns the path.

    Uses the TorchScript-based exporter (``dynamo=False``): it needs no
    ``onnxscript`` and gives plain opset-17 graphs for these models.
    """
    path = Path(path)
    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    model.eval()
    dummy = torch.full((1, *feature_config.shape), -60.0, dtype=torch.float32)

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (dummy,),
                tmp,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                do_constant_folding=True,
            )
        import onnx

        onnx.checker.check_model(tmp, full_check=True)

    _replace_via_temp(path, write)
    return path


def _ort_session(path: str | os.PathLike):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=session_options(), providers=["CPUExecutionProvider"])


@torch.no_grad()
def onnx_parity(model: nn.Module, path: str | os.PathLike, features: np.ndarray) -> float:
    """Max absolute difference between torch and onnxruntime outputs on ``features [n, 2, M, T]``."""
    model.eval()
    x = np.ascontiguousarray(features, dtype=np.float32)
    ref = model(torch.from_numpy(x)).numpy()
    sess = _ort_session(path)
    got = np.concatenate([sess.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + 1]})[0] for i in range(len(x))])
    batch = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    return float(max(np.max(np.abs(ref - got)), np.max(np.abs(ref - batch))))


def measure_latency(
    path: str | os.PathLike,
    *,
    feature_config: FeatureConfig = FEATURE_CONFIG,
    runs: int = 300,
    warmup: int = 30,
    seed: int = 0,
) -> dict[str, float]:
    """Single-window onnxruntime latency (ms) with the engine's session options: p50, p99, mean."""
    sess = _ort_session(path)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((1, *feature_config.shape)) * 15.0 - 60.0).astype(np.float32)
    feed = {INPUT_NAME: x}
    for _ in range(warmup):
        sess.run([OUTPUT_NAME], feed)
    t = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        sess.run([OUTPUT_NAME], feed)
        t[i] = time.perf_counter() - t0
    t *= 1e3
    return {"p50": float(np.percentile(t, 50)), "p99": float(np.percentile(t, 99)), "mean": float(t.mean())}


def normalisation_table() -> dict[str, dict[str, Any]]:
    """Per AI parameter: ``ai_min``, ``ai_max`` and ``scale`` as :func:`dsp.params.normalise` maps them."""
    out = {}
    for name in AI_PARAM_NAMES:
        p = PARAMS[PARAM_INDEX[name]]
        out[name] = {
            "ai_min": p.ai_minimum,
            "ai_max": p.ai_maximum,
            "unit": p.unit,
            "scale": "log" if p.glide == "geometric" else "linear",
        }
    return out


def build_card(
    *,
    name: str,
    architecture: str,
    model_config: Mapping[str, Any],
    input_normalisation: Mapping[str, Any],
    training_data: Mapping[str, Any],
    training: Mapping[str, Any],
    metrics: Mapping[str, Any],
    size_bytes: int,
    sha256: str,
    latency_ms: Mapping[str, float],
    parity_max_abs_diff: float | None,
    feature_config: FeatureConfig = FEATURE_CONFIG,
    version: str = CARD_VERSION,
    opset: int = OPSET,
    description: str = "",
) -> dict[str, Any]:
    """The card dict (JSON-safe); key order is the order it is written in."""
    return {
        "name": name,
        "version": version,
        "architecture": architecture,
        "description": description,
        "opset": opset,
        "feature_config": feature_config.as_dict(),
        "param_names": list(AI_PARAM_NAMES),
        "normalisation": normalisation_table(),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", *feature_config.shape],
            "dtype": "float32",
            "units": "dB (log-mel power of mid and side, floored at feature_config.floor_db)",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", len(AI_PARAM_NAMES)],
            "dtype": "float32",
            "units": "normalised 0..1 per param (see normalisation)",
        },
        "input_normalisation": dict(input_normalisation),
        "model_config": dict(model_config),
        "training_data": dict(training_data),
        "training": dict(training),
        "metrics": dict(metrics),
        "size_bytes": int(size_bytes),
        "latency_ms_p50": round(float(latency_ms["p50"]), 4),
        "latency_ms_p99": round(float(latency_ms["p99"]), 4),
        "latency_machine": f"{platform.machine()} {platform.processor() or platform.system()}, "
        f"onnxruntime 1 thread, no spinning",
        "parity_max_abs_diff": None if parity_max_abs_diff is None else float(parity_max_abs_diff),
        "sha256": sha256,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }


def export_model(
    model: nn.Module,
    out_dir: str | os.PathLike,
    name: str,
    *,
    parity_features: np.ndarray,
    training_data: Mapping[str, Any],
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    description: str = "",
    feature_config: FeatureConfig = FEATURE_CONFIG,
    latency_runs: int = 300,
    parity_tol: float = 1e-4,
) -> dict[str, Any]:
    """Export ``model`` to ``<out_dir>/<name>.onnx`` with its card ``<name>.json``; return the card.

    Raises RuntimeError when onnxruntime disagrees with torch by more than ``parity_tol``.
    """
    if name == DEFAULT_MODEL or not name.isidentifier():
        raise ValueError(f"model name must be an identifier other than {DEFAULT_MODEL!r}, got {name!r}")
    n_out = int(getattr(model, "config", {}).get("n_params", len(AI_PARAM_NAMES)))
    if n_out != len(AI_PARAM_NAMES):  # the card lists AI_PARAM_NAMES, one per output
        raise ValueError(f"{name}: the model has {n_out} outputs, the card would list {len(AI_PARAM_NAMES)} parameters")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(model, out / f"{name}.onnx", feature_config=feature_config)
    diff = onnx_parity(model, onnx_path, parity_features)
    if not diff <= parity_tol:
        raise RuntimeError(f"{name}: onnxruntime differs from torch by {diff:.3g} (> {parity_tol:g})")
    lat = measure_latency(onnx_path, feature_config=feature_config, runs=latency_runs)
    norm = _find_norm(model)
    card = build_card(
        name=name,
        architecture=getattr(model, "architecture", type(model).__name__),
        model_config=getattr(model, "config", {}),
        input_normalisation=norm.stats() if norm is not None else {},
        training_data=training_data,
        training=training or {},
        metrics=metrics or {},
        size_bytes=onnx_path.stat().st_size,
        sha256=sha256_file(onnx_path),
        latency_ms=lat,
        parity_max_abs_diff=diff,
        feature_config=feature_config,
        description=description,
    )
    write_json_atomic(out / f"{name}.json", card)
    return card


def _find_norm(model: nn.Module):
    from mixpilot.training.models import InputNorm

    for m in model.modules():
        if isinstance(m, InputNorm):
            return m
    return None


def update_card(card_path: str | os.PathLike, **updates: Any) -> dict[str, Any]:
    """Rewrite a card with some keys replaced (the graph, and so the sha256, stay as they are)."""
    card_path = Path(card_path)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card.update(updates)
    write_json_atomic(card_path, card)
    return card


def write_default_pointer(out_dir: str | os.PathLike, name: str, **extra: Any) -> Path:
    """Write ``<out_dir>/default.json`` = ``{"default": name, ...}``."""
    path = Path(out_dir) / DEFAULT_POINTER
    write_json_atomic(path, {"default": name, **extra})
    return path
