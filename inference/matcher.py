"""The analytic matcher: running input statistics vs a target -> every AI parameter.

It is the fallback when no model loads and the baseline a model must beat.
Unlike the window estimators (a 3 s log-mel window in, parameters out) it
reads *all* the audio since the start (or since the last change of
material) and compares its long-term descriptors with a target
:class:`~mixpilot.inference.profile.Profile`: a reference track, several
references, a profile file, or a shipped profile.

Stable API (what the model of issue 15 imports; keep it)
--------------------------------------------------------
``RunningStats(sample_rate, channels=2, *, follow_s=FOLLOW_S, change_db=CHANGE_DB, change_lu=CHANGE_LU)``
    the input's long-term statistics: ``update(block)``, ``descriptors()``
    (a :class:`~mixpilot.dsp.descriptors.Descriptors`, cached until the
    next update), ``reset()``, ``seconds`` (audio in the current estimate),
    ``total_seconds``, ``changes`` (material changes followed).
``match_parameters(d, target, *, sample_rate, do_no_harm=False, ...) -> MatchResult``
    the pure mapping: input descriptors + target -> ``values`` (every name of
    :data:`dsp.params.AI_PARAM_NAMES`, table units, inside the AI ranges,
    plus :data:`EXTRA_PARAMS`), ``reasons`` (one line per aspect that
    moves), ``tone_target_db`` (the 1/3-octave correction the tone EQ was
    fitted to).
``AnalyticMatcher(target, sample_rate, channels=2, *, do_no_harm=None, delivery_lufs=None, ...)``
    the estimator the :class:`~mixpilot.inference.worker.InferenceWorker`
    drives (``wants_audio = True``): ``update(block)``, ``values()``,
    ``result()`` (the last :class:`MatchResult`), ``reset()``, ``stats``
    (its :class:`RunningStats`), ``analyse(x)`` (the whole file at once,
    then ``frozen``: ``render`` uses it).
``AnalyticMatcher.for_target(spec=None)``
    the matcher for a profile name or path (``None``: the shipped
    ``default`` profile, do-no-harm): what ``--model matcher`` and the
    fallback use; :func:`mixpilot.realtime.references.resolve_target`
    turns ``--reference`` / ``--target`` into a profile.

The running estimate
--------------------
:class:`RunningStats` keeps a *main*
:class:`~mixpilot.dsp.descriptors.DescriptorAccumulator` (everything since
the start or the last change) and compares windows of ``follow_s / 3``
seconds with it: a window whose loudness-relative mid balance differs by
more than ``change_db`` dB RMS (over the bands within
:data:`CHANGE_RANGE_DB` of the loudest), or whose loudness differs by more
than ``change_lu`` LU, is unlike the estimate; **two such windows in a row**
are a change of material (a new song, a new input) and become the estimate
(one unlike window is a fill, a break, a chorus: it stays in the estimate).
A change is therefore followed within ``follow_s`` seconds (at most three
windows: the one the change falls into is mixed).  Silence (nothing above
the loudness gates) never counts as a change.  ``follow_s=None`` never
follows (one estimate over everything: the whole-file analysis of
``render``).

The mapping (:func:`match_parameters`)
--------------------------------------
* **tone** -- per 1/3-octave band, ``target mid - input mid`` (both dB re
  their own integrated loudness), only bands the input has (within
  :data:`ACTIVE_BAND_DB` of its loudest band), the loudness-weighted mean
  removed (a broadband offset is level, the follower's job), averaged over
  each band's octave (the ten octave bands cannot follow finer detail),
  shrunk toward "no move" by how much of it is likely the *content* and not
  the mix (a Wiener weight ``f^2 / (f^2 + c^2)`` per band: ``f`` =
  ``fault_prior_db``, how far a mix is typically off; ``c^2`` =
  ``content_db^2`` + the mean square of the input's and the target's
  spread across time in that band + the target's tolerance: two passages of
  one piece differ by about that much, so a literal match would copy the
  difference), times ``tone_strength``; with ``do_no_harm`` only the part outside
  ``tolerance_k`` x the profile's tolerance, and never a boost of a band the
  input is nearly empty in (the band or its octave more than
  :data:`EMPTY_BAND_DB` under the target: speech has no sub-bass, a solo
  trumpet no bass; boosting there lifts noise, not music); and an input whose
  balance is a median of more than :data:`UNLIKE_Z` tolerances away is not
  the kind of material the profile describes (a solo instrument): its tone
  is left alone.  The ten
  ``tone_*`` gains are :func:`dsp.tone.fit` of that curve (band interaction
  included) inside their AI ranges.  The four-band EQ stays neutral.
* **width** -- per band, ``target side/mid - input side/mid`` (dB); the
  side energy the target asks for below and above the crossover
  (``width_crossover_hz``), weighted by the input's mid energy, gives
  ``width_low`` and ``width_high``; what the upper band asks beyond its AI
  range goes to ``stereo_width`` (0.9-1.1, both bands; the lower band's
  width is divided by it).  A mono input (no side) is left alone.
* **dynamics** -- the loudness follower and the limiter deliver a peak-to-
  loudness ratio of at most ``ceiling - delivery loudness``; where the target
  PLR (or LRA) is lower than what the input would get that way, the
  compressor closes the gap: threshold ``comp_threshold_db`` (an extra, not
  an AI parameter) :data:`COMP_THRESHOLD_OVER_LU` above the input's
  integrated loudness, ratio so that ``(1 - 1/ratio)`` of the peaks' excess
  over the threshold is the PLR to lose (LRA likewise), 1..4.
* **level** -- ``input_gain_db`` and ``output_gain_db`` stay at 0 dB: level
  belongs to the loudness follower alone (the delivery loudness is the
  reference's integrated loudness unless ``--target-lufs`` says otherwise),
  so the AI and the follower never chase each other.
* **space** -- reverb and delay sends stay 0: the descriptors carry no cue
  for "too dry", and a target's reverb is part of its tonal balance.

Cost: ``update`` is two accumulators, three while a change is pending
(about 3 ms each per 0.5 s of 44.1 kHz stereo on the development machine), ``values`` one :func:`dsp.tone.fit`
(a few ms); both run on the worker thread, never in the audio callback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixpilot.dsp.descriptors import (
    BAND_CENTRES_HZ,
    WIDTH_FLOOR_DB,
    DescriptorAccumulator,
    Descriptors,
    k_weighting_power,
    mid_side,
)
from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS
from mixpilot.dsp.tone import TONE_PARAMS
from mixpilot.dsp.tone import fit as tone_fit
from mixpilot.dsp.tone import response_db as tone_response_db

from .profile import Profile

__all__ = [
    "ACTIVE_BAND_DB",
    "CHANGE_DB",
    "CHANGE_LU",
    "COMP_THRESHOLD_OVER_LU",
    "EMPTY_BAND_DB",
    "EXTRA_PARAMS",
    "FOLLOW_S",
    "AnalyticMatcher",
    "MatchResult",
    "RunningStats",
    "fit_tone_curve",
    "match_parameters",
    "neutral_values",
    "split_widths",
]

FOLLOW_S = 15.0  # a change of material is followed within this time (s)
CHANGE_RANGE_DB = 30.0  # the change test compares the bands within this of the loudest
CHANGE_DB = 4.0  # RMS over bands of the mid-balance difference that counts as a change (dB)
CHANGE_LU = 10.0  # loudness difference that counts as a change (LU)
ACTIVE_BAND_DB = 50.0  # bands more than this under the input's loudest band are not matched
EMPTY_BAND_DB = 12.0  # do-no-harm: no boost of a band more than this under the target
COMP_THRESHOLD_OVER_LU = 3.0  # compressor threshold above the input's integrated loudness
TOLERANCE_K = 2.0  # do-no-harm acts on what lies outside this many tolerances
#: do-no-harm: an input whose octave-smoothed balance lies a median of more than this many tolerances from
#: the target is not the kind of material the profile describes (a solo instrument against a profile of
#: full mixes: for a track of the profile's own kind the median |z| is about 0.67): its tone is left alone
UNLIKE_Z = 2.0
INACTIVE_WEIGHT = 0.25  # fit weight of the "no move" held in bands the input does not have
FIT_RIDGE = 0.1  # dsp.tone.fit's ridge: no large opposite gains in neighbouring bands
TONE_STRENGTH = 1.0  # share of the tonal difference corrected
#: how far a mix's band is typically off (dB): the prior of the reference match's shrinking.  Chosen with
#: CONTENT_DB on 40 cases of the match_eval protocol made from the corpus's train and validation tracks
#: (never the test split): 3/2.5 gave mid tonal 2.13 dB, no shrinking 2.51, half of every move 2.20, and
#: 3/1.5, 4/2.5 within 0.02 dB of it (training/README.md, reference matching)
FAULT_PRIOR_DB = 3.0
CONTENT_DB = 2.5  # how far two passages of one piece differ in a band at least (dB), on top of their spread
WIDTH_STRENGTH = 1.0  # share of the width difference corrected (0.5 was worse on the same cases: 2.04 vs 1.87 dB)
MIN_SECONDS = 1.0  # no estimate from less audio than this
#: non-AI parameters the matcher sets as well (the compressor needs a threshold relative to the input)
EXTRA_PARAMS = ("comp_threshold_db",)

_AI_DEFAULT = {n: PARAMS[PARAM_INDEX[n]].default for n in AI_PARAM_NAMES}
_TONE_LO = np.array([PARAMS[PARAM_INDEX[n]].ai_minimum for n in TONE_PARAMS])
_TONE_HI = np.array([PARAMS[PARAM_INDEX[n]].ai_maximum for n in TONE_PARAMS])


_AI_RANGES = {p.name: (p.ai_minimum, p.ai_maximum) for p in PARAMS}  # read once (issue 19: ~30 lookups a hop)


def _ai_range(name: str) -> tuple[float, float]:
    return _AI_RANGES[name]


def _clip(name: str, v: float) -> float:
    lo, hi = _ai_range(name)
    return float(min(max(v, lo), hi))


# ---------------------------------------------------------------------------------------------
# running statistics


class RunningStats:
    """The input's long-term descriptors since the start or the last change of material (module docstring)."""

    def __init__(
        self,
        sample_rate: float,
        channels: int = 2,
        *,
        follow_s: float | None = FOLLOW_S,
        change_db: float = CHANGE_DB,
        change_lu: float = CHANGE_LU,
    ) -> None:
        if follow_s is not None and not follow_s > 0:
            raise ValueError(f"follow_s must be > 0 (or None: never follow), got {follow_s}")
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.follow_s = None if follow_s is None else float(follow_s)
        self.change_db = float(change_db)
        self.change_lu = float(change_lu)
        self._window = 0 if follow_s is None else max(1, int(round(follow_s * sample_rate / 3.0)))
        self._main = DescriptorAccumulator(sample_rate, channels)
        self._recent = DescriptorAccumulator(sample_rate, channels)
        self._candidate = DescriptorAccumulator(sample_rate, channels)
        self.reset()

    def reset(self) -> None:
        """Forget everything."""
        self._main.reset()
        self._recent.reset()
        self._candidate.reset()
        self._has_candidate = False
        self._recent_frames = 0
        self._total = 0
        self._cached: Descriptors | None = None
        self.changes = 0

    @property
    def seconds(self) -> float:
        """Audio in the current estimate (since the start or the last change), s."""
        return self._main.seconds

    @property
    def total_seconds(self) -> float:
        """Audio seen since the last :meth:`reset`, s."""
        return self._total / self.sample_rate

    def update(self, block: np.ndarray) -> None:
        """Measure the next ``block`` [frames, channels] (any size; cut at the windows' ends)."""
        x = np.asarray(block)
        if x.ndim == 1:
            x = x[:, None]
        n = x.shape[0]
        if self._window == 0:
            self._main.update(x)
        elif n:
            # the accumulators are fed the same samples: the checked float64 block, its mid/side and the
            # meter's true peaks are computed once (the main accumulator's; the others take them once their
            # interpolator history is the main's), the same state as each one's update(part), bit for bit
            # (tested; issue 19)
            xs = self._main.prepare_block(x)
            ms = mid_side(xs)
            start = 0
            while start < n:
                take = min(n - start, self._window - self._recent_frames)
                part = xs[start : start + take]
                ms_part = ms[:, start : start + take]
                peaks = self._main.peak_work(take)
                accs = (self._recent, self._candidate) if self._has_candidate else (self._recent,)
                shares = [acc.peaks_shareable(self._main) for acc in accs]
                floor = self._main.peak_floor([acc for acc, sh in zip(accs, shares) if sh])
                self._main.update_prepared(part, ms_part, peaks, False, floor)
                for acc, sh in zip(accs, shares):
                    acc.update_prepared(part, ms_part, peaks, sh)
                self._recent_frames += take
                start += take
                if self._recent_frames >= self._window:
                    self._check_change()
        self._total += n
        if n:
            self._cached = None

    def _differs(self, a: Descriptors, b: Descriptors) -> bool:
        if a.silent or b.silent:
            return False
        ok = np.isfinite(a.mid_db) & np.isfinite(b.mid_db) & (b.mid_db > np.nanmax(b.mid_db) - CHANGE_RANGE_DB)
        dist = float(np.sqrt(np.mean((a.mid_db[ok] - b.mid_db[ok]) ** 2))) if ok.any() else 0.0
        return dist > self.change_db or abs(a.integrated_lufs - b.integrated_lufs) > self.change_lu

    def _check_change(self) -> None:
        """End of a window: two windows in a row unlike the estimate are new material (module docstring)."""
        recent = self._recent.descriptors()
        differs = self._main.seconds >= 2.0 * self._recent.seconds - 1e-9 and self._differs(
            recent, self._main.descriptors()
        )
        if differs and self._has_candidate:
            # the candidate (the previous window and this one) becomes the estimate
            self._main, self._candidate = self._candidate, self._main
            self._candidate.reset()
            self._has_candidate = False
            self.changes += 1
            self._recent.reset()
        elif differs:
            # this window starts a candidate: it goes on accumulating with the next one
            self._candidate, self._recent = self._recent, self._candidate
            self._recent.reset()
            self._has_candidate = True
        else:
            self._candidate.reset()
            self._has_candidate = False
            self._recent.reset()
        self._recent_frames = 0

    def descriptors(self) -> Descriptors:
        """The current estimate (cached until the next :meth:`update`)."""
        if self._cached is None:
            self._cached = self._main.descriptors()
        return self._cached

    def flush(self) -> None:
        """End of a file: the last inter-sample peaks (see :meth:`DescriptorAccumulator.flush`)."""
        self._main.flush()
        self._cached = None


