"""The inference worker: rolling log-mel windows from the analysis ring -> model -> new chain targets.

Every ``hop_s`` seconds of *stream time* (the hop ends at stream positions
``k * hop_frames``, from the first one with a whole window of audio behind
it) the worker

1. copies the ``window_s`` seconds that end exactly at that position out of
   the analysis ring (:meth:`read_latest(out, end)` — the ring is the
   engine's, written by the audio thread);
2. computes the features (:func:`inference.features.extract_features`, the
   same function training uses);
3. runs the estimator (:class:`inference.model.OnnxModel`, or the
   :class:`inference.heuristic.HeuristicEstimator` fallback) and denormalises
   through :mod:`dsp.params`: the AI's targets, in table units;
4. hands them to ``publish(values, glide_s, end_frame)`` — the engine merges them with the
   static values, the amounts and the controls by the one rule of
   :mod:`realtime.parameter_state` (``static + amount * (clamp_ai(ai) - default)``, clamped)
   and swaps the result in by one reference assignment; the chain glides there over ``crossfade_s``.

A **stream estimator** (``wants_audio = True``: the analytic matcher,
:class:`inference.matcher.AnalyticMatcher`) is fed instead every frame of the
stream since its last hop (``update(block)``, read from the ring in order)
and answers the AI parameters in table units (``values() -> dict``); the
worker calls its ``prepare(sample_rate, channels)`` once and its ``reset()``
when the stream starts over (a new render pass).  Names it answers outside
:data:`dsp.params.AI_PARAM_NAMES` (``comp_threshold_db``) are published as
they are, unless the user set them (the parameter state's rule).

**Level belongs to the loudness follower** while it runs (``play``, ``live``,
``render --loudness-mode follow``): the parameter state gives ``input_gain_db``
and ``output_gain_db`` no AI amount then (:class:`realtime.parameter_state.ParameterState`).

Two ways to drive it:

* **threaded** (:meth:`start`): for ``play``/``live``.  A daemon thread waits
  for each hop position to be written, computes, publishes.  It never
  touches the audio thread's data except by reading the ring and swapping a
  reference, so it cannot block the callback.  An exception in a step is
  caught: the chain keeps the last good targets, :attr:`status` says what
  went wrong, the next hop tries again.
* **synchronous** (:meth:`step`): for ``render``.  The engine calls it at the
  same hop positions inside ``process_block`` and applies the result from
  that exact sample on, so a render is reproducible.  A real-time run
  computes the same windows; it applies each result at the first block
  after the computation finishes (a few milliseconds later), which is the
  only difference from a render.

**What the AI says it does.**  A stream estimator that keeps a
:class:`inference.matcher.MatchResult` (``result()``: the analytic matcher,
the target model on it) says in words what it moves and why ("low mids +2.6
dB toward the target").  After each hop the worker keeps those words in
:attr:`InferenceWorker.reasons` and counts :attr:`InferenceWorker.reasons_seq`
up when they changed by more than rounding (:func:`reasons_differ`: a figure
that moved by :data:`REASON_STEP` or more, at most once per
:data:`REASON_HOLD_S` of stream time), so that
``play``/``live`` can print a line when the AI changes course and not every
hop (:class:`realtime.meter_ui.MeterUI`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

import numpy as np

from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, denormalise
from mixpilot.dsp.settings import setting
from mixpilot.dsp.settings import validate as validate_setting

from .features import FEATURE_CONFIG, FeatureConfig, extract_features, input_window_frames

__all__ = [
    "AudioRing",
    "Estimator",
    "InferenceWorker",
    "load_estimator",
    "reasons_of",
    "reasons_differ",
    "HOP_S",
    "CROSSFADE_S",
    "REASON_STEP",
    "REASON_HOLD_S",
]

HOP_S = setting("ai_hop_s").default
CROSSFADE_S = setting("crossfade_s").default
_AI_IDX = [PARAM_INDEX[n] for n in AI_PARAM_NAMES]
#: the AI's level parameters: with ``follow_level`` the loudness follower owns level
LEVEL_PARAMS = ("input_gain_db", "output_gain_db")
#: a figure in the AI's reasons (dB, a ratio, LU) must move by this much for the words to count as new
REASON_STEP = 1.0
#: and at least this much stream time must have passed since the last news (the first seconds of a running
#: estimate move fast: one line per hop would be noise); what changed meanwhile is said at the next hop
REASON_HOLD_S = 2.0
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def reasons_of(estimator: object) -> tuple[str, ...]:
    """What ``estimator`` says it moves and why, from its current ``result().reasons`` (() when it keeps none)."""
    result = getattr(estimator, "result", None)
    if not callable(result):
        return ()
    try:
        return tuple(str(r) for r in (getattr(result(), "reasons", None) or ()))
    except Exception:  # the words are a courtesy: a failing estimator says so through its values
        return ()


def _figures(reasons: tuple[str, ...]) -> dict[str, list[float]]:
    """Each reason's aspect (its words with the figures taken out) -> its figures."""
    return {_NUMBER.sub("#", r): [float(v) for v in _NUMBER.findall(r)] for r in reasons}


