"""realtime.parameter_state: THE rule that merges static values, AI targets, amounts and controls.

References: the rule as ARCHITECTURE.md and the module docstring state it, computed by hand here
(``base = clamp_hard(static + amount * (clamp_ai(ai) - default))``; a held control's value wins;
a release returns to the base), the table's ranges (dsp.params), and the soft-takeover rule of
realtime/midi_control.py's docstring (reach within half a step, or pass through).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mixpilot.dsp.params import PARAM_INDEX, PARAMS
from mixpilot.realtime.engine import Engine
from mixpilot.realtime.midi import ControlBank
from mixpilot.realtime.parameter_state import (
    ParameterState,
    ParamsLog,
    apply_controls,
    apply_update,
    takes_over,
)

SR = 48000
LOW, IN, WIDTH, RATIO = (PARAM_INDEX[n] for n in ("low_gain_db", "input_gain_db", "stereo_width", "comp_ratio"))


def test_ai_blend_is_static_plus_amount_times_the_move_from_neutral():
    st = ParameterState({"low_gain_db": 1.5}, ai_amount=0.5)
    p = PARAMS[LOW]
    got = st.ai_targets({"low_gain_db": 2.0})["low_gain_db"]
    assert got == pytest.approx(1.5 + 0.5 * (2.0 - p.default), abs=1e-12)
    assert st.ai_target[LOW] == 2.0


def test_per_aspect_amounts_scale_the_ai_move():
    # --amount tone=0,dynamics=0.5 with --ai-amount 1: tone parameters stay at their static values,
    # dynamics ones move half-way, the others the whole way (amount 1).
    st = ParameterState({}, amounts={"tone": 0.0, "dynamics": 0.5})
    v = st.ai_targets({"low_gain_db": 2.0, "input_gain_db": 4.0, "stereo_width": 1.1})
    assert PARAMS[LOW].aspect == "tone" and PARAMS[IN].aspect == "dynamics"
    assert v["low_gain_db"] == PARAMS[LOW].default
    assert v["input_gain_db"] == pytest.approx(PARAMS[IN].default + 0.5 * (4.0 - PARAMS[IN].default), abs=1e-12)
    assert v["stereo_width"] == pytest.approx(1.1, abs=1e-12)


def test_ai_target_held_in_the_ai_range_and_the_result_in_the_hard_range():
    p = PARAMS[LOW]
    st = ParameterState({"low_gain_db": p.maximum - 0.5})
    # an AI value far above its AI-safe range counts as the range's top ...
    v = st.ai_targets({"low_gain_db": p.ai_maximum + 50.0})["low_gain_db"]
    assert st.ai_target[LOW] == p.ai_maximum
    # ... and static + (ai_max - default) is above the hard range: held at its top
    assert p.maximum - 0.5 + (p.ai_maximum - p.default) > p.maximum
    assert v == p.maximum


def test_target_vector_held_control_wins_over_the_base():
    st = ParameterState({"low_gain_db": 1.0})
    manual = st.base.copy()
    manual[LOW] = -2.0
    assert st.target_vector(manual)[LOW] == 1.0  # nothing holds it
    st.manual_active[LOW] = 1
    assert st.target_vector(manual)[LOW] == -2.0


def _controls(st: ParameterState, targets, glide, bank: ControlBank) -> int:
    return apply_controls(
        targets,
        glide,
        st.base,
        bank.manual_value,
        bank.manual_seq,
        bank.release_seq,
        bank.action_seq,
        st.seen,
        st.manual_active,
        bank.current,
        targets.copy(),
        bank.msg_time_ns,
        np.zeros(4, np.int64),
        np.zeros(1, np.int64),
        0,
        st.manual_glide_s,
        st.release_glide_s,
        -1,
    )


def test_kernels_apply_the_rule_manual_over_ai_and_release_to_base():
    st = ParameterState({"low_gain_db": 1.0})
    bank = ControlBank()
    targets, glide = st.base.copy(), np.zeros_like(st.base)
    # a control takes low_gain_db: the target is its value, glide the manual glide
    bank.manual_value[LOW] = -3.0
    bank.manual_seq[LOW] += 1
    _controls(st, targets, glide, bank)
    assert targets[LOW] == -3.0 and glide[LOW] == st.manual_glide_s and st.manual_active[LOW] == 1
    # an AI update moves the base but not the held parameter; others follow it
    ai = st.ai_targets({"low_gain_db": 2.5, "stereo_width": 1.2})
    vec, mask = st.base.copy(), np.zeros(st.base.shape[0], bool)
    for k, v in ai.items():
        vec[PARAM_INDEX[k]] = v
        mask[PARAM_INDEX[k]] = True
    apply_update(targets, glide, st.base, vec, np.full_like(vec, 2.0), mask, -1, st.manual_active)
    assert targets[LOW] == -3.0 and st.base[LOW] == ai["low_gain_db"]
    assert targets[WIDTH] == ai["stereo_width"] and glide[WIDTH] == 2.0
    # release: back to the base (static + AI), gliding over the release glide
    bank.release_seq[LOW] += 1
    _controls(st, targets, glide, bank)
    assert targets[LOW] == ai["low_gain_db"] and glide[LOW] == st.release_glide_s and st.manual_active[LOW] == 0


def test_buttons_toggle_bits_and_release_all():
    st = ParameterState()
    bank = ControlBank()
    targets, glide = st.base.copy(), np.zeros_like(st.base)
    bank.manual_value[LOW] = 2.0
    bank.manual_seq[LOW] += 1
    _controls(st, targets, glide, bank)
    bank.action_seq[0] += 1  # bypass pressed once
    bank.action_seq[2] += 2  # ai pressed twice: no toggle
    bank.action_seq[3] += 1  # release-all
    toggled = _controls(st, targets, glide, bank)
    assert toggled == 1 and st.manual_active[LOW] == 0 and targets[LOW] == st.base[LOW]


@pytest.mark.parametrize(
    "x,last,cur,half,expect",
    [
        (0.50, math.nan, 0.5, 0.004, True),  # on the current value
        (0.503, math.nan, 0.5, 0.004, True),  # within half a step
        (0.60, math.nan, 0.5, 0.004, False),  # first message, elsewhere
        (0.60, 0.40, 0.5, 0.004, True),  # passed through from below
        (0.40, 0.60, 0.5, 0.004, True),  # from above
        (0.70, 0.60, 0.5, 0.004, False),  # moving away on one side
    ],
)
def test_soft_takeover_rule(x, last, cur, half, expect):
    assert takes_over(x, last, cur, half) is expect


def test_params_log_ai_events_only_on_change_and_static_first():
    st = ParameterState({"low_gain_db": 1.0})
    st.record_ai(3.0, {"low_gain_db": 1.5, "stereo_width": 1.0})
    st.record_ai(3.5, {"low_gain_db": 1.5, "stereo_width": 1.1})
    st.log.event(0.25, "mid_gain_db", 2.0, "midi")
    lines = [json.loads(s) for s in st.params_out_text().splitlines()]
    assert lines[0] == {"t": 0.0, "param": "low_gain_db", "value": 1.0, "source": "user"}
    assert [(e["t"], e["param"], e["source"]) for e in lines[1:]] == [
        (0.25, "mid_gain_db", "midi"),
        (3.0, "low_gain_db", "ai"),
        (3.0, "stereo_width", "ai"),
        (3.5, "stereo_width", "ai"),
    ]
    assert st.ai_updates[0] == (3.0, {"low_gain_db": 1.5, "stereo_width": 1.0})
    quiet = ParamsLog(keep=False)
    quiet.event(1.0, "low_gain_db", 1.0, "midi")
    assert quiet == []


def test_engine_publish_ai_reaches_the_chain_by_the_rule():
    eng = Engine(SR, 2, max_block_size=128, params={"loudness_gain_db": 0.0, "low_gain_db": 1.0}, ai_amount=0.5)
    eng.publish_ai({"low_gain_db": 2.0, "comp_ratio": 3.0}, 0.1)  # no window position: the next block
    z = np.zeros((128, 2), np.float32)
    eng.process_block(z, z.copy())
    d_low, d_ratio = PARAMS[LOW].default, PARAMS[RATIO].default
    assert eng.chain.targets[LOW] == pytest.approx(1.0 + 0.5 * (2.0 - d_low), abs=1e-12)
    assert eng.chain.targets[RATIO] == pytest.approx(d_ratio + 0.5 * (3.0 - d_ratio), abs=1e-12)
    assert eng.state.ai_updates[0][0] == 0.0
    eng.set_ai(False)  # AI off: dropped
    eng.publish_ai({"low_gain_db": -2.0}, 0.1, 4 * SR)
    assert len(eng.state.ai_updates) == 1


def test_manual_source_names_the_control_that_holds():
    from mixpilot.realtime.midi import ControlMapper, MidiFileAutomation, MidiMap

    eng = Engine(SR, 2, max_block_size=128, params={"loudness_gain_db": 0.0})
    bank = ControlBank()
    eng.attach_controls(bank, MidiFileAutomation([(0.0, "low_gain_db", 2.0)]))
    z = np.zeros((128, 2), np.float32)
    eng.process_block(z, z.copy())
    assert eng.state.manual_source("low_gain_db") == "automation" and eng.chain.targets[LOW] == 2.0
    assert eng.state.manual_source("mid_gain_db") is None
    ControlMapper(MidiMap.default(), bank, soft_takeover=False).handle([0xB0, 70, 127], 0)  # CC 70: low_gain_db
    eng.process_block(z, z.copy())
    assert eng.state.manual_source("low_gain_db") == "midi" and eng.chain.targets[LOW] == PARAMS[LOW].ai_maximum


def test_ai_updates_take_effect_at_their_stream_position_whatever_the_block_size(rng):
    # The property that makes `render --loudness-mode follow` equal `play --record` with the AI on:
    # an update for the window ending at P starts at P + ai_delay_frames exactly, however the stream
    # is cut into blocks.  Reference: the same render at another block size (128 = play's default).
    from mixpilot.inference.heuristic import HeuristicEstimator
    from mixpilot.realtime.render import render_array
    from mixpilot.realtime.session import AI_APPLY_DELAY_S

    x = (0.1 * rng.standard_normal((6 * SR, 2))).astype(np.float32)
    runs = [
        render_array(x, SR, loudness_mode="follow", estimator=HeuristicEstimator(), block_size=b) for b in (128, 1000)
    ]
    times = [[t for t, _ in r.ai_updates] for r in runs]
    assert times[0] == times[1] and times[0][0] == pytest.approx(3.0 + AI_APPLY_DELAY_S)
    np.testing.assert_allclose(runs[0].out, runs[1].out, atol=1e-6, rtol=0)


def test_an_ai_update_later_than_its_position_starts_at_the_next_block_and_is_counted():
    eng = Engine(SR, 2, max_block_size=4800, params={"loudness_gain_db": 0.0})
    eng.ai_delay_frames = 4800
    z = np.zeros((4800, 2), np.float32)
    eng.process_block(z, z.copy())
    eng.process_block(z, z.copy())  # position 9600
    eng.publish_ai({"low_gain_db": 2.0}, 0.05, 0)  # due at 4800: already passed
    eng.process_block(z, z.copy())
    assert eng.ai_late == 1 and eng.chain.targets[LOW] == 2.0
    eng.publish_ai({"low_gain_db": 1.0}, 0.05, 15400)  # due at 20200
    eng.process_block(z, z.copy())  # 14400..19200: not yet
    assert eng.chain.targets[LOW] == 2.0
    y = np.zeros((4800, 2), np.float32)
    eng.process_block(np.ones((4800, 2), np.float32) * 0.1, y)  # 19200..24000, cut at 20200
    assert eng.chain.targets[LOW] == 1.0 and eng.ai_late == 1
