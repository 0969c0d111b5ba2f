"""ParameterState: one home for a parameter's life, and THE rule that merges its sources.

Per parameter (the order of :mod:`dsp.params`) the state holds

* the **static** value: what the user gave (``--param``, a params file, the Python API),
  the table default otherwise;
* the **AI target**: the estimator's latest value (inside the AI-safe range);
* the **amount**: ``--ai-amount`` times the amount of the parameter's aspect
  (``--amount tone=0.5``; 1 where none is given); 0 for parameters the AI does not drive,
  and for the level parameters (:data:`LEVEL_PARAMS`) while the loudness follower runs
  (``follow_level``: the follower owns level, so the two loops cannot chase each other);
* the **manual override**: whether a control holds the parameter (``manual_active``),
  which one (:meth:`ParameterState.manual_source`: ``"midi"`` for a knob, ``"automation"`` for ``--midi-file``),
  and the soft-takeover rule a knob must satisfy before it holds (:func:`takes_over`);
* the **buttons**: bypass, loudness-matched A/B, AI on/off, release-all
  (the audible side of bypass and A/B is the engine's: it switches stages and matches loudness).

THE rule (nothing else in mixpilot blends or clamps a parameter)::

    ai_i     = clamp(AI target_i, AI-safe range_i)
    base_i   = clamp(static_i + amount_i * (ai_i - default_i), hard range_i)   AI on, AI target known
             = static_i                                                         otherwise
    target_i = manual_value_i   while a control holds parameter i
             = base_i           otherwise (a released control glides back to base_i)

The AI's correction is measured from neutral (the table default), so an AI
that wants no move leaves the user's static value exactly where it is.
``loudness_gain_db`` belongs to the loudness follower while it runs; a run-level
bound (``--ceiling-dbtp``) is held by the chain (:meth:`dsp.chain.MixChain.limit`).

The rule has two forms: :meth:`ParameterState.ai_targets` and :meth:`ParameterState.target_vector`
(Python, on the AI worker's / caller's thread), and the two Numba kernels the engine
calls at a block start (:func:`apply_update`, :func:`apply_controls`; no allocation,
no Python objects), which write the chain's target vector.

``--params-out`` events (INTERFACE.md: ``{"t", "param", "value", "source"}``) come from
here too (:class:`ParamsLog`), so ``play``, ``live`` and ``render`` log the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from mixpilot.dsp.params import (
    AI_PARAM_NAMES,
    N_PARAMS,
    PARAM_INDEX,
    PARAMS,
    ai_ranges,
    hard_ranges,
    validate_value,
    vector_from_mapping,
)
from mixpilot.dsp.settings import validate as validate_setting

if TYPE_CHECKING:
    from .midi_control import ControlBank

__all__ = [
    "ACTION_AB",
    "ACTION_AI",
    "ACTION_BYPASS",
    "ACTION_RELEASE",
    "LEVEL_PARAMS",
    "ParameterState",
    "ParamsLog",
    "apply_controls",
    "apply_update",
    "clamp_value",
    "params_out_text",
    "takes_over",
]

#: the AI's level parameters: while the loudness follower runs it owns level (``follow_level``)
LEVEL_PARAMS = ("input_gain_db", "output_gain_db")

#: the buttons, in ``ControlBank.action_seq`` order (``realtime.midi_map.ACTIONS``)
ACTION_BYPASS, ACTION_AB, ACTION_AI, ACTION_RELEASE = range(4)

_AI_IDX = np.array([PARAM_INDEX[n] for n in AI_PARAM_NAMES], dtype=np.int64)
_LO, _HI = hard_ranges().T  # the ranges are the table's (dsp.params); this module is where they are applied
_AI_LO, _AI_HI = ai_ranges().T
_DEFAULT = np.array([p.default for p in PARAMS])


def takes_over(x: float, last_x: float, current_x: float, half_step: float) -> bool:
    """Soft takeover (pick-up): does a knob moved to position ``x`` (0..1) take the parameter over?

    Yes when it reaches the parameter's current position ``current_x`` (within half a
    controller step) or passes through it between its previous position ``last_x`` and
    ``x`` (a crossing from either side; ``last_x`` NaN: no previous position).
    """
    return abs(x - current_x) <= half_step + 1e-12 or (
        not math.isnan(last_x) and (last_x - current_x) * (x - current_x) <= 0.0
    )


def clamp_value(name: str, value: float) -> float:
    """``value`` held inside ``name``'s hard range (e.g. a delivery gain computed from a measurement)."""
    i = PARAM_INDEX[name]
    return float(min(max(value, _LO[i]), _HI[i]))


