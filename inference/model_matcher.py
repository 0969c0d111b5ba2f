"""The target-conditioned model as the AI worker's stream estimator.

:class:`ModelMatcher` is the analytic matcher (:class:`inference.matcher.AnalyticMatcher`:
the running input statistics that follow a change of material, the
whole-file analysis of ``render``, the compressor toward the target's
PLR/LRA, level left to the loudness follower) whose **tonal-match EQ and
widths** come from the model (:class:`inference.target_model.TargetModel`)
given the same running descriptors and the target (:func:`model_result`;
with do-no-harm, like the analytic matcher, no boost of a band the input
lacks).  Where the model
cannot answer (an error in a hop) that hop keeps the analytic values and
:attr:`errors` counts it; the audio never waits.

``--model default`` gives this estimator aiming at the shipped ``default``
profile when ``models_onnx/default.json`` names a target-conditioned model
(:func:`inference.worker.load_estimator`); a missing, corrupt or mismatched
model gives one warning and the analytic matcher.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mixpilot.dsp.descriptors import BAND_CENTRES_HZ
from mixpilot.dsp.tone import CENTRES_HZ, TONE_PARAMS
from mixpilot.dsp.tone import response_db as tone_response_db

from .matcher import EMPTY_BAND_DB, MIN_SECONDS, AnalyticMatcher, MatchResult
from .profile import Profile
from .target_model import MODEL_PARAM_NAMES, TargetModel, TargetVector

__all__ = ["ModelMatcher", "model_result"]

_REGIONS = (
    ("low end", BAND_CENTRES_HZ < 160.0),
    ("low mids", (BAND_CENTRES_HZ >= 160.0) & (BAND_CENTRES_HZ < 800.0)),
    ("mids", (BAND_CENTRES_HZ >= 800.0) & (BAND_CENTRES_HZ < 3000.0)),
    ("presence", (BAND_CENTRES_HZ >= 3000.0) & (BAND_CENTRES_HZ < 8000.0)),
    ("air", BAND_CENTRES_HZ >= 8000.0),
)


def _lacking_octaves(d: Any, target: Profile) -> np.ndarray:
    """Per tone band: True where the input lacks the octave (most of its 1/3-octave bands more than
    :data:`inference.matcher.EMPTY_BAND_DB` under the target, or empty): no boost there with do-no-harm,
    the analytic matcher's rule (boosting there lifts noise, not music; such inputs, speech or band-limited
    recordings, lie outside what the model was trained on)."""
    dev = np.asarray(target.mid_db, dtype=np.float64) - np.asarray(d.mid_db, dtype=np.float64)
    lack = ~np.isfinite(dev) | (dev > EMPTY_BAND_DB)
    out = np.zeros(len(TONE_PARAMS), dtype=bool)
    for k, centre in enumerate(CENTRES_HZ):
        if k == 0:
            sel = BAND_CENTRES_HZ < centre * 2**0.5
        elif k == len(TONE_PARAMS) - 1:
            sel = BAND_CENTRES_HZ > centre / 2**0.5
        else:
            sel = np.abs(np.log2(BAND_CENTRES_HZ / centre)) < 0.5
        out[k] = np.count_nonzero(lack[sel]) * 2 > np.count_nonzero(sel)
    return out


def model_result(
    model: TargetModel,
    d: Any,
    seconds: float,
    target: Profile,
    base: MatchResult,
    *,
    sample_rate: float,
    do_no_harm: bool,
) -> MatchResult:
    """The analytic result ``base`` with the model's tone EQ and widths (and their reasons) in its place.

    With a card's ``model_share`` w < 1 each tone gain is ``w * model + (1 - w) * analytic`` (dB) and each
    width the same in log (two estimators whose errors are partly independent; w chosen on validation cases).

    With ``do_no_harm`` a tone band the input lacks is never boosted (:func:`_lacking_octaves`).
    Raises whatever the model raises (the caller keeps ``base``).
    """
    p = model.params(d, seconds, TargetVector.from_profile(target))
    values = dict(base.values)
    w = getattr(model, "model_share", 1.0)
    for n in MODEL_PARAM_NAMES:  # the card's share of the model, the rest the analytic matcher's (dB; widths in log)
        a = base.values[n]
        if w >= 1.0:
            values[n] = p[n]
        elif n.startswith("tone_"):
            values[n] = w * p[n] + (1.0 - w) * a
        else:
            values[n] = math.exp(w * math.log(p[n]) + (1.0 - w) * math.log(a))
    if do_no_harm:
        for name, lacking in zip(TONE_PARAMS, _lacking_octaves(d, target)):
            if lacking and values[name] > 0.0:
                values[name] = 0.0
    gains = np.array([values[n] for n in TONE_PARAMS])
    ok = BAND_CENTRES_HZ < 0.49 * sample_rate
    real = np.full(BAND_CENTRES_HZ.shape, np.nan)
    real[ok] = tone_response_db(gains, BAND_CENTRES_HZ[ok], sample_rate)
    reasons = []
    for label, mask in _REGIONS:
        m = mask & ok
        if m.any() and abs(float(np.mean(real[m]))) >= 0.5:
            reasons.append(f"{label} {float(np.mean(real[m])):+.1f} dB toward the target")
    sw = values.get("stereo_width", 1.0)
    for name, label in (("width_low", "low-end width"), ("width_high", "width")):
        g = sw * values.get(name, 1.0)
        if abs(20.0 * np.log10(g)) >= 0.1:
            reasons.append(f"{label} x{g:.2f} (side {20.0 * np.log10(g):+.1f} dB) toward the target")
    reasons += [r for r in base.reasons if r.startswith("compressor")]
    return MatchResult(values, reasons, base.tone_target_db, real)


class ModelMatcher(AnalyticMatcher):
    """The model's tone and widths on top of the analytic matcher (module docstring)."""

    def __init__(
        self, model: TargetModel, target: Profile, sample_rate: float = 48000.0, channels: int = 2, **kw: Any
    ) -> None:
        self.model = model
        self.errors = 0
        self.last_error = ""
        super().__init__(target, sample_rate, channels, **kw)
        self.name = model.name  # "target": what --model names, what reports and notes show

    @classmethod
    def for_target(cls, spec: str | None = None, sample_rate: float = 48000.0, channels: int = 2, **kw: Any) -> Any:
        """The model (``model=`` a name or path, default ``"default"``) aiming at a profile name or path."""
        model = kw.pop("model", "default")
        m = model if isinstance(model, TargetModel) else TargetModel.load(model)
        return cls(m, Profile.load(spec or "default"), sample_rate, channels, **kw)

    def result(self) -> MatchResult:
        if self._result is not None:
            return self._result
        base = super().result()
        d = self.stats.descriptors()
        if d.silent or d.duration_s < MIN_SECONDS or not np.any(np.isfinite(d.mid_db)):
            return base
        try:
            res = model_result(
                self.model, d, self.stats.seconds, self.target, base,
                sample_rate=self.sample_rate, do_no_harm=self.do_no_harm,
            )  # fmt: skip
        except Exception as exc:  # the model failed this hop: the analytic values stand
            self.errors += 1
            self.last_error = " ".join(str(exc).split())[:200]
            return base
        self._result = res
        return res
