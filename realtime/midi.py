"""MIDI control: controller input, soft takeover, midi-learn and MIDI-file automation.

Threads and the one shared structure
------------------------------------
:class:`ControlBank` is a set of preallocated numpy arrays shared, without
locks, by the MIDI side (writer) and the audio callback (reader).  A writer
stores ``manual_value[i]`` and ``msg_time_ns[i]`` first and bumps
``manual_seq[i]`` last; the callback compares the sequence numbers with its own
last-seen copies and applies ``manual_value[i]`` when one moved.  Many messages
for one parameter within one audio block therefore coalesce: the last value
wins (the documented coalescing).  ``release_seq[i]`` hands parameter ``i``
back to the AI; ``action_seq`` counts presses of the four buttons (bypass,
ab, ai, release-all).  The callback never calls into this module.

:class:`MidiInput` reads a port with python-rtmidi (the library mido's
``rtmidi`` backend wraps; we use it directly to see the raw bytes, so that
malformed messages can be counted, and to choose the thread that handles
them):

* JACK (``rtmidi.API_UNIX_JACK``): rtmidi calls a Python callback from the JACK
  process thread of its client, where waiting for the GIL stalls the whole
  JACK graph (xruns for the audio client too: with one other Python thread
  busy, 1000 CCs at 500/s gave about 1150 "client mixpilot was not finished"
  xruns in jackd's log with the callback, and 2-3 with polling).  So under
  JACK the callback is not used: rtmidi queues messages in its own ring and a
  small service thread drains it every ``poll_interval_s`` (1 ms by default;
  it adds about 0.5 ms of latency and 2-3 % of one core).  JACK itself drops
  the MIDI events of a cycle in which a client missed its deadline (an xrun);
  an overloaded machine can lose a few messages of a flood that way.
* ALSA: rtmidi already runs its own input thread; the Python callback is used.

Either way the handling thread maps the message, applies soft takeover and
writes the bank; it never waits on the audio side.  The same service thread
does the ``ai_resume_s`` watchdog and notices a port that goes away.

Soft takeover (pick-up)
-----------------------
A knob's position and the parameter's current value (``bank.current``,
written by the engine every block) usually differ; a jump would be audible.
So a control is *picked up* only when its position reaches the current value
(within half a controller step) or passes through it between two consecutive
messages (a crossing from below or from above).  Until then its messages are
counted as ignored.  Once picked up it follows.  It must pick up again when
the parameter is handed back to the AI (``release``, ``--ai-resume-s``) or
when something else wrote the parameter (another control, a MIDI file).

Counters (``bank.counters``)
----------------------------
``COUNT_RECEIVED`` every message the port delivered; ``COUNT_MAPPED`` messages
that changed the bank (a value written, a button toggled); ``COUNT_IGNORED``
well-formed messages with no effect (not a CC, a CC or channel the map does
not bind, a button release, a knob not yet picked up, SysEx);
``COUNT_DROPPED`` malformed ones (stray data bytes, wrong length, data bytes
above 127).  received = mapped + ignored + dropped.  MIDI clock and active
sensing are filtered inside rtmidi and never counted.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixpilot.dsp.params import N_PARAMS, PARAM_INDEX, PARAM_NAMES, PARAMS, default_vector
from mixpilot.realtime.midi_map import (
    ACTIONS,
    ROLE_LSB,
    MidiBinding,
    MidiError,
    MidiMap,
    MidiMapError,
    controllable_params,
    load_map,
)

__all__ = [
    "ACTIONS",
    "ACTION_AB",
    "ACTION_AI",
    "ACTION_BYPASS",
    "ACTION_RELEASE",
    "COUNT_DROPPED",
    "COUNT_IGNORED",
    "COUNT_MAPPED",
    "COUNT_RECEIVED",
    "ControlBank",
    "ControlMapper",
    "MidiError",
    "MidiFileAutomation",
    "MidiInput",
    "MidiMap",
    "MidiMapError",
    "ResumeWatchdog",
    "choose_api",
    "default_port_spec",
    "jack_running",
    "learn",
    "list_ports",
    "load_map",
]

ACTION_BYPASS, ACTION_AB, ACTION_AI, ACTION_RELEASE = range(4)
COUNT_RECEIVED, COUNT_MAPPED, COUNT_IGNORED, COUNT_DROPPED = range(4)
VIRTUAL_PORT_NAME = "mixpilot"
CLIENT_NAME = "mixpilot"

_log = logging.getLogger("mixpilot.midi")

# handle() outcomes
_APPLIED, _IGNORED, _DROPPED = COUNT_MAPPED, COUNT_IGNORED, COUNT_DROPPED

EventCallback = Callable[[int, str, float, str], None]  # (t_ns, param, value, source)
ActionCallback = Callable[[int, str, "str | None"], None]  # (t_ns, action, param or None)


class ControlBank:
    """Preallocated exchange between the MIDI side (writer) and the audio callback.

    Attributes (all fixed-size numpy arrays, parameter order of :mod:`dsp.params`)
    ----------
    manual_value : float64 [N_PARAMS]  the value the MIDI side wants
    manual_seq : int64 [N_PARAMS]      bumped after ``manual_value[i]`` is written
    release_seq : int64 [N_PARAMS]     bumped to hand parameter i back to the AI
    action_seq : int64 [4]             bumped per button press (ACTION_*)
    current : float64 [N_PARAMS]       written by the engine every block: the
                                       chain's current values (soft takeover)
    msg_time_ns : int64 [N_PARAMS]     ``time.perf_counter_ns()`` when the message
                                       that set ``manual_value[i]`` arrived
    counters : int64 [4]               COUNT_RECEIVED, _MAPPED, _IGNORED, _DROPPED
    """

    __slots__ = ("manual_value", "manual_seq", "release_seq", "action_seq", "current", "msg_time_ns", "counters")

    def __init__(self) -> None:
        self.manual_value = default_vector()
        self.manual_seq = np.zeros(N_PARAMS, dtype=np.int64)
        self.release_seq = np.zeros(N_PARAMS, dtype=np.int64)
        self.action_seq = np.zeros(len(ACTIONS), dtype=np.int64)
        self.current = default_vector()
        self.msg_time_ns = np.zeros(N_PARAMS, dtype=np.int64)
        self.counters = np.zeros(4, dtype=np.int64)

    def counts(self) -> dict[str, int]:
        """The counters by name (for ``--stats-json``)."""
        c = self.counters
        return {
            "received": int(c[COUNT_RECEIVED]),
            "mapped": int(c[COUNT_MAPPED]),
            "ignored": int(c[COUNT_IGNORED]),
            "dropped": int(c[COUNT_DROPPED]),
        }


# ---------------------------------------------------------------------------------------------
# message handling: map -> soft takeover -> bank (pure logic, no I/O)
# ---------------------------------------------------------------------------------------------


class _State:
    """Per-binding state of :class:`ControlMapper`."""

    __slots__ = ("last_x", "picked", "seq", "rel", "rel_all", "msb")

    def __init__(self) -> None:
        self.last_x = math.nan  # previous position (0..1), NaN before the first message
        self.picked = False
        self.seq = -1  # manual_seq[i] right after our last write
        self.rel = -1  # release_seq[i] then
        self.rel_all = -1  # action_seq[ACTION_RELEASE] then
        self.msb = -1  # 14-bit: last MSB (-1 before the first)


class ControlMapper:
    """Turns raw MIDI messages into bank writes: map, 14-bit pairs, soft takeover.

    ``handle(data)`` is what the MIDI thread runs per message; it has no I/O
    and no locks.  ``on_event(t_ns, param, value, "midi")`` is called after
    each value written and ``on_action(t_ns, action, None)`` after each
    button press, on the same thread.  ``soft_takeover=False`` turns pick-up
    off for every binding (MIDI-file automation).
    """

    def __init__(
        self,
        midi_map: MidiMap,
        bank: ControlBank,
        *,
        on_event: EventCallback | None = None,
        on_action: ActionCallback | None = None,
        soft_takeover: bool = True,
        source: str = "midi",
        clock_ns: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.map = midi_map
        self.bank = bank
        self.on_event = on_event
        self.on_action = on_action
        self.source = source
        self._clock_ns = clock_ns
        self._lookup = midi_map.lookup
        self._bindings = list(midi_map.bindings)
        self._states = [_State() for _ in self._bindings]
        self._takeover = [soft_takeover and b.soft_takeover for b in self._bindings]

    # the one entry point ---------------------------------------------------------------
    def handle(self, data: list[int] | bytes | tuple[int, ...], t_ns: int | None = None) -> int:
        """Handle one message (its bytes); returns COUNT_MAPPED, _IGNORED or _DROPPED
        and counts it.  Never raises for any input."""
        counters = self.bank.counters
        counters[COUNT_RECEIVED] += 1
        try:
            outcome = self._handle(data, self._clock_ns() if t_ns is None else t_ns)
        except Exception:  # a bug must not kill the MIDI thread; count it
            outcome = _DROPPED
        counters[outcome] += 1
        return outcome

    def _handle(self, data: list[int] | bytes | tuple[int, ...], t_ns: int) -> int:
        n = len(data)
        if n == 0:
            return _DROPPED
        status = data[0]
        if not 0x80 <= status <= 0xFF:
            return _DROPPED  # stray data byte, or not a byte at all
        if status >= 0xF0:
            return _IGNORED  # SysEx and system messages: not ours
        kind = status & 0xF0
        expected = 2 if kind in (0xC0, 0xD0) else 3
        if n != expected:
            return _DROPPED
        for b in data[1:]:
            if not 0 <= b <= 0x7F:
                return _DROPPED  # out-of-range data byte
        if kind != 0xB0:
            return _IGNORED  # notes, pitch bend, program change, ...
        hit = self._lookup[(status & 0x0F) * 128 + data[1]]
        if hit is None:
            return _IGNORED  # a CC or channel the map does not bind
        k, role = hit
        return self.apply_raw(k, role, data[2], t_ns)

    def apply_raw(self, k: int, role: int, v: int, t_ns: int) -> int:
        """Apply data byte ``v`` arriving for binding ``k`` in ``role`` (MSB/LSB)."""
        b = self._bindings[k]
        st = self._states[k]
        if b.action is not None:
            if v < 64:
                return _IGNORED  # button release
            a = b.action_index
            self.bank.action_seq[a] += 1
            if self.on_action is not None:
                self.on_action(t_ns, b.action, None)
            return _APPLIED
        if b.cc14:
            # MIDI 1.0: a new MSB resets the LSB to 0; an LSB refines the last MSB
            if role == ROLE_LSB:
                if st.msb < 0:
                    return _IGNORED  # LSB before any MSB: no position yet
                x = ((st.msb << 7) | v) / 16383.0
            else:
                st.msb = v
                x = (v << 7) / 16383.0
        else:
            x = v / 127.0
        return self.apply_position(k, x, t_ns)

    def apply_position(self, k: int, x: float, t_ns: int) -> int:
        """Move binding ``k``'s control to position ``x`` (0..1): soft takeover, then write."""
        b = self._bindings[k]
        st = self._states[k]
        bank = self.bank
        i = b.param_index
        if st.picked and (
            st.seq != bank.manual_seq[i]
            or st.rel != bank.release_seq[i]
            or st.rel_all != bank.action_seq[ACTION_RELEASE]
        ):
            st.picked = False  # released, or written by someone else
        if not st.picked and self._takeover[k]:
            xc = b.position_of(float(bank.current[i]))
            last = st.last_x
            st.last_x = x
            half_step = 0.5 / b.steps
            if not (abs(x - xc) <= half_step + 1e-12 or (not math.isnan(last) and (last - xc) * (x - xc) <= 0.0)):
                return _IGNORED  # not picked up yet
        value = b.value_at(x)
        bank.manual_value[i] = value
        bank.msg_time_ns[i] = t_ns
        bank.manual_seq[i] += 1  # last: the reader sees a complete value
        st.seq = int(bank.manual_seq[i])
        st.rel = int(bank.release_seq[i])
        st.rel_all = int(bank.action_seq[ACTION_RELEASE])
        st.picked = True
        st.last_x = x
        if self.on_event is not None:
            self.on_event(t_ns, PARAM_NAMES[i], value, self.source)
        return _APPLIED

    def picked_up(self, k: int) -> bool:
        """Whether binding ``k`` currently follows its control (for a UI)."""
        b = self._bindings[k]
        st = self._states[k]
        if b.action is not None:
            return False
        i = b.param_index
        bank = self.bank
        return (
            st.picked
            and st.seq == bank.manual_seq[i]
            and st.rel == bank.release_seq[i]
            and st.rel_all == bank.action_seq[ACTION_RELEASE]
        )


