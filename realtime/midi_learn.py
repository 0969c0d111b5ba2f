"""``mixpilot midi-learn``: move a control, pick what it drives, the map file is saved."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from mixpilot.dsp.params import PARAM_INDEX, PARAMS
from mixpilot.realtime.midi_map import (
    ACTIONS,
    MidiBinding,
    MidiMap,
    controllable_params,
)

from .midi_ports import CLIENT_NAME, _api_label, _open_port, _Opened, default_port_spec

__all__ = ["binding_for_choice", "learn"]

Receive = Callable[[float], "list[int] | None"]  # receive(timeout_s) -> message bytes or None


def _port_receiver(opened: _Opened, poll_s: float = 0.002) -> Receive:
    rt = opened.rt

    def receive(timeout_s: float) -> list[int] | None:
        end = time.monotonic() + timeout_s
        while True:
            msg = rt.get_message()
            if msg is not None:
                return msg[0]
            if time.monotonic() >= end:
                return None
            time.sleep(poll_s)

    return receive


def _wait_control(receive: Receive, settle_s: float, *, forever: bool = True) -> tuple[int, int, bool] | None:
    """Block until a CC moves; then watch ``settle_s`` more to spot a 14-bit pair.

    Returns (cc, channel 1..16, cc14); the 14-bit pair is reported on its MSB
    (cc 0-31) when both cc n and cc n+32 moved on the same channel.
    """
    first = None
    while first is None:
        msg = receive(0.25)
        if msg is None:
            if not forever:
                return None
            continue
        if len(msg) == 3 and 0xB0 <= msg[0] <= 0xBF and msg[1] < 128:
            first = (msg[0] & 0x0F, msg[1])
    seen = {first}
    end = time.monotonic() + settle_s
    while (left := end - time.monotonic()) > 0:
        msg = receive(left)
        if msg is not None and len(msg) == 3 and 0xB0 <= msg[0] <= 0xBF and msg[1] < 128:
            seen.add((msg[0] & 0x0F, msg[1]))
    ch, cc = first
    if cc < 32 and (ch, cc + 32) in seen:
        return cc, ch + 1, True
    if 32 <= cc < 64 and (ch, cc - 32) in seen:
        return cc - 32, ch + 1, True
    return cc, ch + 1, False


def _drain(receive: Receive) -> None:
    for _ in range(100000):
        if receive(0.0) is None:
            return


def _learn_choices() -> list[str]:
    return list(controllable_params()) + list(ACTIONS)


def _choice_listing() -> list[str]:
    out = []
    for k, name in enumerate(_learn_choices(), 1):
        if name in PARAM_INDEX:
            p = PARAMS[PARAM_INDEX[name]]
            star = "*" if p.ai else " "
            out.append(f"  {k:2d} {star} {name:22s} {p.range_text}")
        else:
            out.append(f"  {k:2d}   {name:22s} (button)")
    return out


def binding_for_choice(choice: str, cc: int, channel: int | None, cc14: bool) -> MidiBinding:
    """The binding midi-learn writes for a chosen parameter or action.

    Parameters of the AI (``*`` in the list) span their AI-safe range
    (``range = "ai"``); the others their hard range.  Hz, ms, Q and ratio
    parameters (geometric glide) get the log curve, the rest linear.
    """
    if choice in ACTIONS:
        return MidiBinding(cc=cc, channel=channel, action=choice)
    p = PARAMS[PARAM_INDEX[choice]]
    rng = "ai" if p.ai and p.ai_minimum < p.ai_maximum else "hard"
    curve = "log" if p.glide == "geometric" else "linear"
    return MidiBinding(cc=cc, channel=channel, param=choice, curve=curve, range=rng, cc14=cc14)


def learn(
    port_spec: object,
    map_path: str | os.PathLike,
    *,
    choose: Callable[[str], str] = input,
    out: Callable[[str], None] = print,
    receive: Receive | None = None,
    api: str | None = None,
    settle_s: float = 0.3,
) -> MidiMap:
    """``mixpilot midi-learn``: move a control, choose a parameter, repeat.

    Loads ``map_path`` when it exists (so a map can be extended), else starts
    an empty one.  Each round waits for a CC (identifying cc, channel and a
    14-bit MSB/LSB pair), asks ``choose(prompt)`` for a parameter or action by
    name or number (``?`` lists them again, ``s`` skips the control, an empty
    line or ``q`` finishes), assigns it (replacing what that control did on
    that channel) and saves the map atomically at once, so an interrupted
    session keeps what it learnt.  ``receive(timeout_s)`` (raw message bytes or
    None) replaces the port, for tests; otherwise ``port_spec`` is opened as
    for :class:`MidiInput` (None: :func:`default_port_spec`).  Returns the
    final map.
    """
    map_path = os.fspath(map_path)
    midi_map = MidiMap.load(map_path) if os.path.exists(map_path) else MidiMap([], source=map_path)
    opened = None
    if receive is None:
        if port_spec is None:
            port_spec = default_port_spec(api)
        opened = _open_port(port_spec, api, CLIENT_NAME + "-learn")
        receive = _port_receiver(opened)
        where = f"virtual port {opened.port_name!r}" if opened.virtual else f"port {opened.port_name!r}"
        out(f"midi-learn: listening on {where} ({_api_label(opened.api)}); map {map_path} ({len(midi_map)} bindings)")
    else:
        out(f"midi-learn: map {map_path} ({len(midi_map)} bindings)")
    choices = _learn_choices()
    listing = _choice_listing()
    out("parameters (* = driven by the AI; those knobs span the AI-safe range) and buttons:")
    for line in listing:
        out(line)
    try:
        while True:
            _drain(receive)
            out("move a control (Ctrl-C to stop) ...")
            got = _wait_control(receive, settle_s)
            assert got is not None  # forever=True: it returns only with a control
            cc, channel, cc14 = got
            what = f"CC {cc}/{cc + 32} (14-bit pair)" if cc14 else f"CC {cc}"
            old = midi_map.find(channel, cc)
            out(f"got {what} on channel {channel}" + (f"; now: {old.describe()}" if old else ""))
            while True:
                try:
                    answer = choose(
                        "parameter or button (name or number; ? lists; s skips; empty or q finishes): "
                    ).strip()
                except EOFError:
                    answer = "q"
                if answer in ("", "q", "quit"):
                    out(f"midi-learn: {len(midi_map)} bindings in {map_path}")
                    return midi_map
                if answer == "?":
                    for line in listing:
                        out(line)
                    continue
                if answer in ("s", "skip"):
                    break
                name = None
                if answer.isdigit() and 1 <= int(answer) <= len(choices):
                    name = choices[int(answer) - 1]
                elif answer in choices:
                    name = answer
                if name is None:
                    import difflib

                    near = difflib.get_close_matches(answer, choices, n=3, cutoff=0.5)
                    hint = f"; did you mean {' or '.join(near)}?" if near else ""
                    out(f"not a parameter or button: {answer!r}{hint}")
                    continue
                binding = binding_for_choice(name, cc, channel, cc14 and name not in ACTIONS)
                removed = midi_map.assign(binding)
                midi_map.save(map_path)
                for r in removed:
                    out(f"  replaced: {r.describe()}")
                out(f"saved: {binding.describe()}")
                break
    except KeyboardInterrupt:
        out(f"\nmidi-learn: stopped; {len(midi_map)} bindings in {map_path}")
        return midi_map
    finally:
        if opened is not None:
            try:
                opened.rt.close_port()
                opened.rt.delete()
            except Exception:
                pass
