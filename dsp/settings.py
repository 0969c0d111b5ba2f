"""The run-level settings table: one row per setting of a render or a real-time run.

Like :mod:`dsp.params` for the chain's parameters, this table is the one place
that spells a setting's range, unit, default and help text.  The command line
(``argparse`` options are built from the rows: :func:`argparse_kwargs`), the
Python API (:func:`mixpilot.realtime.render.render_file`,
:class:`mixpilot.realtime.stream.RunOptions`, the session builder) and every
validation (:func:`validate`) read it.  A range that a parameter already has
(``ceiling_dbtp`` is ``limiter_ceiling_dbtp``) is taken from the parameter
table, a sample rate's from :mod:`dsp.spec`.

A value outside its range raises :class:`dsp.errors.SettingError` (a usage
error, exit code 2) with the command-line flag, the value and the range in
one line: ``--target-lufs 3 is outside -60..0 LUFS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import SettingError
from .params import ASPECTS, PARAM_INDEX, PARAMS
from .spec import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

__all__ = ["SETTINGS", "Setting", "argparse_kwargs", "defaults", "parse_amounts", "setting", "validate"]


@dataclass(frozen=True)
class Setting:
    """One run-level setting.

    ``minimum``/``maximum`` bound the value (None: unbounded on that side);
    ``exclusive_minimum`` makes the lower bound strict (``> 0`` for durations).
    ``kind`` is ``float`` or ``int``.  ``flag`` is the command-line option.
    """

    name: str
    unit: str
    minimum: float | None
    maximum: float | None
    default: Any
    kind: type
    help: str
    flag: str
    metavar: str
    exclusive_minimum: bool = False

    @property
    def range_text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum:g}..{self.maximum:g}{unit}"
        if self.minimum is not None:
            return f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}{unit}"
        return "any"  # pragma: no cover - every row has a lower bound


_CEIL = PARAMS[PARAM_INDEX["limiter_ceiling_dbtp"]]


def _s(
    name: str,
    unit: str,
    lo: float | None,
    hi: float | None,
    default: Any,
    kind: type,
    help: str,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    exclusive: bool = False,
) -> Setting:
    return Setting(
        name,
        unit,
        lo,
        hi,
        default,
        kind,
        help,
        flag or "--" + name.replace("_", "-"),
        metavar or (unit.upper() if unit else "X"),
        exclusive,
    )


# One row per setting.  Defaults are what the CLI and the Python API use when nothing is given.
SETTINGS: tuple[Setting, ...] = (
    _s("target_lufs", "LUFS", -60.0, 0.0, -14.0, float, "integrated loudness to deliver"),
    _s("ceiling_dbtp", "dBTP", _CEIL.minimum, _CEIL.maximum, _CEIL.default, float, "limiter true-peak ceiling"),
    _s("ai_amount", "", 0.0, 1.0, 1.0, float, "blend between neutral parameters and the AI's", metavar="0..1"),
    _s("ai_hop_s", "s", 0.05, 60.0, 0.5, float, "seconds between AI updates", metavar="S"),
    _s("crossfade_s", "s", 0.0, 60.0, 2.0, float, "glide time into each AI update", metavar="S"),
    _s("aspect_amount", "", 0.0, 1.0, 1.0, float, "per-aspect AI amount", flag="--amount", metavar="ASPECT=A,..."),
    _s("sample_rate", "Hz", MIN_SAMPLE_RATE, MAX_SAMPLE_RATE, None, int, "stream sample rate", flag="--samplerate"),
    _s("output_rate", "Hz", MIN_SAMPLE_RATE, MAX_SAMPLE_RATE, None, int, "sample rate of the delivered file"),
    _s("blocksize", "frames", 16, 8192, 128, int, "frames per audio callback", metavar="FRAMES"),
    _s("block_size", "frames", 1, 65536, 1024, int, "frames per processing block", metavar="FRAMES"),
    _s("seconds", "s", 0.0, None, None, float, "stop after S seconds", metavar="S", exclusive=True),
    _s(
        "ai_resume_s",
        "s",
        0.0,
        None,
        None,
        float,
        "hand a MIDI-held parameter back to the AI after S seconds",
        metavar="S",
        exclusive=True,
    ),  # fmt: skip
    _s("hop_s", "s", 0.05, 600.0, 1.5, float, "seconds between AI windows", metavar="S"),
    _s("start_s", "s", 0.0, None, 0.0, float, "where the excerpt starts in the file", flag="--start", metavar="S"),
    _s("jobs", "", 1, 64, 2, int, "renders in parallel processes", metavar="N"),
    _s("follow_hop_s", "s", 0.01, 60.0, 0.5, float, "loudness follower update interval", metavar="S"),
    _s("follow_glide_s", "s", 0.0, 60.0, 3.0, float, "loudness follower glide time", metavar="S"),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def setting(name: str) -> Setting:
    """The row called ``name`` (KeyError for an unknown name: a programming error)."""
    return _BY_NAME[name]


def defaults() -> dict[str, Any]:
    """Every setting's default by name."""
    return {s.name: s.default for s in SETTINGS}


