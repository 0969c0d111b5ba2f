"""The loudness change a parameter change brings, predicted before it is heard (closed form).

The loudness follower (:mod:`realtime.engine`) meters the chain's pre-delivery
tap.  When the AI moves the EQ, the tonal-match EQ or the widths, the tap gets
louder or quieter over the update's glide, and a follower that only measures
learns it seconds later (its memory is 10 s).  This module predicts the change
instead, for the window of input the AI itself analysed:

* the input's mid and side power spectra ``P_M(f)``, ``P_S(f)`` (Welch, Hann
  frames of ``N_FFT`` samples, half overlap), weighted by the BS.1770-4
  K-weighting's power response ``|K(f)|^2`` (:func:`dsp.descriptors.k_weighting_power`);
* the chain's linear stages before the tap as power responses of the
  parameter vector ``v`` (the same RBJ coefficients the kernels use): input
  gain, the four-band EQ and the tonal-match EQ act on both channels, so on
  mid and side alike (``|H_EQ(f; v)|^2``); the stereo width scales the side
  by ``stereo_width``, the band widths by ``width_low * LP4(f) + width_high *
  HP4(f)`` (the Linkwitz-Riley crossover of :mod:`dsp.width`, complex sum);
* since ``L^2 + R^2 = 2 (M^2 + S^2)``, the tap's K-weighted power with ``v`` is
  ``E(v) = sum_f |K|^2 |H_EQ|^2 (P_M + |H_S|^2 P_S)`` and the change from
  ``v0`` to ``v1`` is ``10 log10(E(v1) / E(v0))`` dB, which for a stationary
  signal is exactly the change of its BS.1770 loudness (the tests check it
  against the project's meter on noise through the chain).

Not modelled: the compressor (level-dependent), the reverb and delay sends
(their wet level depends on the room), and parameters other than the ones
above; their share of a change is left to the follower's measurement.
Everything here is numpy on the publishing thread (the AI worker's side),
never on the audio callback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .biquad import BELL, HIGH_PASS, HIGH_SHELF, LOW_PASS, LOW_SHELF, rbj_coefficients
from .biquad import response as biquad_response
from .descriptors import k_weighting_power
from .params import PARAM_INDEX
from .tone import TONE_PARAMS, band_filters

__all__ = ["N_FFT", "WINDOW_S", "LoudnessChange", "RESPONSE_PARAMS"]

N_FFT = 4096  # 10.8 Hz bins at 44.1 kHz: the 31 Hz shelf and the 63 Hz bell get a few bins each
WINDOW_S = 3.0  # the input analysed for a change: the AI's own window length (EBU short-term)
_SQRT_HALF = math.sqrt(0.5)
_EQ_BANDS = (  # (kind, gain, frequency, Q or None for the shelves' slope S = 1)
    (LOW_SHELF, "low_gain_db", "low_freq_hz", None),
    (BELL, "mid_gain_db", "mid_freq_hz", "mid_q"),
    (HIGH_SHELF, "high_gain_db", "high_freq_hz", None),
    (BELL, "presence_gain_db", "presence_freq_hz", "presence_q"),
)
_STAGE_PARAMS = {
    "input_gain": ("input_gain_db",),
    "eq": tuple(p for band in _EQ_BANDS for p in band[1:] if p is not None),
    "tone": TONE_PARAMS,
    "width": ("stereo_width",),
    "width_bands": ("width_low", "width_high", "width_crossover_hz"),
}
#: The parameters whose change is predicted (every other one: 0 dB, left to the measurement).
RESPONSE_PARAMS: tuple[str, ...] = tuple(p for ps in _STAGE_PARAMS.values() for p in ps)


class LoudnessChange:
    """Predicts ``10 log10(E(v1) / E(v0))`` (module docstring) for the chain's stages ``stages``.

    Parameters
    ----------
    sample_rate : float
    stages : the chain's stage names; stages not among them contribute nothing.
    """

    def __init__(self, sample_rate: float, stages: Iterable[str]) -> None:
        self.sample_rate = float(sample_rate)
        self.n_fft = int(min(N_FFT, 1 << int(math.log2(max(256.0, 0.1 * self.sample_rate)))))
        self.freqs_hz = np.fft.rfftfreq(self.n_fft, 1.0 / self.sample_rate)
        self.k_power = k_weighting_power(self.freqs_hz, self.sample_rate)
        self.window = np.hanning(self.n_fft)
        st = set(stages)
        self.params = tuple(p for s, ps in _STAGE_PARAMS.items() if s in st for p in ps)
        self._index = np.array([PARAM_INDEX[p] for p in self.params], dtype=np.int64)
        self._stages = st
        self._z = np.exp(-2j * np.pi * self.freqs_hz / self.sample_rate)
        self._cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def window_frames(self) -> int:
        """Input frames one prediction reads (``WINDOW_S``)."""
        return int(round(WINDOW_S * self.sample_rate))

    def relevant(self, v0: np.ndarray, v1: np.ndarray) -> bool:
        """Whether ``v0`` and ``v1`` differ in a parameter this predictor models."""
        return bool(np.any(np.asarray(v0)[self._index] != np.asarray(v1)[self._index]))

    # -- the signal -----------------------------------------------------------------------
    def spectra(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """K-weighted mid and side power spectra of ``x`` [frames, 1|2] (Welch; any common scale)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        mid = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
        side = 0.5 * (x[:, 0] - x[:, 1]) if x.shape[1] > 1 else np.zeros_like(mid)
        n = self.n_fft
        if mid.shape[0] < n:
            mid = np.pad(mid, (0, n - mid.shape[0]))
            side = np.pad(side, (0, n - side.shape[0]))
        hop = n // 2
        starts = range(0, mid.shape[0] - n + 1, hop)
        pm = np.zeros(self.freqs_hz.shape[0])
        ps = np.zeros_like(pm)
        for s in starts:
            pm += np.abs(np.fft.rfft(mid[s : s + n] * self.window)) ** 2
            ps += np.abs(np.fft.rfft(side[s : s + n] * self.window)) ** 2
        return pm * self.k_power, ps * self.k_power

    # -- the chain ------------------------------------------------------------------------
    def responses(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Power responses (linear) of the modelled stages with parameter vector ``v``: (both channels, side)."""
        key = np.asarray(v, dtype=np.float64)[self._index].tobytes()
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        fs = self.sample_rate
        f = self.freqs_hz
        h = np.ones(f.shape[0])
        side = np.ones(f.shape[0])
        st = self._stages
        if "input_gain" in st:
            h = h * 10.0 ** (v[PARAM_INDEX["input_gain_db"]] / 10.0)
        if "eq" in st:
            for kind, g, fr, q in _EQ_BANDS:
                gain = float(v[PARAM_INDEX[g]])
                if gain != 0.0:
                    q_val = _SQRT_HALF if q is None else float(v[PARAM_INDEX[q]])
                    c = rbj_coefficients(kind, float(v[PARAM_INDEX[fr]]), gain, q_val, fs)
                    h = h * np.abs(biquad_response(c, f, fs)) ** 2
        if "tone" in st:
            for (band_kind, fc, band_q), name in zip(band_filters(), TONE_PARAMS):
                gain = float(v[PARAM_INDEX[name]])
                if gain != 0.0:
                    c = rbj_coefficients(band_kind, fc, gain, band_q, fs)
                    h = h * np.abs(biquad_response(c, f, fs)) ** 2
        if "width" in st:
            side = side * float(v[PARAM_INDEX["stereo_width"]]) ** 2
        if "width_bands" in st:
            wl = float(v[PARAM_INDEX["width_low"]])
            wh = float(v[PARAM_INDEX["width_high"]])
            if wl != 1.0 or wh != 1.0:
                xo = float(v[PARAM_INDEX["width_crossover_hz"]])
                lp = biquad_response(rbj_coefficients(LOW_PASS, xo, 0.0, _SQRT_HALF, fs), f, fs) ** 2
                hp = biquad_response(rbj_coefficients(HIGH_PASS, xo, 0.0, _SQRT_HALF, fs), f, fs) ** 2
                side = side * np.abs(wl * lp + wh * hp) ** 2
        if len(self._cache) >= 8:
            self._cache.clear()
        out = (h, side)
        self._cache[key] = out
        return out

    def power(self, v: np.ndarray, pm: np.ndarray, ps: np.ndarray) -> float:
        """``E(v)``: the K-weighted power of the tap for spectra ``pm``, ``ps`` (:meth:`spectra`)."""
        h, side = self.responses(v)
        return float(np.sum(h * (pm + side * ps)))

    def change_db(self, v0: np.ndarray, v1: np.ndarray, x: np.ndarray) -> float:
        """Predicted loudness change (dB = LU) of the tap when the parameters go from ``v0`` to ``v1``, for input ``x``.

        0 when nothing modelled changed or ``x`` is silent.
        """
        if not self.relevant(v0, v1):
            return 0.0
        pm, ps = self.spectra(x)
        e0 = self.power(v0, pm, ps)
        e1 = self.power(v1, pm, ps)
        if not (e0 > 0.0 and e1 > 0.0 and math.isfinite(e0) and math.isfinite(e1)):
            return 0.0
        return 10.0 * math.log10(e1 / e0)