class ResumeWatchdog:
    """``--ai-resume-s``: hand a parameter back to the AI after ``resume_s`` untouched.

    A parameter is *held* when ``manual_seq`` moved since it was last handed
    back; ``check(now_ns)`` bumps ``release_seq`` for every held parameter
    whose ``msg_time_ns`` is ``resume_s`` or more in the past, and returns
    their indices.  A release-all press (``action_seq[ACTION_RELEASE]``) counts
    as handing everything back.
    """

    def __init__(self, bank: ControlBank, resume_s: float) -> None:
        if not (isinstance(resume_s, (int, float)) and math.isfinite(resume_s) and resume_s > 0):
            raise ValueError(f"ai_resume_s must be a positive number of seconds, got {resume_s!r}")
        self.bank = bank
        self.resume_ns = int(round(resume_s * 1e9))
        self._base = bank.manual_seq.copy()
        self._rel_all = int(bank.action_seq[ACTION_RELEASE])

    def check(self, now_ns: int) -> list[int]:
        bank = self.bank
        rel_all = int(bank.action_seq[ACTION_RELEASE])
        if rel_all != self._rel_all:
            self._rel_all = rel_all
            self._base[:] = bank.manual_seq
        released: list[int] = []
        for k in np.flatnonzero(bank.manual_seq != self._base):
            i = int(k)
            seq = int(bank.manual_seq[i])
            if now_ns - int(bank.msg_time_ns[i]) >= self.resume_ns:
                self._base[i] = seq
                bank.release_seq[i] += 1
                released.append(i)
        return released


