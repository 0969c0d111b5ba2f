"""Audio devices through PortAudio (sounddevice): listing, ``--input``/``--output`` resolution, settings
checks, a headless JACK dummy server when there is no device, and closing a stream that may hang."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from mixpilot.dsp.errors import DeviceError, UsageError

from .jackserver import JackError, JackServer, jackd_path, quiet_stderr, server_running

__all__ = [
    "StreamError",
    "StreamUsageError",
    "ensure_backend",
    "list_devices",
    "portaudio_ready",
    "release_portaudio",
    "resolve_device",
]


class StreamError(DeviceError):
    """A real-time run that cannot start or that died; one line.  Exit code 1."""

    exit_code = 1


class StreamUsageError(StreamError, UsageError):
    """Bad arguments for a real-time run (exit code 2)."""

    exit_code = 2


def _sd():
    if "sounddevice" in sys.modules:
        return sys.modules["sounddevice"]
    try:
        with quiet_stderr():  # PortAudio's JACK host API probes for a server on import
            import sounddevice as sd
    except OSError as exc:  # libportaudio2 missing
        raise StreamError(f"PortAudio is not available ({exc}); install it: sudo apt install libportaudio2") from None
    return sd


def _rescan() -> None:
    """Make PortAudio scan the devices again (after a JACK server appeared)."""
    sd = _sd()
    with quiet_stderr():
        sd._terminate()
        sd._initialize()


def portaudio_ready():
    """sounddevice with PortAudio initialised: again if :func:`release_portaudio` released it.

    A run that stopped the JACK server it started terminates PortAudio first (its exit handler would
    abort on a vanished server); the next run in the same process (the Python API, a soak's next
    round) needs it back, or every PortAudio call fails with "PortAudio not initialized".
    """
    sd = _sd()
    if getattr(sd, "_initialized", 1) == 0:
        with quiet_stderr():
            sd._initialize()
    return sd


def release_portaudio() -> None:
    """Terminate PortAudio now (before a JACK server it uses is stopped; its exit handler would abort)."""
    sd = sys.modules.get("sounddevice")
    if sd is None:
        return
    with quiet_stderr():
        while getattr(sd, "_initialized", 0) > 0:
            sd._terminate()


def list_devices() -> list[dict]:
    """Audio devices as dicts: index, name, hostapi, max input/output channels, default sample rate."""
    sd = _sd()
    apis = sd.query_hostapis()
    out = []
    for i, d in enumerate(sd.query_devices()):
        out.append(
            {
                "index": i,
                "name": d["name"],
                "hostapi": apis[d["hostapi"]]["name"],
                "max_input_channels": d["max_input_channels"],
                "max_output_channels": d["max_output_channels"],
                "default_samplerate": d["default_samplerate"],
            }
        )
    return out


def _choices(devs: list[dict], kind: str) -> str:
    key = f"max_{kind}_channels"
    good = [f"{d['index']}: {d['name']}" for d in devs if d[key] > 0]
    return "; ".join(good) if good else "none"


def resolve_device(spec: str | int | None, kind: str) -> int | None:
    """An ``--input``/``--output`` value (index or name substring) -> device index; ``None`` = default."""
    if spec is None:
        return None
    devs = list_devices()
    key = f"max_{kind}_channels"
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        i = int(text)
        if 0 <= i < len(devs) and devs[i][key] > 0:
            return i
        raise StreamUsageError(
            f"--{kind} {text}: no {kind} device with that index; {kind} devices: {_choices(devs, kind)}"
        )
    hits = [d for d in devs if text.lower() in d["name"].lower() and d[key] > 0]
    if len(hits) == 1:
        return hits[0]["index"]
    if not hits:
        raise StreamUsageError(f"--{kind} {text!r}: no {kind} device matches; {kind} devices: {_choices(devs, kind)}")
    raise StreamUsageError(
        f"--{kind} {text!r} matches several devices ({'; '.join(str(d['index']) + ': ' + d['name'] for d in hits)}); "
        f"give the index"
    )


def _has_device(kind: str) -> bool:
    key = f"max_{kind}_channels"
    return any(d[key] > 0 for d in list_devices())


def ensure_backend(need_input: bool, sample_rate: int, period: int, note: Callable[[str], None]) -> JackServer | None:
    """A device to play on: the system's, or a JACK dummy server started here (returned; stop it after)."""
    kinds = ("output", "input") if need_input else ("output",)
    if all(_has_device(k) for k in kinds):
        return None
    if server_running(timeout_s=0.0):  # a JACK server appeared after PortAudio scanned
        _rescan()
        if all(_has_device(k) for k in kinds):
            return None
    if jackd_path() is None:
        raise StreamError(
            "no audio device found and no JACK server to run headless: install JACK "
            "(sudo apt install jackd2) and run again -- mixpilot then starts 'jackd -d dummy' "
            "itself -- or use 'mixpilot render' for files"
        )
    server = JackServer(sample_rate=sample_rate, period=period)
    try:
        server.start()
    except JackError as exc:
        raise StreamError(f"no audio device found, and the headless JACK server failed: {exc}") from None
    try:
        _rescan()
        note(
            f"no audio device found: running headless on a JACK dummy server "
            f"(jackd -n {server.name} -d dummy -r {sample_rate} -p {period}); nothing is audible"
        )
    except BaseException:  # a signal before the caller holds the server: stop it here
        server.stop()
        raise
    return server


def _device_settings(sd: Any, kind: str, device: Any, channels: int, samplerate: float) -> str | None:
    """None when PortAudio accepts the settings, else one line on what the device supports."""
    check = sd.check_output_settings if kind == "output" else sd.check_input_settings
    try:
        check(device=device, channels=channels, dtype="float32", samplerate=samplerate)
        return None
    except Exception as exc:
        info = sd.query_devices(device, kind)
        return (
            f"{kind} device {info['name']!r} cannot do {channels} ch at {samplerate:g} Hz "
            f"({' '.join(str(exc).split())}); it supports up to {info[f'max_{kind}_channels']} ch, "
            f"default rate {info['default_samplerate']:g} Hz"
        )


def _is_jack(stream: Any) -> bool:
    try:
        sd = _sd()
        dev = stream.device if isinstance(stream.device, int) else stream.device[1]
        return "JACK" in sd.query_hostapis(sd.query_devices(dev)["hostapi"])["name"]
    except Exception:
        return False


def _close_stream(stream: Any, dead: bool) -> None:
    """Stop and close; when the device died PortAudio can hang in there, so never wait on it long."""

    def close():
        try:
            stream.abort() if dead else stream.stop()
            stream.close()
        except Exception:
            pass

    if dead:
        t = threading.Thread(target=close, daemon=True)
        t.start()
        t.join(1.0)
    else:
        close()
