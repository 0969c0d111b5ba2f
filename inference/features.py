"""The one feature definition: log-mel mid/side windows.

Imported by the runtime worker (:mod:`inference.worker`) and by training
(:mod:`training.data`), so serving and training can never compute features
differently.  The model card stores :meth:`FeatureConfig.as_dict`; a model whose
card disagrees with :data:`FEATURE_CONFIG` is refused.

Pipeline for one window (:func:`extract_features`)::

    last ``window_s`` seconds of [frames, 1|2] audio (zero-padded at the start)
      -> mid = (L + R) / 2, side = (L - R) / 2            (mono: L = R, side = 0)
      -> soxr 'HQ' resample to ``sample_rate``           (skipped when it matches)
      -> periodic Hann window, non-centred STFT (numpy rfft), power |X|^2
      -> mel filterbank (librosa.filters.mel's construction in numpy: Slaney mel scale and area norm)
      -> 10 log10(power + 1e-10), clipped below at ``floor_db``
      -> float32 [2 (mid, side), n_mels, n_frames]

The spectrum is *not* normalised per window: absolute level carries the
information behind ``input_gain_db``.  The power convention is librosa's
(``librosa.feature.melspectrogram(center=False, power=2)``), which the tests
use as a reference.

The window is cut *before* anything else, so the features of the last window
of a long buffer are bit-for-bit the features of that window alone; the
worker pulls exactly :func:`window_from` out of its ring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, DTypeLike

from mixpilot.dsp.errors import MixpilotError

__all__ = [
    "FeatureConfig",
    "FEATURE_CONFIG",
    "FeatureError",
    "input_window_frames",
    "window_from",
    "extract_features",
    "extract_batch",
    "mel_filterbank",
]

_POWER_EPS = 1e-10
_RESAMPLE_CHUNK = 4096  # input frames per soxr call (about 50 us of work with the GIL held)


class FeatureError(MixpilotError, ValueError):
    """Audio or configuration that feature extraction cannot use (exit code 2, as any ValueError was)."""

    exit_code = 2


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that decides what a feature window is.

    Attributes
    ----------
    sample_rate : int
        analysis sample rate (Hz); audio is resampled to it.
    n_fft, hop_length : int
        STFT size and hop (samples at ``sample_rate``), non-centred frames.
    n_mels : int
        mel bands between ``fmin_hz`` and ``fmax_hz``.
    window_s : float
        seconds of audio per window (the last ``window_s`` seconds are used).
    floor_db : float
        log-power floor; silence reads as ``floor_db``.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    fmin_hz: float = 30.0
    fmax_hz: float = 11025.0
    window_s: float = 3.0
    floor_db: float = -100.0

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise FeatureError(f"sample_rate, n_fft, hop_length and n_mels must be positive: {self}")
        if not 0.0 <= self.fmin_hz < self.fmax_hz <= self.sample_rate / 2.0:
            raise FeatureError(f"need 0 <= fmin_hz < fmax_hz <= sample_rate/2, got {self.fmin_hz}, {self.fmax_hz}")
        if self.window_samples < self.n_fft:
            raise FeatureError(f"window_s = {self.window_s} s is shorter than one FFT ({self.n_fft} samples)")

    @property
    def window_samples(self) -> int:
        """Samples per window at ``sample_rate``."""
        return int(round(self.window_s * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """Non-centred STFT frames over one window."""
        return 1 + (self.window_samples - self.n_fft) // self.hop_length

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one feature window: (2, n_mels, n_frames)."""
        return (2, self.n_mels, self.n_frames)

    def as_dict(self) -> dict:
        """Plain dict for the model card (JSON-safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> FeatureConfig:
        """Inverse of :meth:`as_dict`; every field is required, no extra keys.

        Raises ValueError naming the bad key.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"feature config must be a mapping, got {type(d).__name__}")
        names = {f.name: f for f in fields(cls)}
        for key in d:
            if key not in names:
                raise ValueError(f"unknown feature config key {key!r}; expected {sorted(names)}")
        kwargs: dict[str, Any] = {}
        for name, f in names.items():
            if name not in d:
                raise ValueError(f"feature config is missing key {name!r}")
            value = d[name]
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"feature config key {name!r} must be a number, got {value!r}")
            if f.type in ("int", int):
                if float(value) != int(value):
                    raise ValueError(f"feature config key {name!r} must be an integer, got {value!r}")
                kwargs[name] = int(value)
            else:
                if not math.isfinite(float(value)):
                    raise ValueError(f"feature config key {name!r} must be finite, got {value!r}")
                kwargs[name] = float(value)
        try:
            return cls(**kwargs)
        except FeatureError as exc:
            raise ValueError(str(exc)) from None


FEATURE_CONFIG = FeatureConfig()


