"""One error family for every layer: :class:`MixpilotError` and its subclasses.

Every problem a user can fix (a bad argument, a file that cannot be read or
written, a parameter outside its range, a missing device, an unusable model, a
broken MIDI map) is a :class:`MixpilotError` whose message is one line saying
what is wrong and what to do (STYLE.md 7, librosa's ``ParameterError`` and
soundfile's ``SoundFileError`` hierarchy are the models).  ``exit_code`` is what
the command line returns for it: 2 for a usage problem (fix the command line),
1 for a problem at run time.  ``mixpilot.realtime.cli.main`` catches the family
once.

This module lives in ``dsp`` (the bottom layer) so that every layer can import
it downward.  The older names stay as subclasses where they were defined:
``dsp.params.ParameterError`` (this module's), ``realtime.audio_io.AudioFileError``
(an :class:`InputFileError`), ``realtime.render.RenderError``,
``realtime.stream.StreamError`` (a :class:`DeviceError`),
``realtime.midi_map.MidiError`` / ``MidiMapError``, ``inference.model.ModelError``
(this module's), ``realtime.jackserver.JackError`` (a :class:`DeviceError`).
"""

from __future__ import annotations

__all__ = [
    "DeviceError",
    "InputFileError",
    "MidiError",
    "MidiMapError",
    "MixpilotError",
    "ModelError",
    "OutputError",
    "ParameterError",
    "SettingError",
    "UsageError",
]


class MixpilotError(Exception):
    """Base of every error mixpilot raises on purpose; the message is one line."""

    exit_code: int = 1


class UsageError(MixpilotError):
    """Arguments that cannot work (fix the command line or the call); exit code 2."""

    exit_code = 2


class InputFileError(MixpilotError):
    """An input file that is missing, unreadable or not usable audio; exit code 1."""

    exit_code = 1


class OutputError(MixpilotError):
    """An output that cannot be written (folder missing or read-only, disk full); exit code 1."""

    exit_code = 1


class ParameterError(UsageError, ValueError):
    """A parameter name or value that the parameter table (``dsp.params``) does not allow; exit code 2."""

    exit_code = 2


class SettingError(UsageError, ValueError):
    """A run-level setting (``dsp.settings``: target loudness, block size, ...) outside its range; exit code 2."""

    exit_code = 2


class DeviceError(MixpilotError):
    """An audio device or server that is missing, refuses the settings, or went away; exit code 1."""

    exit_code = 1


class ModelError(MixpilotError, RuntimeError):
    """A model that cannot be used: missing, corrupt, or not matching its card or this engine; exit code 1."""

    exit_code = 1


class MidiError(MixpilotError):
    """A MIDI problem a user can fix (port, file); exit code 1."""

    exit_code = 1


class MidiMapError(MidiError, UsageError, ValueError):
    """A MIDI map that cannot be read or does not validate; exit code 2."""

    exit_code = 2
