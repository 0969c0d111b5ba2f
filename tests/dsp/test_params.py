"""The parameter table: the one place ranges live.

References: MISSION.md's musical ranges (EQ about +-3 dB, ratio 1-4, reverb <= 0.3,
delay <= 0.2, width 0.9-1.1) bound the AI-safe ranges; units are in every name.
"""

import math
import re

import numpy as np
import pytest

from mixpilot.dsp.params import (
    AI_PARAM_NAMES,
    PARAM_INDEX,
    PARAMS,
    ParameterError,
    default_vector,
    denormalise,
    normalise,
    validate_value,
    vector_from_mapping,
)

REQUIRED = [
    "input_gain_db",
    "comp_threshold_db",
    "comp_ratio",
    "comp_attack_ms",
    "comp_release_ms",
    "comp_knee_db",
    "comp_makeup_db",
    "low_gain_db",
    "low_freq_hz",
    "mid_gain_db",
    "mid_freq_hz",
    "mid_q",
    "high_gain_db",
    "high_freq_hz",
    "presence_gain_db",
    "reverb_send",
    "reverb_room_size",
    "reverb_damping",
    "delay_send",
    "delay_ms",
    "delay_feedback",
    "stereo_width",
    "output_gain_db",
    "limiter_ceiling_dbtp",
    "limiter_release_ms",
    "lookahead_ms",
]


def test_required_parameters_present():
    assert set(REQUIRED) <= set(PARAM_INDEX)


def test_ai_parameters_inside_musical_ranges():
    first_ten = {"input_gain_db", "comp_ratio", "low_gain_db", "mid_gain_db", "high_gain_db", "presence_gain_db"}
    first_ten |= {"reverb_send", "delay_send", "stereo_width", "output_gain_db"}
    bands = ("31hz", "63hz", "125hz", "250hz", "500hz", "1khz", "2khz", "4khz", "8khz", "16khz")
    tone = {f"tone_{b}_db" for b in bands}
    assert set(AI_PARAM_NAMES) == first_ten | tone | {"width_low", "width_high"}
    for name in tone:  # a target asks for more than +-3 dB; boosts are capped at +6 dB (headroom), cuts at -9 dB
        p = PARAMS[PARAM_INDEX[name]]
        assert -9 <= p.ai_minimum <= -6 and p.ai_maximum == 6 and p.aspect == "tone"
    for name in ("width_low", "width_high"):
        p = PARAMS[PARAM_INDEX[name]]
        assert p.ai_minimum < 1.0 < p.ai_maximum and p.aspect == "width"
    musical = {"low_gain_db": 3, "mid_gain_db": 3, "high_gain_db": 3, "presence_gain_db": 3}
    for name, limit in musical.items():
        p = PARAMS[PARAM_INDEX[name]]
        assert -limit <= p.ai_minimum and p.ai_maximum <= limit
    r = PARAMS[PARAM_INDEX["comp_ratio"]]
    assert (r.ai_minimum, r.ai_maximum) == (1.0, 4.0)
    assert PARAMS[PARAM_INDEX["reverb_send"]].ai_maximum <= 0.3
    assert PARAMS[PARAM_INDEX["delay_send"]].ai_maximum <= 0.2
    w = PARAMS[PARAM_INDEX["stereo_width"]]
    assert (w.ai_minimum, w.ai_maximum) == (0.9, 1.1)


def test_units_in_names():
    unitless = {
        "comp_ratio",
        "mid_q",
        "presence_q",
        "reverb_send",
        "reverb_room_size",
        "reverb_damping",
        "delay_send",
        "delay_feedback",
        "stereo_width",
        "width_low",
        "width_high",
    }
    for p in PARAMS:
        if p.name not in unitless:
            assert re.search(r"_(db|dbtp|ms|hz)$", p.name), p.name


def test_validation_messages_name_parameter_and_range():
    with pytest.raises(ParameterError, match="unknown parameter 'bass_boost'"):
        validate_value("bass_boost", 1.0)
    with pytest.raises(ParameterError, match=r"low_gain_db = 40.*-18\.\.18 dB"):
        validate_value("low_gain_db", 40)
    with pytest.raises(ParameterError, match="must be a number"):
        validate_value("low_gain_db", "loud")
    with pytest.raises(ParameterError):
        validate_value("low_gain_db", math.nan)
    v = vector_from_mapping({"low_gain_db": 2})
    assert v[PARAM_INDEX["low_gain_db"]] == 2.0 and np.all(
        np.delete(v, PARAM_INDEX["low_gain_db"]) == np.delete(default_vector(), PARAM_INDEX["low_gain_db"])
    )


def test_normalisation_round_trip():
    for name in AI_PARAM_NAMES:
        p = PARAMS[PARAM_INDEX[name]]
        mid = math.sqrt(p.ai_minimum * p.ai_maximum) if p.glide == "geometric" else 0.5 * (p.ai_minimum + p.ai_maximum)
        assert normalise(name, p.ai_minimum) == pytest.approx(0.0)
        assert normalise(name, p.ai_maximum) == pytest.approx(1.0)
        assert denormalise(name, normalise(name, mid)) == pytest.approx(mid)


def test_denormalise_with_its_constants_cached_equals_the_per_call_formula() -> None:
    # issue 19: denormalise reads normalise(name, default), log(lo) and log(hi) - log(lo) from a per-name
    # cache; reference: the formula as it was computed on every call, bit for bit, over a grid and the
    # normalised default (which must snap to the default itself)
    import numpy as np

    from mixpilot.dsp.params import AI_PARAM_NAMES, NEUTRAL_SNAP, PARAM_INDEX, PARAMS, denormalise, normalise

    def before(name: str, x: float) -> float:
        p = PARAMS[PARAM_INDEX[name]]
        lo, hi = p.ai_minimum, p.ai_maximum
        if hi != lo and lo <= p.default <= hi and abs(x - normalise(name, p.default)) <= NEUTRAL_SNAP:
            return p.default
        if p.glide == "geometric":
            return float(np.exp(np.log(lo) + x * (np.log(hi) - np.log(lo))))
        return float(lo + x * (hi - lo))

    for name in AI_PARAM_NAMES:
        d = normalise(name, PARAMS[PARAM_INDEX[name]].default)
        for x in [*np.linspace(0.0, 1.0, 101), d, d + 0.9 * NEUTRAL_SNAP, d - 2 * NEUTRAL_SNAP, float(np.float32(d))]:
            assert denormalise(name, float(x)) == before(name, float(x)), (name, x)
