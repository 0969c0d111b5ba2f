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

import math
import os
from collections.abc import Callable, Sequence

import numpy as np

from mixpilot.inference.profile import Profile, ProfileError, set_file_reader

from .audio_io import read_audio

__all__ = ["Profile", "delivery_for", "load_target", "profile_from_files", "read_reference", "resolve_target"]


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


_RESOLVED: dict[tuple, Profile] = {}  # per process: the same references are read once (batch workers)


def resolve_target(
    reference: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    target: str | os.PathLike[str] | None = None,
) -> Profile | None:
    """What ``--reference FILE|DIR ...`` or ``--target NAME|PATH`` aim at (``None`` when neither is given).

    ``--reference``: the combined profile of the audio files (a folder stands
    for the audio files in it; one file is matched exactly, several give a
    tolerance).  ``--target``: a shipped profile name or a profile JSON.
    Both at once are refused.  Raises :class:`ProfileError` or
    ``AudioFileError``, one line naming the problem (silent, shorter than
    3 s, unreadable, another profile version).  Within a process the same
    files (same size and modification time) are read once.
    """
    if reference is not None and not isinstance(reference, (str, os.PathLike)):
        reference = [os.fspath(r) for r in reference] or None
    if reference and target:
        raise ProfileError("--reference and --target both given; aim at one of them")
    if target:
        text = os.fspath(target)
        if os.path.isfile(text) and not text.lower().endswith(".json"):
            raise ProfileError(f"--target {text}: not a profile (.json); for an audio file use --reference")
        return Profile.load(text)
    if not reference:
        return None
    items: list[str] = (
        [os.fspath(reference)] if isinstance(reference, (str, os.PathLike)) else [os.fspath(r) for r in reference]
    )

    def stamp(p: str) -> tuple:
        try:
            st = os.stat(p)
        except OSError:
            return (p, None)
        if os.path.isdir(p):
            return (p, st.st_mtime_ns, tuple(sorted(os.listdir(p))))
        return (p, st.st_mtime_ns, st.st_size)

    key = tuple(stamp(os.path.abspath(p)) for p in items)
    if key not in _RESOLVED:
        name = os.path.splitext(os.path.basename(items[0].rstrip(os.sep)))[0] if len(items) == 1 else "references"
        _RESOLVED.clear()
        _RESOLVED[key] = profile_from_files(items, name=name or "references")
    return _RESOLVED[key]


def delivery_for(
    profile: Profile | None,
    target_lufs: float | None,
    ceiling_dbtp: float | None,
    *,
    what: str = "reference's",
) -> tuple[float | None, float | None, list[str]]:
    """The delivery a target implies where the user set none: ``(target_lufs, ceiling_dbtp, notes)``.

    Without ``--target-lufs`` the delivery loudness is the target's integrated
    loudness; without ``--ceiling-dbtp`` a target whose true peak lies under
    the default ceiling (-1 dBTP) lowers the ceiling to it: the
    peak-to-loudness ratio is part of what is matched, and the ceiling only
    ever goes down (the default is the highest it takes).  Values the user
    gave, and every value without a profile, pass unchanged (``None`` stays
    ``None``: the caller's default).  Both clamped to their settings' ranges.
    """
    from mixpilot.dsp.settings import setting

    notes: list[str] = []
    if profile is None:
        return target_lufs, ceiling_dbtp, notes
    if target_lufs is None and math.isfinite(profile.integrated_lufs):
        s = setting("target_lufs")
        assert s.minimum is not None and s.maximum is not None  # a bounded setting (dsp.settings)
        target_lufs = round(min(max(profile.integrated_lufs, s.minimum), s.maximum), 2)
        notes.append(
            f"delivery loudness {target_lufs:.1f} LUFS: the {what} integrated loudness (--target-lufs sets it)"
        )
    c = setting("ceiling_dbtp")
    if ceiling_dbtp is None and math.isfinite(profile.true_peak_dbtp) and profile.true_peak_dbtp < c.default:
        assert c.minimum is not None  # a bounded setting (dsp.settings)
        ceiling_dbtp = round(max(profile.true_peak_dbtp, c.minimum), 2)
        notes.append(f"ceiling {ceiling_dbtp:.1f} dBTP: the {what} true peak (--ceiling-dbtp sets it)")
    return target_lufs, ceiling_dbtp, notes
