"""The ONNX model session: the shipped models load, predict, and refuse bad files.

Runs without PyTorch: only the shipped ``models_onnx/*.onnx`` and their cards
are used, plus copies of them broken in one way each.  The reference for a
prediction is the card itself (parameter order, feature shape) and
``dsp.params.denormalise`` for the values.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS, denormalise
from mixpilot.inference.features import FEATURE_CONFIG, extract_features
from mixpilot.inference.model import (
    DEFAULT_MODEL,
    MODELS_DIR,
    ModelError,
    OnnxModel,
    default_model_name,
    default_window_model_name,
    session_options,
    sha256_file,
)

SHAPE = FEATURE_CONFIG.shape
SHIPPED = ("cnn", "ast", "ensemble")


def _features(rng: np.random.Generator, n: int | None = None) -> np.ndarray:
    shape = SHAPE if n is None else (n, *SHAPE)
    return (rng.standard_normal(shape) * 8.0 - 55.0).astype(np.float32)


@pytest.fixture
def model_copy(tmp_path: Path):
    """A writable copy of the shipped default window model (``model.onnx`` + ``model.json``) in tmp_path."""
    name = default_window_model_name()
    dst = tmp_path / "model.onnx"
    shutil.copyfile(MODELS_DIR / f"{name}.onnx", dst)
    shutil.copyfile(MODELS_DIR / f"{name}.json", tmp_path / "model.json")
    return dst


def _edit_card(onnx_path: Path, **changes) -> None:
    card_path = onnx_path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card.update(changes)
    card_path.write_text(json.dumps(card))


def test_default_pointer_names_a_shipped_model_within_budget():
    # the default is the target-conditioned model (issue 15); the best window model is named beside it
    from mixpilot.inference.target_model import is_target_model

    assert is_target_model(default_model_name()) and is_target_model(DEFAULT_MODEL)
    name = default_window_model_name()
    assert name in SHIPPED
    card = json.loads((MODELS_DIR / f"{name}.json").read_text())
    assert card["size_bytes"] <= 5 * 1024 * 1024 == 5242880
    assert card["latency_ms_p50"] <= 3.0
    # the default is the best shipped model by held-out MAE
    maes = {n: json.loads((MODELS_DIR / f"{n}.json").read_text())["metrics"]["held_out_mae"] for n in SHIPPED}
    assert maes[name] == min(maes.values())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_load_and_predict(rng, name):
    m = OnnxModel.load(name)
    assert m.param_names == AI_PARAM_NAMES
    assert m.feature_config == FEATURE_CONFIG
    x = _features(rng, 3)
    batch = m.predict(x)
    assert batch.shape == (3, len(AI_PARAM_NAMES)) and batch.dtype == np.float32
    assert np.all((batch >= 0) & (batch <= 1))
    single = m.predict(x[1])
    assert single.shape == (len(AI_PARAM_NAMES),)
    np.testing.assert_allclose(single, batch[1], atol=1e-5)
    assert m.predict(x[:0]).shape == (0, len(AI_PARAM_NAMES))


def test_card_describes_the_graph():
    for name in SHIPPED:
        card = json.loads((MODELS_DIR / f"{name}.json").read_text())
        assert card["sha256"] == sha256_file(MODELS_DIR / f"{name}.onnx")
        assert card["size_bytes"] == (MODELS_DIR / f"{name}.onnx").stat().st_size
        # trained on the first ten AI parameters: an ordered part of today's AI set (the rest: no move)
        assert card["param_names"] == [n for n in AI_PARAM_NAMES if n in card["param_names"]]
        assert len(card["param_names"]) == 10
        assert card["feature_config"] == FEATURE_CONFIG.as_dict()
        assert card["input"]["shape"] == ["batch", *SHAPE] and card["output"]["shape"] == ["batch", 10]
        assert card["opset"] >= 17 and card["parity_max_abs_diff"] <= 1e-4
        assert set(card["metrics"]["per_param"]) == set(card["param_names"])
        for pname, row in card["normalisation"].items():
            p = PARAMS[PARAM_INDEX[pname]]
            assert (row["ai_min"], row["ai_max"]) == (p.ai_minimum, p.ai_maximum)
            assert row["scale"] == ("log" if p.glide == "geometric" else "linear")


def test_predict_params_denormalises_and_stays_in_ai_ranges(rng):
    m = OnnxModel.load(default_window_model_name())
    audio = rng.standard_normal((44100 * 3, 2)) * 0.1
    feats = extract_features(audio, 44100)
    values = m.predict_params(feats)
    assert list(values) == list(AI_PARAM_NAMES)
    norm = m.predict(feats)
    for i, (name, v) in enumerate(values.items()):
        p = PARAMS[PARAM_INDEX[name]]
        assert p.ai_minimum <= v <= p.ai_maximum
        assert v == pytest.approx(denormalise(name, float(norm[i])), rel=1e-9, abs=1e-12)


def test_single_window_path_reuses_its_buffer(rng):
    m = OnnxModel.load(default_window_model_name())
    buf = m._single
    a, b = _features(rng), _features(rng)
    pa = m.predict(a).copy()
    m.predict(b)
    np.testing.assert_array_equal(m.predict(a), pa)  # the buffer holds no stale state
    assert m._single is buf


def test_bad_inputs_raise_model_error(rng):
    m = OnnxModel.load(default_window_model_name())
    with pytest.raises(ModelError, match="features must have shape"):
        m.predict(np.zeros((2, 32, SHAPE[2]), np.float32))
    x = _features(rng)
    x[0, 3, 4] = np.nan
    with pytest.raises(ModelError, match="NaN or Inf"):
        m.predict(x)


def test_session_options_follow_the_realtime_rules():
    so = session_options()
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert so.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    import onnxruntime as ort

    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_copy_loads_from_a_path(model_copy, rng):
    m = OnnxModel.load(model_copy)
    ref = OnnxModel.load(default_window_model_name())
    x = _features(rng)
    np.testing.assert_array_equal(m.predict(x), ref.predict(x))


# ---------------------------------------------------------------- refusals


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="model file not found: .*nothing.onnx"):
        OnnxModel.load(tmp_path / "nothing.onnx")


def test_unknown_name():
    with pytest.raises(ModelError, match="model 'nosuchmodel' not found in .*known: .*ensemble"):
        OnnxModel.load("nosuchmodel")


@pytest.mark.parametrize("suffix", [".pt", ".pkl", ".pth", ".json", ".ONNX.bak"])
def test_non_onnx_path_is_refused(tmp_path, suffix):
    p = tmp_path / f"model{suffix}"
    p.write_bytes(b"\x80\x04not a model")
    with pytest.raises(ModelError, match="only .onnx model files are loaded"):
        OnnxModel.load(p)


def test_missing_card(model_copy):
    model_copy.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="model card not found: .*model.json"):
        OnnxModel.load(model_copy)


def test_card_that_does_not_parse(model_copy):
    model_copy.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelError, match="model card .*model.json does not parse"):
        OnnxModel.load(model_copy)


def test_card_missing_keys(model_copy):
    card = json.loads(model_copy.with_suffix(".json").read_text())
    del card["sha256"], card["param_names"]
    model_copy.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="lacks param_names, sha256"):
        OnnxModel.load(model_copy)


def test_truncated_onnx_is_caught_by_its_checksum(model_copy):
    data = model_copy.read_bytes()
    model_copy.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="does not match its card .*corrupt, truncated or replaced"):
        OnnxModel.load(model_copy)


def test_corrupt_onnx_with_matching_card(model_copy):
    """A corrupt graph whose card checksum was updated still fails cleanly, in onnxruntime."""
    data = bytearray(model_copy.read_bytes())
    model_copy.write_bytes(bytes(data[:200]) + b"\xff" * 64)
    _edit_card(model_copy, sha256=sha256_file(model_copy))
    with pytest.raises(ModelError, match="corrupt ONNX model model.onnx: "):
        OnnxModel.load(model_copy)


def test_card_with_wrong_param_list(model_copy):
    names = list(AI_PARAM_NAMES)
    _edit_card(model_copy, param_names=names[:-1] + ["tape_saturation"])
    with pytest.raises(ModelError, match=r"param_names mismatch .*unknown \['tape_saturation'\]"):
        OnnxModel.load(model_copy)
    _edit_card(model_copy, param_names=names[::-1])
    with pytest.raises(ModelError, match="param_names mismatch .*another order"):
        OnnxModel.load(model_copy)


def test_card_with_wrong_feature_config(model_copy):
    fc = FEATURE_CONFIG.as_dict()
    _edit_card(model_copy, feature_config={**fc, "n_mels": 32, "hop_length": 256})
    with pytest.raises(
        ModelError, match="feature_config mismatch: hop_length card=256 engine=512; n_mels card=32 engine=64"
    ):
        OnnxModel.load(model_copy)
    _edit_card(model_copy, feature_config={**fc, "colour": 1})
    with pytest.raises(ModelError, match="bad feature_config: unknown feature config key 'colour'"):
        OnnxModel.load(model_copy)


def test_card_with_wrong_io(model_copy):
    _edit_card(model_copy, input={"name": "x", "shape": ["batch", *SHAPE]})
    with pytest.raises(ModelError, match="input must be features"):
        OnnxModel.load(model_copy)


def test_default_pointer_problems(tmp_path):
    with pytest.raises(ModelError, match="no default model: .*default.json not found"):
        OnnxModel.load("default", models_dir=tmp_path)
    (tmp_path / "default.json").write_text('{"default": "../evil"}')
    with pytest.raises(ModelError, match="must hold"):
        OnnxModel.load("default", models_dir=tmp_path)


def test_a_model_trained_on_fewer_parameters_predicts_them_and_no_move_for_the_rest(rng):
    # The shipped models know the first ten AI parameters; the AI set has grown since (tone bands, band
    # widths).  Reference: the graph run directly in onnxruntime for the ones it knows, the table's
    # default (exactly: "no move") for the others.
    import onnxruntime as ort

    m = OnnxModel.load(default_window_model_name())
    assert m.param_names == AI_PARAM_NAMES and set(m.model_param_names) < set(AI_PARAM_NAMES)
    feats = _features(rng)
    raw = ort.InferenceSession(str(m.path), providers=["CPUExecutionProvider"]).run(None, {"features": feats[None]})
    values = m.predict_params(feats)
    for name, x in zip(m.model_param_names, np.clip(raw[0][0], 0, 1)):
        p = PARAMS[PARAM_INDEX[name]]
        assert values[name] == pytest.approx(min(max(denormalise(name, float(x)), p.ai_minimum), p.ai_maximum))
    for name in set(AI_PARAM_NAMES) - set(m.model_param_names):
        assert values[name] == PARAMS[PARAM_INDEX[name]].default  # exactly: no move, no sleeping stage woken
    batch = m.predict(np.stack([feats, feats]))
    assert batch.shape == (2, len(AI_PARAM_NAMES)) and np.array_equal(batch[0], m.predict(feats))


def test_a_card_with_a_parameter_this_engine_lacks_falls_back_with_one_warning(model_copy):
    from mixpilot.inference.matcher import AnalyticMatcher
    from mixpilot.inference.worker import load_estimator

    card = json.loads(model_copy.with_suffix(".json").read_text())
    _edit_card(model_copy, param_names=card["param_names"][:-1] + ["tape_saturation"])
    warnings: list[str] = []
    est = load_estimator(str(model_copy), warnings.append)
    assert isinstance(est, AnalyticMatcher) and len(warnings) == 1
    assert "tape_saturation" in warnings[0] and "analytic matcher" in warnings[0]
