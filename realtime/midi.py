"""MIDI control: controller input, soft takeover, midi-learn and MIDI-file automation.

One name for the four modules it is made of (import from here or from them):

* :mod:`realtime.midi_control` -- the shared :class:`ControlBank`, the mapping with soft
  takeover (:class:`ControlMapper`), the ``--ai-resume-s`` watchdog; pure logic, no I/O;
* :mod:`realtime.midi_ports` -- ports and their threads (:class:`MidiInput`, JACK or ALSA);
* :mod:`realtime.midi_learn` -- ``mixpilot midi-learn``;
* :mod:`realtime.midi_file` -- ``--midi-file`` automation (:class:`MidiFileAutomation`).

The map itself (TOML, bindings, curves) is :mod:`realtime.midi_map`.
"""

from __future__ import annotations

from mixpilot.realtime.midi_map import ACTIONS, MidiError, MidiMap, MidiMapError, load_map

from .midi_control import (
    ACTION_AB,
    ACTION_AI,
    ACTION_BYPASS,
    ACTION_RELEASE,
    COUNT_DROPPED,
    COUNT_IGNORED,
    COUNT_MAPPED,
    COUNT_RECEIVED,
    ActionCallback,
    ControlBank,
    ControlMapper,
    EventCallback,
    ResumeWatchdog,
)
from .midi_file import MidiFileAutomation
from .midi_learn import binding_for_choice, learn
from .midi_ports import (
    CLIENT_NAME,
    VIRTUAL_PORT_NAME,
    MidiInput,
    choose_api,
    default_port_spec,
    jack_running,
    list_ports,
)

__all__ = [
    "ACTIONS",
    "ACTION_AB",
    "ACTION_AI",
    "ACTION_BYPASS",
    "ACTION_RELEASE",
    "CLIENT_NAME",
    "COUNT_DROPPED",
    "COUNT_IGNORED",
    "COUNT_MAPPED",
    "COUNT_RECEIVED",
    "VIRTUAL_PORT_NAME",
    "ActionCallback",
    "ControlBank",
    "ControlMapper",
    "EventCallback",
    "MidiError",
    "MidiFileAutomation",
    "MidiInput",
    "MidiMap",
    "MidiMapError",
    "ResumeWatchdog",
    "binding_for_choice",
    "choose_api",
    "default_port_spec",
    "jack_running",
    "learn",
    "list_ports",
    "load_map",
]
