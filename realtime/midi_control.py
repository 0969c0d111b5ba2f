"""MIDI control logic: the shared control bank, soft takeover and the resume watchdog (no I/O).

Threads and the one shared structure
------------------------------------
:class:`ControlBank` is a set of preallocated numpy arrays shared, without
locks, by the MIDI side (writer) and the audio callback (reader).  A writer
stores ``manual_value[i]`` and ``msg_time_ns[i]`` first and bumps
``manual_seq[i]`` last; the callback compares the sequence numbers with its own
last-seen copies and applies ``manual_value[i]`` when one moved.  Many messages
for one parameter within one audio block therefore coalesce: the last value
wins (the documented coalescing).  ``release_seq[i]`` hands parameter ``i``
back to the AI; ``action_seq`` counts presses of the four buttons (bypass,
ab, ai, release-all).  The callback never calls into this module.
Soft takeover (pick-up)
-----------------------
A knob's position and the parameter's current value (``bank.current``,
written by the engine every block) usually differ; a jump would be audible.
So a control is *picked up* only when its position reaches the current value
(within half a controller step) or passes through it between two consecutive
messages (a crossing from below or from above).  Until then its messages are
counted as ignored.  Once picked up it follows.  It must pick up again when
the parameter is handed back to the AI (``release``, ``--ai-resume-s``) or
when something else wrote the parameter (another control, a MIDI file).

Counters (``bank.counters``)
----------------------------
``COUNT_RECEIVED`` every message the port delivered; ``COUNT_MAPPED`` messages
that changed the bank (a value written, a button toggled); ``COUNT_IGNORED``
well-formed messages with no effect (not a CC, a CC or channel the map does
not bind, a button release, a knob not yet picked up, SysEx);
``COUNT_DROPPED`` malformed ones (stray data bytes, wrong length, data bytes
above 127).  received = mapped + ignored + dropped.  MIDI clock and active
sensing are filtered inside rtmidi and never counted.  A packet in which a
SysEx runs into other messages (rtmidi under JACK, after a SysEx without
``F7``) counts as the messages it holds (:meth:`ControlMapper.handle`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from mixpilot.dsp.params import N_PARAMS, PARAM_NAMES, default_vector
from mixpilot.realtime.midi_map import (
    ACTIONS,
    ROLE_LSB,
    MidiMap,
)
from mixpilot.realtime.midi_parse import split_stream
from mixpilot.realtime.parameter_state import ACTION_AB, ACTION_AI, ACTION_BYPASS, ACTION_RELEASE, takes_over

__all__ = [
    "ACTION_AB",
    "ACTION_AI",
    "ACTION_BYPASS",
    "ACTION_RELEASE",
    "COUNT_DROPPED",
    "COUNT_IGNORED",
    "COUNT_MAPPED",
    "COUNT_RECEIVED",
    "ActionCallback",
    "ControlBank",
    "ControlMapper",
    "EventCallback",
    "ResumeWatchdog",
]

COUNT_RECEIVED, COUNT_MAPPED, COUNT_IGNORED, COUNT_DROPPED = range(4)
SOURCE_MIDI, SOURCE_AUTOMATION = 1, 2  # ControlBank.source


# handle() outcomes
_APPLIED, _IGNORED, _DROPPED = COUNT_MAPPED, COUNT_IGNORED, COUNT_DROPPED

EventCallback = Callable[[int, str, float, str], None]  # (t_ns, param, value, source)
ActionCallback = Callable[[int, str, "str | None"], None]  # (t_ns, action, param or None)


class ControlBank:
    """Preallocated exchange between the MIDI side (writer) and the audio callback.

    Attributes (all fixed-size numpy arrays, parameter order of :mod:`dsp.params`)
    ----------
    manual_value : float64 [N_PARAMS]  the value the MIDI side wants
    manual_seq : int64 [N_PARAMS]      bumped after ``manual_value[i]`` is written
    release_seq : int64 [N_PARAMS]     bumped to hand parameter i back to the AI
    action_seq : int64 [4]             bumped per button press (ACTION_*)
    current : float64 [N_PARAMS]       written by the engine every block: the
                                       chain's current values (soft takeover)
    msg_time_ns : int64 [N_PARAMS]     ``time.perf_counter_ns()`` when the message
                                       that set ``manual_value[i]`` arrived
    counters : int64 [4]               COUNT_RECEIVED, _MAPPED, _IGNORED, _DROPPED
    source : int8 [N_PARAMS]           who wrote ``manual_value[i]`` last: SOURCE_MIDI (a knob)
                                       or SOURCE_AUTOMATION (``--midi-file``); 0 never
    """

    __slots__ = (
        "manual_value",
        "manual_seq",
        "release_seq",
        "action_seq",
        "current",
        "msg_time_ns",
        "counters",
        "source",
    )

    def __init__(self) -> None:
        self.manual_value = default_vector()
        self.manual_seq = np.zeros(N_PARAMS, dtype=np.int64)
        self.release_seq = np.zeros(N_PARAMS, dtype=np.int64)
        self.action_seq = np.zeros(len(ACTIONS), dtype=np.int64)
        self.current = default_vector()
        self.msg_time_ns = np.zeros(N_PARAMS, dtype=np.int64)
        self.counters = np.zeros(4, dtype=np.int64)
        self.source = np.zeros(N_PARAMS, dtype=np.int8)

    def counts(self) -> dict[str, int]:
        """The counters by name (for ``--stats-json``)."""
        c = self.counters
        return {
            "received": int(c[COUNT_RECEIVED]),
            "mapped": int(c[COUNT_MAPPED]),
            "ignored": int(c[COUNT_IGNORED]),
            "dropped": int(c[COUNT_DROPPED]),
        }


# ---------------------------------------------------------------------------------------------
# message handling: map -> soft takeover -> bank (pure logic, no I/O)
# ---------------------------------------------------------------------------------------------


class _State:
    """Per-binding state of :class:`ControlMapper`."""

    __slots__ = ("last_x", "picked", "seq", "rel", "rel_all", "msb")

    def __init__(self) -> None:
        self.last_x = math.nan  # previous position (0..1), NaN before the first message
        self.picked = False
        self.seq = -1  # manual_seq[i] right after our last write
        self.rel = -1  # release_seq[i] then
        self.rel_all = -1  # action_seq[ACTION_RELEASE] then
        self.msb = -1  # 14-bit: last MSB (-1 before the first)


class ControlMapper:
    """Turns raw MIDI messages into bank writes: map, 14-bit pairs, soft takeover.

    ``handle(data)`` is what the MIDI thread runs per message; it has no I/O
    and no locks.  ``on_event(t_ns, param, value, "midi")`` is called after
    each value written and ``on_action(t_ns, action, None)`` after each
    button press, on the same thread.  ``soft_takeover=False`` turns pick-up
    off for every binding (MIDI-file automation).
    """

    def __init__(
        self,
        midi_map: MidiMap,
        bank: ControlBank,
        *,
        on_event: EventCallback | None = None,
        on_action: ActionCallback | None = None,
        soft_takeover: bool = True,
        source: str = "midi",
        clock_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.map = midi_map
        self.bank = bank
        self.on_event = on_event
        self.on_action = on_action
        self.source = source
        self._source_code = SOURCE_AUTOMATION if source == "file" else SOURCE_MIDI
        self._clock_ns = clock_ns
        self._lookup = midi_map.lookup
        self._bindings = list(midi_map.bindings)
        self._states = [_State() for _ in self._bindings]
        self._takeover = [soft_takeover and b.soft_takeover for b in self._bindings]
        self.sysex_runs = 0  # packets split because a SysEx ran into other messages (handle)

    # the one entry point ---------------------------------------------------------------
    def handle(self, data: list[int] | bytes | tuple[int, ...], t_ns: int | None = None) -> int:
        """Handle one message (its bytes); returns COUNT_MAPPED, _IGNORED or _DROPPED
        and counts it.  Never raises for any input.

        A packet that starts a SysEx and carries other status bytes is several
        messages run together (under JACK, rtmidi appends every event after a
        SysEx without ``F7`` to it): it is split by the MIDI 1.0 rules
        (:func:`realtime.midi_parse.split_stream`) and each message counted and
        handled on its own; the packet returns COUNT_MAPPED when any of them
        was applied.
        """
        t = self._clock_ns() if t_ns is None else t_ns
        if _is_sysex_run(data):
            return self._handle_run(data, t)
        counters = self.bank.counters
        counters[COUNT_RECEIVED] += 1
        try:
            outcome = self._handle(data, t)
        except Exception:  # a bug must not kill the MIDI thread; count it
            outcome = _DROPPED
        counters[outcome] += 1
        return outcome

    def _handle_run(self, data: list[int] | bytes | tuple[int, ...], t_ns: int) -> int:
        # the F7 at its end is what made rtmidi deliver the packet (often our own, realtime.midi_ports):
        # it ends a SysEx inside or nothing, and is not counted as a fragment
        msgs, fragments = split_stream(data[:-1] if data[-1] == 0xF7 else data)
        counters = self.bank.counters
        applied = False
        for m in msgs:
            if m[0] in (0xF8, 0xFE):
                continue  # clock and active sensing: filtered by rtmidi everywhere else, never counted
            counters[COUNT_RECEIVED] += 1
            try:
                outcome = self._handle(m, t_ns)
            except Exception:
                outcome = _DROPPED
            counters[outcome] += 1
            applied = applied or outcome == _APPLIED
        counters[COUNT_RECEIVED] += fragments
        counters[COUNT_DROPPED] += fragments
        self.sysex_runs += 1
        return _APPLIED if applied else _IGNORED

    def _handle(self, data: list[int] | bytes | tuple[int, ...], t_ns: int) -> int:
        n = len(data)
        if n == 0:
            return _DROPPED
        status = data[0]
        if not 0x80 <= status <= 0xFF:
            return _DROPPED  # stray data byte, or not a byte at all
        if status >= 0xF0:
            return _IGNORED  # SysEx and system messages: not ours
        kind = status & 0xF0
        expected = 2 if kind in (0xC0, 0xD0) else 3
        if n != expected:
            return _DROPPED
        for b in data[1:]:
            if not 0 <= b <= 0x7F:
                return _DROPPED  # out-of-range data byte
        if kind != 0xB0:
            return _IGNORED  # notes, pitch bend, program change, ...
        hit = self._lookup[(status & 0x0F) * 128 + data[1]]
        if hit is None:
            return _IGNORED  # a CC or channel the map does not bind
        k, role = hit
        return self.apply_raw(k, role, data[2], t_ns)

    def apply_raw(self, k: int, role: int, v: int, t_ns: int) -> int:
        """Apply data byte ``v`` arriving for binding ``k`` in ``role`` (MSB/LSB)."""
        b = self._bindings[k]
        st = self._states[k]
        if b.action is not None:
            if v < 64:
                return _IGNORED  # button release
            a = b.action_index
            self.bank.action_seq[a] += 1
            if self.on_action is not None:
                self.on_action(t_ns, b.action, None)
            return _APPLIED
        if b.cc14:
            # MIDI 1.0: a new MSB resets the LSB to 0; an LSB refines the last MSB
            if role == ROLE_LSB:
                if st.msb < 0:
                    return _IGNORED  # LSB before any MSB: no position yet
                x = ((st.msb << 7) | v) / 16383.0
            else:
                st.msb = v
                x = (v << 7) / 16383.0
        else:
            x = v / 127.0
        return self.apply_position(k, x, t_ns)

    def apply_position(self, k: int, x: float, t_ns: int) -> int:
        """Move binding ``k``'s control to position ``x`` (0..1): soft takeover, then write."""
        b = self._bindings[k]
        st = self._states[k]
        bank = self.bank
        i = b.param_index
        if st.picked and (
            st.seq != bank.manual_seq[i]
            or st.rel != bank.release_seq[i]
            or st.rel_all != bank.action_seq[ACTION_RELEASE]
        ):
            st.picked = False  # released, or written by someone else
        if not st.picked and self._takeover[k]:
            xc = b.position_of(float(bank.current[i]))
            last = st.last_x
            st.last_x = x
            if not takes_over(x, last, xc, 0.5 / b.steps):
                return _IGNORED  # not picked up yet
        value = b.value_at(x)
        bank.manual_value[i] = value
        bank.msg_time_ns[i] = t_ns
        bank.source[i] = self._source_code
        bank.manual_seq[i] += 1  # last: the reader sees a complete value
        st.seq = int(bank.manual_seq[i])
        st.rel = int(bank.release_seq[i])
        st.rel_all = int(bank.action_seq[ACTION_RELEASE])
        st.picked = True
        st.last_x = x
        if self.on_event is not None:
            self.on_event(t_ns, PARAM_NAMES[i], value, self.source)
        return _APPLIED

    def picked_up(self, k: int) -> bool:
        """Whether binding ``k`` currently follows its control (for a UI)."""
        b = self._bindings[k]
        st = self._states[k]
        if b.action is not None:
            return False
        i = b.param_index
        bank = self.bank
        return (
            st.picked
            and st.seq == bank.manual_seq[i]
            and st.rel == bank.release_seq[i]
            and st.rel_all == bank.action_seq[ACTION_RELEASE]
        )


