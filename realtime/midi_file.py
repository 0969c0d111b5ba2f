"""MIDI-file automation (``--midi-file``): CC events from a standard MIDI file, applied at block positions."""

from __future__ import annotations

import os
import time

from mixpilot.dsp.params import PARAM_INDEX
from mixpilot.realtime.midi_map import (
    ACTIONS,
    MidiError,
    MidiMap,
)

from .midi_control import COUNT_MAPPED, SOURCE_AUTOMATION, ControlBank, ControlMapper
from .midi_ports import _one_line

__all__ = ["MidiFileAutomation"]


class MidiFileAutomation:
    """CC automation from a standard MIDI file, applied at block positions.

    ``load`` reads the file with mido, whose iteration merges the tracks and
    converts ticks to seconds through the file's tempo map; every CC message
    goes through the same mapping as live input (channels, curves, 14-bit
    pairs, buttons) but without soft takeover: this is automation.  The
    result is a sorted list of events; ``apply_until(t_s, bank)`` applies the
    events with time <= ``t_s`` not yet applied (no allocation of arrays; a
    cursor moves forward), so the engine can call it before each block, live
    or in a render, deterministically.

    Attributes
    ----------
    events : list of (t_s, name, value)
        name is a parameter (value its new value) or an action (value None).
    duration_s : float
        time of the file's last message.
    ignored : int
        messages that were not mapped CCs.
    """

    def __init__(
        self,
        events: list[tuple[float, str, float | None]],
        *,
        source: str = "<events>",
        duration_s: float | None = None,
        ignored: int = 0,
    ) -> None:
        events = sorted(events, key=lambda e: e[0])
        self.events = events
        self.source = source
        self.duration_s = float(duration_s if duration_s is not None else (events[-1][0] if events else 0.0))
        self.ignored = ignored
        self._times = [float(t) for t, _, _ in events]
        # target >= 0: a parameter index; < 0: -(action index) - 1
        self._target = [PARAM_INDEX[n] if n in PARAM_INDEX else -ACTIONS.index(n) - 1 for _, n, _ in events]
        self._value = [0.0 if v is None else float(v) for _, _, v in events]
        self._cursor = 0

    @classmethod
    def load(cls, path: str | os.PathLike, midi_map: MidiMap) -> MidiFileAutomation:
        import mido

        path = os.fspath(path)
        if not os.path.exists(path):
            raise MidiError(f"{path}: no such MIDI file")
        try:
            mid = mido.MidiFile(path)
            messages = list(mid)  # seconds, through the tempo map (set_tempo meta messages)
        except Exception as exc:
            raise MidiError(f"{path}: not a readable MIDI file ({_one_line(exc)})") from None
        scratch = ControlBank()
        events: list[tuple[float, str, float | None]] = []
        t = 0.0

        def on_event(t_ns, param, value, source):
            events.append((t, param, value))

        def on_action(t_ns, action, param):
            events.append((t, action, None))

        mapper = ControlMapper(
            midi_map,
            scratch,
            on_event=on_event,
            on_action=on_action,
            soft_takeover=False,
            source="file",
            clock_ns=lambda: 0,
        )
        ignored = 0
        for msg in messages:
            t += msg.time
            if msg.is_meta:
                continue
            if msg.type != "control_change" or mapper.handle(msg.bytes(), 0) != COUNT_MAPPED:
                ignored += 1
        return cls(events, source=path, duration_s=t, ignored=ignored)

    def apply_until(self, t_s: float, bank: ControlBank) -> int:
        """Apply every event with time <= ``t_s`` not applied yet; returns how many."""
        i = start = self._cursor
        times = self._times
        n = len(times)
        if i >= n or times[i] > t_s:
            return 0
        now = time.perf_counter_ns()
        target, value = self._target, self._value
        mv, mt, ms, acts = bank.manual_value, bank.msg_time_ns, bank.manual_seq, bank.action_seq
        src = bank.source
        while i < n and times[i] <= t_s:
            k = target[i]
            if k >= 0:
                mv[k] = value[i]
                mt[k] = now
                src[k] = SOURCE_AUTOMATION
                ms[k] += 1
            else:
                acts[-k - 1] += 1
            i += 1
        self._cursor = i
        return i - start

    def pending(self) -> int:
        """Events not applied yet."""
        return len(self._times) - self._cursor

    @property
    def cursor(self) -> int:
        """How many events have been applied: ``events[:cursor]`` (for a logger that
        writes ``--params-out`` lines from another thread)."""
        return self._cursor

    def rewind(self) -> None:
        """Start again from the beginning (a second render, a loop)."""
        self._cursor = 0

    def __len__(self) -> int:
        return len(self.events)
