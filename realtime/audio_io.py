"""Reading and writing audio files for ``mixpilot render`` (and later ``play``).

Reading goes through soundfile (libsndfile): WAV, FLAC, OGG/Vorbis/Opus, MP3
where the installed libsndfile supports it (>= 1.1), AIFF, CAF, W64, RF64 and
the rest of libsndfile's formats.  Writing is WAV or FLAC only, chosen by the
file extension, and always atomic: a temporary file beside the target,
``os.replace`` onto it, the temporary removed if anything fails.

Every problem with a file is an :class:`AudioFileError` whose message is one
line that names the file and says what to do.

Channel layouts
---------------
The mixing chain processes mono or stereo.  Mono is processed as mono (the
chain runs it as identical left/right and writes one channel back), stereo as
is.  Files with 3 to 8 channels are downmixed to stereo with the ITU-R BS.775
(Table 2) 2/0 downmix: front left/right at 0 dB, centre and every surround
channel at -3 dB (``k = sqrt(1/2) = 0.7071``) into its side (centre and centre
surround into both), LFE dropped.  The channel order is the WAV /
SMPTE default order for the channel count (``WAVEFORMATEXTENSIBLE`` speaker
masks, which soundfile does not expose, are not read):

===  =========================  ======================================================
ch   order assumed              downmix (``Lo``, ``Ro``)
===  =========================  ======================================================
3    L R C        (3/0)         Lo = L + k C;          Ro = R + k C
4    L R Ls Rs    (2/2, quad)   Lo = L + k Ls;         Ro = R + k Rs
5    L R C Ls Rs  (3/2, 5.0)    Lo = L + k C + k Ls;   Ro = R + k C + k Rs
6    L R C LFE Ls Rs (5.1)      Lo = L + k C + k Ls;   Ro = R + k C + k Rs
7    L R C LFE Ls Rs Cs (6.1)   Lo = L + k C + k Ls + k Cs;   Ro = R + k C + k Rs + k Cs
8    L R C LFE Ls Rs Lb Rb (7.1)  Lo = L + k C + k Ls + k Lb;  Ro = R + k C + k Rs + k Rb
===  =========================  ======================================================

Files with more than 8 channels are refused.  :data:`LAYOUTS` holds each
matrix and the BS.1770-4 channel weights used to measure the original file's
loudness (LFE excluded; surrounds at +1.5 dB = 1.41 when they sit at
+-60..120 degrees, BS.1770-4 Table 3 / Table 4; back channels 1.0).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf

from mixpilot.dsp.errors import InputFileError, OutputError, UsageError
from mixpilot.dsp.spec import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from mixpilot.fileio import replace_atomically as _replace_atomically
from mixpilot.fileio import write_failure, write_text_atomic

__all__ = [
    "LAYOUTS",
    "MAX_CHANNELS",
    "OUTPUT_FORMATS",
    "AudioFileError",
    "AudioInfo",
    "AudioReader",
    "WHOLE_READ_FORMATS",
    "Layout",
    "UnsupportedOutputError",
    "check_output_format",
    "content_notes",
    "downmix_to_stereo",
    "output_format",
    "probe_audio",
    "read_audio",
    "read_audio_file",
    "to_processing_layout",
    "write_audio_atomic",
    "write_sound_file",
    "write_text_atomic",
]

MAX_CHANNELS = 8
_K = math.sqrt(0.5)  # -3.01 dB, ITU-R BS.775 Table 2

#: output extension -> libsndfile major format (.ogg and .mp3: :mod:`realtime.encode`)
OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}
#: subtypes each output format can hold
_SUBTYPES = {
    "WAV": ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"),
    "FLAC": ("PCM_16", "PCM_24"),
    "OGG": ("VORBIS",),
    "MP3": ("MPEG_LAYER_III",),
}
#: frames per libsndfile write call: libvorbis alloca()s a float per buffered frame on the stack,
#: and one call with a few minutes of audio crashes the process (libsndfile#1095)
_WRITE_CHUNK_FRAMES = 16384


class AudioFileError(InputFileError):
    """A file that cannot be read or written as audio; the message is one line.

    ``exit_code`` is what the CLI returns: 1 (a problem with a file at run time).
    """

    exit_code = 1


class UnsupportedOutputError(AudioFileError, OutputError, UsageError):
    """An output path or subtype the writer does not support (a usage error, exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Layout:
    """How a file with ``len(names)`` channels is downmixed and weighted."""

    names: tuple[str, ...]
    description: str
    matrix: np.ndarray  # shape (channels, 2): stereo = x @ matrix
    weights: tuple[float, ...]  # BS.1770-4 channel weights of the original layout


def _layout(names: str, description: str, weights: tuple[float, ...]) -> Layout:
    chans = tuple(names.split())
    m = np.zeros((len(chans), 2))
    for i, name in enumerate(chans):
        if name == "L":
            m[i] = (1.0, 0.0)
        elif name == "R":
            m[i] = (0.0, 1.0)
        elif name in ("C", "Cs"):
            m[i] = (_K, _K)
        elif name in ("Ls", "Lb"):
            m[i] = (_K, 0.0)
        elif name in ("Rs", "Rb"):
            m[i] = (0.0, _K)
        elif name == "LFE":
            m[i] = (0.0, 0.0)  # BS.775: the LFE is not part of the downmix
        else:  # pragma: no cover - table below is fixed
            raise AssertionError(name)
    m.setflags(write=False)
    return Layout(chans, description, m, weights)


#: channel count -> assumed layout (see the module docstring)
LAYOUTS: dict[int, Layout] = {
    3: _layout("L R C", "3.0", (1.0, 1.0, 1.0)),
    4: _layout("L R Ls Rs", "quad", (1.0, 1.0, 1.41, 1.41)),
    5: _layout("L R C Ls Rs", "5.0", (1.0, 1.0, 1.0, 1.41, 1.41)),
    6: _layout("L R C LFE Ls Rs", "5.1", (1.0, 1.0, 1.0, 0.0, 1.41, 1.41)),
    7: _layout("L R C LFE Ls Rs Cs", "6.1", (1.0, 1.0, 1.0, 0.0, 1.41, 1.41, 1.0)),
    8: _layout("L R C LFE Ls Rs Lb Rb", "7.1", (1.0, 1.0, 1.0, 0.0, 1.41, 1.41, 1.0, 1.0)),
}


@dataclass
class AudioInfo:
    """What :func:`read_audio` found in a file.

    ``channels`` is the file's channel count; the returned array has
    ``processed_channels`` (1 or 2).  ``notes`` are one-line messages for the
    user (downmix, non-finite samples).
    """

    path: str
    format: str
    subtype: str
    sample_rate: int
    frames: int
    channels: int
    processed_channels: int
    nonfinite_samples: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    @property
    def layout(self) -> Layout | None:
        return LAYOUTS.get(self.channels)


def _sf_message(exc: BaseException) -> str:
    """libsndfile's reason, on one line."""
    msg = getattr(exc, "error_string", None) or str(exc)
    return " ".join(str(msg).split())


def _special_kind(path: str) -> str | None:
    """What ``path`` is when it is not a regular file (after symlinks): "FIFO (named pipe)", ..."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    for test, kind in (
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return kind
    return None


def probe_audio(path: str | os.PathLike[str]) -> sf._SoundFileInfo:
    """Check that ``path`` is a readable audio file and return soundfile's info.

    Raises
    ------
    AudioFileError
        missing, not a file, a FIFO or device, not readable, not audio, zero-length, sample rate
        outside 8000..192000 Hz, more than 8 channels.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise AudioFileError(f"{p}: no such file")
    if os.path.isdir(p):
        raise AudioFileError(f"{p}: is a directory, not an audio file")
    if not os.access(p, os.R_OK):
        raise AudioFileError(f"{p}: permission denied (cannot read)")
    kind = _special_kind(p)
    if kind is not None:  # opening a FIFO with no writer blocks forever; libsndfile reads a file twice
        raise AudioFileError(f"{p}: is a {kind}, not a regular file; mixpilot reads audio from files")
    try:
        with _quiet_decoder(None):
            info = sf.info(p)
    except sf.SoundFileError as exc:
        reason = _sf_message(exc).replace(f"Error opening {p!r}: ", "")
        raise AudioFileError(f"{p}: not a readable audio file ({reason})") from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise AudioFileError(f"{p}: not a readable audio file ({_sf_message(exc)})") from None
    if info.frames <= 0:
        raise AudioFileError(f"{p}: contains no audio (zero length)")
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioFileError(
            f"{p}: sample rate {info.samplerate} Hz is outside the supported "
            f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz; resample it first"
        )
    if info.channels > MAX_CHANNELS:
        raise AudioFileError(
            f"{p}: {info.channels} channels; mixpilot reads at most {MAX_CHANNELS} "
            f"(mono, stereo, or surround up to 7.1)"
        )
    return info


def downmix_to_stereo(x: np.ndarray) -> np.ndarray:
    """ITU-R BS.775 stereo downmix of a 3..8 channel buffer (layouts as in :data:`LAYOUTS`).

    Parameters
    ----------
    x : np.ndarray [shape=(frames, channels)]

    Returns
    -------
    np.ndarray [shape=(frames, 2), dtype=float32], C-contiguous
    """
    ch = x.shape[1]
    if ch not in LAYOUTS:
        raise ValueError(f"no downmix for {ch} channels (3..{MAX_CHANNELS} are supported)")
    y = x.astype(np.float64, copy=False) @ LAYOUTS[ch].matrix
    return np.ascontiguousarray(y, dtype=np.float32)


def read_audio_file(path: str | os.PathLike[str]) -> tuple[np.ndarray, int, AudioInfo]:
    """Read an audio file as it is (all its channels), checked.

    Returns
    -------
    audio : np.ndarray [shape=(frames, channels), dtype=float32], C-contiguous
        NaN/Inf samples are kept; their count is in ``info``.
    sample_rate : int
        Hz, the file's own rate.
    info : AudioInfo
        ``processed_channels`` tells what :func:`to_processing_layout` will make of it.

    Raises
    ------
    AudioFileError
        see :func:`probe_audio`; also a file that fails part-way through decoding.
    """
    p = os.fspath(path)
    sinfo = probe_audio(p)
    try:
        with _quiet_decoder(sinfo):
            data, sample_rate = sf.read(p, dtype="float32", always_2d=True)
    except sf.SoundFileError as exc:
        raise AudioFileError(f"{p}: cannot decode ({_sf_message(exc)})") from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise AudioFileError(f"{p}: cannot decode ({_sf_message(exc)})") from None
    if data.shape[0] == 0:
        raise AudioFileError(f"{p}: contains no audio (zero length)")
    info = AudioInfo(
        path=p,
        format=sinfo.format,
        subtype=sinfo.subtype,
        sample_rate=int(sample_rate),
        frames=int(data.shape[0]),
        channels=int(data.shape[1]),
        processed_channels=min(int(data.shape[1]), 2),
    )
    info.nonfinite_samples, info.notes = content_notes(data)
    cut = truncation_note(p, sinfo, int(data.shape[0]))
    if cut is not None:
        info.notes.insert(0, cut)
    return np.ascontiguousarray(data, dtype=np.float32), int(sample_rate), info


#: Input formats read whole, never in chunks: libsndfile's MP3 decoder (1.2.2, mpg123) returns other
#: samples after a partial read -- a glitch of up to 0.09 over about 1000 frames after the read's end,
#: at nearly any chunk size (measured on a 5 s MP3: chunks of 1 .. 65 664 frames; 64 512 and 100 000 were
#: clean) -- while one whole read is clean.  Ogg Vorbis, FLAC and WAV decode the same in chunks of any size.
WHOLE_READ_FORMATS = ("MP3",)


class AudioReader:
    """A checked audio file decoded in chunks: :func:`read_audio_file` without holding the file.

    ``chunks()`` yields the file's frames in order, all its channels, float32
    [m, channels] (NaN/Inf kept), decoding as it goes; it may be called again
    for another pass.  After a complete pass :meth:`info` is what
    :func:`read_audio_file` returns as ``info`` (frames, non-finite count,
    notes) -- the same samples in the same order, so a render that reads the
    file in chunks renders what one that reads it whole does.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.sinfo = probe_audio(self.path)
        if self.sinfo.format in WHOLE_READ_FORMATS:
            raise ValueError(f"{self.path}: {self.sinfo.format} decodes correctly only whole (WHOLE_READ_FORMATS)")
        self.sample_rate = int(self.sinfo.samplerate)
        self.channels = int(self.sinfo.channels)
        self.frames_read: int | None = None  # after a complete pass
        self.nonfinite_samples = 0

    def chunks(self, frames: int = 1 << 16) -> Generator[np.ndarray, None, None]:
        p = self.path
        done = bad = 0
        try:
            with _quiet_decoder(self.sinfo):
                f = sf.SoundFile(p)
            with f:
                while True:
                    with _quiet_decoder(self.sinfo):
                        data = f.read(frames, dtype="float32", always_2d=True)
                    if data.shape[0] == 0:
                        break
                    done += data.shape[0]
                    bad += int(data.size - np.count_nonzero(np.isfinite(data)))
                    yield np.ascontiguousarray(data, dtype=np.float32)
        except (sf.SoundFileError, OSError, RuntimeError, ValueError) as exc:
            raise AudioFileError(f"{p}: cannot decode ({_sf_message(exc)})") from None
        if self.frames_read is not None and done != self.frames_read:
            raise AudioFileError(f"{p}: the file changed while it was read ({done} frames, then {self.frames_read})")
        if done == 0:
            raise AudioFileError(f"{p}: contains no audio (zero length)")
        self.frames_read, self.nonfinite_samples = done, bad

    def info(self) -> AudioInfo:
        """:func:`read_audio_file`'s ``info``, after a complete pass of :meth:`chunks`."""
        if self.frames_read is None:
            raise RuntimeError("AudioReader.info() before a complete pass of chunks()")
        info = AudioInfo(
            path=self.path,
            format=self.sinfo.format,
            subtype=self.sinfo.subtype,
            sample_rate=self.sample_rate,
            frames=self.frames_read,
            channels=self.channels,
            processed_channels=min(self.channels, 2),
            nonfinite_samples=self.nonfinite_samples,
            notes=_content_note_lines(self.nonfinite_samples, self.channels),
        )
        cut = truncation_note(self.path, self.sinfo, self.frames_read)
        if cut is not None:
            info.notes.insert(0, cut)
        return info


def _quiet_decoder(sinfo):
    """MP3 (or a file not yet probed, ``sinfo`` None): mpg123 prints its own warnings ("Xing stream
    size off ...") on fd 2; the truncation note says what matters (:func:`truncation_note`)."""
    import contextlib

    if sinfo is not None and sinfo.format != "MP3":
        return contextlib.nullcontext()
    from .jackserver import quiet_stderr

    return quiet_stderr()


#: libsndfile's header log: a chunk that announces more bytes than the file holds
_SHOULD_BE = re.compile(r"^\s*(RIFF|riff|data|FORM|SSND|RF64)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)
_CHUNK_PAST_END = re.compile(r"\*\*\* Chunk size (\d+) > file length (\d+)")


def truncation_note(path: str, sinfo: Any, frames_read: int) -> str | None:
    """One line when the file is shorter than its header says (cut off in a copy or a download), else None.

    Evidence, by format: the frame count in the header against the frames decoded
    (MP3's Xing header, FLAC's STREAMINFO); a RIFF/W64/AIFF chunk that announces more
    bytes than the file holds (libsndfile's header log); an Ogg stream whose last page
    is incomplete or is not the end-of-stream page.
    """
    seconds = frames_read / sinfo.samplerate
    what = f"{path}: the file looks truncated ({{why}}); processing the {seconds:.2f} s it holds"
    short = sinfo.frames - frames_read
    if frames_read > 0 and short > 0 and (sinfo.format != "MP3" or short > max(2048, sinfo.frames // 100)):
        # (an MP3's count is an estimate when it has no Xing header: a small difference is no evidence)
        return what.format(why=f"its header announces {sinfo.frames / sinfo.samplerate:.2f} s")
    log = sinfo.extra_info or ""
    for chunk, said, real in _SHOULD_BE.findall(log):
        if int(said) > int(real):
            return what.format(why=f"the {chunk.strip()} chunk announces {int(said)} bytes, {int(real)} are there")
    m = _CHUNK_PAST_END.search(log)
    if m is not None:
        return what.format(why=f"a chunk of {m.group(1)} bytes runs past the end of the {m.group(2)}-byte file")
    if sinfo.format == "OGG":
        why = _ogg_tail_problem(path)
        if why is not None:
            return what.format(why=why)
    return None


def _ogg_tail_problem(path: str) -> str | None:
    """Why an Ogg file's end is not a complete end-of-stream page (RFC 3533 section 6), or None."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.seek(max(0, size - 65536 - 27 - 255))  # a page is at most 27 + 255 + 255 * 255 bytes
            tail = f.read()
    except OSError:
        return None
    at = tail.rfind(b"OggS")
    if at < 0 or len(tail) - at < 27:
        return "its last Ogg page is cut off"
    flags, nseg = tail[at + 5], tail[at + 26]
    if len(tail) - at < 27 + nseg:
        return "its last Ogg page is cut off"
    body = sum(tail[at + 27 : at + 27 + nseg])
    if len(tail) - at < 27 + nseg + body:
        return "its last Ogg page is cut off"
    if not flags & 0x04:
        return "the Ogg stream has no end-of-stream page"
    return None


def content_notes(data: np.ndarray) -> tuple[int, list[str]]:
    """The non-finite sample count of ``data`` [frames, channels] and the notes a user gets about it.

    Notes: NaN/Inf samples (processed as silence), a 3..8 channel layout
    (assumed WAV order, downmixed per ITU-R BS.775).
    """
    finite = np.isfinite(data)
    bad = int(data.size - np.count_nonzero(finite))
    return bad, _content_note_lines(bad, int(data.shape[1]))


def _content_note_lines(bad: int, ch: int) -> list[str]:
    notes: list[str] = []
    if bad:
        notes.append(f"input has {bad} NaN/Inf samples; they are processed as silence (0)")
    if ch > 2:
        layout = LAYOUTS[ch]
        notes.append(
            f"input has {ch} channels, assumed {layout.description} in WAV order "
            f"({' '.join(layout.names)}); downmixed to stereo per ITU-R BS.775 "
            f"(centre and surrounds at -3 dB{', LFE dropped' if 'LFE' in layout.names else ''})"
        )
    return notes


def to_processing_layout(data: np.ndarray) -> np.ndarray:
    """Mono and stereo as they are; 3..8 channels downmixed (:func:`downmix_to_stereo`)."""
    if data.shape[1] > 2:
        return downmix_to_stereo(data)
    return np.ascontiguousarray(data, dtype=np.float32)


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int, AudioInfo]:
    """Read an audio file into the layout the chain processes.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    audio : np.ndarray [shape=(frames, 1 or 2), dtype=float32], C-contiguous
        Mono stays mono, stereo stays stereo, 3..8 channels are downmixed
        (:func:`downmix_to_stereo`, with a note in ``info.notes``).  NaN/Inf
        samples are kept (the chain replaces them by zero); their count is in
        ``info``.
    sample_rate : int
        Hz, the file's own rate.
    info : AudioInfo

    Raises
    ------
    AudioFileError
        see :func:`probe_audio`; also a file that fails part-way through decoding.
    """
    data, sample_rate, info = read_audio_file(path)
    return to_processing_layout(data), sample_rate, info


def output_format(path: str | os.PathLike[str]) -> str:
    """libsndfile major format for an output path, from its extension (``WAV`` or ``FLAC``)."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    fmt = OUTPUT_FORMATS.get(ext)
    if fmt is None:
        shown = ext if ext else "no extension"
        raise UnsupportedOutputError(
            f"{os.fspath(path)}: cannot write {shown}; output formats are {', '.join(OUTPUT_FORMATS)}"
        )
    return fmt


def check_output_format(path: str | os.PathLike[str], subtype: str) -> str:
    """Check that ``subtype`` can be written to ``path``'s format; return the format."""
    fmt = output_format(path)
    if subtype not in _SUBTYPES[fmt]:
        if subtype in ("FLOAT", "DOUBLE"):
            raise UnsupportedOutputError(
                f"{os.fspath(path)}: FLAC cannot hold floating-point samples; "
                f"write a .wav for --float, or drop --float for 24-bit FLAC"
            )
        raise UnsupportedOutputError(
            f"{os.fspath(path)}: {fmt} cannot hold {subtype}; use one of {', '.join(_SUBTYPES[fmt])}"
        )
    return fmt


def write_sound_file(
    path: str, data: np.ndarray, sample_rate: int, fmt: str, subtype: str, options: Mapping[str, object] | None = None
) -> None:
    """``soundfile`` write of ``data`` [frames, channels] in chunks (not atomic: see :func:`write_audio_atomic`).

    ``options`` go to ``soundfile.SoundFile`` (``compression_level``, ``bitrate_mode``).
    """
    with sf.SoundFile(path, "w", int(sample_rate), int(data.shape[1]), subtype, format=fmt, **(options or {})) as f:
        for i in range(0, data.shape[0], _WRITE_CHUNK_FRAMES):
            f.write(data[i : i + _WRITE_CHUNK_FRAMES])


def write_audio_atomic(
    path: str | os.PathLike[str], data: np.ndarray, sample_rate: int, subtype: str = "PCM_24"
) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, then ``os.replace``).

    Parameters
    ----------
    path : str or path-like
        ``.wav`` or ``.flac`` (:data:`OUTPUT_FORMATS`).
    data : np.ndarray [shape=(frames, channels)]
        Float samples; for integer subtypes they are clipped to [-1, 1].
    sample_rate : int
        Hz.
    subtype : str
        libsndfile subtype: ``PCM_24`` (default), ``PCM_16``, ``FLOAT`` (WAV only), ...

    Raises
    ------
    UnsupportedOutputError
        unknown extension, or a subtype the format cannot hold.
    AudioFileError
        libsndfile could not write the file.
    OSError
        the folder is missing or not writable, the disk is full, ...

    Notes
    -----
    The temporary file is ``.<name>.tmp-<random>`` beside ``path`` (same file
    system, so the rename is atomic) and is removed on any failure, including
    KeyboardInterrupt.  The new file gets the permissions of the file it
    replaces, or ``0o666 & ~umask`` for a new file.
    """
    p = os.path.abspath(os.fspath(path))
    fmt = check_output_format(p, subtype)
    if subtype not in ("FLOAT", "DOUBLE"):
        data = np.clip(data, -1.0, 1.0)

    def write(tmp: str) -> None:
        try:
            write_sound_file(tmp, data, sample_rate, fmt, subtype)
        except sf.SoundFileError as exc:
            raise AudioFileError(f"{p}: cannot write ({write_failure(tmp, _sf_message(exc))})") from None

    _replace_atomically(p, write)