class ResumeWatchdog:
    """``--ai-resume-s``: hand a parameter back to the AI after ``resume_s`` untouched.

    A parameter is *held* when ``manual_seq`` moved since it was last handed
    back; ``check(now_ns)`` bumps ``release_seq`` for every held parameter
    whose ``msg_time_ns`` is ``resume_s`` or more in the past, and returns
    their indices.  A release-all press (``action_seq[ACTION_RELEASE]``) counts
    as handing everything back.
    """

    def __init__(self, bank: ControlBank, resume_s: float) -> None:
        if not (isinstance(resume_s, (int, float)) and math.isfinite(resume_s) and resume_s > 0):
            raise ValueError(f"ai_resume_s must be a positive number of seconds, got {resume_s!r}")
        self.bank = bank
        self.resume_ns = int(round(resume_s * 1e9))
        self._base = bank.manual_seq.copy()
        self._rel_all = int(bank.action_seq[ACTION_RELEASE])

    def check(self, now_ns: int) -> list[int]:
        bank = self.bank
        rel_all = int(bank.action_seq[ACTION_RELEASE])
        if rel_all != self._rel_all:
            self._rel_all = rel_all
            self._base[:] = bank.manual_seq
        released: list[int] = []
        for k in np.flatnonzero(bank.manual_seq != self._base):
            i = int(k)
            seq = int(bank.manual_seq[i])
            if now_ns - int(bank.msg_time_ns[i]) >= self.resume_ns:
                self._base[i] = seq
                bank.release_seq[i] += 1
                released.append(i)
        return released


def _is_sysex_run(data: list[int] | bytes | tuple[int, ...]) -> bool:
    """Whether ``data`` is a SysEx with other status bytes inside (rtmidi's run-together packet under JACK)."""
    try:
        n = len(data)
        if n < 3 or data[0] != 0xF0:
            return False
        inner = data[1 : n - 1] if data[n - 1] == 0xF7 else data[1:]
        return any(isinstance(b, int) and 0x80 <= b <= 0xFF for b in inner)
    except Exception:  # not a sequence of ints: handle() counts it as dropped
        return False
