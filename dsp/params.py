"""The one parameter table.

Every parameter of the mixing chain is declared here exactly once: its name
(with its unit), hard range, AI-safe range, default, glide style and display
unit.  The DSP kernels, the CLI, the JSON outputs, the model cards, training
targets and the MIDI map all read this table; nothing else in the code spells
a range.

Glide styles (how a parameter ramps toward a new target, per sample):

``linear``
    the value moves by a constant step (mix amounts, widths, feedback).
``db``
    the value (in dB) moves by a constant step, i.e. the linear gain moves
    multiplicatively.
``geometric``
    the value is multiplied by a constant factor each sample (Hz, ms, Q,
    ratio): equal steps in log-frequency / log-time.
``fixed``
    structural; read at ``prepare`` and never glided (``lookahead_ms``).

AI-safe ranges follow the musical ranges the users asked for in MISSION.md
(EQ about +-2-3 dB, compression ratio 1-4, reverb <= 0.3, delay <= 0.2,
width 0.9-1.1, output level about +-1 dB).

The tonal-match EQ (``tone_31hz_db`` .. ``tone_16khz_db``) and the band widths
aim at a *target* (a reference track or a profile), not at undoing an
unknown fault, and get wider AI ranges on purpose:

* tone bands: boosts up to +6 dB, cuts to -6 dB in the middle octaves and
  deeper at the ends (-8 dB at 63 Hz, -7 dB at 8 kHz, -9 dB for the two
  shelves).  A real master's long-term 1/3-octave balance differs from a
  corpus average by 3-6 dB RMS, so +-3 dB could not reach what a reference
  asks; the ends (sub-bass, rumble, air) are where masters differ most, and a
  cut costs no headroom, while every dB of broad boost is a dB less before
  the limiter, hence the asymmetric +6 dB cap;
* ``width_low`` 0.5-1.1: narrowing the low end is the mono-compatibility
  move (0.5 halves the bass side energy's level, -6 dB); widening bass is
  not, so barely;
* ``width_high`` 0.8-1.3: the width target above the crossover, within the
  range where M/S widening stays free of phasey artefacts;
* ``width_crossover_hz`` is the user's (typ. 100-300 Hz), not the AI's.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from .errors import ParameterError

__all__ = [
    "Param",
    "PARAMS",
    "PARAM_NAMES",
    "PARAM_INDEX",
    "AI_PARAM_NAMES",
    "N_PARAMS",
    "GLIDE_STYLES",
    "ASPECTS",
    "ParameterError",
    "default_vector",
    "hard_ranges",
    "ai_ranges",
    "vector_from_mapping",
    "validate_value",
    "normalise",
    "denormalise",
    "table_as_dicts",
]

GLIDE_STYLES = ("linear", "db", "geometric", "fixed")
#: What a parameter is about: the per-aspect AI amounts (``--amount tone=0.7,...``) scale the AI's
#: move of every parameter of an aspect; ``safety`` parameters (the limiter) are never the AI's.
ASPECTS = ("tone", "width", "dynamics", "loudness", "space", "safety")


@dataclass(frozen=True)
class Param:
    """One row of the parameter table."""

    name: str
    unit: str
    minimum: float
    maximum: float
    ai_minimum: float
    ai_maximum: float
    default: float
    glide: str
    ai: bool
    description: str
    aspect: str

    def __post_init__(self) -> None:
        if self.aspect not in ASPECTS:
            raise ValueError(f"{self.name}: unknown aspect {self.aspect!r}")
        if self.glide not in GLIDE_STYLES:
            raise ValueError(f"{self.name}: unknown glide style {self.glide!r}")
        if not self.minimum <= self.ai_minimum <= self.ai_maximum <= self.maximum:
            raise ValueError(f"{self.name}: AI range must lie inside the hard range")
        if not self.minimum <= self.default <= self.maximum:
            raise ValueError(f"{self.name}: default outside the hard range")
        if self.glide == "geometric" and self.minimum <= 0.0:
            raise ValueError(f"{self.name}: geometric glide needs a positive range")

    @property
    def range_text(self) -> str:
        return f"{self.minimum:g}..{self.maximum:g} {self.unit}".rstrip()


def _p(
    name: str,
    unit: str,
    lo: float,
    hi: float,
    ai_lo: float,
    ai_hi: float,
    default: float,
    glide: str,
    ai: bool,
    description: str,
    aspect: str,
) -> Param:
    lo, hi, ai_lo, ai_hi, default = (float(v) for v in (lo, hi, ai_lo, ai_hi, default))
    return Param(name, unit, lo, hi, ai_lo, ai_hi, default, glide, bool(ai), description, aspect)


# The order of this tuple is the order of the target vector the chain reads.
# One row per parameter (the formatter would put every argument on its own line).
# fmt: off
PARAMS: tuple[Param, ...] = (
    # name, unit, hard min, hard max, AI min, AI max, default, glide, AI, description, aspect
    _p("input_gain_db", "dB", -24, 24, -6, 6, 0, "db", True, "gain before the chain", "dynamics"),
    _p("comp_threshold_db", "dB", -60, 0, -30, -6, -18, "db", False, "compressor threshold", "dynamics"),
    _p("comp_ratio", ":1", 1, 20, 1, 4, 1, "geometric", True, "compressor ratio (1 = off)", "dynamics"),
    _p("comp_attack_ms", "ms", 0.1, 200, 1, 50, 10, "geometric", False, "compressor attack time constant", "dynamics"),
    _p("comp_release_ms", "ms", 5, 2000, 40, 500, 150, "geometric", False, "compressor release time constant", "dynamics"),
    _p("comp_knee_db", "dB", 0, 24, 0, 12, 6, "linear", False, "compressor soft-knee width", "dynamics"),
    _p("comp_makeup_db", "dB", -12, 24, 0, 6, 0, "db", False, "compressor make-up gain", "dynamics"),
    _p("low_gain_db", "dB", -18, 18, -3, 3, 0, "db", True, "low shelf gain", "tone"),
    _p("low_freq_hz", "Hz", 20, 1000, 60, 250, 120, "geometric", False, "low shelf corner", "tone"),
    _p("mid_gain_db", "dB", -18, 18, -2, 2, 0, "db", True, "mid bell gain", "tone"),
    _p("mid_freq_hz", "Hz", 100, 8000, 300, 3000, 1000, "geometric", False, "mid bell centre", "tone"),
    _p("mid_q", "", 0.1, 10, 0.5, 2, 0.7, "geometric", False, "mid bell Q", "tone"),
    _p("high_gain_db", "dB", -18, 18, -3, 3, 0, "db", True, "high shelf gain", "tone"),
    _p("high_freq_hz", "Hz", 1000, 20000, 6000, 12000, 8000, "geometric", False, "high shelf corner", "tone"),
    _p("presence_gain_db", "dB", -12, 12, -2, 3, 0, "db", True, "presence bell gain", "tone"),
    _p("presence_freq_hz", "Hz", 2000, 8000, 3500, 5500, 4500, "geometric", False, "presence bell centre", "tone"),
    _p("presence_q", "", 0.3, 4, 0.7, 1.5, 1.0, "geometric", False, "presence bell Q", "tone"),
    _p("tone_31hz_db", "dB", -18, 18, -9, 6, 0, "db", True, "tonal-match EQ: low shelf (corner 44 Hz) for the 31 Hz octave and below", "tone"),
    _p("tone_63hz_db", "dB", -18, 18, -8, 6, 0, "db", True, "tonal-match EQ: 63 Hz octave bell", "tone"),
    _p("tone_125hz_db", "dB", -18, 18, -6, 6, 0, "db", True, "tonal-match EQ: 125 Hz octave bell", "tone"),
    _p("tone_250hz_db", "dB", -18, 18, -6, 6, 0, "db", True, "tonal-match EQ: 250 Hz octave bell", "tone"),
    _p("tone_500hz_db", "dB", -18, 18, -6, 6, 0, "db", True, "tonal-match EQ: 500 Hz octave bell", "tone"),
    _p("tone_1khz_db", "dB", -18, 18, -6, 6, 0, "db", True, "tonal-match EQ: 1 kHz octave bell", "tone"),
    _p("tone_2khz_db", "dB", -18, 18, -6, 6, 0, "db", True, "tonal-match EQ: 2 kHz octave bell", "tone"),
    _p("tone_4khz_db", "dB", -18, 18, -6, 6, 0, "db", True, "tonal-match EQ: 4 kHz octave bell", "tone"),
    _p("tone_8khz_db", "dB", -18, 18, -7, 6, 0, "db", True, "tonal-match EQ: 8 kHz octave bell", "tone"),
    _p("tone_16khz_db", "dB", -18, 18, -9, 6, 0, "db", True, "tonal-match EQ: high shelf (corner 11.3 kHz) for the 16 kHz octave and above", "tone"),
    _p("reverb_send", "", 0, 1, 0, 0.3, 0, "linear", True, "reverb send level (wet added to dry)", "space"),
    _p("reverb_room_size", "", 0, 1, 0.2, 0.8, 0.5, "linear", False, "reverb decay (0 = 0.2 s .. 1 = 5 s RT60)", "space"),
    _p("reverb_damping", "", 0, 1, 0.2, 0.8, 0.5, "linear", False, "reverb high-frequency damping", "space"),
    _p("delay_send", "", 0, 1, 0, 0.2, 0, "linear", True, "delay send level (wet added to dry)", "space"),
    _p("delay_ms", "ms", 1, 2000, 50, 500, 250, "geometric", False, "delay time", "space"),
    _p("delay_feedback", "", 0, 0.95, 0, 0.5, 0.3, "linear", False, "delay feedback", "space"),
    _p("stereo_width", "", 0, 2, 0.9, 1.1, 1.0, "linear", True, "M/S width (0 mono, 1 unchanged, 2 double side)", "width"),
    _p("width_low", "", 0, 2, 0.5, 1.1, 1.0, "linear", True, "M/S width below the crossover (0 mono bass, 1 unchanged)", "width"),
    _p("width_high", "", 0, 2, 0.8, 1.3, 1.0, "linear", True, "M/S width above the crossover (1 unchanged)", "width"),
    _p("width_crossover_hz", "Hz", 40, 1000, 100, 300, 160, "geometric", False, "Linkwitz-Riley crossover of the two widths", "width"),
    _p("output_gain_db", "dB", -24, 24, -1, 1, 0, "db", True, "gain after the chain", "loudness"),
    _p("loudness_gain_db", "dB", -40, 40, 0, 0, 0, "db", False, "delivery gain set by loudness targeting", "loudness"),
    _p("limiter_ceiling_dbtp", "dBTP", -20, 0, -2, -0.3, -1, "db", False, "limiter true-peak ceiling", "safety"),
    _p("limiter_release_ms", "ms", 1, 1000, 20, 200, 50, "geometric", False, "limiter release time constant", "safety"),
    _p("lookahead_ms", "ms", 0.5, 20, 1, 10, 5, "fixed", False, "limiter lookahead, the chain latency (at least 59 samples: the true-peak detector's delay plus the shortest safe gain ramp)", "safety"),
)
# fmt: on

PARAM_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMS)
PARAM_INDEX: dict[str, int] = {p.name: i for i, p in enumerate(PARAMS)}
AI_PARAM_NAMES: tuple[str, ...] = tuple(p.name for p in PARAMS if p.ai)
N_PARAMS = len(PARAMS)


def default_vector() -> np.ndarray:
    """Target vector (float64, shape (N_PARAMS,)) holding every default."""
    return np.array([p.default for p in PARAMS], dtype=np.float64)


def hard_ranges() -> np.ndarray:
    """Hard ranges as float64 array of shape (N_PARAMS, 2)."""
    return np.array([[p.minimum, p.maximum] for p in PARAMS], dtype=np.float64)


def ai_ranges() -> np.ndarray:
    """AI-safe ranges as float64 array of shape (N_PARAMS, 2)."""
    return np.array([[p.ai_minimum, p.ai_maximum] for p in PARAMS], dtype=np.float64)


def validate_value(name: str, value: object) -> float:
    """Check one ``name: value`` pair against the table and return the float.

    Raises ParameterError naming the parameter and its range.
    """
    if name not in PARAM_INDEX:
        raise ParameterError(f"unknown parameter {name!r}; known parameters: {', '.join(PARAM_NAMES)}")
    p = PARAMS[PARAM_INDEX[name]]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ParameterError(f"{name} must be a number in {p.range_text}, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or not p.minimum <= v <= p.maximum:
        raise ParameterError(f"{name} = {value!r} is outside its range {p.range_text}")
    return v


def vector_from_mapping(values: Mapping[str, object], base: np.ndarray | None = None) -> np.ndarray:
    """A full target vector: ``base`` (defaults) overridden by validated ``values``."""
    vec = default_vector() if base is None else np.array(base, dtype=np.float64, copy=True)
    for name, value in values.items():
        vec[PARAM_INDEX[name]] = validate_value(name, value)
    return vec


def normalise(name: str, value: float) -> float:
    """Map a value in the AI-safe range of ``name`` to 0..1 (log for geometric)."""
    p = PARAMS[PARAM_INDEX[name]]
    lo, hi = p.ai_minimum, p.ai_maximum
    if hi == lo:
        return 0.0
    if p.glide == "geometric":
        return float((np.log(value) - np.log(lo)) / (np.log(hi) - np.log(lo)))
    return float((value - lo) / (hi - lo))


#: normalised values within this of a parameter's normalised default denormalise to the default exactly
NEUTRAL_SNAP = 1e-6


def denormalise(name: str, x: float) -> float:
    """Inverse of :func:`normalise`.

    The default survives the round trip exactly, also through float32 (a
    model's output): ``x`` within :data:`NEUTRAL_SNAP` of ``normalise(name,
    default)`` gives the default itself, so an AI that wants no move never
    moves a parameter by 1e-15 dB (and never wakes a stage that sleeps at its
    neutral setting).
    """
    default, lo, hi, snaps, neutral, geometric, log_lo, log_span = _denormalise_consts(name)
    if snaps and abs(x - neutral) <= NEUTRAL_SNAP:
        return default
    if geometric:
        return float(np.exp(log_lo + x * log_span))
    return float(lo + x * (hi - lo))


@functools.cache
def _denormalise_consts(name: str) -> tuple:
    """What :func:`denormalise` reads of a row, computed once per name (the same values it computed per call:
    ``normalise(name, default)``, ``np.log(lo)``, ``np.log(hi) - np.log(lo)``; issue 19)."""
    p = PARAMS[PARAM_INDEX[name]]
    lo, hi = p.ai_minimum, p.ai_maximum
    snaps = hi != lo and lo <= p.default <= hi
    geometric = p.glide == "geometric"
    log_lo = np.log(lo) if geometric else 0.0
    log_span = (np.log(hi) - np.log(lo)) if geometric else 0.0
    return p.default, lo, hi, snaps, normalise(name, p.default) if snaps else 0.0, geometric, log_lo, log_span


def table_as_dicts() -> list[dict]:
    """The table as plain dicts (for ``mixpilot params --json`` and model cards)."""
    return [asdict(p) for p in PARAMS]


def table_as_json() -> str:
    return json.dumps(table_as_dicts(), indent=2)
