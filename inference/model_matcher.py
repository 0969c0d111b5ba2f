"""The target-conditioned model as the AI worker's stream estimator.

:class:`ModelMatcher` is the analytic matcher (:class:`inference.matcher.AnalyticMatcher`:
the running input statistics that follow a change of material, the
whole-file analysis of ``render``, the compressor toward the target's
PLR/LRA, level left to the loudness follower) whose **tonal-match EQ and
widths** come from the model (:class:`inference.target_model.TargetModel`)
given the same running descriptors and the target (:func:`model_result`;
with do-no-harm, the default profile, inside the analytic matcher's own
do-no-harm correction: :func:`within_tolerance`).  Where the model
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
from mixpilot.dsp.tone import TONE_PARAMS
from mixpilot.dsp.tone import response_db as tone_response_db

from .matcher import MIN_SECONDS, AnalyticMatcher, MatchResult, fit_tone_curve, split_widths
from .profile import Profile
from .target_model import MODEL_PARAM_NAMES, TargetModel

__all__ = ["ModelMatcher", "model_result", "within_tolerance"]

_REGIONS = (
    ("low end", BAND_CENTRES_HZ < 160.0),
    ("low mids", (BAND_CENTRES_HZ >= 160.0) & (BAND_CENTRES_HZ < 800.0)),
    ("mids", (BAND_CENTRES_HZ >= 800.0) & (BAND_CENTRES_HZ < 3000.0)),
    ("presence", (BAND_CENTRES_HZ >= 3000.0) & (BAND_CENTRES_HZ < 8000.0)),
    ("air", BAND_CENTRES_HZ >= 8000.0),
)


def within_tolerance(values: dict[str, float], base: MatchResult, sample_rate: float) -> dict[str, float]:
    """Do-no-harm: ``values``' tone EQ and widths kept inside the analytic matcher's do-no-harm correction
    ``base`` (the same input and profile): per 1/3-octave band, the model's response (dB) may move only toward
    the target and by no more than ``base.tone_target_db``, the part of the input's deviation that lies
    outside ``tolerance_k`` x the profile's tolerance -- nothing where the input lies inside it, where the input
    is unlike the profile's material (a solo instrument, speech) or, as a boost, where it lacks the band; the
    effective side gain below and above the crossover likewise within the analytic matcher's.  The model's
    moves are kept where they lie inside that envelope (it may correct less than the analytic matcher: what it
    learnt about content against fault), clipped to it elsewhere (the tone EQ refitted to the clipped curve,
    :func:`inference.matcher.fit_tone_curve`).  The training's default-profile pairs are good masters of
    music (left alone) and faulted ones; an input outside the tolerance in a way those never were gets no
    move the rules would not make."""
    out = dict(values)
    gains = np.array([values[n] for n in TONE_PARAMS])
    allowed = base.tone_target_db
    if allowed is None or base.tone_active is None or not np.any(np.isfinite(allowed)):
        gains = np.zeros_like(gains)
    elif np.any(gains != 0.0):
        fin = np.isfinite(allowed)
        real = tone_response_db(gains, BAND_CENTRES_HZ[fin], sample_rate)
        kept = np.clip(real, np.minimum(allowed[fin], 0.0), np.maximum(allowed[fin], 0.0))
        if not np.any(np.abs(kept) > 0.05):
            gains = np.zeros_like(gains)
        elif np.any(kept != real):
            curve = np.full(allowed.shape, np.nan)
            curve[fin] = kept
            gains = fit_tone_curve(curve, base.tone_active, sample_rate)[0]
    out.update({n: float(g) for n, g in zip(TONE_PARAMS, gains)})
    want = {}
    for name in ("width_low", "width_high"):
        side = math.log(values.get("stereo_width", 1.0) * values.get(name, 1.0))
        limit = math.log(base.values.get("stereo_width", 1.0) * base.values.get(name, 1.0))
        want[name] = math.exp(min(max(side, min(limit, 0.0)), max(limit, 0.0)))
    out["stereo_width"], bands = split_widths(want)
    out.update(bands)
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

    With ``do_no_harm`` (the default profile) the result stays inside the analytic matcher's do-no-harm
    correction (:func:`within_tolerance`).
    Raises whatever the model raises (the caller keeps ``base``).
    """
    p = model.params(d, seconds, target)  # the profile itself: the model keeps its cleaned part (prepare_target)
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
        values = within_tolerance(values, base, sample_rate)
    gains = np.array([values[n] for n in TONE_PARAMS])
    ok = BAND_CENTRES_HZ < 0.49 * sample_rate
    real = np.full(BAND_CENTRES_HZ.shape, np.nan)
    real[ok] = tone_response_db(gains, BAND_CENTRES_HZ[ok], sample_rate)
    reasons = []
    for label, mask in _REGIONS:
        m = mask & ok
        if m.any():
            move = float(real[m].sum() / np.count_nonzero(m))  # np.mean's value (sum / n)
            if abs(move) >= 0.5:
                reasons.append(f"{label} {move:+.1f} dB toward the target")
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
