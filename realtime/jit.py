"""First-run compilation of the Numba kernels: said before it starts, paid once.

Numba compiles each kernel on its first call and keeps the machine code on
disk (``cache=True``; :mod:`mixpilot.dsp` keys the cache directory by a hash of
the DSP sources, so an upgrade or an edit starts a fresh one).  The first
command after an install therefore spends a while compiling (25 s of CPU on
the development VM).  Every command that runs the chain calls
:func:`ensure_compiled` before it starts, which turns that silence into one
line on stderr::

    mixpilot: compiling DSP kernels (once, ~25 s)

and compiles, in one go, every kernel the commands use (:func:`compile_all`:
the engine with its warm-up paths, a render and its loudness measurement in
mono and stereo, the analysis and its descriptors, the AI's feature kernel),
so that no later command compiles again.  Then it writes a stamp into the
cache directory; while the stamp is there nothing is said or done.  The
estimate is the time the last compile took on this machine (kept beside the
caches), or :data:`FIRST_ESTIMATE_S` before there was one.

The stamp's name hashes the package's location (Numba's cache files are per
source path: a second installed copy compiles its own) and the sources of the
kernels that live outside ``dsp/`` (``realtime``, ``inference``), so their
edits are announced too.
Batch and compare workers, and the real-time stream, start after the parent
called :func:`ensure_compiled`: they load from the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["FIRST_ESTIMATE_S", "cache_dir", "compile_all", "ensure_compiled", "is_compiled", "stamp_path"]

# A cold compile_all on the 2-core development VM (AMD EPYC, Python 3.11, numba 0.68): 25 s of CPU
# (83 s of wall time while ten other processes competed for the two cores); the estimate
# the message gives until this machine has timed its own.
FIRST_ESTIMATE_S = 25.0
_LAST_NAME = "last-compile.json"
_ROOT = Path(__file__).resolve().parent.parent  # the package mixpilot


def cache_dir() -> str:
    """The Numba cache directory of this version of the DSP sources (set by :mod:`mixpilot.dsp`)."""
    import numba

    import mixpilot.dsp  # noqa: F401  (sets numba.config.CACHE_DIR)

    return str(numba.config.CACHE_DIR)


def _kernel_sources() -> list[Path]:
    """Sources outside ``dsp/`` that define Numba kernels."""
    found = []
    for sub in ("realtime", "inference"):
        for p in sorted((_ROOT / sub).glob("*.py")):
            if b"njit" in p.read_bytes():
                found.append(p)
    return found


def stamp_path() -> str:
    """The stamp that says every kernel of this version is compiled into :func:`cache_dir`."""
    h = hashlib.sha1(str(_ROOT).encode())  # Numba keys its cache files by the source's location too
    for p in _kernel_sources():
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return os.path.join(cache_dir(), f"compiled-{h.hexdigest()[:12]}.json")


def is_compiled() -> bool:
    """True when this version's kernels are in the cache (no first-run compile ahead)."""
    return os.path.isfile(stamp_path())


def _last_path() -> str:
    return os.path.join(os.path.dirname(cache_dir()), _LAST_NAME)


def _estimate_s() -> float:
    try:
        with open(_last_path()) as f:
            seconds = float(json.load(f)["seconds"])
        return seconds if seconds > 0 else FIRST_ESTIMATE_S
    except (OSError, ValueError, KeyError, TypeError):
        return FIRST_ESTIMATE_S


def compile_all() -> None:
    """Run every kernel the commands use once, on short inputs (each is compiled or loaded)."""
    import numpy as np

    from mixpilot.inference.features import extract_features

    from .api import analyze, master
    from .engine import Engine

    sr = 44100
    x = (0.1 * np.random.default_rng(0).standard_normal((sr, 2))).astype(np.float32)
    for audio in (x, x[:, 0]):  # stereo and mono layouts
        master(audio, sr, model="none")
        analyze(audio, sr, model="none")
    # with the AI (its windows need 3 s) and a loudness search of several passes (the later passes replay
    # the first one's tap: kernels of their own)
    x4 = (0.05 * np.random.default_rng(1).standard_normal((4 * sr, 2))).astype(np.float32)
    for audio in (x4, x4[:, 0]):
        master(audio, sr)
    for channels in (1, 2):
        Engine(sr, channels, max_block_size=256).warm_up()
    extract_features(x, sr)


def ensure_compiled(say: Callable[[str], None]) -> float | None:
    """Compile every kernel once per version, saying so first; the seconds it took, or None when cached.

    ``say`` gets the one line before the compile starts.  A cache directory that
    cannot be written only means that the next run compiles (and says so) again.
    """
    stamp = stamp_path()
    if os.path.isfile(stamp):
        return None
    say(f"compiling DSP kernels (once, ~{max(1, round(_estimate_s()))} s)")
    t0 = time.perf_counter()
    compile_all()
    seconds = time.perf_counter() - t0
    from mixpilot.fileio import write_text_atomic

    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = json.dumps({"seconds": round(seconds, 1), "when": when}) + "\n"
    for path in (stamp, _last_path()):
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_text_atomic(path, text)
        except OSError:
            pass
    return seconds