def reasons_differ(old: tuple[str, ...], new: tuple[str, ...], step: float = REASON_STEP) -> bool:
    """True when a figure of the AI's words moved by ``step`` or more between ``old`` and ``new``.

    An aspect is a reason with its figures taken out ("low mids +2.6 dB toward the target" -> "low mids
    # dB toward the target"); one that comes or goes counts as figures from or to 0, so a move of a
    few tenths of a dB that appears and disappears around the matcher's 0.5 dB threshold is no news,
    and neither are figures that wander by rounding from hop to hop.
    """
    a, b = _figures(old), _figures(new)
    for key in a.keys() | b.keys():
        if (key in a) != (key in b) and not (a.get(key) or b.get(key)):
            return True  # an aspect without figures came or went
        x = a[key] if key in a else [0.0] * len(b[key])
        y = b[key] if key in b else [0.0] * len(a[key])
        if any(abs(u - v) >= step for u, v in zip(x, y)):
            return True
    return False


class AudioRing(Protocol):
    """What the worker reads: the engine's analysis ring (``realtime.engine.AnalysisRing``)."""

    buf: np.ndarray  # [capacity, channels]

    @property
    def capacity(self) -> int: ...

    @property
    def frames_written(self) -> int: ...

    def read_latest(self, out: np.ndarray, end: int | None = None) -> int: ...


class Estimator(Protocol):
    name: str

    # a window estimator (OnnxModel, HeuristicEstimator) has ``predict(features) -> normalised [n]``;
    # a stream estimator (``wants_audio = True``: inference.matcher.AnalyticMatcher) has
    # ``prepare``/``update``/``values``/``reset`` instead (module docstring)


def load_estimator(spec: str | None, warn: Callable[[str], None]) -> Estimator | None:
    """``--model`` -> an estimator.  ``none`` -> None (static parameters).

    ``matcher`` is the analytic matcher (:mod:`inference.matcher`) aiming at
    the shipped ``default`` profile with do-no-harm; ``heuristic`` the
    window heuristic.  A target-conditioned model (its card says ``"kind":
    "target-conditioned"``, :mod:`inference.target_model`) becomes the
    :class:`~inference.model_matcher.ModelMatcher` aiming at the shipped
    ``default`` profile.  A model that cannot be used (missing, corrupt, card
    mismatch) gives ONE warning naming the problem and the analytic matcher
    instead (the fallback): the audio never waits for a model.
    """
    low = str(spec).strip().lower() if spec is not None else ""
    if low == "none":
        return None
    if low == "matcher":
        from .matcher import AnalyticMatcher

        return AnalyticMatcher.for_target()
    if low == "heuristic":
        from .heuristic import HeuristicEstimator

        est = HeuristicEstimator()
        est.name = "heuristic"
        return est
    from .model import DEFAULT_MODEL, ModelError, OnnxModel
    from .target_model import is_target_model

    try:
        if is_target_model(spec or DEFAULT_MODEL):
            from .model_matcher import ModelMatcher

            return ModelMatcher.for_target(model=spec or DEFAULT_MODEL)
        return OnnxModel.load(spec or DEFAULT_MODEL)
    except ModelError as exc:
        warn(f"{exc}; using the analytic matcher (default profile) instead")
    except Exception as exc:  # anything else onnxruntime may throw
        warn(
            f"model {spec!r} cannot be used ({' '.join(str(exc).split())}); "
            "using the analytic matcher (default profile) instead"
        )
    from .matcher import AnalyticMatcher

    return AnalyticMatcher.for_target()


