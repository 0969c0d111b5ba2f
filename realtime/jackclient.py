"""``live --jack``: mixpilot as a JACK client with named ports, an insert between a DAW and the speakers.

The client (python JACK-Client, the binding of libjack) is called ``mixpilot``
(``--client-name``) and registers ``in_L``, ``in_R`` (``live`` only) and
``out_L``, ``out_R``.  ``--connect-in PATTERN`` connects the JACK output
ports that match PATTERN (a regular expression, as ``jack_lsp`` and
``jack_get_ports`` take it: ``ardour:master/audio_out``, ``system:capture_``)
to mixpilot's inputs, in port order (one match feeds both sides);
``--connect-out PATTERN`` connects mixpilot's outputs to the matching input
ports (``system:playback_``).  Ports that appear later (a DAW started after
mixpilot, a client that re-registered its ports) and match are connected
when they appear; a graph reorder changes nothing for mixpilot (JACK keeps
the connections; the process callback just runs at its new place in the
order).

``--midi-in jack`` (or ``virtual``) in this mode is a JACK MIDI port on the
same client, ``mixpilot:mixpilot`` (the name python-rtmidi's virtual port has
in the PortAudio mode): its events are handed to the MIDI mapper inside the
process callback, before the block is processed, in the very cycle JACK
delivers them -- the sender's port feeds ours, so JACK runs the sender
first.  No rtmidi client, no queue, no thread.

The engine follows the server: its sample rate is the server's, its block
is the server's period (``--samplerate`` / ``--blocksize`` are not used);
a period change while running is followed up to the engine's largest block
(4096 frames).

:class:`JackStream` has the surface of the ``sounddevice`` stream that
:func:`realtime.stream.run` drives (``start``, ``stop``, ``abort``,
``close``, ``active``) and calls the same audio callback
(``callback(indata, outdata, frames, time, status)``) from JACK's process
thread with preallocated interleaved buffers: the ports' buffers are
copied in and out (per channel, numpy slices; no allocation of audio
buffers).  An xrun reported by the server (JACK's xrun callback, on its
notification thread) is passed to the next callback as a status with
``output_underflow`` set, as PortAudio does.

One rule for everything else in this process: no libjack call may be made
while holding the GIL once this client is active.  Its notification
callbacks (xrun, port registration, ...) are Python and need the GIL, and
the server waits for them before it answers a request such as opening,
closing or connecting another client: python-rtmidi's JACK calls keep the
GIL, so opening an rtmidi port during the stream deadlocked the test that
first tried it (JACK-Client's own calls, through cffi, release the GIL).
Hence ``--midi-in jack`` here is a port on this client, and
:func:`realtime.stream.run` closes this client before an rtmidi input.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mixpilot.dsp.errors import DeviceError

__all__ = ["JackStream", "JackClientError", "SIDES", "jack_available"]

SIDES = ("L", "R")


class JackClientError(DeviceError):
    """JACK client mode cannot start; one line.  Exit code 1."""

    exit_code = 1


def jack_available() -> bool:
    try:
        import jack  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


class _Status:
    """What the callback reads from a ``sounddevice.CallbackFlags`` (preallocated; never made per block)."""

    input_underflow = False
    input_overflow = False
    output_overflow = False

    def __init__(self, xrun: bool) -> None:
        self.output_underflow = xrun

    def __bool__(self) -> bool:
        return self.output_underflow


_XRUN = _Status(True)


class JackStream:
    """A JACK client calling the audio callback (module docstring).

    Parameters
    ----------
    callback : the stream callback of :class:`realtime.stream._Run`.
    inputs : 0 (``play``) or 2 (``live``).
    outputs : 2.
    client_name : JACK client name (``mixpilot``).
    connect_in, connect_out : regular expressions, or None.
    finished_callback : called once when the callback asks to stop (end of file, ``--seconds``).
    warn : one line (no ports match a pattern, a connection failed).
    max_block : largest period the callback may be given (the engine's ``max_block_size``).
    """

    is_jack = True

    def __init__(
        self,
        callback: Callable,
        *,
        inputs: int,
        outputs: int = 2,
        client_name: str = "mixpilot",
        connect_in: str | None = None,
        connect_out: str | None = None,
        finished_callback: Callable[[], None] | None = None,
        warn: Callable[[str], None] = lambda s: None,
        max_block: int = 4096,
        stop_exceptions: tuple[type[BaseException], ...] = (),
        midi_port: str | None = None,
    ) -> None:
        try:
            import jack
        except (ImportError, OSError) as exc:
            raise JackClientError(
                f"JACK client mode needs the JACK-Client package and libjack ({exc}); pip install JACK-Client"
            ) from None
        self._jack = jack
        try:
            self.client = jack.Client(client_name, no_start_server=True)
        except jack.JackOpenError:
            raise JackClientError(
                "no JACK server is running to connect to (start jackd, or leave out --jack)"
            ) from None
        except jack.JackError as exc:
            raise JackClientError(f"JACK client {client_name!r}: {exc}") from None
        self.name = self.client.name  # JACK may have made it unique ("mixpilot-01")
        self.callback = callback
        self.inputs = int(inputs)
        self.outputs = int(outputs)
        self.connect_in = connect_in
        self.connect_out = connect_out
        self.finished_callback = finished_callback
        self.warn = warn
        self.max_block = int(max_block)
        self.stop_exceptions = stop_exceptions
        for pattern, flag in ((connect_in, "--connect-in"), (connect_out, "--connect-out")):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    self.client.close()
                    raise JackClientError(f"{flag} {pattern!r}: not a regular expression ({exc})") from None
        self.in_ports = [self.client.inports.register(f"in_{s}") for s in SIDES[: self.inputs]]
        self.out_ports = [self.client.outports.register(f"out_{s}") for s in SIDES[: self.outputs]]
        # a JACK MIDI input on this same client: its events are read in the process callback of the
        # cycle they arrive in (the sender's port feeds ours, so JACK runs the sender first)
        self.midi_in = self.client.midi_inports.register(midi_port) if midi_port else None
        self.midi_handler: Callable[[bytes, int], object] | None = None
        self.indata = np.zeros((self.max_block, max(self.inputs, 1)), dtype=np.float32)
        self.outdata = np.zeros((self.max_block, self.outputs), dtype=np.float32)
        self.xruns_reported = np.zeros(1, dtype=np.int64)  # by the server (notification thread)
        self._xruns_seen = 0
        self.active = False
        self.error: str | None = None
        self._stopping = False
        self._done = False
        self._graph_event = threading.Event()
        self._watch: threading.Thread | None = None
        self._closed = False
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.set_shutdown_callback(self._shutdown)
        self.client.set_blocksize_callback(self._blocksize)
        self.client.set_port_registration_callback(self._registered, only_available=False)

    # -- what the server tells us ------------------------------------------------------------
    @property
    def samplerate(self) -> int:
        return int(self.client.samplerate)

    @property
    def blocksize(self) -> int:
        return int(self.client.blocksize)

    def _xrun(self, delay_usecs: float) -> None:  # JACK's notification thread
        self.xruns_reported[0] += 1

    def _shutdown(self, status: object, reason: str) -> None:  # the server went away
        self.error = f"the JACK server shut down ({reason})" if reason else "the JACK server shut down"
        self.active = False

    def _blocksize(self, frames: int) -> None:
        if frames > self.max_block:
            self.error = f"the JACK period changed to {frames} frames, more than this engine's {self.max_block}"
            self.active = False

    def _registered(self, port: object, register: bool) -> None:  # a port appeared: maybe one to connect
        if register:
            self._graph_event.set()

    # -- the process callback (JACK's real-time thread) --------------------------------------
    def _process(self, frames: int) -> None:
        if self._done:
            for p in self.out_ports:
                p.get_array().fill(0.0)
            return
        n = self.xruns_reported[0]
        status = None
        if n != self._xruns_seen:
            self._xruns_seen = n
            status = _XRUN
        outdata = self.outdata[:frames]
        handler = self.midi_handler
        if handler is not None and self.midi_in is not None:
            now = time.perf_counter_ns()
            for _offset, data in self.midi_in.incoming_midi_events():
                handler(bytes(data), now)
        try:
            if self.inputs:
                indata = self.indata[:frames]
                for c, p in enumerate(self.in_ports):
                    indata[:, c] = p.get_array()
                self.callback(indata, outdata, frames, None, status)
            else:
                self.callback(outdata, frames, None, status)
        except self.stop_exceptions:
            self._done = True
            if self.finished_callback is not None:
                self.finished_callback()
        for c, p in enumerate(self.out_ports):
            p.get_array()[:] = outdata[:, c]

    # -- connections ------------------------------------------------------------------------
    def _connect(self, quiet: bool) -> None:
        """Connect what the patterns match and is not connected yet."""
        if self.connect_in is not None and self.inputs:
            src = [p for p in self.client.get_ports(self.connect_in, is_audio=True, is_output=True)]
            src = [p for p in src if not p.name.startswith(self.name + ":")]
            if not src and not quiet:
                self.warn(f"--connect-in {self.connect_in!r}: no JACK output ports match (yet); waiting for them")
            for i, mine in enumerate(self.in_ports):
                if src:
                    self._link(src[min(i, len(src) - 1)], mine)
        if self.connect_out is not None:
            dst = [p for p in self.client.get_ports(self.connect_out, is_audio=True, is_input=True)]
            dst = [p for p in dst if not p.name.startswith(self.name + ":")]
            if not dst and not quiet:
                self.warn(f"--connect-out {self.connect_out!r}: no JACK input ports match (yet); waiting for them")
            for i, mine in enumerate(self.out_ports):
                if i < len(dst):
                    self._link(mine, dst[i])
                elif len(dst) == 1 and i == 1:
                    pass  # one mono destination: it gets out_L only

    def _link(self, src: Any, dst: Any) -> None:
        try:
            if dst.name not in [p.name for p in self.client.get_all_connections(src)]:
                self.client.connect(src, dst)
        except self._jack.JackError as exc:
            self.warn(f"cannot connect {src.name} -> {dst.name} ({exc})")

    def _watch_loop(self) -> None:
        while not self._stopping:
            if self._graph_event.wait(0.5):
                self._graph_event.clear()
                if self._stopping:
                    return
                time.sleep(0.05)  # a client registers its ports one after another
                self._connect(quiet=True)

    # -- the sounddevice stream surface ------------------------------------------------------
    def start(self) -> None:
        self.client.activate()
        self.active = True
        self._connect(quiet=False)
        if self.connect_in is not None or self.connect_out is not None:
            self._watch = threading.Thread(target=self._watch_loop, name="mixpilot-jack-connect", daemon=True)
            self._watch.start()

    def stop(self) -> None:
        self._stopping = True
        self._graph_event.set()
        if self.active:
            self.active = False
            try:
                self.client.deactivate()
            except self._jack.JackError:
                pass
        if self._watch is not None:
            self._watch.join(2)

    abort = stop

    def close(self) -> None:
        self.stop()
        if not self._closed:
            self._closed = True
            try:
                self.client.close()
            except self._jack.JackError:
                pass

    def port_names(self) -> list[str]:
        return [p.name for p in self.in_ports + self.out_ports] + ([self.midi_in.name] if self.midi_in else [])

    def describe(self) -> str:
        return f"JACK client {self.name!r} at {self.samplerate} Hz, period {self.blocksize} frames: " + ", ".join(
            self.port_names()
        )
