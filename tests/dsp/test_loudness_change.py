"""dsp.loudness_change: the predicted loudness change of a parameter change.

References: closed forms (a gain of G dB changes the loudness by exactly G; M/S width w on two
independent equal-power channels scales the power by (1 + w^2) / 2; width does nothing to a mono
signal) and the project's BS.1770-4 meter (:func:`dsp.meter.measure`, itself checked against EBU
Tech 3341/3342 and pyloudnorm in tests/dsp/test_meter.py) on white and pink noise run through the
real chain (:class:`dsp.chain.MixChain`) with and without the change.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixpilot.dsp.chain import STAGES, MixChain
from mixpilot.dsp.loudness_change import LoudnessChange
from mixpilot.dsp.meter import measure
from mixpilot.dsp.params import PARAM_INDEX, default_vector
from mixpilot.dsp.spec import ProcessSpec

SR = 44100


def _noise(rng: np.random.Generator, seconds: float, colour: str) -> np.ndarray:
    """Stereo noise (independent channels), white or pink (1/f power), RMS 0.05, float32."""
    n = int(seconds * SR)
    w = rng.standard_normal((n, 2))
    if colour == "pink":
        spec = np.fft.rfft(w, axis=0)
        f = np.fft.rfftfreq(n, 1.0 / SR)
        spec[1:] /= np.sqrt(f[1:, None])
        spec[0] = 0.0
        w = np.fft.irfft(spec, n, axis=0)
    return (0.05 * w / np.std(w)).astype(np.float32)


def _vector(**values: float) -> np.ndarray:
    v = default_vector()
    for k, x in values.items():
        v[PARAM_INDEX[k]] = x
    return v


def _through_chain(x: np.ndarray, values: dict) -> np.ndarray:
    chain = MixChain(STAGES)
    chain.set_params({"limiter_ceiling_dbtp": 0.0, **values})  # far above these signals: the limiter idles
    chain.prepare(ProcessSpec(SR, x.shape[0], 2))
    y = np.zeros_like(x)
    chain.process(x, y)
    return y


CHANGES = [
    {"tone_125hz_db": 6.0},
    {"tone_8khz_db": -7.0, "tone_16khz_db": -9.0},
    {"tone_500hz_db": 4.0, "tone_1khz_db": 5.0, "tone_2khz_db": 6.0},
    {"low_gain_db": 3.0, "high_gain_db": -3.0, "presence_gain_db": 3.0},
    {"width_low": 0.5, "width_high": 1.3},
    {"stereo_width": 1.5, "tone_4khz_db": -4.0},
]


@pytest.mark.parametrize("colour", ["white", "pink"])
@pytest.mark.parametrize("change", CHANGES, ids=lambda c: ",".join(c))
def test_prediction_equals_the_measured_bs1770_change(rng, colour, change):
    # Predicted on 3 s of the input (what the engine gives it), measured on 12 s of output with the
    # project's meter (the first second dropped: the filters settle).  Measured agreement: within
    # 0.06 LU on every case; the bound leaves room for the spectrum estimate of one 3 s window.
    x = _noise(rng, 13.0, colour)
    pred = LoudnessChange(SR, STAGES).change_db(default_vector(), _vector(**change), x[: 3 * SR])
    before = measure(_through_chain(x, {})[SR:], SR)["integrated_lufs"]
    after = measure(_through_chain(x, change)[SR:], SR)["integrated_lufs"]
    assert abs(after - before) > 0.04  # each change moves the loudness (white noise has little at 125 Hz)
    assert pred == pytest.approx(after - before, abs=0.15), (pred, after - before)


def test_closed_forms(rng):
    lc = LoudnessChange(SR, STAGES)
    x = _noise(rng, 3.0, "white")
    v0 = default_vector()
    # a gain is a gain
    assert lc.change_db(v0, _vector(input_gain_db=6.0), x) == pytest.approx(6.0, abs=1e-9)
    # independent equal-power channels: mid and side carry half the power each, side x w
    for w in (0.5, 1.5, 2.0):
        expected = 10 * math.log10((1 + w * w) / 2)
        assert lc.change_db(v0, _vector(stereo_width=w), x) == pytest.approx(expected, abs=0.1)
    # mono (L == R): no side, width changes nothing; a mono block the same
    mono = np.repeat(x[:, :1], 2, axis=1)
    assert lc.change_db(v0, _vector(stereo_width=2.0), mono) == pytest.approx(0.0, abs=1e-9)
    assert lc.change_db(v0, _vector(stereo_width=2.0), x[:, :1]) == pytest.approx(0.0, abs=1e-9)
    # there and back is no change; silence and unmodelled parameters predict 0
    up, down = _vector(tone_1khz_db=4.0), _vector(tone_1khz_db=-4.0)
    assert lc.change_db(up, down, x) == pytest.approx(-lc.change_db(down, up, x), abs=1e-12)
    assert lc.change_db(up, up, x) == 0.0
    assert lc.change_db(v0, _vector(tone_1khz_db=4.0), np.zeros((SR, 2), np.float32)) == 0.0
    assert lc.change_db(v0, _vector(reverb_send=0.3, comp_ratio=4.0), x) == 0.0


def test_stages_not_in_the_chain_predict_nothing(rng):
    x = _noise(rng, 3.0, "white")
    lc = LoudnessChange(SR, ("output_gain", "limiter"))
    assert lc.change_db(default_vector(), _vector(tone_1khz_db=6.0, input_gain_db=3.0), x) == 0.0