# ---------------------------------------------------------------------------------------------
# the mapping


@dataclass
class MatchResult:
    """What :func:`match_parameters` decided."""

    values: dict[str, float]  # every AI parameter (+ EXTRA_PARAMS), table units, inside the AI ranges
    reasons: list[str] = field(default_factory=list)  # one line per aspect that moves
    tone_target_db: np.ndarray | None = None  # [N_BANDS] correction the tone EQ was fitted to (NaN: not matched)
    tone_fit_db: np.ndarray | None = None  # [N_BANDS] what the fitted EQ realises there
    tone_active: np.ndarray | None = None  # [N_BANDS] bool: the bands matched (the others held at "no move")


def neutral_values() -> dict[str, float]:
    """Every AI parameter at its default (no move) plus the extras at theirs."""
    out = dict(_AI_DEFAULT)
    for n in EXTRA_PARAMS:
        out[n] = PARAMS[PARAM_INDEX[n]].default
    return out


def _nan_to_num(x: Any, nan: float = 0.0) -> Any:
    """``np.nan_to_num(x, nan=nan)``, the same values; a float array with nothing to replace is only copied
    (numpy's version costs ~10 us of Python per call even then; issue 19)."""
    a = np.asarray(x)
    if a.dtype.kind == "f" and np.isfinite(a).all():
        return a.copy() if a.ndim else a[()]
    return np.nan_to_num(a, nan=nan)


