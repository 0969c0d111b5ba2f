"""Reference files and profiles for the command line: the file-reading front end of :mod:`inference.profile`.

:mod:`mixpilot.inference.profile` works on arrays (the layers point down:
inference does not import the real-time layer); this module gives it the
project's audio reader (:func:`realtime.audio_io.read_audio`: every format
libsndfile reads, 3..8 channels downmixed to stereo, one-line errors).

* :func:`read_reference` - ``path -> (samples, sample_rate)``;
* :func:`profile_from_files` - a combined profile of files and folders;
* :func:`load_target` - what ``--target NAME|PATH`` and ``--reference FILE|DIR``
  resolve to: a shipped profile name or a profile JSON, else audio references.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from mixpilot.inference.profile import Profile, ProfileError, set_file_reader

from .audio_io import read_audio

__all__ = ["Profile", "load_target", "profile_from_files", "read_reference"]


def read_reference(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Samples ``[frames, 1 or 2]`` float32 and the rate of an audio file (``AudioFileError`` if unusable)."""
    x, sample_rate, _info = read_audio(path)
    return x, sample_rate


set_file_reader(read_reference)  # Profile.build reads files with the project's reader


def profile_from_files(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    name: str = "references",
    description: str = "",
    progress: Callable[[int, int, str], None] | None = None,
) -> Profile:
    """The combined :class:`Profile` of audio files and folders (each track counts once).

    A folder stands for the audio files directly in it.  Raises
    :class:`ProfileError` (silent, shorter than 3 s, missing) or
    ``AudioFileError`` (unreadable), each one line naming the file.
    """
    return Profile.from_references(sources, read=read_reference, name=name, description=description, progress=progress)


def load_target(spec: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> Profile:
    """A shipped profile name, a profile ``.json``, or audio references (files/folders) -> :class:`Profile`."""
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if text.endswith(".json") or not (os.path.exists(text) or os.path.sep in text):
            return Profile.load(text)
        spec = [text]
    items = list(spec)
    if not items:
        raise ProfileError("no references given")
    name = os.path.splitext(os.path.basename(os.fspath(items[0])))[0] if len(items) == 1 else "references"
    return profile_from_files(items, name=name)
