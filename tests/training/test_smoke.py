"""``python -m mixpilot.training --smoke``: the whole pipeline on tiny data, end to end.

Synthesise a few examples, train both architectures for one epoch, fit the
ensemble, export the three models with cards, score them and the heuristic,
write the default pointer, and load every model back through
``inference.model.OnnxModel`` (the engine's loader).  The reference for the
exported graphs is the torch model (parity within 1e-4, recorded in each card).
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch", reason="PyTorch is the optional 'train' extra (pip install -e '.[train]')")
pytest.importorskip("onnx", reason="onnx is part of the optional 'train' extra")

from mixpilot.dsp.params import AI_PARAM_NAMES  # noqa: E402
from mixpilot.inference.features import FEATURE_CONFIG  # noqa: E402
from mixpilot.inference.model import OnnxModel, sha256_file  # noqa: E402


@pytest.mark.slow
def test_smoke_run_exports_models_the_engine_loads(tmp_path, capsys):
    from mixpilot.training.__main__ import main

    readme = tmp_path / "README.md"
    readme.write_text("# results\n")
    assert (
        main(["--smoke", "--out", str(tmp_path / "models"), "--threads", "1", "--seed", "0", "--readme", str(readme)])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    out = tmp_path / "models"
    assert set(summary["loaded"]) == {"cnn", "ast", "ensemble", "default"}
    assert summary["default"] in ("cnn", "ast", "ensemble")
    assert json.loads((out / "default.json").read_text())["default"] == summary["default"]
    for name in ("cnn", "ast", "ensemble"):
        card = json.loads((out / f"{name}.json").read_text())
        assert card["sha256"] == sha256_file(out / f"{name}.onnx")
        assert card["param_names"] == list(AI_PARAM_NAMES)
        assert card["feature_config"] == FEATURE_CONFIG.as_dict()
        assert card["opset"] >= 17
        assert card["parity_max_abs_diff"] <= 1e-4
        m = card["metrics"]
        assert set(m["per_param"]) == set(AI_PARAM_NAMES)
        assert 0.0 <= m["held_out_mae"] <= 1.0 and 0.0 <= m["heuristic_mae"] <= 1.0
        assert m["n_test"] >= 1
        assert (
            card["training_data"]["n_examples"]
            == summary["results"][name]["n_test"] + card["training_data"]["n_train"] + card["training_data"]["n_val"]
        )
    model = OnnxModel.load("default", models_dir=out)
    assert model.name == summary["default"]
    text = readme.read_text()
    assert "| model | overall |" in text and "heuristic" in text
