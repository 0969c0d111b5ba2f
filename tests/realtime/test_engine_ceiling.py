"""The run's ceiling is a bound: a control that asks for a higher limiter ceiling cannot lift it (issue 13).

Reference: the ceiling itself, measured independently of our detectors with
``scipy.signal.resample_poly(y, 4, 1)`` (ITU-R BS.1770-4 Annex 2's 4x oversampling).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import resample_poly

from mixpilot.dsp.params import PARAM_INDEX
from mixpilot.realtime.engine import Engine

SR = 48000
P_CEIL = PARAM_INDEX["limiter_ceiling_dbtp"]


def test_a_target_above_the_runs_ceiling_is_held_at_it(rng):
    eng = Engine(SR, 2, max_block_size=256, params={"loudness_gain_db": 20.0}, ceiling_dbtp=-3.0, meters=False)
    x = (0.5 * rng.standard_normal((SR, 2))).astype(np.float32)  # +20 dB delivery: hard into the limiter
    y = np.zeros_like(x)
    for i in range(0, len(x), 256):
        if i == SR // 4:
            eng.chain.targets[P_CEIL] = 0.0  # what a MIDI knob mapped to the whole hard range writes
        eng.process_block(x[i : i + 256], y[i : i + 256])
    assert eng.chain.value("limiter_ceiling_dbtp") == -3.0
    up = resample_poly(np.asarray(y[SR // 4 :], np.float64), 4, 1, axis=0)[: -4 * 64]
    assert 20 * np.log10(np.max(np.abs(up))) <= -3.0
    assert np.max(np.abs(y.astype(np.float64))) <= 10 ** (-3.0 / 20)
