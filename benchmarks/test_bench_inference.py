"""pytest-benchmark: feature extraction and inference for one 3 s window at 48 kHz.

``pytest benchmarks/ --benchmark-only`` (repo root).  The window is the first 3 s of the demo
song.  Like ``mixpilot bench``, on one core (:func:`benchmarks.bench.one_core`: every thread
pinned to one CPU, the BLAS pool at one thread; onnxruntime runs one intra-op thread as
:func:`inference.model.session_options` configures it).  Every ``.onnx`` in ``models_onnx/``
with a card is benchmarked (skipped while there is none), and so are the heuristic and
whatever ``--model default`` resolves to.
"""

from __future__ import annotations

import numpy as np
import pytest

from mixpilot.benchmarks.conftest import SAMPLE_RATE
from mixpilot.dsp.params import AI_PARAM_NAMES
from mixpilot.inference.features import FEATURE_CONFIG, extract_features, input_window_frames
from mixpilot.inference.heuristic import HeuristicEstimator
from mixpilot.inference.model import MODELS_DIR, OnnxModel, default_window_model_name
from mixpilot.inference.target_model import is_target_model
from mixpilot.inference.worker import InferenceWorker, load_estimator

W = input_window_frames(SAMPLE_RATE, FEATURE_CONFIG)
# the window models (a target-conditioned model reads descriptors, not feature windows: inference.target_model)
MODELS = sorted(p.stem for p in MODELS_DIR.glob("*.onnx") if p.with_suffix(".json").exists() and not is_target_model(p))


@pytest.fixture(scope="module", autouse=True)
def _one_core():
    from mixpilot.benchmarks.bench import one_core

    with one_core() as cpu:
        yield cpu


@pytest.fixture(scope="module")
def window(program) -> np.ndarray:
    return np.ascontiguousarray(program[:W])


@pytest.fixture(scope="module")
def features(window) -> np.ndarray:
    return extract_features(window, SAMPLE_RATE)


@pytest.mark.benchmark(group="inference")
def test_extract_features_3s_48k(benchmark, window):
    """inference.features.extract_features: mid/side, soxr to 22.05 kHz, STFT, mel, dB."""
    extract_features(window, SAMPLE_RATE)
    out = benchmark(extract_features, window, SAMPLE_RATE)
    assert out.shape == FEATURE_CONFIG.shape


@pytest.mark.benchmark(group="inference")
def test_predict_heuristic(benchmark, features):
    est = HeuristicEstimator()
    est.predict(features)
    benchmark(est.predict, features)


@pytest.mark.benchmark(group="inference")
def test_predict_default(benchmark, features):
    """The best shipped window model (``window_default``; the default model is target-conditioned)."""
    est = load_estimator(default_window_model_name(), lambda text: None)
    benchmark.extra_info["estimator"] = est.name
    est.predict(features)
    benchmark(est.predict, features)


@pytest.mark.benchmark(group="inference")
@pytest.mark.skipif(not MODELS, reason="no ONNX model in models_onnx/ yet")
@pytest.mark.parametrize("name", MODELS or ["none"])
def test_predict_onnx(benchmark, features, name):
    model = OnnxModel.load(name)
    model.predict(features)
    benchmark(model.predict, features)


@pytest.mark.benchmark(group="inference")
def test_worker_hop(benchmark, program):
    """InferenceWorker.compute: one hop as the real-time worker does it (ring read, features, predict, blend)."""
    from mixpilot.realtime.engine import AnalysisRing

    ring = AnalysisRing(len(program), 2)
    ring.write(program)
    est = load_estimator(default_window_model_name(), lambda text: None)
    worker = InferenceWorker(est, ring, SAMPLE_RATE, lambda v, g, e: None)
    end = len(program)
    worker.compute(end)
    values = benchmark(worker.compute, end)
    assert len(values) == len(AI_PARAM_NAMES)


@pytest.mark.benchmark(group="inference")
def test_target_model_hop(benchmark, program):
    """One hop of the default (target-conditioned) model as the worker runs it: 0.5 s of audio into the
    running statistics, then the model's result (descriptors readout, conditioning, inference)."""
    est = load_estimator("default", lambda text: None)
    est.prepare(SAMPLE_RATE, 2)
    hop = int(0.5 * SAMPLE_RATE)
    x = np.ascontiguousarray(program[: 6 * hop], dtype=np.float32)
    for i in range(0, 5 * hop, hop):  # 2.5 s heard: past the matcher's minimum
        est.update(x[i : i + hop])
    est.values()

    def one_hop():
        est.update(x[5 * hop : 6 * hop])
        return est.values()

    values = benchmark(one_hop)
    assert values and all(np.isfinite(v) for v in values.values())