# ---------------------------------------------------------------------------------------------
# ports
# ---------------------------------------------------------------------------------------------


def _rtmidi():
    try:
        import rtmidi
    except ImportError as exc:  # pragma: no cover - a dependency
        raise MidiError(f"python-rtmidi is not installed ({exc}); pip install python-rtmidi") from None
    return rtmidi


def jack_running(server: str | None = None) -> bool:
    """Whether a JACK server (jackd / jackdbus) is answering, asked quietly.

    Connects to the server's request socket (``/dev/shm/jack_<server>_<uid>_0``,
    ``server`` defaulting to ``$JACK_DEFAULT_SERVER`` or ``default``) instead of
    opening a client, which would print libjack's complaints when none runs.
    """
    server = server or os.environ.get("JACK_DEFAULT_SERVER") or "default"
    for folder in ("/dev/shm", "/tmp"):
        path = f"{folder}/jack_{server}_{os.getuid()}_0"
        if not os.path.exists(path):
            continue
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(0.5)
            s.connect(path)
            return True
        except OSError:
            pass
        finally:
            s.close()
    return False


def choose_api(port_spec: object = None, api: str | None = None) -> str:
    """``"jack"`` or ``"alsa"``: the explicit ``api``; JACK when the spec is
    ``"jack"`` or a JACK server is running; ALSA otherwise."""
    if api is not None:
        api = api.lower()
        if api not in ("jack", "alsa"):
            raise MidiError(f"unknown MIDI API {api!r} (jack or alsa)")
        return api
    if isinstance(port_spec, str) and port_spec.strip().lower() == "jack":
        return "jack"
    return "jack" if jack_running() else "alsa"


