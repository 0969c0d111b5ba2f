"""Shared fixtures: a seeded ``rng``, a ``tmp_wav`` writer and a session ``jack_server``.

Test signals are generated inside the tests (never read from ../shared), so
every reference is reproducible from the seed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

TmpWav = Callable[..., Path]


@pytest.fixture(scope="session", autouse=True)
def _kernels_compiled() -> None:
    """Every Numba kernel compiled (or loaded) once, before any test (``realtime.jit``).

    The first command after a change of the DSP sources would otherwise say
    "compiling DSP kernels" in the middle of whichever test ran first.
    """
    from mixpilot.realtime.jit import ensure_compiled

    ensure_compiled(lambda text: None)


@pytest.fixture
def rng() -> np.random.Generator:
    """Seeded generator: every random test signal is reproducible."""
    return np.random.default_rng(20261121)


@pytest.fixture
def tmp_wav(tmp_path: Path) -> TmpWav:
    """``tmp_wav(data, sample_rate=44100, name="in.wav", subtype=None) -> Path``.

    Writes ``data`` ([frames] or [frames, channels], float) with soundfile
    into ``tmp_path`` (``name`` may contain sub-folders) and returns the
    path.  ``subtype`` defaults to ``"FLOAT"`` so the samples are stored
    exactly; ``None`` takes soundfile's default for the extension.
    """

    def write(data: np.ndarray, sample_rate: int = 44100, name: str = "in.wav", subtype: str | None = "FLOAT") -> Path:
        path = tmp_path / name
        os.makedirs(path.parent, exist_ok=True)
        sf.write(str(path), np.asarray(data), sample_rate, subtype=subtype)
        return path

    return write


@pytest.fixture(scope="session")
def jack_server():
    """A real JACK server for the session: ``jackd -n <unique> -d dummy -r 48000 -p 128``.

    The dummy driver clocks process callbacks in real time like a sound card.
    ``JACK_DEFAULT_SERVER`` is set to its name, so PortAudio, python-rtmidi's
    JACK API and subprocesses started by the tests use it.  Skipped (with the
    reason) only where jackd is not installed; CI installs jackd2.
    """
    from mixpilot.realtime.jackserver import JackServer, jackd_path

    if jackd_path() is None:
        pytest.skip("jackd is not installed (apt install jackd2; CI installs it)")
    server = JackServer(name=f"mixpilot-test-{os.getpid()}", sample_rate=48000, period=128)
    server.start()
    from mixpilot.realtime.stream import _rescan

    _rescan()  # PortAudio in this process must see the new server
    yield server
    from mixpilot.realtime.stream import release_portaudio

    release_portaudio()  # before the server goes: PortAudio's exit handler would abort on a dead server
    server.stop()


SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"


@pytest.fixture(scope="session")
def json_schema() -> Callable[[str, object], None]:
    """``json_schema(name, data)`` validates ``data`` against ``docs/schemas/<name>.schema.json``.

    The schemas are the documented contract of every JSON output (docs/INTERFACE.md); jsonschema
    (draft 2020-12) is the reference validator.  Raises ``jsonschema.ValidationError`` with the path.
    """
    import json

    import jsonschema

    cache: dict[str, jsonschema.protocols.Validator] = {}

    def validate(name: str, data: object) -> None:
        if name not in cache:
            schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
            jsonschema.Draft202012Validator.check_schema(schema)
            cache[name] = jsonschema.Draft202012Validator(schema)
        cache[name].validate(data)

    return validate
