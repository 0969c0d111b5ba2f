"""Shared fixtures: a seeded ``rng`` and a ``tmp_wav`` writer.

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

    def write(data: np.ndarray, sample_rate: int = 44100, name: str = "in.wav",
              subtype: str | None = "FLOAT") -> Path:
        path = tmp_path / name
        os.makedirs(path.parent, exist_ok=True)
        sf.write(str(path), np.asarray(data), sample_rate, subtype=subtype)
        return path

    return write
