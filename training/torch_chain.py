"""A differentiable copy (torch) of the parts of our chain the target-conditioned model sets.

Power responses, closed form, of

* the tonal-match EQ (:mod:`dsp.tone`: low shelf at 44.2 Hz, eight RBJ bells
  Q 0.7 at 63 Hz .. 8 kHz, high shelf at 11.3 kHz; the coefficient formulas of
  :func:`dsp.biquad.rbj_coefficients`), as a function of the ten gains;
* the side gain of ``stereo_width`` times the band widths (:mod:`dsp.width`:
  ``side' = width_low * LP(LP(side)) + width_high * HP(HP(side))`` with RBJ
  Butterworth biquads at ``width_crossover_hz``; the two branches are in phase
  and ``|LP|**2 + |HP|**2 = 1``, so the side's amplitude gain is
  ``width_low |LP|**2 + width_high |HP|**2``);
* a broadband gain (``output_gain_db``) is a constant in dB.

``tests/training/test_torch_chain.py`` checks these against the Numba chain
processing sines (within 0.1 dB).  No compressor is modelled: the model does
not set dynamics (see :mod:`inference.target_model`).  Training only; needs torch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mixpilot.dsp.biquad import BELL, HIGH_PASS, LOW_PASS, LOW_SHELF
from mixpilot.dsp.params import PARAM_INDEX, PARAMS
from mixpilot.dsp.tone import band_filters

__all__ = ["ToneResponse", "side_amplitude", "crossover_shares"]


def _unit_circle(freqs_hz: np.ndarray, sr: float) -> tuple[torch.Tensor, ...]:
    w = 2.0 * np.pi * np.asarray(freqs_hz, np.float64) / sr
    return tuple(torch.tensor(v, dtype=torch.float64) for v in (np.cos(w), np.sin(w), np.cos(2 * w), np.sin(2 * w)))


def _power(b0, b1, b2, a0, a1, a2, c1, s1, c2, s2) -> torch.Tensor:
    """``|H|**2`` of ``(b0 + b1 z + b2 z^2) / (a0 + a1 z + a2 z^2)`` at ``z = exp(-jw)`` (coefficients [..., 1])."""
    nr = b0 + b1 * c1 + b2 * c2
    ni = b1 * s1 + b2 * s2
    dr = a0 + a1 * c1 + a2 * c2
    di = a1 * s1 + a2 * s2
    return (nr * nr + ni * ni) / (dr * dr + di * di)


class ToneResponse(torch.nn.Module):
    """Power gain of the ten-band cascade at fixed frequencies: ``forward(gains_db [B, 10]) -> [B, F]`` (linear)."""

    def __init__(self, freqs_hz: np.ndarray, sample_rate: float = 44100.0) -> None:
        super().__init__()
        self.sample_rate = float(sample_rate)
        c1, s1, c2, s2 = _unit_circle(freqs_hz, sample_rate)
        for k, v in (("c1", c1), ("s1", s1), ("c2", c2), ("s2", s2)):
            self.register_buffer(k, v.float(), persistent=False)
        kinds, cw, sw = [], [], []
        for kind, fc, _q in band_filters():
            w0 = 2.0 * math.pi * fc / sample_rate
            kinds.append(kind)
            cw.append(math.cos(w0))
            sw.append(math.sin(w0))
        self.kinds = kinds
        self.register_buffer("cw", torch.tensor(cw, dtype=torch.float32)[:, None], persistent=False)
        self.register_buffer("sw", torch.tensor(sw, dtype=torch.float32)[:, None], persistent=False)
        self.q = [q for _, _, q in band_filters()]

    def forward(self, gains_db: torch.Tensor) -> torch.Tensor:
        out = torch.ones(gains_db.shape[0], self.c1.shape[0], dtype=gains_db.dtype, device=gains_db.device)
        for k, kind in enumerate(self.kinds):
            a = torch.pow(10.0, gains_db[:, k : k + 1] / 40.0)  # [B, 1]
            cw, sw = self.cw[k], self.sw[k]
            if kind == BELL:
                alpha = sw / (2.0 * self.q[k])
                b0, b1, b2 = 1.0 + alpha * a, -2.0 * cw * torch.ones_like(a), 1.0 - alpha * a
                a0, a1, a2 = 1.0 + alpha / a, -2.0 * cw * torch.ones_like(a), 1.0 - alpha / a
            else:
                sa = 2.0 * torch.sqrt(a) * (sw / 2.0 * math.sqrt(2.0))
                if kind == LOW_SHELF:
                    b0 = a * ((a + 1.0) - (a - 1.0) * cw + sa)
                    b1 = 2.0 * a * ((a - 1.0) - (a + 1.0) * cw)
                    b2 = a * ((a + 1.0) - (a - 1.0) * cw - sa)
                    a0 = (a + 1.0) + (a - 1.0) * cw + sa
                    a1 = -2.0 * ((a - 1.0) + (a + 1.0) * cw)
                    a2 = (a + 1.0) + (a - 1.0) * cw - sa
                else:
                    b0 = a * ((a + 1.0) + (a - 1.0) * cw + sa)
                    b1 = -2.0 * a * ((a - 1.0) + (a + 1.0) * cw)
                    b2 = a * ((a + 1.0) + (a - 1.0) * cw - sa)
                    a0 = (a + 1.0) - (a - 1.0) * cw + sa
                    a1 = 2.0 * ((a - 1.0) - (a + 1.0) * cw)
                    a2 = (a + 1.0) - (a - 1.0) * cw - sa
            out = out * _power(b0, b1, b2, a0, a1, a2, self.c1, self.s1, self.c2, self.s2)
        return out


def crossover_shares(freqs_hz: np.ndarray, crossover_hz: float | None = None, sample_rate: float = 44100.0):
    """``(|LP|**2, |HP|**2)`` of the band-width stage's Butterworth biquads at ``freqs_hz`` (numpy, sum 1)."""
    from mixpilot.dsp.biquad import rbj_coefficients
    from mixpilot.dsp.biquad import response as biquad_response

    fc = PARAMS[PARAM_INDEX["width_crossover_hz"]].default if crossover_hz is None else crossover_hz
    lp = np.abs(
        biquad_response(rbj_coefficients(LOW_PASS, fc, 0.0, math.sqrt(0.5), sample_rate), freqs_hz, sample_rate)
    )
    hp = np.abs(
        biquad_response(rbj_coefficients(HIGH_PASS, fc, 0.0, math.sqrt(0.5), sample_rate), freqs_hz, sample_rate)
    )
    return lp**2, hp**2


def side_amplitude(stereo_width, width_low, width_high, lp2: torch.Tensor, hp2: torch.Tensor) -> torch.Tensor:
    """Amplitude gain of the side at the frequencies of ``lp2``/``hp2``: ``stereo_width (wl |LP|^2 + wh |HP|^2)``."""
    return stereo_width * (width_low * lp2 + width_high * hp2)
