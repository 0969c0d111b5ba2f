"""Delivery: a mastered float buffer into the file the user asked for, with the ceiling still held.

``mixpilot render`` writes, by the output's extension:

=========  ==========================================  =====================================
ext        what                                        ``--bit-depth``
=========  ==========================================  =====================================
``.wav``   PCM or IEEE float                           ``16`` (TPDF dither), ``24`` (default), ``32f``
``.flac``  FLAC                                        ``16`` (TPDF dither), ``24`` (default)
``.ogg``   Ogg Vorbis, quality ``compression_level``   n/a (lossy)
           0.3 (about 170 kb/s stereo at 44.1 kHz)
``.mp3``   MPEG-1/2 Layer III (LAME), VBR,             n/a (lossy); 8..48 kHz only
           ``compression_level`` 0.2 (about 170 kb/s)
=========  ==========================================  =====================================

All through libsndfile (soundfile; MP3 and Vorbis writing need libsndfile
>= 1.1, :func:`check_codecs`).  Every file is written in chunks
(:func:`realtime.audio_io.write_sound_file`): libvorbis ``alloca``\\ s a float per buffered
frame on the stack, and one ``sf.write`` of a few minutes of audio crashes
the process (libsndfile#1095, python-soundfile#426; seen here with 70 s of
stereo at 44.1 kHz).

**The ceiling after delivery.**  The limiter holds ``ceiling_dbtp`` on the
float master.  What happens after it can add peak, and each step has its
own margin (:meth:`Delivery.limiter_margin_db`, by which the limiter's
ceiling is lowered before rendering, so the loudness search still meets
the target):

- *Quantisation* to ``b`` bits moves every sample by at most ``e_max`` (0.5
  LSB rounding, plus 1 LSB for the TPDF dither at 16 bits); the 4x
  true-peak interpolator (:mod:`dsp.oversample`) can amplify an error of
  that size by at most ``G = max_r sum_k |h_r[k]|`` = 2.43 (its largest
  branch L1 norm), so ``TP(x + e) <= TP(x) + G e_max``: the ceiling is
  lowered by that (0.0011 dB at 16 bits, 4e-6 dB at 24).  Before
  quantising, :func:`deliver` checks the float master's true peak against
  ``ceiling - G e_max`` and trims the (rare) excess, so the bound holds
  whatever the limiter did.
- *Lossy codecs* drop and smear spectral detail and the decoded waveform
  overshoots: measured on the demo song mastered to -14 LUFS / -1 dBTP, the
  decoded true peak came out +0.19 dB (Vorbis q 0.3) and +0.12 dB (MP3 VBR
  0.2) over the ceiling, up to +0.28 / +0.22 dB at the codecs' default
  quality.  The limiter runs :data:`LOSSY_MARGIN_DB` (0.5 dB) below the
  ceiling, and :func:`deliver` then decodes what it wrote (libsndfile's own
  decoders: mpg123, libvorbis), measures, and when the decoded true peak is
  still over the ceiling trims by the excess and encodes again (at most
  :data:`MAX_ENCODES` times).  Loudness after decoding stays within 0.05 LU
  of the master's at these qualities.
- *Resampling* (``--output-rate``) happens *before* mastering
  (:func:`resample`, soxr VHQ), so the limiter already works at the
  delivery rate and no resampler runs after it.

**16-bit TPDF dither.**  ``q = round(x 2^15 + d)`` with ``d = u1 - u2``,
``u1, u2`` independent uniform on [0, 1): triangular on (-1, 1) LSB.  With
this (non-subtractive, 2-LSB peak-to-peak TPDF) dither the total error
``q 2^-15 - x`` has a mean of zero and a variance of ``Delta^2/4`` that do not
depend on the signal (Delta = 1 LSB = 2^-15): the dither's own ``Delta^2/6``
plus the rounding's ``Delta^2/12`` (Lipshitz, Wannamaker & Vanderkooy,
"Quantization and Dither: A Theoretical Survey", J. Audio Eng. Soc. 40(5),
1992, eqs. for the n = 2 rectangular-sum dither; Wannamaker, "The Theory of
Dithered Quantization", 2003, ch. 4).  The noise floor is therefore
``10 log10(Delta^2/4)`` = -96.33 dBFS (RMS, re full-scale 1.0), 4.77 dB above
undithered rounding's ``Delta^2/12`` (-101.1 dBFS), without its distortion.
The dither generator is seeded (:data:`DITHER_SEED`), so a render is
reproducible bit for bit.  24 bits are rounded without dither (its error,
-149 dBFS, is far below any converter's noise).
"""

