"""Analysis-based estimate of the AI parameters: the fallback and the baseline.

:class:`HeuristicEstimator` reads the same feature window as the models
(:func:`inference.features.extract_features`, [2 (mid, side), n_mels,
n_frames] in dB) and answers the same 10 normalised AI parameters
(:data:`dsp.params.AI_PARAM_NAMES`), so it stands in when no model loads and
is the baseline every model must beat.

Analysis of one window (:func:`analyse`)
    * long-term spectrum: per mel band, the time-mean of mid + side power
      (proportional to (L^2 + R^2) / 2), in dB;
    * short-term dynamics: the spread (95th - 10th percentile) of the
      per-frame total power in dB (frames are 46 ms, hop 23 ms);
    * side-to-mid ratio: side over mid power above 150 Hz, in dB.

Rules (each parameter: a raw estimate ``x`` from one cue, then ``neutral +
gain * shrink(x, deadband)``, where ``shrink`` moves ``x`` toward 0 by
``deadband`` and zeroes it inside; ``(gain, deadband)`` per parameter in
:data:`RULE_GAINS`)
    * **level** -- ``x = REFERENCE_LEVEL_DB - level_db`` (the good mixes'
      level minus this window's total power, the mel band powers weighted by
      1 / filter peak so that they sum to the broadband power) -> ``input_gain_db``.
    * **tone** -- the spectrum minus :data:`REFERENCE_SPECTRUM_DB` (each band
      clipped to :data:`DEVIATION_CLIP_DB` around the window's median
      deviation, so an empty band does not dominate) is fitted by weighted
      least squares (weights 1 / the reference's per-band variance across
      songs) as a broadband offset plus the dB responses of the chain's own
      low shelf, mid bell, high shelf and presence bell at their default
      frequencies (power-averaged over each mel band, chain at 44.1 kHz)
      times unknown gains ``g``, with a relative ridge :data:`EQ_RIDGE` on
      ``g``; ``x = -g`` (undo the deviation) -> the four EQ gains.
    * **compression** -- ``x = max(dynamics_db - REFERENCE_DYNAMICS_DB, 0)``:
      only a window livelier than good mixes gets compression, ``comp_ratio
      = 1 + gain * shrink(x)``; ``output_gain_db = 1 dB * (comp_ratio - 1)``
      makes up the level the compressor takes (the training targets' make-up
      rule).
    * **width** -- ``x = -max(side_mid_db - REFERENCE_SIDE_MID_DB, 0) / 20``
      (log10 of the width that undoes the excess) -> ``stereo_width = 10 **
      (gain * shrink(x))``: narrowing only; a narrower-than-reference window
      is as often a choice (or a mono source) as a fault, and blind widening
      costs mono compatibility.
    * **reverb, delay** -- left neutral (0): no robust cue for "too dry" was
      found in a 3 s log-mel window, and adding a send to a mix that does
      not need it is the worse mistake.
    * everything is clamped to the AI-safe ranges; a silent window (total
      power under -60 dB in feature units, about 78 dB under good mixes) gives
      the neutral vector.

Where the constants come from: ``python -m mixpilot.training._heuristic_reference``
derives the reference curve, its per-band spread, the reference level,
side-to-mid ratio and dynamics from good synthetic mixes (300 songs x 2
windows of :mod:`training.synth`, seed 1234, not part of any dataset), and
each deadband as the 75th percentile (level: 90th) of the rule's raw estimate
over those good windows: a rule acts only on a deviation larger than most
good mixes show.  The gains are fixed by design: 0.5 for EQ and width (undo
half of the excess), 0.25 for compression, and for level ``6 / (6 -
deadband)``, so the full correction is reached at the edge of the AI range.

How much each cue can say is limited by how much good mixes differ: across
the synthetic songs the per-band long-term spectrum of a 3 s window has a
standard deviation of 5-20 dB around the reference (instrumentation,
register, brightness) and the side-to-mid ratio spans about 20 dB, far more
than a 1-4 dB EQ fault or a 10 % width fault, so the EQ, width and
compression rules act only on gross deviations.  Level (total power) is the
one strong cue.  Fitted purely for the lowest MAE, the rules would switch EQ,
width and compression off; they are kept, gentle and deadbanded, because a
fallback must still react to a gross fault.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from mixpilot.dsp.biquad import BELL, HIGH_SHELF, LOW_SHELF, rbj_coefficients
from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS

from .features import FEATURE_CONFIG, FeatureConfig, mel_filterbank

__all__ = ["HeuristicEstimator", "analyse", "eq_responses_db"]

# --- constants derived by training/_heuristic_reference.py (see module docstring) -------------
# BEGIN DERIVED
# derived by training/_heuristic_reference.py: 300 songs x 2 windows, seed 1234
REFERENCE_SPECTRUM_DB = np.array(
    [
        12.14,
        10.25,
        6.78,
        3.99,
        2.70,
        1.10,
        -0.59,
        -2.17,
        -3.42,
        -4.64,
        -6.31,
        -7.17,
        -8.02,
        -9.05,
        -9.85,
        -10.04,
        -10.89,
        -11.36,
        -12.09,
        -13.19,
        -13.57,
        -13.70,
        -14.31,
        -14.76,
        -15.22,
        -15.09,
        -14.98,
        -15.76,
        -16.00,
        -17.13,
        -17.67,
        -18.17,
        -18.46,
        -18.76,
        -19.54,
        -19.88,
        -20.29,
        -20.78,
        -20.98,
        -21.93,
        -22.98,
        -22.95,
        -23.39,
        -23.69,
        -24.06,
        -24.78,
        -25.34,
        -25.82,
        -26.49,
        -26.75,
        -27.23,
        -27.98,
        -28.58,
        -28.79,
        -29.08,
        -29.51,
        -29.98,
        -30.26,
        -31.27,
        -32.03,
        -33.25,
        -34.59,
        -36.35,
        -41.85,
    ]
)
REFERENCE_SPECTRUM_STD_DB = np.array(
    [
        1.15,
        1.51,
        2.94,
        3.67,
        3.23,
        3.26,
        3.49,
        3.97,
        4.29,
        4.50,
        5.25,
        5.18,
        5.62,
        6.03,
        5.68,
        5.65,
        6.19,
        5.70,
        6.04,
        5.78,
        6.54,
        6.00,
        6.51,
        6.69,
        5.97,
        5.27,
        5.34,
        5.59,
        5.10,
        5.44,
        5.60,
        5.42,
        5.51,
        4.95,
        5.27,
        5.48,
        4.67,
        5.01,
        5.06,
        5.39,
        5.85,
        5.40,
        4.84,
        4.47,
        4.57,
        4.63,
        5.03,
        5.21,
        5.41,
        4.91,
        4.89,
        5.30,
        5.24,
        5.06,
        4.89,
        5.34,
        5.78,
        5.60,
        6.70,
        6.58,
        7.27,
        8.35,
        9.86,
        11.66,
    ]
)
REFERENCE_LEVEL_DB = 34.33
REFERENCE_SIDE_MID_DB = -8.18
REFERENCE_DYNAMICS_DB = 7.62
EQ_RIDGE = 0.3
RULE_GAINS = {
    "input_gain_db": (1.18132, 0.921),
    "low_gain_db": (0.5, 1.33),
    "mid_gain_db": (0.5, 1.5),
    "high_gain_db": (0.5, 3.91),
    "presence_gain_db": (0.5, 1.67),
    "comp_ratio": (0.25, 1.91),
    "stereo_width": (0.5, 0.0585),
}
# END DERIVED

DEVIATION_CLIP_DB = 10.0
_SILENCE_ABOVE_FLOOR_DB = 20.0  # a window whose total power is within this of the all-floor window is silence
_SIDE_FROM_HZ = 150.0
_OUTPUT_DB_PER_RATIO = 1.0
_EQ_NAMES = ("low_gain_db", "mid_gain_db", "high_gain_db", "presence_gain_db")
_CHAIN_RATE = 44100.0


def _default_value(name: str) -> float:
    return PARAMS[PARAM_INDEX[name]].default


@lru_cache(maxsize=4)
def _power_weights(config: FeatureConfig) -> np.ndarray:
    """Per mel band, 1 / the filter's peak: undoes the Slaney area normalisation, so that the
    weighted sum of band powers is the broadband power (unit-height triangles sum to one)."""
    return 1.0 / mel_filterbank(config).max(axis=1)


def _band_centres_hz(config: FeatureConfig) -> np.ndarray:
    fb = mel_filterbank(config)
    freqs = np.linspace(0.0, config.sample_rate / 2.0, fb.shape[1])
    return (fb @ freqs) / np.maximum(fb.sum(axis=1), 1e-12)


@lru_cache(maxsize=4)
def eq_responses_db(config: FeatureConfig = FEATURE_CONFIG) -> np.ndarray:
    """[4, n_mels]: dB change per +1 dB of low / mid / high / presence gain, per mel band.

    The chain's RBJ filters at their default frequencies and Q (at 44.1 kHz),
    power response averaged over each mel band's filter.
    """
    fb = mel_filterbank(config)
    freqs = np.linspace(0.0, config.sample_rate / 2.0, fb.shape[1])
    z = np.exp(-1j * 2.0 * np.pi * freqs / _CHAIN_RATE)
    v = {p.name: p.default for p in PARAMS}
    specs = (
        (LOW_SHELF, v["low_freq_hz"], np.sqrt(0.5)),
        (BELL, v["mid_freq_hz"], v["mid_q"]),
        (HIGH_SHELF, v["high_freq_hz"], np.sqrt(0.5)),
        (BELL, v["presence_freq_hz"], v["presence_q"]),
    )
    gain = 2.0
    out = np.empty((4, fb.shape[0]))
    for k, (kind, f0, q) in enumerate(specs):
        b0, b1, b2, a1, a2 = rbj_coefficients(kind, f0, gain, q, _CHAIN_RATE)
        h = (b0 + b1 * z + b2 * z * z) / (1.0 + a1 * z + a2 * z * z)
        p = fb @ (np.abs(h) ** 2)
        out[k] = 10.0 * np.log10(p / np.maximum(fb.sum(axis=1), 1e-12)) / gain
    out.setflags(write=False)
    return out


def analyse(features: np.ndarray, config: FeatureConfig = FEATURE_CONFIG) -> dict:
    """Window statistics used by the rules (see the module docstring).

    ``features`` is [2, n_mels, n_frames] or a batch [n, 2, n_mels, n_frames];
    every entry of the result then gains a leading batch axis.
    """
    f = np.asarray(features, dtype=np.float64)
    single = f.ndim == 3
    if single:
        f = f[None]
    if f.ndim != 4 or f.shape[1:3] != config.shape[:2]:
        raise ValueError(f"features must have shape {config.shape} or (n,) + that, got {np.shape(features)}")
    pm = 10.0 ** (f[:, 0] / 10.0)
    ps = 10.0 ** (f[:, 1] / 10.0)
    total = pm + ps
    spec = 10.0 * np.log10(total.mean(axis=2))
    w = _power_weights(config)[None, :, None]
    level = 10.0 * np.log10((w * total).mean(axis=2).sum(axis=1))
    frame_db = 10.0 * np.log10((w * total).sum(axis=1))
    dyn = np.percentile(frame_db, 95, axis=1) - np.percentile(frame_db, 10, axis=1)
    sel = _band_centres_hz(config) >= _SIDE_FROM_HZ
    side = ps.mean(axis=2)[:, sel].sum(axis=1)
    mid = pm.mean(axis=2)[:, sel].sum(axis=1)
    side_mid = 10.0 * np.log10(np.maximum(side, 1e-30) / np.maximum(mid, 1e-30))
    mono = np.all(f[:, 1] <= config.floor_db + 1.0, axis=(1, 2))
    out = {"spectrum_db": spec, "level_db": level, "dynamics_db": dyn, "side_mid_db": side_mid, "mono": mono}
    if single:
        out = {k: v[0] for k, v in out.items()}
    return out


class HeuristicEstimator:
    """Rules over a feature window -> the 10 AI parameters.

    Parameters
    ----------
    config : FeatureConfig
        must be the configuration the reference constants were derived for.
    reference : dict, optional
        override the derived reference statistics (``spectrum_mean``,
        ``spectrum_std``, ``side_mid_db``, ``dynamics_db``); used when deriving them.
    """

    name: str = "heuristic"
    param_names: tuple[str, ...] = tuple(AI_PARAM_NAMES)

    def __init__(self, config: FeatureConfig = FEATURE_CONFIG, *, reference: dict | None = None):
        if config.n_mels != REFERENCE_SPECTRUM_DB.shape[0] and reference is None:
            raise ValueError(
                f"the heuristic's reference has {REFERENCE_SPECTRUM_DB.shape[0]} mel bands, "
                f"the feature config {config.n_mels}"
            )
        self.config = config
        ref = reference or {}
        self.ref_spectrum = np.asarray(ref.get("spectrum_mean", REFERENCE_SPECTRUM_DB), dtype=np.float64)
        std = np.asarray(ref.get("spectrum_std", REFERENCE_SPECTRUM_STD_DB), dtype=np.float64)
        self.weights = 1.0 / np.maximum(std, 1.0) ** 2
        self.ref_level = float(ref.get("level_db", REFERENCE_LEVEL_DB))
        self.ref_side_mid = float(ref.get("side_mid_db", REFERENCE_SIDE_MID_DB))
        self.ref_dynamics = float(ref.get("dynamics_db", REFERENCE_DYNAMICS_DB))
        self.responses = eq_responses_db(config)
        self.set_gains()

    def set_gains(self, gains: dict | None = None, *, eq_ridge: float = EQ_RIDGE) -> None:
        """Set the rule gains ``{name: (gain, deadband)}`` and the EQ ridge (for calibration)."""
        self.gains = dict(RULE_GAINS)
        self.gains.update(gains or {})
        self.eq_ridge = float(eq_ridge)
        x = np.concatenate([np.ones((1, self.responses.shape[1])), self.responses]).T  # [M, 5]
        w = self.weights
        a = x.T @ (w[:, None] * x)
        # ridge relative to each filter's own weighted energy: eq_ridge = 1 halves a clean estimate
        a[1:, 1:] += self.eq_ridge * np.diag(np.diag(a)[1:])
        self._solve = np.linalg.solve(a, x.T * w[None, :])  # [5, M]: beta = solve @ deviation

    # -- the rules ---------------------------------------------------------
    def _values(self, features: np.ndarray) -> np.ndarray:
        """Denormalised, clamped values [n, 10] for a batch."""
        return self.rules(analyse(features, self.config))

    def raw(self, a: dict) -> dict[str, np.ndarray]:
        """The raw estimate ``x`` of each rule (before gain and deadband) from an :func:`analyse` batch."""
        dev = a["spectrum_db"] - self.ref_spectrum[None, :]
        # robust fit: a band far off the reference (an instrument missing, a band empty) counts
        # as at most DEVIATION_CLIP_DB around the window's median deviation
        med = np.median(dev, axis=1, keepdims=True)
        dev = med + np.clip(dev - med, -DEVIATION_CLIP_DB, DEVIATION_CLIP_DB)
        beta = dev @ self._solve.T  # [n, 5]
        out = {
            "input_gain_db": self.ref_level - a["level_db"],
            "comp_ratio": np.maximum(0.0, a["dynamics_db"] - self.ref_dynamics),
            "stereo_width": self._width_raw(a),
        }
        for k, name in enumerate(_EQ_NAMES):
            out[name] = -beta[:, 1 + k]
        return out

    def _width_raw(self, a: dict) -> np.ndarray:
        # narrow only: a narrow mix is as often a choice (or a mono source) as a fault,
        # and blind widening costs mono compatibility
        dev = a["side_mid_db"] - self.ref_side_mid
        return np.where(a["mono"], 0.0, -np.maximum(dev, 0.0) / 20.0)

    def rules(self, a: dict, raw: dict | None = None) -> np.ndarray:
        """Denormalised, clamped values [n, 10] from a batch :func:`analyse` result."""
        raw = self.raw(a) if raw is None else raw
        n = a["level_db"].shape[0]
        names = AI_PARAM_NAMES
        vals = np.tile(np.array([_default_value(k) for k in names]), (n, 1))
        for name, x in raw.items():
            gain, dead = self.gains[name]
            y = gain * np.sign(x) * np.maximum(np.abs(x) - dead, 0.0)
            if name == "stereo_width":
                vals[:, names.index(name)] = 10.0**y
            elif name == "comp_ratio":
                vals[:, names.index(name)] = 1.0 + y
            else:
                vals[:, names.index(name)] = _default_value(name) + y
        ratio = np.clip(vals[:, names.index("comp_ratio")], 1.0, 4.0)
        vals[:, names.index("output_gain_db")] = _OUTPUT_DB_PER_RATIO * (ratio - 1.0)
        floor = self.config.floor_db + 10.0 * math.log10(float(_power_weights(self.config).sum()))
        silent = a["level_db"] < floor + _SILENCE_ABOVE_FLOOR_DB
        if np.any(silent):
            vals[silent] = [_default_value(k) for k in names]
        lo = np.array([PARAMS[PARAM_INDEX[k]].ai_minimum for k in names])
        hi = np.array([PARAMS[PARAM_INDEX[k]].ai_maximum for k in names])
        return np.clip(vals, lo, hi)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Normalised AI parameters: [2, M, T] -> float32 [10]; [n, 2, M, T] -> float32 [n, 10]."""
        f = np.asarray(features)
        single = f.ndim == 3
        out = self.normalise(self._values(f[None] if single else f))
        return out[0] if single else out

    @staticmethod
    def normalise(vals: np.ndarray) -> np.ndarray:
        """[n, 10] parameter values -> float32 [n, 10] normalised (as dsp.params.normalise)."""
        out = np.empty(vals.shape, dtype=np.float32)
        for j, name in enumerate(AI_PARAM_NAMES):
            p = PARAMS[PARAM_INDEX[name]]
            lo, hi = p.ai_minimum, p.ai_maximum
            if p.glide == "geometric":
                out[:, j] = (np.log(vals[:, j]) - np.log(lo)) / (np.log(hi) - np.log(lo))
            else:
                out[:, j] = (vals[:, j] - lo) / (hi - lo)
        return np.clip(out, 0.0, 1.0, out=out)

    def suggest(self, features: np.ndarray) -> dict[str, float]:
        """``{name: value}`` for one window, in parameter units, inside the AI ranges."""
        f = np.asarray(features)
        if f.ndim != 3:
            raise ValueError(f"suggest takes one window of shape {self.config.shape}, got {f.shape}")
        vals = self._values(f[None])[0]  # float64, already clamped to the AI ranges
        return {name: float(v) for name, v in zip(AI_PARAM_NAMES, vals)}
