"""Glide ramps: closed forms.

Additive ramps step by (target - start)/N and land on the target after N
samples; geometric ramps multiply by (target/start)^(1/N) (equal steps in
log-frequency).  A re-target mid-ramp starts from the current value.
"""

import numpy as np
import pytest

from mixpilot.dsp.glide import Glide


def test_linear_ramp_closed_form():
    g = Glide(0.0, style="linear", sample_rate=1000, glide_s=0.01)  # 10 samples
    g.set_target(1.0)
    out = np.zeros(15)
    g.next_block(out)
    np.testing.assert_allclose(out[:10], np.arange(1, 11) / 10, atol=1e-12)
    assert np.all(out[10:] == 1.0) and not g.is_smoothing


def test_geometric_ramp_closed_form():
    g = Glide(100.0, style="geometric", sample_rate=1000, glide_s=0.004)
    g.set_target(1600.0)
    out = np.zeros(6)
    g.next_block(out)
    np.testing.assert_allclose(out[:4], 100.0 * 2.0 ** np.arange(1, 5), rtol=1e-12)  # x2 per sample
    assert out[4] == 1600.0


def test_retarget_mid_ramp_continues_from_current_value():
    g = Glide(0.0, style="db", sample_rate=1000, glide_s=0.01)
    g.set_target(10.0)
    out = np.zeros(5)
    g.next_block(out)
    assert out[-1] == pytest.approx(5.0)
    g.set_target(0.0)
    nxt = np.zeros(10)
    g.next_block(nxt)
    assert nxt[0] == pytest.approx(4.5)  # no jump: 5.0 - 5.0/10
    assert nxt[-1] == 0.0