from __future__ import annotations

import math
import os
from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf

from mixpilot.dsp.settings import validate as validate_setting
from mixpilot.fileio import replace_atomically, write_failure

from .audio_io import (
    _WRITE_CHUNK_FRAMES,
    OUTPUT_FORMATS,
    WHOLE_READ_FORMATS,
    UnsupportedOutputError,
    check_output_format,
)
from .frames import CHUNK_FRAMES, ArrayFrames, Frames

__all__ = [
    "BIT_DEPTHS",
    "DITHER_SEED",
    "LOSSY_MARGIN_DB",
    "LOSSY_OPTIONS",
    "MAX_ENCODES",
    "MP3_SAMPLE_RATES",
    "Delivered",
    "Delivery",
    "Quantizer",
    "check_codecs",
    "deliver",
    "interpolator_gain",
    "quantize",
    "resample",
]

#: --bit-depth -> libsndfile subtype
BIT_DEPTHS = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}
#: lossy format -> (subtype, soundfile write options)
LOSSY_OPTIONS: dict[str, tuple[str, dict[str, object]]] = {
    "OGG": ("VORBIS", {"compression_level": 0.3}),
    "MP3": ("MPEG_LAYER_III", {"compression_level": 0.2, "bitrate_mode": "VARIABLE"}),
}
#: dB the limiter runs below the ceiling for a lossy output (measured overshoot <= 0.28 dB)
LOSSY_MARGIN_DB = 0.5
MAX_ENCODES = 3
#: MPEG-1, -2 and -2.5 Layer III sample rates
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
DITHER_SEED = 0x6D70  # "mp": fixed, so renders are reproducible
_TRIM_EXTRA_DB = 0.02  # a re-encode aims this far under the ceiling


def interpolator_gain() -> float:
    """``G``: the largest L1 norm of the 4x true-peak interpolator's branches (2.43)."""
    from mixpilot.dsp.oversample import TP_COEFFS

    return float(np.abs(TP_COEFFS).sum(axis=1).max())


def _error_peak(bits: int | None) -> float:
    """Largest |quantised - float| sample error at ``bits`` (16: 1 LSB dither + 0.5 rounding)."""
    if bits is None:
        return 0.0
    lsb = 2.0 ** -(bits - 1)
    return (1.5 if bits == 16 else 0.5) * lsb


def check_codecs() -> None:
    """Raise :class:`UnsupportedOutputError` when libsndfile cannot write MP3 and Vorbis."""
    fmts = sf.available_formats()
    if "MP3" not in fmts or "OGG" not in fmts:
        raise UnsupportedOutputError(
            f"this libsndfile ({sf.__libsndfile_version__}) cannot write MP3/Ogg Vorbis; libsndfile >= 1.1 can"
        )