def _api_const(api: str) -> int:
    rtmidi = _rtmidi()
    return rtmidi.API_UNIX_JACK if api == "jack" else rtmidi.API_LINUX_ALSA


def _api_label(api: str) -> str:
    return "JACK" if api == "jack" else "ALSA"


def _new_midi_in(api: str, client_name: str, queue_size_limit: int = 8192) -> Any:
    rtmidi = _rtmidi()
    try:
        return rtmidi.MidiIn(_api_const(api), name=client_name, queue_size_limit=queue_size_limit)
    except Exception as exc:  # rtmidi raises SystemError when the backend is not there
        hint = (
            "is a JACK server running? (jackd -d dummy, or set JACK_DEFAULT_SERVER)"
            if api == "jack"
            else "no ALSA sequencer (/dev/snd/seq)? start JACK and use --midi-in jack"
        )
        raise MidiError(f"cannot open {_api_label(api)} MIDI ({_one_line(exc)}); {hint}") from None


def list_ports(api: str | None = None) -> list[dict]:
    """MIDI input ports: ``[{"index": i, "name": name, "api": "jack"|"alsa"}]``.

    ``api`` None: the API :func:`choose_api` would pick; an unusable API gives
    an empty list (for ``mixpilot devices``).
    """
    api = choose_api(None, api)
    try:
        rt = _new_midi_in(api, CLIENT_NAME + "-list")
    except MidiError:
        return []
    try:
        return [{"index": i, "name": n, "api": api} for i, n in enumerate(rt.get_ports())]
    finally:
        rt.delete()


