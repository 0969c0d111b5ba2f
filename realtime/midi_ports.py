"""MIDI input ports and their threads (python-rtmidi; JACK or ALSA).

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
  ``dispatch="engine"`` (what ``play``/``live`` use, issue 16): no thread
  polls; the audio callback drains the same queue at each block start
  (:meth:`MidiInput.poll`, ``Engine.midi_poll``).  ``get_message`` keeps the
  GIL (200 calls with a spinning thread at a 5 ms switch interval: 0.0 ms),
  so the callback never waits on another thread there.  Measured message ->
  applied (``tests/realtime/test_midi_jack.py``, a JACK client's process
  callback polling): p50 3.2-3.9 ms, p99 5.3-5.4 ms at 48 kHz / 128 frames --
  rtmidi's client receives the events in one cycle, the audio client reads
  them in the next (JACK orders unconnected clients as it likes); the 1 ms
  thread measured message -> bank p50 2.1 ms, p99 4.1-4.6 ms, plus the wait
  for the next block.  ``live --jack --midi-in jack`` has the port on the
  audio client itself: send -> applied p50 1.4 ms, p99 2.8 ms.
* ALSA: rtmidi already runs its own input thread; the Python callback is used.

Either way the handling thread maps the message, applies soft takeover and
writes the bank; it never waits on the audio side.  The same service thread
does the ``ai_resume_s`` watchdog and notices a port that goes away.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mixpilot.dsp.params import PARAM_NAMES
from mixpilot.realtime.midi_map import (
    MidiError,
    MidiMap,
)

from .midi_control import ActionCallback, ControlBank, ControlMapper, EventCallback, ResumeWatchdog

__all__ = [
    "CLIENT_NAME",
    "VIRTUAL_PORT_NAME",
    "MidiInput",
    "choose_api",
    "default_port_spec",
    "jack_running",
    "list_ports",
]

VIRTUAL_PORT_NAME = "mixpilot"
CLIENT_NAME = "mixpilot"

_log = logging.getLogger("mixpilot.midi")


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


#: how often, under JACK, a lone F7 goes into our own input (:class:`_EoxSender`)
EOX_EVERY_S = 0.01


class _EoxSender:
    """Under JACK, a lone end-of-SysEx (``F7``) into our own input port every :data:`EOX_EVERY_S`.

    RtMidi's JACK input appends every event after a SysEx without ``F7`` to that
    SysEx and queues nothing until an event ends in ``F7`` (its ``continueSysex``
    flag): one malformed SysEx from a controller swallowed every later control
    change (issue 13 item 8).  A second JACK client of ours, connected to our
    input, ends such a SysEx within ``EOX_EVERY_S``; rtmidi then hands over the
    run-together packet, which :meth:`ControlMapper.handle` splits
    (:mod:`realtime.midi_parse`).  With no SysEx open, the ``F7`` arrives alone
    and is dropped uncounted (:meth:`MidiInput._handle`).  100 events a second
    on a JACK MIDI port are nothing to the graph.

    Our input port is found as the JACK MIDI input that appeared while it was
    opened (:meth:`before_open` lists them first, :meth:`connect` compares).
    """

    def __init__(self, out: Any, before: list[str]) -> None:
        self._out = out
        self._before = before
        self.target: str | None = None

    @classmethod
    def before_open(cls, port_spec: object, api: str | None, client_name: str) -> _EoxSender | None:
        try:
            if choose_api(port_spec, api) != "jack":
                return None
            rtmidi = _rtmidi()
            out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=f"{client_name}-eox")
            return cls(out, list(out.get_ports()))
        except Exception:  # no JACK MIDI here: nothing to guard against
            return None

    def connect(self) -> _EoxSender | None:
        """Connect to the input port opened since :meth:`before_open`; None (and closed) when not found."""
        try:
            after = list(self._out.get_ports())
            new = [i for i, n in enumerate(after) if n not in self._before]
            if len(new) != 1:
                self.close()
                return None
            self.target = after[new[0]]
            self._out.open_port(new[0], name="eox")
            return self
        except Exception:
            self.close()
            return None

    def send(self) -> None:
        try:
            self._out.send_message([0xF7])
        except Exception:  # the server is going away: the port check reports it
            pass

    def close(self) -> None:
        out, self._out = self._out, None
        if out is None:
            return
        try:
            out.close_port()
        except Exception:
            pass
        try:
            out.delete()
        except Exception:
            pass


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
    dispatch : "poll" | "callback" | "engine", optional
        default "poll" under JACK, "callback" under ALSA (see the module notes).
        "engine": under JACK the audio callback drains rtmidi's queue itself at each
        block start (:meth:`poll`, attached with ``Engine.attach_midi_poll``); no
        thread wakes every millisecond; under ALSA it means "callback".
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
        eox = _EoxSender.before_open(port_spec, api, client_name)
        try:
            opened = _open_port(port_spec, api, client_name)
        except BaseException:
            if eox is not None:
                eox.close()
            raise
        self._eox = eox.connect() if eox is not None and opened.api == "jack" else None
        if eox is not None and self._eox is None:
            eox.close()
        self._rt = opened.rt
        self.api = opened.api
        self.port_name = opened.port_name
        self.virtual = opened.virtual
        if dispatch == "engine" and self.api != "jack":
            dispatch = "callback"  # ALSA: rtmidi's own thread calls us anyway
        self.dispatch = dispatch or ("poll" if self.api == "jack" else "callback")
        self.poll_error: str | None = None
        self._polling = False
        if self.dispatch not in ("poll", "callback", "engine"):
            self._rt.delete()
            raise ValueError(f"dispatch must be 'poll', 'callback' or 'engine', got {dispatch!r}")
        self.poll_interval_s = float(poll_interval_s)
        self.port_check_s = float(port_check_s)
        self.port_lost = False
        self._client_name = client_name
        self._probe: Any = None  # a second rtmidi client, made on demand
        self._told_sysex = False
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
        self._handle(event[0], time.perf_counter_ns())

    def _handle(self, msg: list[int], t_ns: int) -> None:
        if len(msg) == 1 and msg[0] == 0xF7:
            return  # a lone end-of-SysEx: ours (_EoxSender) or a stray one; ends nothing, never counted
        runs = self.mapper.sysex_runs
        self.mapper.handle(msg, t_ns)
        if self.mapper.sysex_runs != runs and not self._told_sysex:
            self._told_sysex = True
            self._warn(
                f"MIDI input {self.port_name!r}: a SysEx without its end byte (F7) ran into the messages after "
                f"it; they were recovered (the sender's SysEx is malformed)"
            )

    def _service(self) -> None:
        poll = self.dispatch == "poll"
        rt = self._rt
        handle = self._handle
        clock = now_ns = time.perf_counter_ns
        eox = self._eox
        eox_every_ns = int(EOX_EVERY_S * 1e9)
        next_eox = 0
        next_watch = next_port = 0.0
        wait = self.poll_interval_s if poll else 0.05
        while not self._stop.is_set():
            if poll:
                try:
                    msg = rt.get_message()
                    while msg is not None:
                        handle(msg[0], clock())
                        msg = rt.get_message()
                    if eox is not None and now_ns() >= next_eox:
                        next_eox = now_ns() + eox_every_ns
                        eox.send()
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
            if not poll and eox is not None:  # the callback thread reads; the F7 comes from here
                eox.send()
            if self.poll_error is not None and self.poll_error != "reported":
                self._warn(f"MIDI input {self.port_name!r}: {self.poll_error}; MIDI stopped")
                self.poll_error = "reported"
            if self.dispatch == "engine" and self.mapper.sysex_runs and not self._told_sysex:
                self._told_sysex = True  # poll() counts it in the callback; the line is said here
                self._warn(
                    f"MIDI input {self.port_name!r}: a SysEx without its end byte (F7) ran into the messages "
                    f"after it; they were recovered (the sender's SysEx is malformed)"
                )
            if not self.virtual and now >= next_port:
                next_port = now + self.port_check_s
                self._check_port()
            if poll:
                time.sleep(wait)
            else:
                self._stop.wait(wait)

    def poll(self) -> None:
        """Drain rtmidi's queue into the bank (dispatch "engine": the audio callback, at a block start).

        ``get_message`` keeps the GIL (it only reads rtmidi's ring), so the callback never waits for
        another thread here.  A failure stops MIDI (the service thread says so once); never the audio.
        """
        self._polling = True  # before the check: close() waits for this poll to end (see close)
        try:
            if self.poll_error is not None:
                return
            rt = self._rt
            msg = rt.get_message()
            while msg is not None:
                m = msg[0]
                if not (len(m) == 1 and m[0] == 0xF7):  # a lone end-of-SysEx (_EoxSender): never counted
                    self.mapper.handle(m, time.perf_counter_ns())
                msg = rt.get_message()
        except Exception as exc:
            self.poll_error = _one_line(exc)
        finally:
            self._polling = False

    def _check_port(self) -> None:
        try:
            if self.dispatch in ("poll", "engine"):
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
        if self.dispatch == "engine":  # the audio callback may be inside poll(): let it finish first
            self.poll_error = self.poll_error or "closed"
            deadline = time.monotonic() + 1.0
            while self._polling and time.monotonic() < deadline:
                time.sleep(0.001)
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
        if self._eox is not None:
            self._eox.close()

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