_ONES3 = np.ones(3)


def _median(a: np.ndarray) -> float:
    """``float(np.median(a))`` of a non-empty finite 1-D float array, the same value (the middle of the sorted
    values, or the mean of the two middle ones: ``(x + y) / 2`` as np.mean adds and divides them) without
    numpy's ~20 us of Python per call (issue 19; tested against np.median)."""
    s = np.sort(a)
    h = s.shape[0] // 2
    return float(s[h]) if s.shape[0] % 2 else float((s[h - 1] + s[h]) / 2.0)


def _outside(dev: np.ndarray | float, tol: np.ndarray | float, k: float) -> np.ndarray:
    dev = np.asarray(dev, dtype=np.float64)
    return np.sign(dev) * np.maximum(np.abs(dev) - k * _nan_to_num(np.asarray(tol, dtype=np.float64)), 0.0)


def fit_tone_curve(curve_db: np.ndarray, active: np.ndarray, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """The ten ``tone_*`` gains (dB, :data:`dsp.tone.TONE_PARAMS` order, inside their AI ranges; under 0.05 dB:
    0) that realise ``curve_db`` [N_BANDS] (NaN: a band left out), fitted with weight 1 on the ``active`` bands
    and :data:`INACTIVE_WEIGHT` on the others (held at their value, not matched), and what they realise there
    (NaN where the curve is)."""
    below = np.isfinite(curve_db)
    gains = tone_fit(
        BAND_CENTRES_HZ[below],
        curve_db[below],
        sample_rate,
        weights=np.where(active, 1.0, INACTIVE_WEIGHT)[below],
        bounds=(_TONE_LO, _TONE_HI),
        ridge=FIT_RIDGE,
    )
    gains = np.where(np.abs(gains) < 0.05, 0.0, gains)
    real = np.full(curve_db.shape, np.nan)
    real[below] = tone_response_db(gains, BAND_CENTRES_HZ[below], sample_rate)
    return np.array([_clip(n, float(g)) for n, g in zip(TONE_PARAMS, gains)]), real


def split_widths(want: dict[str, float]) -> tuple[float, dict[str, float]]:
    """``stereo_width`` and the band widths (each inside its AI range) for the effective side gains ``want``
    (``width_low``, ``width_high``; either may be absent): the band widths first; what lies beyond the upper
    band's AI range goes to ``stereo_width`` (which scales both bands: the lower band's width is divided by it)."""
    hi = want.get("width_high", 1.0)
    sw = _clip("stereo_width", hi / _clip("width_high", hi))
    return sw, {n: _clip(n, g / sw) for n, g in want.items()}


def _smooth(a: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Mean over each band and its two neighbours (1 octave), over the ``ok`` bands only; NaN elsewhere."""
    v = np.where(ok, a, 0.0)
    c = ok.astype(np.float64)
    z = np.zeros(1)  # zero padding by one on each side (np.pad's values, without its Python cost)
    vs = np.convolve(np.concatenate((z, v, z)), _ONES3, "valid")
    cs = np.convolve(np.concatenate((z, c, z)), _ONES3, "valid")
    return np.where(ok, vs / np.maximum(cs, 1.0), np.nan)


def _region(lo_hz: float, hi_hz: float) -> np.ndarray:
    return (BAND_CENTRES_HZ >= lo_hz) & (BAND_CENTRES_HZ < hi_hz)


_REGIONS = (
    ("low end", _region(0.0, 160.0)),
    ("low mids", _region(160.0, 800.0)),
    ("mids", _region(800.0, 3000.0)),
    ("presence", _region(3000.0, 8000.0)),
    ("air", _region(8000.0, 1e9)),
)


def match_parameters(
    d: Descriptors,
    target: Profile,
    *,
    sample_rate: float,
    do_no_harm: bool = False,
    tolerance_k: float = TOLERANCE_K,
    tone_strength: float = TONE_STRENGTH,
    crossover_hz: float | None = None,
    delivery_lufs: float | None = None,
    ceiling_dbtp: float = -1.0,
    fault_prior_db: float | None = FAULT_PRIOR_DB,
    content_db: float = CONTENT_DB,
    width_strength: float = WIDTH_STRENGTH,
) -> MatchResult:
    """The AI parameters that move input ``d`` toward ``target`` (module docstring for the rules).

    ``do_no_harm``: act only on what lies outside ``tolerance_k`` x the
    target's tolerance (the default profile); else match (a reference),
    shrunk by the Wiener weight of ``fault_prior_db`` and ``content_db``
    (``fault_prior_db=None``: no shrinking) and times ``width_strength`` for
    the band widths.
    ``delivery_lufs``: the loudness the follower delivers (default the
    target's integrated loudness); with ``ceiling_dbtp`` it says what PLR the
    limiter alone leaves.  Silent or too-short input: no move.
    """
    values = neutral_values()
    if d.silent or d.duration_s < MIN_SECONDS or not np.any(np.isfinite(d.mid_db)):
        return MatchResult(values, [], None, None)
    reasons: list[str] = []
    k = float(tolerance_k)

    # -- tone ---------------------------------------------------------------------------------
    dev = np.asarray(target.mid_db, dtype=np.float64) - d.mid_db  # + = the input lacks it: boost
    ok = np.isfinite(dev) & (d.mid_db > np.nanmax(d.mid_db) - ACTIVE_BAND_DB)
    ok &= BAND_CENTRES_HZ < 0.49 * sample_rate
    tone_target = np.full(dev.shape, np.nan)
    tone_real = None
    if np.count_nonzero(ok) >= 3:
        dev_s = _smooth(dev, ok)  # the ten octave bands cannot follow 1/3-octave detail
        if do_no_harm:
            tol_s = _smooth(_nan_to_num(np.asarray(target.mid_tol_db, dtype=np.float64)), ok)
            corr = _outside(dev_s, tol_s, k)
            z = np.abs(dev_s[ok] - _median(dev_s[ok])) / np.maximum(tol_s[ok], 0.1)  # a level offset is no unlikeness
            z_median = _median(z)
            if z_median > UNLIKE_Z:  # not the kind of material the profile describes: leave it
                corr = np.zeros_like(corr)
                reasons.append(f"tone left alone: unlike the target (median {z_median:.1f} tolerances off)")
            lacking = np.maximum(_nan_to_num(dev, nan=0.0), _nan_to_num(dev_s, nan=0.0)) > EMPTY_BAND_DB
            corr = np.where((corr > 0) & lacking, 0.0, corr)
        else:
            # loudness weights: the target's band energy through the K-weighting (what the follower levels)
            kw = k_weighting_power(BAND_CENTRES_HZ, sample_rate)
            w = np.where(ok, 10.0 ** (_nan_to_num(target.mid_db, nan=-200.0) / 10.0) * kw, 0.0)
            offset = float(np.sum(w * np.where(ok, dev_s, 0.0)) / max(np.sum(w), 1e-300))
            corr = dev_s - offset
            if fault_prior_db is not None:
                # shrink toward "no move" by how much of the difference is content, not fault (Wiener):
                # the passage's own spread across time, the reference's, the target's tolerance
                sp = 0.5 * (_nan_to_num(d.mid_spread_db) ** 2 + _nan_to_num(target.mid_time_spread_db) ** 2)
                var_c = content_db**2 + sp + _nan_to_num(target.mid_tol_db) ** 2
                corr = corr * (fault_prior_db**2 / (fault_prior_db**2 + _smooth(var_c, ok)))
        # bands the input does not have are held at "no move" (a lower weight): the fit must not lift them
        # as a side effect of a neighbour
        below = np.isfinite(d.mid_db) & (BAND_CENTRES_HZ < 0.49 * sample_rate)
        corr = np.where(ok, tone_strength * corr, np.where(below, 0.0, np.nan))
        tone_target = corr
        if np.any(np.abs(corr[ok]) > 0.05):
            gains, tone_real = fit_tone_curve(corr, ok, sample_rate)
            for name, g in zip(TONE_PARAMS, gains):
                values[name] = float(g)
            for label, mask in _REGIONS:
                m = mask & ok
                if m.any():
                    move = float(tone_real[m].sum() / np.count_nonzero(m))  # np.mean's value (sum / n)
                    if abs(move) >= 0.5:
                        reasons.append(f"{label} {move:+.1f} dB toward the target")

    # -- width --------------------------------------------------------------------------------
    xo = float(crossover_hz) if crossover_hz else PARAMS[PARAM_INDEX["width_crossover_hz"]].default
    if math.isfinite(d.width_db) and d.width_db > WIDTH_FLOOR_DB + 1.0:
        wdev = np.asarray(target.width_band_db, dtype=np.float64) - d.width_band_db
        if do_no_harm:
            wdev = _outside(wdev, target.width_band_tol_db, k)
        else:
            wdev = width_strength * wdev
        mid_e = 10.0 ** (_nan_to_num(d.mid_db, nan=-200.0) / 10.0)
        wok = np.isfinite(wdev) & ok & (d.width_band_db > WIDTH_FLOOR_DB + 1.0)
        want: dict[str, float] = {}
        for name, mask in (("width_low", BAND_CENTRES_HZ < xo), ("width_high", BAND_CENTRES_HZ >= xo)):
            m = mask & wok
            if m.any():
                cur = np.sum(mid_e[m] * 10.0 ** (d.width_band_db[m] / 10.0))
                new = np.sum(mid_e[m] * 10.0 ** ((d.width_band_db[m] + wdev[m]) / 10.0))
                if cur > 0 and new > 0:
                    want[name] = math.sqrt(new / cur)
        if want:
            sw, bands = split_widths(want)
            for name, label in (("width_low", "low-end width"), ("width_high", "width")):
                if name in bands:
                    g = bands[name]
                    if abs(20.0 * math.log10(g * sw)) >= 0.1:
                        values[name] = g
                        side = 20.0 * math.log10(g * sw)
                        reasons.append(f"{label} x{g * sw:.2f} (side {side:+.1f} dB) toward the target")
            if sw != 1.0:
                values["stereo_width"] = sw

    # -- dynamics -----------------------------------------------------------------------------
    delivery = float(delivery_lufs) if delivery_lufs is not None else target.integrated_lufs
    if math.isfinite(d.plr_db) and math.isfinite(delivery) and math.isfinite(target.plr_db):
        plr_after = min(d.plr_db, ceiling_dbtp - delivery)  # what follower + limiter leave
        plr_excess = plr_after - target.plr_db
        if do_no_harm:
            plr_excess = float(_outside(plr_excess, target.plr_tol_db, k))
        lra_excess = 0.0
        if math.isfinite(d.lra_lu) and math.isfinite(target.lra_lu) and d.lra_lu > 0:
            lra_excess = d.lra_lu - target.lra_lu
            if do_no_harm:
                lra_excess = float(_outside(lra_excess, target.lra_tol_lu, k))
        over = max(d.plr_db - COMP_THRESHOLD_OVER_LU, 1.0)  # the peaks' excess over the threshold
        share = max(plr_excess / over if plr_excess > 0.5 else 0.0, lra_excess / d.lra_lu if lra_excess > 1.0 else 0.0)
        share = min(share, 0.75)
        if share > 0.0:
            ratio = _clip("comp_ratio", 1.0 / (1.0 - share))
            if ratio > 1.01:
                values["comp_ratio"] = ratio
                th = d.integrated_lufs + COMP_THRESHOLD_OVER_LU
                p = PARAMS[PARAM_INDEX["comp_threshold_db"]]
                values["comp_threshold_db"] = float(min(max(th, p.minimum), p.maximum))
                reasons.append(
                    f"compressor {ratio:.1f}:1 above {values['comp_threshold_db']:.0f} dBFS: "
                    f"PLR {plr_after:.1f} -> {target.plr_db:.1f} dB, LRA {d.lra_lu:.1f} -> {target.lra_lu:.1f} LU"
                )
    return MatchResult(values, reasons, tone_target, tone_real, ok)


# ---------------------------------------------------------------------------------------------
# the estimator


class AnalyticMatcher:
    """Running statistics + :func:`match_parameters`: the estimator the AI worker drives (module docstring).

    Parameters
    ----------
    target : Profile
    sample_rate : float
    channels : int
        of the stream; the worker calls :meth:`prepare` with its own.
    do_no_harm : bool, optional
        correct only what lies outside the target's tolerance; default: on
        when the target has a tolerance (a profile of several tracks), off
        for a single reference (tolerance 0: match it).
    delivery_lufs : float, optional
        the loudness the follower delivers (default the target's).
    ceiling_dbtp, crossover_hz, tolerance_k, tone_strength, fault_prior_db, content_db, width_strength
        as for :func:`match_parameters`.
    follow_s, change_db, change_lu
        as for :class:`RunningStats`.
    """

    name = "matcher"
    wants_audio = True  # the worker feeds it the stream (update) instead of feature windows (predict)

    def __init__(
        self,
        target: Profile,
        sample_rate: float = 48000.0,
        channels: int = 2,
        *,
        do_no_harm: bool | None = None,
        delivery_lufs: float | None = None,
        ceiling_dbtp: float = -1.0,
        crossover_hz: float | None = None,
        tolerance_k: float = TOLERANCE_K,
        tone_strength: float = TONE_STRENGTH,
        fault_prior_db: float | None = FAULT_PRIOR_DB,
        content_db: float = CONTENT_DB,
        width_strength: float = WIDTH_STRENGTH,
        follow_s: float = FOLLOW_S,
        change_db: float = CHANGE_DB,
        change_lu: float = CHANGE_LU,
    ) -> None:
        self.target = target
        self.do_no_harm = bool(target.tracks > 1) if do_no_harm is None else bool(do_no_harm)
        self.delivery_lufs = delivery_lufs
        self.ceiling_dbtp = float(ceiling_dbtp)
        self.crossover_hz = crossover_hz
        self.tolerance_k = float(tolerance_k)
        self.tone_strength = float(tone_strength)
        self.fault_prior_db = fault_prior_db
        self.content_db = float(content_db)
        self.width_strength = float(width_strength)
        self.follow_s = follow_s  # what a stream that may change material follows (configure)
        self._stats_args: dict[str, Any] = {"follow_s": follow_s, "change_db": change_db, "change_lu": change_lu}
        self.frozen = False
        self._result: MatchResult | None = None
        self.prepare(sample_rate, channels)

    @classmethod
    def for_target(
        cls, spec: str | None = None, sample_rate: float = 48000.0, channels: int = 2, **kw: Any
    ) -> AnalyticMatcher:
        """The matcher for a shipped profile name or a profile path (default: ``default``, do-no-harm)."""
        return cls(Profile.load(spec or "default"), sample_rate, channels, **kw)

    def prepare(self, sample_rate: float, channels: int) -> None:
        """(Re)start for a stream of this rate and channel count (the worker calls it; forgets the input)."""
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.stats = RunningStats(sample_rate, channels, **self._stats_args)
        self.frozen = False
        self._result = None

    def configure(
        self,
        *,
        delivery_lufs: float | None = None,
        ceiling_dbtp: float | None = None,
        crossover_hz: float | None = None,
        follow_changes: bool | None = None,
    ) -> None:
        """What the run delivers (its ``--target-lufs`` and ceiling) and the user's width crossover.

        ``follow_changes``: whether the stream may change material (``live``: the running estimate follows a
        change within ``follow_s``, the constructor's) or is one piece (``play FILE``, ``render``: the
        estimate is everything since the start, as the whole-file analysis of ``render`` is; a section of
        a piece unlike the rest would otherwise restart it).  Changing it restarts the estimate.
        """
        if delivery_lufs is not None:
            self.delivery_lufs = float(delivery_lufs)
        if ceiling_dbtp is not None:
            self.ceiling_dbtp = float(ceiling_dbtp)
        if crossover_hz is not None:
            self.crossover_hz = float(crossover_hz)
        if follow_changes is not None:
            follow_s = self.follow_s if follow_changes else None
            if follow_s != self._stats_args["follow_s"]:
                self._stats_args["follow_s"] = follow_s
                if not self.frozen:
                    self.stats = RunningStats(self.sample_rate, self.channels, **self._stats_args)
        self._result = None

    def reset(self) -> None:
        """Forget the input (a new stream or a new render pass); a frozen (whole-file) estimate stays."""
        if not self.frozen:
            self.stats.reset()
            self._result = None

    def update(self, block: np.ndarray) -> None:
        """The next audio of the stream (ignored once :meth:`analyse` froze the estimate)."""
        if not self.frozen:
            self.stats.update(block)
            self._result = None

    def analyse(self, x: np.ndarray) -> MatchResult:
        """Use the whole of ``x`` [frames, channels] (offline ``render``) and freeze the estimate.

        One estimate over the whole file (no change following: a render is one piece of material).
        """
        stats = self.whole_file_stats(self.sample_rate, self.channels)
        stats.update(x)
        return self.analyse_stats(stats)

    def whole_file_stats(self, sample_rate: float, channels: int) -> RunningStats:
        """Empty statistics for :meth:`analyse_stats`: fed a whole file block by block (a streamed
        render reads it from disk in chunks), they hold what :meth:`analyse` measures on the whole
        array (the accumulators are block-invariant bit for bit, tested)."""
        return RunningStats(sample_rate, channels, **{**self._stats_args, "follow_s": None})

    def analyse_stats(self, stats: RunningStats) -> MatchResult:
        """:meth:`analyse` from :meth:`whole_file_stats` already fed the whole file; freezes the estimate."""
        self.stats = stats
        self.stats.flush()
        self._result = None
        res = self.result()
        self.frozen = True
        return res

    def result(self) -> MatchResult:
        if self._result is None:
            self._result = match_parameters(
                self.stats.descriptors(),
                self.target,
                sample_rate=self.sample_rate,
                do_no_harm=self.do_no_harm,
                tolerance_k=self.tolerance_k,
                tone_strength=self.tone_strength,
                crossover_hz=self.crossover_hz,
                delivery_lufs=self.delivery_lufs,
                ceiling_dbtp=self.ceiling_dbtp,
                fault_prior_db=self.fault_prior_db,
                content_db=self.content_db,
                width_strength=self.width_strength,
            )
        return self._result

    def values(self) -> dict[str, float]:
        """Every AI parameter (and :data:`EXTRA_PARAMS`) for the audio so far, table units."""
        return dict(self.result().values)