class InferenceWorker:
    """See the module docstring.

    Parameters
    ----------
    estimator : Estimator
        ``predict(features [2, M, T]) -> normalised [10]`` in ``AI_PARAM_NAMES`` order.
    ring : object with ``read_latest(out, end)`` and ``frames_written``
        the engine's :class:`realtime.engine.AnalysisRing`.
    sample_rate : int
        of the ring.
    publish : callable ``(values: dict[str, float], glide_s: float) -> None``
    base : mapping, optional
        static values the AI blends onto (defaults otherwise).
    on_update : callable ``(t_s, values) -> None``, optional
        every published update (``--params-out``, UI).
    """

    def __init__(
        self,
        estimator: Estimator,
        ring: AudioRing,
        sample_rate: int,
        publish: Callable[[dict, float, int], None],
        *,
        hop_s: float = HOP_S,
        crossfade_s: float = CROSSFADE_S,
        on_update: Callable[[float, dict], None] | None = None,
        config: FeatureConfig = FEATURE_CONFIG,
    ) -> None:
        hop_s = validate_setting("ai_hop_s", hop_s)
        crossfade_s = validate_setting("crossfade_s", crossfade_s)
        self.estimator = estimator
        self.ring = ring
        self.sample_rate = int(sample_rate)
        self.publish = publish
        self.hop_frames = max(1, int(round(hop_s * sample_rate)))
        self.crossfade_s = float(crossfade_s)
        self.on_update = on_update
        self.config = config
        self.streaming = bool(getattr(estimator, "wants_audio", False))
        # a window estimator predicts from features, a stream estimator (inference.matcher) takes the audio
        self._est: Any = cast(Any, estimator)
        self._fed = 0  # stream frames a stream estimator has seen
        if self.streaming:
            self._est.prepare(self.sample_rate, ring.buf.shape[1])
        self._window = np.zeros((input_window_frames(sample_rate, config), ring.buf.shape[1]), dtype=np.float32)
        self.times_ms: list[float] = []
        self.runs = 0
        self.errors = 0
        self.status = f"AI: {getattr(estimator, 'name', type(estimator).__name__)}"
        self.last_values: dict[str, float] | None = None
        self.last_t_s = 0.0
        #: what the estimator says it moves and why (:func:`reasons_of`), the stream time it said so,
        #: and a count that goes up when the words change by more than rounding (:func:`reasons_differ`)
        self.reasons: tuple[str, ...] = ()
        self.reasons_t_s = 0.0
        self.reasons_seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # the first hop with a whole window behind it: before that the window would be mostly the
        # zeros before the stream start, and the estimator would react to silence that is not there
        win = self._window.shape[0]
        self.first_end = self.hop_frames * max(1, -(-win // self.hop_frames))
        self._next_end = self.first_end
        #: ``{end_frame: values}`` when set to a dict: :meth:`compute` remembers its results by stream
        #: position.  Only for a caller that feeds the ring the same input on every pass (a render's
        #: loudness passes): the values depend on nothing but the window, so a later pass reuses them.
        self.memo: dict[int, dict[str, float]] | None = None
        self.memo_hits = 0

    # -- one hop -----------------------------------------------------------------------
    def compute(self, end_frame: int) -> dict[str, float]:
        """The AI's targets (table units) for the window ending at stream position ``end_frame``;
        the engine merges them (:meth:`realtime.parameter_state.ParameterState.ai_targets`)."""
        if self.streaming:
            self._feed(end_frame)
            values = {k: float(v) for k, v in self._est.values().items()}
            if not all(np.isfinite(v) for v in values.values()):
                raise ValueError("estimator returned non-finite values")
            return values
        if self.memo is not None:
            hit = self.memo.get(end_frame)
            if hit is not None:
                self.memo_hits += 1
                return dict(hit)
        self.ring.read_latest(self._window, end=end_frame)
        feats = extract_features(self._window, self.sample_rate, self.config)
        norm = np.asarray(self._est.predict(feats), dtype=np.float64).reshape(-1)
        if norm.shape[0] != len(AI_PARAM_NAMES) or not np.all(np.isfinite(norm)):
            raise ValueError(f"estimator returned {norm.shape[0]} values / non-finite output")
        # 0..1 is the AI-safe range; realtime.parameter_state holds the values inside it
        out = {n: denormalise(n, float(x)) for n, x in zip(AI_PARAM_NAMES, norm)}
        if self.memo is not None:
            self.memo[end_frame] = dict(out)
        return out

    def _feed(self, end_frame: int) -> None:
        """Give a stream estimator the frames ``(last fed, end_frame]`` from the ring (in window-sized reads)."""
        if end_frame < self._fed:  # the stream started over (a new render pass)
            self._est.reset()
            self._fed = 0
        # what the ring still holds (a reader far behind loses the oldest frames, never blocks the writer)
        start = max(self._fed, end_frame - (self.ring.capacity - self._window.shape[0]), 0)
        win = self._window.shape[0]
        while start < end_frame:
            m = min(win, end_frame - start)
            buf = self._window[:m]
            self.ring.read_latest(buf, end=start + m)
            self._est.update(buf)
            start += m
        self._fed = end_frame

    def step(self, end_frame: int) -> dict[str, float] | None:
        """Compute and publish for ``end_frame`` (the synchronous path; also used by the thread).

        Returns the values, or None when this hop failed (the last good targets stay).
        """
        t0 = time.perf_counter_ns()
        hits = self.memo_hits
        try:
            values = self.compute(end_frame)
        except Exception as exc:  # survive: keep the last good targets, say so, try the next hop
            self.errors += 1
            self.status = f"AI error (keeping the last targets): {' '.join(str(exc).split())[:120]}"
            return None
        if self.memo_hits == hits:  # computed, not remembered
            self.times_ms.append((time.perf_counter_ns() - t0) / 1e6)
            self.runs += 1
        self.publish(values, self.crossfade_s, end_frame)
        self.last_values = values
        self.last_t_s = end_frame / self.sample_rate
        if self.streaming and (self.reasons_seq == 0 or self.last_t_s - self.reasons_t_s >= REASON_HOLD_S):
            said = reasons_of(self._est)
            if reasons_differ(self.reasons, said):
                self.reasons, self.reasons_t_s = said, self.last_t_s
                self.reasons_seq += 1
        if self.errors:
            self.status = f"AI: {getattr(self.estimator, 'name', 'model')} (recovered)"
        if self.on_update is not None:
            self.on_update(self.last_t_s, values)
        return values

    # -- threaded ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mixpilot-inference", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.turn(self._stop.wait):
                return

    def turn(self, wait: Callable[[float], bool]) -> bool:
        """One turn of the hop loop: compute the hop that is due, or ``wait(seconds)`` for it.

        ``wait`` sleeps (in C: the GIL is free meanwhile) and returns True when the loop should
        stop.  Shared by the thread here and the AI process (:mod:`realtime.aiproc`).
        """
        written = self.ring.frames_written
        if written < self._next_end:
            # sleep about until the next hop is in the ring
            wait_s = (self._next_end - written) / self.sample_rate
            return bool(wait(min(max(wait_s, 0.002), 0.05)))
        # a late worker skips hops rather than falling further behind
        behind = (written - self._next_end) // self.hop_frames
        self._next_end += behind * self.hop_frames
        if written - self._next_end >= self.ring.capacity - self._window.shape[0]:
            self._next_end = written - written % self.hop_frames
        self.step(self._next_end)
        self._next_end += self.hop_frames
        return False

    def resume_at(self, written: int) -> None:
        """Continue with the first hop at or after stream position ``written`` (a worker taking over)."""
        self._next_end = max(self.first_end, self.hop_frames * (-(-int(written) // self.hop_frames)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def stats(self) -> dict:
        t = np.asarray(self.times_ms)
        return {
            "runs": self.runs,
            "reused": self.memo_hits,
            "errors": self.errors,
            "p50_ms": round(float(np.percentile(t, 50)), 3) if t.size else None,
            "p99_ms": round(float(np.percentile(t, 99)), 3) if t.size else None,
        }