def validate(name: str, value: object, *, flag: str | None = None, error: type[Exception] = SettingError) -> Any:
    """``value`` checked against the row ``name`` and converted to its kind; None passes when the default is None.

    Raises ``error`` (:class:`SettingError`, or a subclass of the caller's family such as
    ``RenderUsageError``) with one line naming ``flag`` (default: the row's command-line flag).
    """
    s = _BY_NAME[name]
    label = flag or s.flag
    if value is None and s.default is None:
        return None
    if isinstance(value, bool):
        raise error(f"{label} must be a number, got {value!r}")
    if s.kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) and not (hasattr(value, "__index__") and not isinstance(value, float)):
            raise error(f"{label} must be an integer in {s.range_text}, got {value!r}")
        v: float = int(value)
    else:
        try:
            v = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise error(f"{label} must be a number, got {value!r}") from None
        if not math.isfinite(v):
            raise error(f"{label} must be a finite number, got {value!r}")
    lo, hi = s.minimum, s.maximum
    if s.exclusive_minimum and lo is not None and hi is None:
        if not v > lo:
            raise error(f"{label} must be > {lo:g}{' ' + s.unit if s.unit else ''}, got {v:g}")
    elif (lo is not None and v < lo) or (hi is not None and v > hi) or (s.exclusive_minimum and v == lo):
        raise error(f"{label} {v:g} is outside {s.range_text}")
    return s.kind(v)


def parse_amounts(text: str | None) -> dict[str, float]:
    """``--amount tone=0.7,width=0.5`` -> ``{"tone": 0.7, "width": 0.5}`` (aspects of :data:`dsp.params.ASPECTS`)."""
    if text is None or not str(text).strip():
        return {}
    out: dict[str, float] = {}
    allowed = tuple(a for a in ASPECTS if a != "safety")
    for part in str(text).split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in allowed:
            raise SettingError(f"--amount {text!r}: expected ASPECT=A,... with ASPECT one of {', '.join(allowed)}")
        if name in out:
            raise SettingError(f"--amount {text!r}: {name} is given twice")
        out[name] = validate("aspect_amount", value.strip() if value.strip() else None, flag=f"--amount {name}")
    return out


def argparse_kwargs(name: str, **overrides: Any) -> dict[str, Any]:
    """``add_argument`` keyword arguments for the row ``name``: type, default, metavar and help with range.

    The type converts the text only (a number, finite); the range is checked by
    :func:`validate` where the run is built, so the Python API and the command
    line give the same one-line error.
    """
    s = _BY_NAME[name]
    default = overrides.pop("default", s.default)
    shown = (
        f"default {default:g}"
        if isinstance(default, (int, float))
        else "default: " + (overrides.pop("default_text", None) or "none")
    )
    overrides.pop("default_text", None)
    help_text = overrides.pop("help", s.help)
    kw: dict[str, Any] = {
        "type": _int_text if s.kind is int else _float_text,
        "default": default,
        "metavar": s.metavar,
        "help": f"{help_text}, {s.range_text} ({shown})",
    }
    kw.update(overrides)
    return kw


def _float_text(text: str) -> float:
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return v


def _int_text(text: str) -> int:
    import argparse

    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
