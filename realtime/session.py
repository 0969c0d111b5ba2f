"""One session builder for ``play``, ``live`` and ``render``.

:func:`build_session` puts together, the same way for all three, what turns an
audio stream into a mix: the :class:`realtime.engine.Engine` with its
:class:`realtime.parameter_state.ParameterState` (static values, AI amounts),
the AI worker (:class:`inference.worker.InferenceWorker`), the control bank the
MIDI side writes, the ``--midi-file`` automation, and the ``--params-out`` log.
What differs between the commands is only who drives the blocks and the worker:

* ``render`` (``sync_ai=True``): the engine steps the worker inside
  ``process_block`` at its hop positions;
* ``play``/``live``: PortAudio's callback drives the blocks and the worker runs on
  its own thread (:meth:`Session.start`).

Either way an AI update computed for the window ending at stream position ``P``
takes effect at exactly ``P + ai_delay_frames`` (:data:`AI_APPLY_DELAY_S`, at
most one hop): the render schedules it there, and a real-time run, whose worker
finishes a few milliseconds after ``P``, applies it there too.  So ``render
--loudness-mode follow`` gives the samples ``play --record`` recorded, with the
AI on as well (an update that arrives later than its position, on an overloaded
machine, is applied at the next block and counted in ``Engine.ai_late``).

:func:`load_controls` reads ``--midi-map`` and ``--midi-file`` for both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mixpilot.dsp.chain import STAGES

from .engine import Engine
from .parameter_state import ParamsLog, params_out_text

if TYPE_CHECKING:
    from mixpilot.inference.worker import Estimator, InferenceWorker

    from .midi_control import ControlBank
    from .midi_file import MidiFileAutomation
    from .midi_map import MidiMap
    from .parameter_state import ParameterState

__all__ = ["AI_APPLY_DELAY_S", "Session", "build_session", "load_controls"]

#: how long after the end of its window an AI update takes effect (capped at one hop)
AI_APPLY_DELAY_S = 0.5


def load_controls(
    midi_map: str | None,
    midi_file: str | None,
    *,
    need_map: bool = False,
    ceiling_dbtp: float | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[MidiMap | None, MidiFileAutomation | None]:
    """``--midi-map`` (None: the built-in map) and ``--midi-file`` -> (map, automation).

    The map is loaded when a file, a map or ``need_map`` (a live MIDI input) asks for it; a
    broken map is an error even with nothing to apply.  ``note`` hears, once, that a binding
    could lift the ceiling above ``ceiling_dbtp`` (the engine holds it there).
    """
    if midi_file is None and midi_map is None and not need_map:
        return None, None
    from .midi_file import MidiFileAutomation
    from .midi_map import ceiling_warning, load_map

    the_map = load_map(midi_map)
    automation = MidiFileAutomation.load(midi_file, the_map) if midi_file is not None else None
    if note is not None:
        lifted = ceiling_warning(the_map, ceiling_dbtp)
        if lifted is not None and (automation is not None or need_map):
            note(lifted)
    return the_map, automation


@dataclass
class Session:
    """What :func:`build_session` made; ``engine.state`` is the parameter state."""

    engine: Engine
    worker: InferenceWorker | None
    midi_map: MidiMap | None
    bank: ControlBank | None
    automation: MidiFileAutomation | None

    @property
    def state(self) -> ParameterState:
        return self.engine.state

    def ai_updates(self) -> list[tuple[float, dict[str, float]]]:
        """The AI's updates that took effect in the stream so far: ``(t_s, merged values)``."""
        end_s = self.engine.position / self.engine.sample_rate + 1e-9
        return [u for u in self.state.ai_updates if u[0] <= end_s]

    def rewind(self) -> None:
        """Back to stream position 0 (a render pass): engine, parameter state, log and automation."""
        if self.automation is not None:
            self.automation.rewind()
        self.engine.reset()

    def start(self) -> None:
        """Real time: start the worker's thread (the callback drives the engine)."""
        if self.worker is not None:
            self.worker.start()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def midi_event(self, t_s: float, param: str, value: float) -> None:
        """A live control's change (the MIDI thread) into the ``--params-out`` log."""
        self.state.log.event(t_s, param, value, "midi")

    def events(self) -> ParamsLog:
        """The run's ``--params-out`` events so far: the AI's updates, the live controls' changes and
        the automation's events applied (a copy; the static values are not among them)."""
        out = ParamsLog()
        end_s = self.engine.position / self.engine.sample_rate + 1e-9
        # an AI update scheduled after the stream ended never took effect: not an event of this run
        out.extend(e for e in self.state.log if e["source"] != "ai" or e["t"] <= end_s)
        if self.automation is not None:
            for t, name, value in self.automation.events[: self.automation.cursor]:
                if name is not None and value is not None:
                    out.event(t, name, value, "midi")
        return out

    def params_out_text(self, static: Mapping[str, float] | None = None) -> str:
        """``--params-out`` (INTERFACE.md): the static values at t = 0 (``static``: these instead),
        then :meth:`events` in time order."""
        values = self.state.params if static is None else static
        return params_out_text(values, self.events())


def build_session(
    sample_rate: int,
    channels: int,
    *,
    max_block_size: int,
    params: Mapping[str, float] | None = None,
    target_lufs: float = -14.0,
    ceiling_dbtp: float | None = -1.0,
    loudness_mode: str = "follow",
    meters: bool = True,
    estimator: Estimator | None = None,
    ai_amount: float = 1.0,
    amounts: Mapping[str, float] | None = None,
    ai_hop_s: float = 0.5,
    crossfade_s: float = 2.0,
    midi_map: MidiMap | None = None,
    automation: MidiFileAutomation | None = None,
    sync_ai: bool = False,
    keep_log: bool = True,
    stages: tuple[str, ...] | None = None,
) -> Session:
    """Engine, parameter state, AI worker, control bank and automation for one run (module docstring).

    ``midi_map`` (with or without ``automation``) gives the engine a control bank; ``sync_ai``
    steps the worker inside the engine (render); ``keep_log`` keeps the ``--params-out`` events;
    ``stages``: the chain's stages (None: all; render's loudness replay runs the output gain and the limiter).
    """
    engine = Engine(
        sample_rate,
        channels,
        max_block_size=max_block_size,
        params=dict(params or {}),
        target_lufs=target_lufs,
        ceiling_dbtp=ceiling_dbtp,
        loudness_mode=loudness_mode,
        meters=meters,
        ai_amount=ai_amount,
        amounts=amounts,
        stages=STAGES if stages is None else stages,
    )
    engine.state.log.keep = keep_log
    worker = None
    if estimator is not None:
        from mixpilot.inference.worker import InferenceWorker

        worker = InferenceWorker(
            estimator, engine.ring, sample_rate, engine.publish_ai, hop_s=ai_hop_s, crossfade_s=crossfade_s
        )
        engine.ai_delay_frames = min(worker.hop_frames, int(round(AI_APPLY_DELAY_S * sample_rate)))
        if sync_ai:
            engine.attach_sync_worker(worker)
    bank = None
    if midi_map is not None or automation is not None:
        from .midi_control import ControlBank

        bank = ControlBank()
        engine.attach_controls(bank, automation)
    return Session(engine=engine, worker=worker, midi_map=midi_map, bank=bank, automation=automation)