@dataclass(frozen=True)
class Delivery:
    """The file to deliver: format (from the extension), bit depth, sample rate.

    Build it with :meth:`for_path`, which validates everything and raises one-line errors.
    """

    format: str  # WAV, FLAC, OGG, MP3
    bit_depth: str | None  # "16", "24", "32f"; None for lossy formats
    output_rate: int | None = None  # None: the input's rate

    @classmethod
    def for_path(
        cls, path: str | os.PathLike[str], bit_depth: str | int | None = None, output_rate: int | None = None
    ) -> Delivery:
        p = os.fspath(path)
        ext = os.path.splitext(p)[1].lower()
        fmt = OUTPUT_FORMATS.get(ext)
        if fmt is None:
            shown = ext if ext else "no extension"
            raise UnsupportedOutputError(f"{p}: cannot write {shown}; output formats are {', '.join(OUTPUT_FORMATS)}")
        output_rate = validate_setting("output_rate", output_rate, error=UnsupportedOutputError)
        if fmt in LOSSY_OPTIONS:
            check_codecs()
            if bit_depth is not None:
                raise UnsupportedOutputError(
                    f"{p}: {fmt} is a lossy codec; --bit-depth applies to .wav and .flac only (drop it)"
                )
            return cls(fmt, None, output_rate)
        depth = "24" if bit_depth is None else str(bit_depth)
        if depth not in BIT_DEPTHS:
            raise UnsupportedOutputError(f"--bit-depth must be one of {', '.join(BIT_DEPTHS)}, not {bit_depth!r}")
        if fmt == "FLAC" and depth == "32f":
            raise UnsupportedOutputError(
                f"{p}: FLAC cannot hold floating-point samples; write a .wav for 32-bit float, or use 16 or 24 bits"
            )
        check_output_format(p, BIT_DEPTHS[depth])
        return cls(fmt, depth, output_rate)

    @property
    def lossy(self) -> bool:
        return self.format in LOSSY_OPTIONS

    @property
    def subtype(self) -> str:
        return LOSSY_OPTIONS[self.format][0] if self.lossy else BIT_DEPTHS[self.bit_depth or "24"]

    @property
    def bits(self) -> int | None:
        """Integer bits of a PCM output, None for float and lossy outputs."""
        return None if self.lossy or self.bit_depth == "32f" else int(self.bit_depth or "24")

    def rate_for(self, path: str, input_rate: int) -> int:
        """The output sample rate for an input at ``input_rate``; MP3 takes only its own rates."""
        rate = self.output_rate or int(input_rate)
        if self.format == "MP3" and rate not in MP3_SAMPLE_RATES:
            raise UnsupportedOutputError(
                f"{path}: MP3 cannot hold {rate} Hz (it takes {', '.join(f'{r:g}' for r in MP3_SAMPLE_RATES)} Hz); "
                f"add --output-rate 48000 or 44100"
            )
        return rate

    def limiter_margin_db(self, ceiling_dbtp: float) -> float:
        """dB to lower the limiter's ceiling by so that the delivered file holds ``ceiling_dbtp`` (docstring)."""
        if self.lossy:
            return LOSSY_MARGIN_DB
        e = _error_peak(self.bits) * interpolator_gain()
        c = 10.0 ** (ceiling_dbtp / 20.0)
        return 20.0 * math.log10(c / (c - e)) if e > 0 else 0.0


@dataclass
class Delivered:
    """What :func:`deliver` wrote, measured on the file's own samples (decoded, for lossy formats)."""

    subtype: str
    sample_rate: int
    frames: int
    integrated_lufs: float
    true_peak_dbtp: float
    lra_lu: float
    trim_db: float = 0.0  # gain taken off after the limiter to hold the ceiling (<= 0)
    encodes: int = 1
    notes: list[str] = field(default_factory=list)


