"""inference.heuristic: the analysis rules move each parameter the right way.

References: good synthetic mixes from training.synth (the material the
reference curve was derived from, other seeds), faults made with the
project's chain (training.data.apply_faults), the parameter table's AI ranges.
"""

from __future__ import annotations

import numpy as np
import pytest

from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS, normalise
from mixpilot.inference.features import FEATURE_CONFIG, extract_features, input_window_frames
from mixpilot.inference.heuristic import HeuristicEstimator, eq_responses_db
from mixpilot.training import synth
from mixpilot.training.data import apply_faults

SR = synth.SAMPLE_RATE
W = input_window_frames(SR)


@pytest.fixture(scope="module")
def est() -> HeuristicEstimator:
    return HeuristicEstimator()


@pytest.fixture(scope="module")
def good_windows() -> list[np.ndarray]:
    """The last window of one good mix per style (seed 99: not the reference songs' seed)."""
    rng = np.random.default_rng(99)
    out = []
    for style in synth.STYLE_NAMES:
        mix = synth.mix_good(synth.synth_song(rng, style=style, seconds=5.0), rng)
        out.append(mix.good[-W:])
    return out


def _suggest(est, audio):
    return est.suggest(extract_features(audio, SR))


def test_good_mixes_get_near_neutral_suggestions(est, good_windows):
    vals = [_suggest(est, x) for x in good_windows]
    for name in ("input_gain_db", "low_gain_db", "mid_gain_db", "high_gain_db", "presence_gain_db"):
        assert abs(np.median([v[name] for v in vals])) < 1.5, name
    assert abs(np.median([v["stereo_width"] for v in vals]) - 1.0) < 0.05
    assert np.median([v["comp_ratio"] for v in vals]) < 1.6
    assert all(v["reverb_send"] == 0.0 and v["delay_send"] == 0.0 for v in vals)
    # in normalised units the good mixes sit close to the neutral vector on average
    neutral = np.array([normalise(n, PARAMS[PARAM_INDEX[n]].default) for n in AI_PARAM_NAMES])
    pred = est.predict(np.stack([extract_features(x, SR) for x in good_windows]))
    assert np.abs(pred - neutral).mean() < 0.12


# The heuristic acts only on deviations larger than good mixes show (their per-band spectrum
# spreads by 5-20 dB, see inference.heuristic), so a 4 dB fault must move a suggestion the right
# way or leave it, and a gross fault must produce the correction on most windows.


def _moves(est, windows, faults, name):
    before = np.array([_suggest(est, x)[name] for x in windows])
    after = np.array([_suggest(est, apply_faults(x, faults, SR))[name] for x in windows])
    return before, after


def test_low_shelf_boost_gets_a_cut(est, good_windows):
    before, after = _moves(est, good_windows, {"low": 4.0}, "low_gain_db")
    assert np.all(after <= before + 1e-6)
    assert np.any(after < before - 0.1)
    before, after = _moves(est, good_windows, {"low": 18.0}, "low_gain_db")
    assert np.all(after <= before + 1e-6)
    assert np.median(after) < 0.0 and np.sum(after < 0.0) >= 4


def test_high_shelf_boost_gets_a_cut(est, good_windows):
    before, after = _moves(est, good_windows, {"high": 12.0}, "high_gain_db")
    assert np.all(after <= before + 0.1)
    assert np.median(after) < 0.0 and np.sum(after < before - 0.2) >= 3


def test_too_wide_gets_narrowed(est, good_windows):
    before, after = _moves(est, good_windows, {"width": 1.3}, "stereo_width")
    assert np.all(after <= before + 1e-9)
    before, after = _moves(est, good_windows, {"width": 2.0}, "stereo_width")
    assert np.all(after <= before + 1e-9)
    assert np.median(after) < 1.0 and np.sum(after < 1.0) >= 4


# A 3 s window of a good mix reads up to ~4 dB off the song's level (the level rule's deadband,
# RULE_GAINS), so the level tests use faults beyond that and compare with the same window unfaulted.


def test_too_quiet_gets_gain(est, good_windows):
    for x in good_windows:
        s = _suggest(est, apply_faults(x, {"level": -8.0}, SR))
        assert s["input_gain_db"] > 4.0  # the level rule undoes most of an 8 dB drop (AI limit 6 dB)
        assert s["input_gain_db"] >= _suggest(est, x)["input_gain_db"]


def test_too_loud_gets_cut(est, good_windows):
    # bass-heavy windows (rock, electronic here) read several dB quiet in the mel features, whose lowest
    # bands cover the 30-60 Hz region coarsely; there a +8 dB fault only cancels that offset
    before, after = _moves(est, good_windows, {"level": 8.0}, "input_gain_db")
    assert np.all(after < before)
    assert np.sum(after < -3.0) >= 4


def test_mono_window_keeps_width(est, good_windows):
    mono = good_windows[0].mean(axis=1, keepdims=True)
    s = _suggest(est, mono)
    assert s["stereo_width"] == 1.0


def test_silence_is_neutral(est):
    s = est.suggest(extract_features(np.zeros((W, 2), np.float32), SR))
    for name in AI_PARAM_NAMES:
        assert s[name] == PARAMS[PARAM_INDEX[name]].default


def test_outputs_always_inside_ai_ranges(est, rng):
    shape = FEATURE_CONFIG.shape
    cases = [
        np.full(shape, FEATURE_CONFIG.floor_db, np.float32),
        np.full(shape, 60.0, np.float32),
        rng.uniform(-100, 40, size=(32,) + shape).astype(np.float32),
    ]
    tilt = np.linspace(40, -100, shape[1])[None, :, None] * np.ones(shape)
    cases.append(tilt.astype(np.float32))
    for f in cases:
        pred = est.predict(f)
        assert pred.dtype == np.float32
        assert np.all((pred >= 0.0) & (pred <= 1.0))
        for window in f if f.ndim == 4 else f[None]:
            s = est.suggest(window)
            for name, v in s.items():
                p = PARAMS[PARAM_INDEX[name]]
                assert p.ai_minimum <= v <= p.ai_maximum


def test_batch_equals_single(est, rng):
    f = rng.uniform(-90, 20, size=(3,) + FEATURE_CONFIG.shape).astype(np.float32)
    batch = est.predict(f)
    assert batch.shape == (3, len(AI_PARAM_NAMES))
    for i in range(3):
        np.testing.assert_allclose(est.predict(f[i]), batch[i], rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        est.predict(np.zeros((2, 10, 10), np.float32))


def test_eq_responses_peak_where_the_filters_act():
    r = eq_responses_db()
    peaks = np.argmax(r, axis=1)
    assert peaks[0] < peaks[1] < peaks[3] < peaks[2] or peaks[2] == r.shape[1] - 1
    assert np.all(r <= 1.0 + 1e-9) and np.all(r >= -1e-9)