def _hz_to_mel(f: ArrayLike) -> np.ndarray:
    """Slaney's mel scale (Auditory Toolbox; librosa ``hz_to_mel(htk=False)``): linear below 1 kHz, log above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3.0
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel` (librosa ``mel_to_hz(htk=False)``)."""
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@lru_cache(maxsize=8)
def mel_filterbank(config: FeatureConfig = FEATURE_CONFIG) -> np.ndarray:
    """Mel filterbank [n_mels, n_fft // 2 + 1] (float64, read-only), built once per config.

    The construction of ``librosa.filters.mel`` with the Slaney mel scale
    (``htk=False``) and Slaney area normalisation, between ``fmin_hz`` and
    ``fmax_hz``, written out in numpy so that serving never imports librosa
    (its import took 3.5 s of a 60 s render); the tests compare it with
    librosa's matrix.  Triangles between ``n_mels + 2`` mel-spaced edges,
    each scaled by ``2 / (right edge - left edge)`` in Hz.
    """
    freqs = np.fft.rfftfreq(config.n_fft, d=1.0 / config.sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(config.fmin_hz), _hz_to_mel(config.fmax_hz), config.n_mels + 2))
    fdiff = np.diff(edges)
    ramps = np.subtract.outer(edges, freqs)
    fb = np.zeros((config.n_mels, freqs.shape[0]), dtype=np.float64)
    for i in range(config.n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        fb[i] = np.maximum(0.0, np.minimum(lower, upper))
    fb *= (2.0 / (edges[2 : config.n_mels + 2] - edges[: config.n_mels]))[:, None]
    fb = np.ascontiguousarray(fb)
    fb.setflags(write=False)
    return fb


@lru_cache(maxsize=8)
def _mel_sparse(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The filterbank's non-zero run per band: (first bin [M], last bin + 1 [M], weights [M, widest run])."""
    fb = mel_filterbank(config)
    nz = fb > 0.0
    lo = np.array([int(np.argmax(r)) if r.any() else 0 for r in nz], dtype=np.int64)
    hi = np.array([int(len(r) - np.argmax(r[::-1])) if r.any() else 0 for r in nz], dtype=np.int64)
    width = int(max(1, (hi - lo).max()))
    w = np.zeros((fb.shape[0], width))
    for m in range(fb.shape[0]):
        w[m, : hi[m] - lo[m]] = fb[m, lo[m] : hi[m]]
    return lo, hi, w


@njit(cache=True, nogil=True)
def _mel_db_kernel(spec, lo, hi, w, eps, floor_db, out):  # pragma: no cover - jitted
    """``out[c, m, t] = max(10 log10(sum_k w[m, k] |spec[c, t, lo[m] + k]|^2 + eps), floor_db)``."""
    for c in range(spec.shape[0]):
        for t in range(spec.shape[1]):
            for m in range(lo.shape[0]):
                acc = 0.0
                for k in range(hi[m] - lo[m]):
                    z = spec[c, t, lo[m] + k]
                    acc += w[m, k] * (z.real * z.real + z.imag * z.imag)
                db = 10.0 * math.log10(acc + eps)
                out[c, m, t] = db if db > floor_db else floor_db


@lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    # periodic Hann (scipy.signal.get_window('hann', n, fftbins=True)), as librosa uses
    w = np.hanning(n_fft + 1)[:-1].astype(np.float64)
    w.setflags(write=False)
    return w


def input_window_frames(sample_rate: float, config: FeatureConfig = FEATURE_CONFIG) -> int:
    """Frames of input audio at ``sample_rate`` that make one window."""
    if not sample_rate > 0:
        raise FeatureError(f"sample_rate must be positive, got {sample_rate!r}")
    return int(round(config.window_s * float(sample_rate)))


def _as_audio(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] not in (1, 2):
        raise FeatureError(f"audio must have shape (frames, 1|2), got {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise FeatureError(f"audio must be float32 or float64, got {a.dtype}")
    return a


def window_from(
    audio: np.ndarray, end_frame: int, sample_rate: float, config: FeatureConfig = FEATURE_CONFIG
) -> np.ndarray:
    """The exact input samples one window ending at ``end_frame`` uses.

    Parameters
    ----------
    audio : np.ndarray [shape=(frames, channels)]
        float audio, 1 or 2 channels.
    end_frame : int
        the window covers ``audio[end_frame - W : end_frame]`` with
        ``W = input_window_frames(sample_rate, config)``; frames before 0 are zeros.
    sample_rate : float
        the rate of ``audio``.

    Returns
    -------
    np.ndarray [shape=(W, channels)], float64 (a new array).
    """
    a = _as_audio(audio)
    n = input_window_frames(sample_rate, config)
    end = int(end_frame)
    if not 0 <= end <= a.shape[0]:
        raise FeatureError(f"end_frame {end_frame} outside 0..{a.shape[0]}")
    out = np.zeros((n, a.shape[1]), dtype=np.float64)
    start = end - n
    if start >= 0:
        out[:] = a[start:end]
    else:
        out[-start:] = a[:end]
    return out


@njit(cache=True, nogil=True)
def _mid_side_kernel(win, out):  # pragma: no cover - jitted
    nch = win.shape[1]
    for n in range(win.shape[0]):
        l = np.float64(win[n, 0])
        r = np.float64(win[n, nch - 1])
        m = 0.5 * (l + r)
        s = 0.5 * (l - r)
        out[n, 0] = m if math.isfinite(m) else 0.0
        out[n, 1] = s if math.isfinite(s) else 0.0


def _mid_side(win: np.ndarray, dtype: DTypeLike = np.float64) -> np.ndarray:
    """[frames, 2] (mid, side) computed in float64, stored as ``dtype``; non-finite samples read as zero."""
    ms = np.empty((win.shape[0], 2), dtype=dtype)
    _mid_side_kernel(win, ms)
    return ms


def _resample(ms: np.ndarray, sample_rate: float, config: FeatureConfig) -> np.ndarray:
    """Resample [frames, 2] to ``config.sample_rate``; exactly ``window_samples`` long."""
    target = config.window_samples
    if float(sample_rate) != float(config.sample_rate):
        import soxr

        # soxr is deterministic: identical input gives identical output.  It is fed in chunks
        # (bit-identical to one soxr.resample call) because soxr keeps the GIL while it works: a
        # 3 s window in one call held it for ~1.7 ms, which the audio callback had to wait out.
        # float32: soxr's HQ engine computes in single precision, so float64 in gives the same output
        # (checked in the tests) at a fifth more work for the conversions
        ms = np.ascontiguousarray(ms, dtype=np.float32)
        stream = soxr.ResampleStream(
            float(sample_rate), float(config.sample_rate), ms.shape[1], dtype="float32", quality="HQ"
        )
        parts = []
        for i in range(0, ms.shape[0], _RESAMPLE_CHUNK):
            parts.append(stream.resample_chunk(ms[i : i + _RESAMPLE_CHUNK], last=i + _RESAMPLE_CHUNK >= ms.shape[0]))
        ms = np.concatenate(parts) if parts else ms[:0]  # float32; widened exactly by the window multiply
    if ms.shape[0] == target:
        return ms
    if ms.shape[0] > target:  # keep the most recent samples
        return ms[-target:]
    out = np.zeros((target, ms.shape[1]), dtype=ms.dtype)
    out[target - ms.shape[0] :] = ms
    return out


def _log_mel(ms: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """[window_samples, 2] -> float32 [2, n_mels, n_frames].

    One real FFT call for both channels' frames (the frames are strided views,
    windowed in one multiply), and the filterbank applied over its non-zero
    runs only (about 1 000 of its 33 000 entries) in a Numba kernel that also
    takes the power, the log and the floor: no BLAS call, so no BLAS thread
    pool spinning beside the audio thread.
    """
    n_fft, hop, n_frames = config.n_fft, config.hop_length, config.n_frames
    w = _hann(n_fft)
    x = np.ascontiguousarray(ms.T)  # [2, samples]
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(2, n_frames, n_fft), strides=(x.strides[0], hop * x.strides[1], x.strides[1]), writeable=False
    )
    spec = np.fft.rfft(frames * w, axis=-1)  # [2, T, F]
    lo, hi, wts = _mel_sparse(config)
    out = np.empty(config.shape, dtype=np.float32)
    _mel_db_kernel(spec, lo, hi, wts, _POWER_EPS, float(config.floor_db), out)
    return out


def extract_features(audio: np.ndarray, sample_rate: float, config: FeatureConfig = FEATURE_CONFIG) -> np.ndarray:
    """Log-mel mid/side features of the last ``window_s`` seconds of ``audio``.

    Parameters
    ----------
    audio : np.ndarray [shape=(frames, 1|2)]
        float32/float64 audio at ``sample_rate`` (mono is read as L = R).  A
        shorter buffer is zero-padded at the start; NaN/Inf read as zero.
    sample_rate : float
        rate of ``audio`` in Hz; resampled with soxr 'HQ' to ``config.sample_rate``.

    Returns
    -------
    np.ndarray [shape=(2, n_mels, n_frames)], float32: channel 0 mid, 1 side,
    in dB (``10 log10(mel power + 1e-10)``, floored at ``config.floor_db``).
    """
    a = _as_audio(audio)
    n = input_window_frames(sample_rate, config)
    # the window, cut first: its last n frames, zero-padded at the start when shorter (window_from)
    resampled = float(sample_rate) != float(config.sample_rate)
    ms = np.zeros((n, 2), dtype=np.float32 if resampled else np.float64)
    k = min(n, a.shape[0])
    if k:
        _mid_side_kernel(a[a.shape[0] - k :], ms[n - k :])
    ms = _resample(ms, sample_rate, config)
    return _log_mel(ms, config)


def extract_batch(
    audios: Sequence[np.ndarray], sample_rate: float, config: FeatureConfig = FEATURE_CONFIG
) -> np.ndarray:
    """:func:`extract_features` over a list: float32 [n, 2, n_mels, n_frames]."""
    out = np.empty((len(audios),) + config.shape, dtype=np.float32)
    for i, a in enumerate(audios):
        out[i] = extract_features(a, sample_rate, config)
    return out