def resample(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """[frames, channels] float32 from ``in_rate`` to ``out_rate`` Hz (soxr, very high quality)."""
    if int(in_rate) == int(out_rate):
        return x
    import soxr

    y = soxr.resample(np.ascontiguousarray(x, dtype=np.float32), int(in_rate), int(out_rate), quality="VHQ")
    return np.ascontiguousarray(y.reshape(-1, x.shape[1]), dtype=np.float32)


_QUANTIZE_CHUNK_FRAMES = 1 << 16


def quantize(x: np.ndarray, bits: int, *, dither: bool, seed: int = DITHER_SEED) -> np.ndarray:
    """Float [frames, channels] to integers at ``bits`` (16 or 24), TPDF-dithered when ``dither``.

    Returns int16 for 16 bits, int32 holding the 24-bit value in its top 24
    bits for 24 (what libsndfile's ``PCM_24`` writer takes from ``int32``);
    ``value / 2**(bits-1)`` is the sample.  Values beyond full scale clip.

    Works through the buffer in chunks of :data:`_QUANTIZE_CHUNK_FRAMES` (a
    10-minute stereo file took three float64 copies of itself at once, 1.4 GB).
    The dither is the same sequence as one whole-buffer draw: TPDF is
    ``u1 - u2`` with ``u1`` the seeded generator's first ``frames x channels``
    doubles and ``u2`` the next as many (PCG64 makes one double of each 64-bit
    output, so a second generator advanced by that count yields ``u2``).
    :class:`Quantizer` does the same over a stream of blocks.
    """
    x = np.asarray(x)
    q = Quantizer(bits, x.size, dither=dither, seed=seed)
    out = np.empty(x.shape, dtype=np.int16 if bits == 16 else np.int32)
    flat_x = x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(-1, 1)
    flat_out = out.reshape(flat_x.shape)
    for i in range(0, flat_x.shape[0], _QUANTIZE_CHUNK_FRAMES):
        flat_out[i : i + _QUANTIZE_CHUNK_FRAMES] = q.block(flat_x[i : i + _QUANTIZE_CHUNK_FRAMES])
    return out


class Quantizer:
    """:func:`quantize` block by block: the blocks of a buffer, in order, give :func:`quantize`'s integers.

    ``total_samples`` (frames x channels of the whole stream) places the
    second uniform sequence of the TPDF dither (:func:`quantize`), so it must
    be known before the first block.
    """

    def __init__(self, bits: int, total_samples: int, *, dither: bool, seed: int = DITHER_SEED) -> None:
        self.bits = int(bits)
        self.dtype = np.dtype(np.int16 if self.bits == 16 else np.int32)
        self.scale = float(2 ** (self.bits - 1))
        self._u1: np.random.Generator | None = None
        self._u2: np.random.Generator | None = None
        if dither:
            self._u1 = np.random.default_rng(seed)  # Generator(PCG64(seed))
            second = np.random.PCG64(seed)
            second.advance(int(total_samples))
            self._u2 = np.random.Generator(second)

    def block(self, x: np.ndarray) -> np.ndarray:
        """The integers of the next ``x`` [frames, channels] (int16 at 16 bits, int32 at 24)."""
        v = np.asarray(x, dtype=np.float64) * self.scale
        if self._u1 is not None and self._u2 is not None:
            v += self._u1.random(v.shape) - self._u2.random(v.shape)  # TPDF on (-1, 1) LSB
        np.rint(v, out=v)
        np.clip(v, -self.scale, self.scale - 1.0, out=v)
        if self.bits == 16:
            return v.astype(np.int16)
        return v.astype(np.int32) << (32 - self.bits)


def _as_float(q: np.ndarray, bits: int) -> np.ndarray:
    """What a reader gets back from :func:`quantize`'s integers, as float32."""
    if bits == 16:
        return q.astype(np.float32) / np.float32(32768.0)
    return (q >> (32 - bits)).astype(np.float32) / np.float32(2.0 ** (bits - 1))


def deliver(
    y: np.ndarray | Frames,
    sample_rate: int,
    delivery: Delivery,
    path: str | os.PathLike[str],
    *,
    ceiling_dbtp: float,
    true_peak_dbtp: float | None = None,
    integrated_lufs: float | None = None,
    lra_lu: float | None = None,
) -> Delivered:
    """Write the master ``y`` [frames, channels] float32 to ``path`` atomically, holding ``ceiling_dbtp``.

    ``y`` is an array or a frame store (:mod:`realtime.frames`: a streamed render's chosen pass on
    disk), read in chunks either way: gain, quantisation (:class:`Quantizer`), metering and the
    encoder take one chunk at a time, so delivery holds a few chunks whatever the length.
    ``true_peak_dbtp`` / ``integrated_lufs`` / ``lra_lu`` are the master's,
    when already measured (the render measured its chosen pass); the file's
    own figures are measured again only when delivery changed the samples
    beyond 24-bit rounding (16-bit dither, a trim, a lossy codec).
    """
    from .audio_io import AudioFileError

    src: Frames = ArrayFrames(np.asarray(y)) if isinstance(y, np.ndarray) else y
    p = os.path.abspath(os.fspath(path))
    notes: list[str] = []
    c_lin = 10.0 ** (ceiling_dbtp / 20.0)
    if true_peak_dbtp is None or integrated_lufs is None or lra_lu is None:
        meter = _file_meter(sample_rate, src.channels)
        with closing(_chunks(src)) as chunks:
            for chunk in chunks:
                meter.process(chunk)
        m = _readout(meter)
        true_peak_dbtp, integrated_lufs, lra_lu = m
    tp_lin = 10.0 ** (true_peak_dbtp / 20.0) if math.isfinite(true_peak_dbtp) else 0.0
    bits = delivery.bits
    allowed = c_lin - _error_peak(bits) * interpolator_gain()
    gain = 1.0
    if tp_lin > allowed:
        gain = allowed / tp_lin
        notes.append(
            f"true peak {true_peak_dbtp:.2f} dBTP trimmed by {20 * math.log10(gain):.3f} dB to hold "
            f"{ceiling_dbtp:g} dBTP after quantisation"
        )
    measured = None  # (lufs, tp, lra) of the delivered samples
    encodes = 1

    if delivery.lossy:
        subtype, options = LOSSY_OPTIONS[delivery.format]

        def write(tmp: str) -> None:
            nonlocal gain, measured, encodes
            for attempt in range(1, MAX_ENCODES + 1):
                encodes = attempt
                g32 = np.float32(gain)
                try:
                    with _writer(tmp, sample_rate, src.channels, delivery.format, subtype, options) as f:
                        pw = _PieceWriter(f, src.channels, np.float32)
                        with closing(_chunks(src)) as chunks:
                            for chunk in chunks:
                                pw.write(chunk if gain == 1.0 else (chunk * g32).astype(np.float32))
                        pw.close()
                    meter = _file_meter(sample_rate, src.channels)
                    if delivery.format in WHOLE_READ_FORMATS:  # MP3 decodes correctly only in one read
                        meter.process(sf.read(tmp, dtype="float32", always_2d=True)[0])
                    else:
                        with sf.SoundFile(tmp) as dec:
                            while True:
                                part = dec.read(CHUNK_FRAMES, dtype="float32", always_2d=True)
                                if part.shape[0] == 0:
                                    break
                                meter.process(part)
                except (sf.SoundFileError, RuntimeError) as exc:
                    raise AudioFileError(
                        f"{p}: cannot write {delivery.format} ({write_failure(tmp, str(exc))})"
                    ) from None
                measured = _readout(meter)
                over = measured[1] - ceiling_dbtp
                if not over > 0.0 or attempt == MAX_ENCODES:
                    break
                gain *= 10.0 ** (-(over + _TRIM_EXTRA_DB) / 20.0)
            if measured is not None and measured[1] > ceiling_dbtp:
                notes.append(
                    f"decoded true peak {measured[1]:.2f} dBTP is over the {ceiling_dbtp:g} dBTP ceiling "
                    f"after {MAX_ENCODES} encodes"
                )
            elif gain < 1.0 and encodes > 1:
                notes.append(
                    f"the {delivery.format} encoder overshot the ceiling; trimmed by {20 * math.log10(gain):.2f} dB "
                    f"({encodes} encodes)"
                )

        replace_atomically(p, write)
    else:
        subtype = delivery.subtype
        # the file's samples differ from the master's beyond rounding: measure them as they are written
        meter = _file_meter(sample_rate, src.channels) if bits == 16 or gain != 1.0 else None
        quantizer = None if bits is None else Quantizer(bits, src.frames * src.channels, dither=bits == 16)

        def write(tmp: str) -> None:
            try:
                with _writer(tmp, sample_rate, src.channels, delivery.format, subtype, {}) as f:
                    pw = _PieceWriter(f, src.channels, np.float32 if quantizer is None else quantizer.dtype)
                    with closing(_chunks(src)) as chunks:
                        for chunk in chunks:
                            if quantizer is None:  # 32-bit float
                                data = chunk if gain == 1.0 else (chunk * np.float32(gain)).astype(np.float32)
                                if meter is not None:
                                    meter.process(data)
                            else:
                                data = quantizer.block(chunk if gain == 1.0 else chunk * gain)
                                if meter is not None:
                                    meter.process(_as_float(data, quantizer.bits))
                            pw.write(data)
                    pw.close()
            except (sf.SoundFileError, RuntimeError) as exc:
                raise AudioFileError(f"{p}: cannot write ({write_failure(tmp, str(exc))})") from None

        replace_atomically(p, write)
        if meter is not None:
            measured = _readout(meter)
    if measured is None:
        measured = (integrated_lufs, true_peak_dbtp, lra_lu)
    return Delivered(
        subtype=subtype,
        sample_rate=int(sample_rate),
        frames=int(src.frames),
        integrated_lufs=float(measured[0]),
        true_peak_dbtp=float(measured[1]),
        lra_lu=float(measured[2]),
        trim_db=20.0 * math.log10(gain) if gain > 0 else -math.inf,
        encodes=encodes,
        notes=notes,
    )


def _chunks(src: Frames) -> Generator[np.ndarray, None, None]:
    """``src`` in pieces of at most :data:`realtime.frames.CHUNK_FRAMES` (an array is sliced, not copied)."""
    with closing(src.chunks(CHUNK_FRAMES)) as chunks:
        for chunk in chunks:
            for i in range(0, chunk.shape[0], CHUNK_FRAMES):
                yield chunk[i : i + CHUNK_FRAMES]


def _file_meter(sample_rate: int, channels: int) -> Any:
    """:func:`dsp.meter.measure`'s meter, fed chunk by chunk (the same readouts, tested)."""
    from mixpilot.dsp.meter import LoudnessMeter
    from mixpilot.dsp.spec import ProcessSpec

    return LoudnessMeter(ProcessSpec(sample_rate=sample_rate, max_block_size=CHUNK_FRAMES, num_channels=channels))


def _readout(meter: Any) -> tuple[float, float, float]:
    """(integrated LUFS, true peak dBTP, LRA LU) of a :func:`_file_meter` at the end of the file."""
    meter.flush_true_peak()
    return meter.integrated_lufs, meter.true_peak_dbtp, meter.loudness_range_lu


def _writer(path: str, sample_rate: int, channels: int, fmt: str, subtype: str, options: Any) -> sf.SoundFile:
    return sf.SoundFile(path, "w", int(sample_rate), int(channels), subtype, format=fmt, **(options or {}))


class _PieceWriter:
    """Writes to ``f`` in pieces of exactly ``audio_io._WRITE_CHUNK_FRAMES`` (the last one shorter), whatever
    the chunks it is given: libvorbis allocates on the stack per frame (module docstring), and a Vorbis
    encoder's output depends on how the frames are split into writes (measured: 256 of 361 618 samples
    differ between chunk sizes), so a file must not depend on the chunking of the render that made it."""

    def __init__(self, f: sf.SoundFile, channels: int, dtype: Any) -> None:
        self.f = f
        self.buf = np.empty((_WRITE_CHUNK_FRAMES, channels), dtype=dtype)
        self.held = 0

    def write(self, data: np.ndarray) -> None:
        i, n = 0, data.shape[0]
        while i < n:
            if self.held == 0 and n - i >= _WRITE_CHUNK_FRAMES:
                self.f.write(data[i : i + _WRITE_CHUNK_FRAMES])
                i += _WRITE_CHUNK_FRAMES
                continue
            take = min(n - i, _WRITE_CHUNK_FRAMES - self.held)
            self.buf[self.held : self.held + take] = data[i : i + take]
            self.held += take
            i += take
            if self.held == _WRITE_CHUNK_FRAMES:
                self.f.write(self.buf)
                self.held = 0

    def close(self) -> None:
        if self.held:
            self.f.write(self.buf[: self.held])
            self.held = 0