class ParamsLog(list):
    """``--params-out`` events, ``{"t", "param", "value", "source"}`` (a no-op list when ``keep`` is False).

    Appended from the AI worker's and the MIDI threads (``list.append`` is atomic); AI events
    are logged per parameter when its value changes.
    """

    def __init__(self, keep: bool = True) -> None:
        super().__init__()
        self.keep = keep
        self._last_ai: dict[str, float] = {}

    def append(self, item: dict) -> None:
        if self.keep:
            super().append(item)

    def event(self, t_s: float, param: str, value: float, source: str) -> None:
        self.append({"t": round(t_s, 6), "param": param, "value": value, "source": source})

    def ai(self, t_s: float, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            if self._last_ai.get(k) != v:
                self.event(t_s, k, v, "ai")
                self._last_ai[k] = v

    def clear(self) -> None:
        super().clear()
        self._last_ai.clear()

    def text(self, first: list[dict] | None = None) -> str:
        """JSON lines: ``first`` (the t = 0 values), then the events in time order (stable)."""
        events = list(first or []) + sorted(self, key=lambda e: e["t"])
        return "".join(json.dumps(e) + "\n" for e in events)


def params_out_text(static: Mapping[str, float], events: ParamsLog) -> str:
    """``--params-out`` JSON lines: ``static`` at t = 0 (source ``user``), then ``events`` in time order."""
    return events.text([{"t": 0.0, "param": k, "value": v, "source": "user"} for k, v in static.items()])


class ParameterState:
    """See the module docstring.

    Parameters
    ----------
    params : mapping, optional
        Static values (validated against :mod:`dsp.params`).
    ai_amount : float
        How far the AI moves its parameters (0..2; :mod:`dsp.settings` ``ai_amount``).
    amounts : mapping, optional
        Per aspect (``tone``, ``dynamics``, ...) amounts multiplying ``ai_amount``.
    manual_glide_s, release_glide_s : float
        Glide when a control takes a parameter over, and when it hands it back.
    follow_level : bool
        The loudness follower runs: the AI does not move the level parameters.
    keep_log : bool
        Keep the ``--params-out`` events and the AI updates (a long live session without
        ``--params-out`` keeps none).
    """

    def __init__(
        self,
        params: Mapping[str, float] | None = None,
        *,
        ai_amount: float = 1.0,
        amounts: Mapping[str, float] | None = None,
        manual_glide_s: float = 0.03,
        release_glide_s: float = 2.0,
        keep_log: bool = True,
        follow_level: bool = False,
    ) -> None:
        self.params = {k: validate_value(k, v) for k, v in dict(params or {}).items()}
        self.static = vector_from_mapping(self.params)
        self.ai_amount = validate_setting("ai_amount", ai_amount)
        amounts = {
            k: validate_setting("aspect_amount", a, flag=f"--amount {k}") for k, a in dict(amounts or {}).items()
        }
        self.amounts = amounts
        self.amount = np.zeros(N_PARAMS)
        for i in _AI_IDX:
            self.amount[i] = self.ai_amount * float(amounts.get(PARAMS[i].aspect, 1.0))
        if follow_level:  # level belongs to the loudness follower (module docstring)
            for name in LEVEL_PARAMS:
                self.amount[PARAM_INDEX[name]] = 0.0
        self.ai_target = np.full(N_PARAMS, np.nan)  # the latest AI values (NaN: none yet / not an AI parameter)
        self.base = self.static.copy()  # static (+) AI: what the chain follows where no control holds
        self.manual_active = np.zeros(N_PARAMS, dtype=np.int64)  # 1 where a control holds the parameter
        self.controls: ControlBank | None = None  # the controls' bank, when the engine has one attached
        self.seen = np.zeros(2 * N_PARAMS + 4, dtype=np.int64)  # the bank's sequence numbers last applied
        self.manual_glide_s = float(manual_glide_s)
        self.release_glide_s = float(release_glide_s)
        self.log = ParamsLog(keep=keep_log)  # --params-out events (the static ones: static_events())
        self.ai_updates: list[tuple[float, dict[str, float]]] = []  # (t_s, merged values) per AI update
        self.reset()

    # -- life cycle -------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the static values: no AI target, no control holding, buttons up (AI on)."""
        self.ai_target[:] = np.nan
        self.base[:] = self.static
        self.manual_active[:] = 0
        self.ai_on = True
        self.bypassed = False
        self.ab_b = False
        self.log.clear()
        self.ai_updates.clear()

    def set_static(self, name: str, value: float) -> None:
        """Change a static value (the base follows at the next :meth:`reset`; ``params``, what the
        user gave, stays as it was: a render's delivery gain or whole-file AI values are not theirs)."""
        self.static[PARAM_INDEX[name]] = validate_value(name, value)

    # -- THE rule -----------------------------------------------------------------------
    def ai_targets(self, ai: Mapping[str, float]) -> dict[str, float]:
        """The base values for the AI's targets ``ai`` ({name: value}): the blend and both clamps.

        Every AI parameter gets a value (a name ``ai`` lacks: no move from neutral, so its static
        value); other table names (a stream estimator's extras, e.g. ``comp_threshold_db``) pass
        as they are inside their hard range, unless the user set them.  Records the AI targets
        (``ai_target``).  Non-finite values raise ValueError.
        """
        out = {}
        for i in _AI_IDX:
            name = PARAMS[i].name
            v = float(ai.get(name, _DEFAULT[i]))
            if not math.isfinite(v):
                raise ValueError(f"the AI's {name} is not finite")
            a = min(max(v, _AI_LO[i]), _AI_HI[i])
            self.ai_target[i] = a
            out[name] = float(min(max(self.static[i] + self.amount[i] * (a - _DEFAULT[i]), _LO[i]), _HI[i]))
        for name, v in ai.items():
            if name not in out and name not in self.params and name in PARAM_INDEX:
                if not math.isfinite(float(v)):
                    raise ValueError(f"the AI's {name} is not finite")
                out[name] = clamp_value(name, float(v))
        return out

    def clamp(self, name: str, value: float) -> float:
        """``value`` held inside ``name``'s hard range (the follower's and the A/B match's gain)."""
        return clamp_value(name, value)

    def target_vector(self, manual_value: np.ndarray | None = None) -> np.ndarray:
        """The merged targets now: a held control's value, else the base (a copy; for callers off the audio path)."""
        out = self.base.copy()
        if manual_value is not None:
            held = self.manual_active != 0
            out[held] = manual_value[held]
        return out

    def manual_source(self, name: str) -> str | None:
        """Who holds ``name``: ``"midi"`` (a knob), ``"automation"`` (``--midi-file``), None (nobody)."""
        i = PARAM_INDEX[name]
        if not self.manual_active[i] or self.controls is None:
            return None
        return {1: "midi", 2: "automation"}.get(int(self.controls.source[i]))

    def record_ai(self, t_s: float, merged: Mapping[str, float]) -> None:
        """An AI update as the chain receives it (``--params-out``, ``ArrayRender.ai_updates``)."""
        if self.log.keep:
            self.ai_updates.append((t_s, dict(merged)))
            self.log.ai(t_s, merged)

    def params_out_text(self, static: Mapping[str, float] | None = None) -> str:
        """``--params-out`` (INTERFACE.md): the static values at t = 0 (``static``: these instead),
        then the logged events in time order."""
        return params_out_text(self.params if static is None else static, self.log)


# --- the rule at a block start (Numba: no allocation, no Python objects) ------------------


@njit(cache=True)
def apply_update(
    targets: np.ndarray,
    glide: np.ndarray,
    base: np.ndarray,
    vec: np.ndarray,
    vec_glide: np.ndarray,
    mask: np.ndarray,
    skip: int,
    manual: np.ndarray,
) -> None:  # pragma: no cover
    """A published update (already merged by :meth:`ParameterState.ai_targets` or validated):
    ``base`` follows it; the chain's target only where no control holds the parameter."""
    for i in range(targets.shape[0]):
        if mask[i] and i != skip:
            base[i] = vec[i]
            if manual[i] == 0:
                glide[i] = vec_glide[i]
                targets[i] = vec[i]


@njit(cache=True)
def apply_controls(
    targets: np.ndarray,
    glide: np.ndarray,
    base: np.ndarray,
    manual_value: np.ndarray,
    manual_seq: np.ndarray,
    release_seq: np.ndarray,
    action_seq: np.ndarray,
    seen: np.ndarray,
    manual: np.ndarray,
    current: np.ndarray,
    values: np.ndarray,
    msg_time: np.ndarray,
    lat: np.ndarray,
    lat_n: np.ndarray,
    now_ns: int,
    manual_glide: float,
    release_glide: float,
    skip: int,
) -> int:  # pragma: no cover
    """Controls -> chain at a block start.  Returns a bit per toggled button (``1 << ACTION_*``).

    Releases first (all, then per parameter; the base takes over, gliding from the
    manual value), then manual values (last value wins per parameter per block).
    """
    n = targets.shape[0]
    toggled = 0
    for a in range(action_seq.shape[0]):
        k = action_seq[a]
        if k != seen[2 * n + a]:
            if (k - seen[2 * n + a]) % 2 == 1:
                toggled |= 1 << a
            seen[2 * n + a] = k
    if toggled & (1 << 3):  # ACTION_RELEASE: hand everything back
        for i in range(n):
            if manual[i] != 0:
                manual[i] = 0
                glide[i] = release_glide
                targets[i] = base[i]
        toggled &= ~(1 << 3)
    for i in range(n):
        k = release_seq[i]
        if k != seen[n + i]:
            seen[n + i] = k
            if manual[i] != 0:
                manual[i] = 0
                glide[i] = release_glide
                targets[i] = base[i]
    for i in range(n):
        k = manual_seq[i]
        if k != seen[i]:
            seen[i] = k
            if i == skip:
                continue
            manual[i] = 1
            glide[i] = manual_glide
            targets[i] = manual_value[i]
            m = lat_n[0]
            lat[m % lat.shape[0]] = now_ns - msg_time[i]
            lat_n[0] = m + 1
    for i in range(n):
        current[i] = values[i]
    return toggled