def default_port_spec(api: str | None = None) -> int | str:
    """Port for ``midi-learn`` without ``--midi-in``: the first input port, else
    the virtual port."""
    return 0 if list_ports(api) else "virtual"


def _port_key(name: str) -> str:
    """A port name without ALSA's trailing ``client:port`` numbers, which change
    when a USB controller is plugged in again."""
    return re.sub(r"\s+\d+:\d+$", "", name)


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@dataclass
class _Opened:
    rt: Any  # rtmidi.MidiIn (rtmidi ships no type information)
    api: str
    port_name: str
    virtual: bool


def _resolve_index(spec: object, names: list[str]) -> int | None:
    if isinstance(spec, bool):
        return None
    if isinstance(spec, int):
        return spec if 0 <= spec < len(names) else None
    text = str(spec).strip()
    if text.isdigit():
        i = int(text)
        return i if i < len(names) else None
    low = text.lower()
    for i, n in enumerate(names):  # exact name first, then the first substring match
        if n.lower() == low:
            return i
    for i, n in enumerate(names):
        if low in n.lower():
            return i
    return None


def _open_port(port_spec: object, api: str | None, client_name: str) -> _Opened:
    """Open an rtmidi input for ``port_spec`` (index, name substring, "jack"/"virtual")."""
    virtual = isinstance(port_spec, str) and port_spec.strip().lower() in ("jack", "virtual")
    auto = api is None
    api = choose_api(port_spec, api)
    rt = _new_midi_in(api, client_name)
    try:
        if virtual:
            rt.open_virtual_port(VIRTUAL_PORT_NAME)
            name = VIRTUAL_PORT_NAME
        else:
            names = rt.get_ports()
            i = _resolve_index(port_spec, names)
            listing = ", ".join(f"{j}: {n}" for j, n in enumerate(names)) or "none"
            if i is None and auto and api == "jack" and os.path.exists("/dev/snd/seq"):
                # a controller that only ALSA sees (no a2jmidid bridge): look there by name
                try:
                    alsa = _new_midi_in("alsa", client_name)
                    alsa_names = alsa.get_ports()
                except Exception:
                    alsa, alsa_names = None, []
                j = None if alsa is None or str(port_spec).strip().isdigit() else _resolve_index(port_spec, alsa_names)
                if j is None:
                    if alsa is not None:
                        alsa.delete()
                    listing += "; ALSA: " + (", ".join(alsa_names) or "none")
                else:
                    rt.delete()
                    rt, api, names, i = alsa, "alsa", alsa_names, j
            if i is None:
                raise MidiError(
                    f"no {_api_label(api)} MIDI input port matches {str(port_spec)!r}; "
                    f"available: {listing} (or use 'virtual' for a port named "
                    f"{VIRTUAL_PORT_NAME!r})"
                )
            name = names[i]
            rt.open_port(i, name="in")
        rt.ignore_types(sysex=False, timing=True, active_sense=True)
    except MidiError:
        rt.delete()
        raise
    except Exception as exc:
        rt.delete()
        raise MidiError(f"cannot open MIDI input {str(port_spec)!r} ({_api_label(api)}): {_one_line(exc)}") from None
    return _Opened(rt, api, name, virtual)


