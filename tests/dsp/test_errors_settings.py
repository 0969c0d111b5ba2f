"""The error family (dsp.errors) and the run-level settings table (dsp.settings).

References: the exit codes INTERFACE.md/cli.py promise (2 usage, 1 run time), the
parameter table for the ceiling's range, dsp.spec for the sample-rate range, and
argparse's parsed defaults (the command line must read the table, not restate it).
"""

from __future__ import annotations

import pytest

import mixpilot
from mixpilot.dsp import errors, settings
from mixpilot.dsp.params import PARAM_INDEX, PARAMS
from mixpilot.dsp.spec import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE


def test_every_old_exception_is_in_the_family_with_its_exit_code():
    from mixpilot.inference.features import FeatureError
    from mixpilot.inference.model import ModelError
    from mixpilot.realtime.audio_io import AudioFileError, UnsupportedOutputError
    from mixpilot.realtime.jackserver import JackError
    from mixpilot.realtime.midi_map import MidiError, MidiMapError
    from mixpilot.realtime.render import RenderError, RenderUsageError
    from mixpilot.realtime.stream import StreamError, StreamUsageError

    expected = {
        AudioFileError: (1, errors.InputFileError),
        UnsupportedOutputError: (2, errors.OutputError),
        RenderError: (1, errors.MixpilotError),
        RenderUsageError: (2, errors.UsageError),
        StreamError: (1, errors.DeviceError),
        StreamUsageError: (2, errors.UsageError),
        JackError: (1, errors.DeviceError),
        MidiError: (1, errors.MidiError),
        MidiMapError: (2, errors.MidiMapError),
        ModelError: (1, errors.ModelError),
        FeatureError: (2, errors.MixpilotError),
        errors.ParameterError: (2, ValueError),
        errors.SettingError: (2, ValueError),
    }
    for cls, (code, base) in expected.items():
        assert issubclass(cls, errors.MixpilotError) and issubclass(cls, base), cls
        assert cls("x").exit_code == code, cls
    # the old names still catch what they caught (nothing breaks for existing callers)
    assert issubclass(ModelError, RuntimeError) and issubclass(MidiMapError, ValueError)
    assert mixpilot.MixpilotError is errors.MixpilotError


def test_settings_ranges_come_from_one_place():
    ceil = PARAMS[PARAM_INDEX["limiter_ceiling_dbtp"]]
    s = settings.setting("ceiling_dbtp")
    assert (s.minimum, s.maximum, s.default) == (ceil.minimum, ceil.maximum, ceil.default)
    sr = settings.setting("sample_rate")
    assert (sr.minimum, sr.maximum) == (MIN_SAMPLE_RATE, MAX_SAMPLE_RATE)
    from mixpilot.inference.worker import CROSSFADE_S, HOP_S
    from mixpilot.realtime.render import BLOCK_SIZE_RANGE, TARGET_LUFS_RANGE

    assert (HOP_S, CROSSFADE_S) == (settings.setting("ai_hop_s").default, settings.setting("crossfade_s").default)
    assert TARGET_LUFS_RANGE == (-60.0, 0.0) and BLOCK_SIZE_RANGE == (1, 65536)


def test_argparse_defaults_are_the_table_defaults():
    from mixpilot.realtime.cli import build_parser

    p = build_parser()
    r = p.parse_args(["render", "a.wav", "b.wav"])
    pl = p.parse_args(["play", "a.wav"])
    for name in ("ai_amount", "ai_hop_s", "crossfade_s"):
        assert getattr(r, name) == settings.setting(name).default
        assert getattr(pl, name) == settings.setting(name).default
    # --target-lufs not given is None: the table default, or a --reference/--target's own loudness, decided
    # where the run is built (MasterSettings.checked, stream.run)
    from mixpilot.realtime.api import MasterSettings

    assert r.target_lufs is None and pl.target_lufs is None
    assert MasterSettings(target_lufs=None).checked().target_lufs == settings.setting("target_lufs").default
    assert r.block_size == settings.setting("block_size").default
    assert pl.blocksize == settings.setting("blocksize").default
    assert "-60..0 LUFS" in p._subparsers._group_actions[0].choices["render"].format_help()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("target_lufs", 3.0, "--target-lufs 3 is outside -60..0 LUFS"),
        ("ai_amount", 1.5, "--ai-amount 1.5 is outside 0..1"),
        ("seconds", 0.0, "--seconds must be > 0 s, got 0"),
        ("blocksize", 8, "--blocksize 8 is outside 16..8192 frames"),
        ("blocksize", 1.5, "--blocksize must be an integer"),
        ("ai_hop_s", float("nan"), "--ai-hop-s must be a finite number"),
        ("crossfade_s", "x", "--crossfade-s must be a number"),
    ],
)
def test_validate_says_what_is_wrong_in_one_line(name, value, message):
    with pytest.raises(errors.SettingError) as e:
        settings.validate(name, value)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_amounts_parse_per_aspect():
    assert settings.parse_amounts("tone=0.5, width=0") == {"tone": 0.5, "width": 0.0}
    for bad in ("tone", "safety=1", "tone=2", "tone=1,tone=0"):
        with pytest.raises(errors.SettingError):
            settings.parse_amounts(bad)
