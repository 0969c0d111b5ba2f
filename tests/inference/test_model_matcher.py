"""The target-conditioned model as the worker's stream estimator (inference.model_matcher) and its loading.

References: the analytic matcher (inference.matcher) on the same running statistics gives every parameter
the model does not set; the model's own tone and widths are TargetModel.params of the same descriptors;
a broken model must give one warning and the analytic matcher (issue 15), as for the window models.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mixpilot.inference.matcher import AnalyticMatcher, match_parameters
from mixpilot.inference.model import MODELS_DIR
from mixpilot.inference.profile import Profile
from mixpilot.inference.target_model import MODEL_PARAM_NAMES, TargetModel, TargetVector
from mixpilot.inference.worker import load_estimator

SR = 44100

pytestmark = pytest.mark.skipif(not (MODELS_DIR / "target.onnx").is_file(), reason="no shipped target model")


def _music_like(rng, seconds: float) -> np.ndarray:
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal((n, 2)), axis=0)
    f = np.fft.rfftfreq(n, 1 / SR)
    spec *= (1.0 / np.sqrt(np.maximum(f, 30.0)))[:, None]
    x = np.fft.irfft(spec, n, axis=0)
    m, s = x[:, 0], 0.3 * x[:, 1]
    y = np.stack([m + s, m - s], axis=1)
    return 0.1 * y / np.sqrt(np.mean(y**2))


def test_model_matcher_takes_tone_and_widths_from_the_model_and_the_rest_from_the_matcher(rng):
    from mixpilot.inference.model_matcher import ModelMatcher

    x = _music_like(rng, 12.0)
    ref = Profile.from_audio(_music_like(rng, 10.0)[:, ::-1] * 0.5, SR)
    model = TargetModel.load("target")
    est = ModelMatcher(model, ref, SR, 2)
    assert est.wants_audio and isinstance(est, AnalyticMatcher)
    for i in range(0, x.shape[0], 4096):
        est.update(x[i : i + 4096])
    vals = est.values()
    d = est.stats.descriptors()
    want = model.params(d, est.stats.seconds, TargetVector.from_profile(ref))
    rule = match_parameters(d, ref, sample_rate=SR, do_no_harm=est.do_no_harm).values
    for share in (1.0, 0.6):  # the card's model_share: w * model + (1 - w) * analytic (dB; widths in log)
        model.model_share = share
        est._result = None
        vals = est.values()
        for n in MODEL_PARAM_NAMES:
            a, m = rule[n], want[n]
            mix = share * m + (1 - share) * a if n.startswith("tone_") else m**share * a ** (1 - share)
            assert vals[n] == pytest.approx(mix, abs=1e-9), (share, n)
        for n, v in rule.items():
            if n not in MODEL_PARAM_NAMES:
                assert vals[n] == pytest.approx(v, abs=1e-9), n
    assert any(abs(want[n] - rule[n]) > 0.1 for n in MODEL_PARAM_NAMES)  # the shares differ: a real check


def test_a_target_model_name_loads_the_model_matcher_and_a_broken_one_falls_back_once(tmp_path):
    from mixpilot.inference.model_matcher import ModelMatcher

    warnings: list[str] = []
    est = load_estimator(str(MODELS_DIR / "target.onnx"), warnings.append)
    assert isinstance(est, ModelMatcher) and not warnings
    # truncated graph: one warning naming it, the plain analytic matcher
    for name in ("target.onnx", "target.json"):
        shutil.copyfile(MODELS_DIR / name, tmp_path / name)
    data = (tmp_path / "target.onnx").read_bytes()
    (tmp_path / "target.onnx").write_bytes(data[: len(data) // 3])
    warnings.clear()
    est = load_estimator(str(tmp_path / "target.onnx"), warnings.append)
    assert type(est) is AnalyticMatcher and len(warnings) == 1 and "target" in warnings[0]
    # another conditioning version: refused the same way
    (tmp_path / "target.onnx").write_bytes(data)
    card = json.loads((tmp_path / "target.json").read_text())
    card["conditioning"]["version"] = 99
    (tmp_path / "target.json").write_text(json.dumps(card))
    warnings.clear()
    est = load_estimator(str(tmp_path / "target.onnx"), warnings.append)
    assert type(est) is AnalyticMatcher and len(warnings) == 1 and "conditioning" in warnings[0]
    # a model share outside 0..1: refused the same way
    card["conditioning"]["version"] = json.loads((MODELS_DIR / "target.json").read_text())["conditioning"]["version"]
    card["model_share"] = 1.5
    (tmp_path / "target.json").write_text(json.dumps(card))
    warnings.clear()
    est = load_estimator(str(tmp_path / "target.onnx"), warnings.append)
    assert type(est) is AnalyticMatcher and len(warnings) == 1 and "model_share" in warnings[0]


def test_a_model_error_in_a_hop_keeps_the_analytic_values(rng):
    from mixpilot.inference.model_matcher import ModelMatcher

    model = TargetModel.load("target")
    est = ModelMatcher(model, Profile.load("default"), SR, 2)
    est.update(_music_like(rng, 6.0))

    def broken(*a, **k):
        raise RuntimeError("boom")

    model.params = broken  # the session fails this hop
    vals = est.values()
    base = AnalyticMatcher(Profile.load("default"), SR, 2)
    base.stats = est.stats
    assert vals == base.values() and est.errors == 1 and "boom" in est.last_error