class MidiInput:
    """A live MIDI input writing into a :class:`ControlBank`.

    Parameters
    ----------
    port_spec : int or str
        a port index, a (case-insensitive) name substring (the exact name wins,
        else the first match), or ``"jack"``/``"virtual"`` for a virtual input
        port named ``mixpilot`` that other programs connect to.
    midi_map : MidiMap
    bank : ControlBank
    on_event : callable, optional
        ``on_event(t_ns, param, value, "midi")`` after each value written (MIDI
        thread; keep it short, e.g. ``queue.put``).
    on_action : callable, optional
        ``on_action(t_ns, action, param)``: a button press (``param`` None) or
        an automatic hand-back by ``ai_resume_s`` (``action`` "release",
        ``param`` the name).
    on_warning : callable, optional
        ``on_warning(text)``: one line, e.g. a port that went away; default:
        the ``mixpilot.midi`` logger.
    ai_resume_s : float, optional
        hand a parameter back to the AI after this many seconds untouched.
    api : "jack" | "alsa", optional
        default :func:`choose_api` (JACK when the spec is "jack" or a JACK
        server runs).
    dispatch : "poll" | "callback", optional
        default "poll" under JACK, "callback" under ALSA (see the module notes).
    """

    def __init__(
        self,
        port_spec: object,
        midi_map: MidiMap,
        bank: ControlBank,
        *,
        on_event: EventCallback | None = None,
        on_action: ActionCallback | None = None,
        on_warning: Callable[[str], None] | None = None,
        ai_resume_s: float | None = None,
        api: str | None = None,
        dispatch: str | None = None,
        client_name: str = CLIENT_NAME,
        poll_interval_s: float = 0.001,
        port_check_s: float = 1.0,
    ) -> None:
        self.bank = bank
        self.mapper = ControlMapper(midi_map, bank, on_event=on_event, on_action=on_action)
        self.watchdog = ResumeWatchdog(bank, ai_resume_s) if ai_resume_s is not None else None
        self._on_action = on_action
        self._warn_to = on_warning or _log.warning
        opened = _open_port(port_spec, api, client_name)
        self._rt = opened.rt
        self.api = opened.api
        self.port_name = opened.port_name
        self.virtual = opened.virtual
        self.dispatch = dispatch or ("poll" if self.api == "jack" else "callback")
        if self.dispatch not in ("poll", "callback"):
            self._rt.delete()
            raise ValueError(f"dispatch must be 'poll' or 'callback', got {dispatch!r}")
        self.poll_interval_s = float(poll_interval_s)
        self.port_check_s = float(port_check_s)
        self.port_lost = False
        self._client_name = client_name
        self._probe: Any = None  # a second rtmidi client, made on demand
        self._closed = False
        self._close_lock = threading.Lock()
        self._stop = threading.Event()
        if self.dispatch == "callback":
            self._rt.set_callback(self._on_rtmidi)
        self._thread = threading.Thread(target=self._service, name="mixpilot-midi", daemon=True)
        self._thread.start()

    # -- description ------------------------------------------------------------------
    def describe(self) -> str:
        what = f"virtual port {self.port_name!r}" if self.virtual else f"port {self.port_name!r}"
        return f"MIDI in: {what} ({_api_label(self.api)}, {self.dispatch})"

    # -- threads --------------------------------------------------------------------------
    def _warn(self, text: str) -> None:
        try:
            self._warn_to(text)
        except Exception:  # a failing logger must not stop MIDI
            _log.warning(text)

    def _on_rtmidi(self, event: tuple[list[int], float], data: object = None) -> None:  # rtmidi's input thread (ALSA)
        self.mapper.handle(event[0], time.perf_counter_ns())

    def _service(self) -> None:
        poll = self.dispatch == "poll"
        rt = self._rt
        handle = self.mapper.handle
        clock = time.perf_counter_ns
        next_watch = next_port = 0.0
        wait = self.poll_interval_s if poll else 0.05
        while not self._stop.is_set():
            if poll:
                try:
                    msg = rt.get_message()
                    while msg is not None:
                        handle(msg[0], clock())
                        msg = rt.get_message()
                except Exception as exc:  # pragma: no cover - rtmidi failing under us
                    self._warn(f"MIDI input {self.port_name!r}: {_one_line(exc)}; MIDI stopped")
                    return
            now = time.monotonic()
            if self.watchdog is not None and now >= next_watch:
                next_watch = now + min(0.05, self.watchdog.resume_ns / 1e9 / 10)
                for i in self.watchdog.check(clock()):
                    if self._on_action is not None:
                        try:
                            self._on_action(clock(), "release", PARAM_NAMES[i])
                        except Exception:
                            pass
            if not self.virtual and now >= next_port:
                next_port = now + self.port_check_s
                self._check_port()
            if poll:
                time.sleep(wait)
            else:
                self._stop.wait(wait)

    def _check_port(self) -> None:
        try:
            if self.dispatch == "poll":
                names = self._rt.get_ports()
            else:  # rtmidi's ALSA thread owns self._rt; ask through a second client
                if self._probe is None:
                    self._probe = _new_midi_in(self.api, self._client_name + "-probe")
                names = self._probe.get_ports()
        except Exception:
            return
        key = _port_key(self.port_name)
        found = [i for i, n in enumerate(names) if _port_key(n) == key]
        present = bool(found)
        if not present and not self.port_lost:
            self.port_lost = True
            self._warn(
                f"MIDI input port {self.port_name!r} disappeared; audio continues without "
                "MIDI (it reconnects if the port comes back)"
            )
        elif present and self.port_lost:
            try:
                self._rt.close_port()
                self._rt.open_port(found[0], name="in")
                self.port_name = names[found[0]]
                self.port_lost = False
                self._warn(f"MIDI input port {self.port_name!r} is back; reconnected")
            except Exception as exc:
                self._warn(f"MIDI input port {self.port_name!r} is back but reconnecting failed ({_one_line(exc)})")
                self.port_lost = False  # warn once; do not retry in a loop

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the threads and close the port (idempotent)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        rt = self._rt
        try:
            if self.dispatch == "callback":
                rt.cancel_callback()
            rt.close_port()
        except Exception:
            pass
        try:
            rt.delete()
        except Exception:
            pass
        if self._probe is not None:
            try:
                self._probe.delete()
            except Exception:
                pass

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> MidiInput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------
# midi-learn
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# MIDI-file automation
# ---------------------------------------------------------------------------------------------


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
        while i < n and times[i] <= t_s:
            k = target[i]
            if k >= 0:
                mv[k] = value[i]
                mt[k] = now
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
