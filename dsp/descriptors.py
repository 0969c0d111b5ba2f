"""Long-term descriptors of a mix: what a reference, a profile and the matcher compare.

:class:`DescriptorAccumulator` takes audio block by block (any block size;
one call with a whole file is the offline case) and, when asked, returns
:class:`Descriptors`:

* **tonal balance, mid and side** — the long-term level in each of
  :data:`N_BANDS` 1/3-octave bands (IEC 61260-1 base-ten centres
  ``1000 * 10**(k/10)`` Hz, nominal 25 Hz .. 16 kHz, edges
  ``centre * 10**(+-1/20)``) of ``M = (L + R) / 2`` and ``S = (L - R) / 2``,
  in dB relative to the integrated loudness (``band mean square dB - LUFS``):
  a gain change leaves it unchanged; a +3 dB shelf moves the bands it covers
  by 3 dB.  With its **spread across time**: the standard deviation over the
  3 s segments of each segment's band level relative to that segment's own
  loudness (how much the balance moves within the piece).
* **width** — ``10 log10(E_S / E_M)`` (side/mid energy, dB) over the bands,
  and per band.  A width gain ``w`` on the side moves it by ``20 log10 w``.
* **loudness and dynamics** — integrated loudness (BS.1770-4), true peak,
  PLR = true peak - integrated loudness (peak-to-loudness ratio, dB),
  loudness range (EBU Tech 3342) and short-term loudness percentiles
  (:data:`ST_PERCENTILES`, relative to the integrated loudness), all from the
  project's :class:`dsp.meter.LoudnessMeter`.

How the spectrum is measured
----------------------------
Frames of :func:`frame_length` samples (``2**round(log2(0.37 fs))``: 16384
at 44.1/48 kHz, 2.7 Hz bins, so the 25 Hz band still spans two bins), hop
half a frame, periodic Hann window; the power of each rFFT bin is scaled so
that the bins of a frame sum to the frame's mean square (Parseval), and each
bin is shared between the bands its width overlaps (:func:`band_matrix`:
every bin's power lands in exactly one band or is split between two
neighbours, none is counted twice).  Frames are grouped into segments of
:data:`SEGMENT_SECONDS` (the EBU short-term window); each segment's loudness
is measured spectrally (the BS.1770-4 K-weighting's magnitude response
applied to the bins, ``L = -0.691 + 10 log10(E_L + E_R)``).  The long-term
spectrum is the energy mean over the segments that pass the gates of the
loudness range (absolute -70 LUFS, relative -20 LU below the integrated
loudness), each weighted by its number of frames, so that silence and fades
do not tilt the balance.

Mono input (one channel) is measured as identical left and right: its side
is empty, its side levels and widths sit at their floors
(:data:`LEVEL_FLOOR_DB`, :data:`WIDTH_FLOOR_DB`).  Bands whose upper edge is
above Nyquist are NaN (only below 36 kHz sampling).

Cost and threads
----------------
``update`` runs the loudness meter's Numba kernel over the block and one
batched FFT per completed hop (~0.19 s of audio at 44.1 kHz; the mid and the
side frames in one rFFT call, the bin powers summed into the bands by
:func:`_band_powers`, at most two adjacent bands a bin); it allocates
(it is meant for a worker thread, never the audio callback).  Measured on
the 2-core development machine under load: about 3 ms per 0.5 s of 44.1 kHz
stereo (median; under 1 % of a core), and ``descriptors()`` about 0.25 ms
after two minutes: it reads the meter's histograms and reduces the stored
segments (one row of ``2 * N_BANDS + 3`` numbers per 3 s, about 1 MB per 14
hours), so it is cheap to call every hop.  A whole file: about 0.15-0.2 s
per minute of 48 kHz stereo (0.35-0.45 s before issue 19, same run).  Pure numpy; no file I/O; nothing here imports the
real-time layer.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .meter import LoudnessMeter, k_weighting_coeffs
from .oversample import TP_TAPS
from .spec import ProcessSpec

__all__ = [
    "BAND_CENTRES_HZ",
    "BAND_LOWER_HZ",
    "BAND_NOMINAL_HZ",
    "BAND_UPPER_HZ",
    "LEVEL_FLOOR_DB",
    "N_BANDS",
    "SEGMENT_SECONDS",
    "ST_PERCENTILES",
    "WIDTH_CEIL_DB",
    "WIDTH_FLOOR_DB",
    "DescriptorAccumulator",
    "Descriptors",
    "band_matrix",
    "compute_descriptors",
    "frame_length",
    "k_weighting_power",
]

#: nominal 1/3-octave centres (IEC 61260-1 / ISO 266 labels), 25 Hz .. 16 kHz
BAND_NOMINAL_HZ = (
    25.0, 31.5, 40.0, 50.0, 63.0, 80.0, 100.0, 125.0, 160.0, 200.0, 250.0, 315.0, 400.0, 500.0, 630.0,
    800.0, 1000.0, 1250.0, 1600.0, 2000.0, 2500.0, 3150.0, 4000.0, 5000.0, 6300.0, 8000.0, 10000.0,
    12500.0, 16000.0,
)  # fmt: skip
_BAND_INDEX = np.arange(-16, 13)  # base-ten band numbers relative to 1 kHz
#: exact centres ``1000 * 10**(k/10)`` Hz (IEC 61260-1 base ten)
BAND_CENTRES_HZ = 1000.0 * 10.0 ** (_BAND_INDEX / 10.0)
BAND_LOWER_HZ = BAND_CENTRES_HZ * 10.0 ** (-1.0 / 20.0)
BAND_UPPER_HZ = BAND_CENTRES_HZ * 10.0 ** (1.0 / 20.0)
N_BANDS = len(BAND_NOMINAL_HZ)

SEGMENT_SECONDS = 3.0  # EBU Tech 3341 short-term window
FRAME_SECONDS = 0.37  # FFT frame, rounded to a power of two of samples
#: short-term loudness percentiles kept (relative to the integrated loudness); 10 and 95 give the LRA
ST_PERCENTILES = (10.0, 50.0, 90.0, 95.0)
LEVEL_FLOOR_DB = -120.0  # relative band levels never go below this (an empty band)
WIDTH_FLOOR_DB = -60.0  # side/mid ratio floor: "mono" (no side at all)
WIDTH_CEIL_DB = 40.0  # side/mid ratio ceiling: "all side" (polarity-inverted channels)
_LRA_GATE_LU = -20.0  # EBU Tech 3342 relative gate, used for the spectral segments too
_ABS_GATE_LUFS = -70.0
_LOUDNESS_OFFSET_DB = -0.691  # BS.1770-4 eq. 2


def frame_length(sample_rate: float) -> int:
    """FFT frame of the spectral measurement: ``2**round(log2(0.37 * fs))`` (16384 at 44.1/48 kHz)."""
    return 1 << int(round(math.log2(FRAME_SECONDS * sample_rate)))


def band_matrix(sample_rate: float, n_fft: int) -> np.ndarray:
    """Weights ``[N_BANDS, n_fft // 2 + 1]`` that sum rFFT bin powers into the 1/3-octave bands.

    Bin ``k`` stands for the interval ``[(k - 1/2) df, (k + 1/2) df)`` with
    ``df = fs / n_fft``; its weight in a band is the part of that interval
    inside the band's edges, so adjacent bands share a straddling bin and a
    bin's power is never counted twice.  Rows of bands above Nyquist are 0.
    """
    df = sample_rate / n_fft
    k = np.arange(n_fft // 2 + 1)
    lo_bin = (k - 0.5) * df
    hi_bin = (k + 0.5) * df
    overlap = np.minimum(hi_bin[None, :], BAND_UPPER_HZ[:, None]) - np.maximum(lo_bin[None, :], BAND_LOWER_HZ[:, None])
    w = np.clip(overlap / df, 0.0, 1.0)
    w[BAND_UPPER_HZ >= sample_rate / 2.0] = 0.0
    return w


def k_weighting_power(freqs_hz: np.ndarray, sample_rate: float) -> np.ndarray:
    """``|H_K(f)|**2`` of the BS.1770-4 K-weighting (both stages, :func:`dsp.meter.k_weighting_coeffs`)."""
    z = np.exp(-1j * 2.0 * np.pi * np.asarray(freqs_hz, dtype=np.float64) / sample_rate)
    h = np.ones_like(z)
    for b0, b1, b2, a1, a2 in k_weighting_coeffs(sample_rate):
        h *= (b0 + b1 * z + b2 * z * z) / (1.0 + a1 * z + a2 * z * z)
    return np.abs(h) ** 2


def _db(x: np.ndarray | float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return _db_raw(x)


def _db_raw(x: np.ndarray | float) -> np.ndarray:
    """:func:`_db` for a caller already inside ``np.errstate(divide="ignore")``."""
    return 10.0 * np.log10(np.asarray(x, dtype=np.float64))


def band_pairs(bands: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`band_matrix` as per-bin pairs: ``(first band or -1, its weight, the next band's weight)``.

    A bin overlaps at most two adjacent bands (the narrowest band, 25 Hz, is 5.8 Hz wide; bins are at
    most ``fs / frame_length(fs) < 3.9`` Hz wide); raises ``ValueError`` otherwise.
    """
    n_bands, bins = bands.shape
    on = bands != 0.0
    count = on.sum(axis=0)
    k = np.arange(bins)
    lo = np.where(count > 0, np.argmax(on, axis=0), -1).astype(np.int64)
    nxt = np.minimum(lo + 1, n_bands - 1)
    w_lo = np.where(lo >= 0, bands[np.maximum(lo, 0), k], 0.0)
    w_hi = np.where((lo >= 0) & (lo + 1 < n_bands), bands[nxt, k], 0.0)
    bad = (count > 2) | ((count == 2) & (w_hi == 0.0))
    if np.any(bad):
        raise ValueError(f"bin {int(np.argmax(bad))} overlaps more than two adjacent bands")
    return lo, w_lo, w_hi


@functools.lru_cache(maxsize=8)
def _tables(sample_rate: float, n_fft: int) -> tuple[np.ndarray, ...]:
    """The accumulator's read-only tables for a rate: window, bin scale, band matrix and pairs, K power."""
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    # Parseval: sum of the full spectrum |X|^2 = n_fft * sum (w x)^2; mean square = sum (w x)^2 / sum w^2
    scale = np.full(n_fft // 2 + 1, 2.0 / (n_fft * float(np.sum(win * win))))
    scale[0] *= 0.5
    scale[-1] *= 0.5
    bands = band_matrix(sample_rate, n_fft)  # [N_BANDS, bins]
    kpow = k_weighting_power(np.fft.rfftfreq(n_fft, 1.0 / sample_rate), sample_rate)
    out = (win, scale, bands, *band_pairs(bands), kpow)
    for a in out:
        a.flags.writeable = False
    return out


@njit(cache=True, nogil=True)
def _band_powers(
    spec: np.ndarray,
    scale: np.ndarray,
    lo: np.ndarray,
    w_lo: np.ndarray,
    w_hi: np.ndarray,
    kpow: np.ndarray,
    bands: np.ndarray,
    kk: np.ndarray,
) -> None:  # pragma: no cover - jitted
    """Band mean squares of rFFT rows: ``bands[r] = (|spec[r]|^2 scale) @ band_matrix.T`` (via the pairs).

    ``spec`` [2n, bins]: n mid rows, then n side rows; ``bands`` [2n, N_BANDS] is overwritten;
    ``kk[j]`` = K-weighted ``2 (p_mid + p_side) . kpow`` of frame ``j < n`` (``L^2 + R^2 = 2 (M^2 + S^2)``).
    """
    rows = spec.shape[0]
    half = rows // 2
    n_bands = bands.shape[1]
    for j in range(half):
        kk[j] = 0.0
    for r in range(rows):
        for b in range(n_bands):
            bands[r, b] = 0.0
        kacc = 0.0
        for k in range(spec.shape[1]):
            v = spec[r, k]
            p = (v.real * v.real + v.imag * v.imag) * scale[k]
            kacc += p * kpow[k]
            b = lo[k]
            if b >= 0:
                bands[r, b] += w_lo[k] * p
                if w_hi[k] != 0.0:
                    bands[r, b + 1] += w_hi[k] * p
        kk[r % half] += 2.0 * kacc


def mid_side(x: np.ndarray) -> np.ndarray:
    """``[M, S]`` [2, frames] of a float64 [frames, 2] block: ``(L + R) / 2`` and ``(L - R) / 2``."""
    ms = np.empty((2, x.shape[0]))
    np.add(x[:, 0], x[:, 1], out=ms[0])
    np.subtract(x[:, 0], x[:, 1], out=ms[1])
    ms *= 0.5
    return ms


@dataclass(frozen=True)
class Descriptors:
    """What :class:`DescriptorAccumulator` measured (module docstring for the definitions).

    Arrays are ``[N_BANDS]`` float64 in the order of :data:`BAND_NOMINAL_HZ`;
    NaN marks a band above Nyquist, or every band when nothing passed the
    gates (silence, or less than one FFT frame).  Loudness readouts are
    ``-inf`` (and the relative ones NaN) when nothing was measured.
    """

    sample_rate: float
    duration_s: float  # audio seen
    segments: int  # 3 s segments that passed the gates (the partial last one included)
    integrated_lufs: float
    true_peak_dbtp: float
    plr_db: float  # true peak - integrated loudness
    lra_lu: float
    st_percentiles_lu: np.ndarray  # [len(ST_PERCENTILES)] short-term loudness percentile - integrated
    mid_db: np.ndarray  # band level of M, dB re the integrated loudness
    side_db: np.ndarray  # band level of S, dB re the integrated loudness
    mid_spread_db: np.ndarray  # std over segments of (segment band level - segment loudness)
    side_spread_db: np.ndarray
    width_db: float  # side/mid energy over the bands, dB
    width_band_db: np.ndarray  # side/mid energy per band, dB
    bands_hz: tuple = field(default=BAND_NOMINAL_HZ)

    @property
    def silent(self) -> bool:
        """True when nothing passed the loudness gates (digital silence, or under 0.4 s of audio)."""
        return not math.isfinite(self.integrated_lufs)

    def as_dict(self) -> dict:
        """JSON-ready dict (NaN and infinities as ``None``)."""

        def clean(v):
            if isinstance(v, np.ndarray):
                return [clean(float(a)) for a in v]
            if isinstance(v, float):
                return round(v, 4) if math.isfinite(v) else None
            return v

        return {k: clean(getattr(self, k)) for k in self.__dataclass_fields__}


class DescriptorAccumulator:
    """Running long-term descriptors, updated block by block (module docstring).

    Parameters
    ----------
    sample_rate : float
        Hz (8 kHz .. 192 kHz).
    channels : int
        1 (measured as identical left/right) or 2.

    Notes
    -----
    Call :meth:`update` with consecutive blocks, :meth:`descriptors` whenever
    a readout is wanted (it does not disturb the running state),
    :meth:`flush` once at the end of a file (evaluates the last inter-sample
    peaks), :meth:`reset` to start over.  Not thread-safe: one thread updates
    and reads (e.g. the AI worker).
    """

    def __init__(self, sample_rate: float, channels: int = 2) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        self._spec = ProcessSpec(sample_rate=sample_rate, max_block_size=1 << 16, num_channels=2)
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.n_fft = frame_length(sample_rate)
        self.hop = self.n_fft // 2
        self.frames_per_segment = max(1, int(round(SEGMENT_SECONDS * sample_rate / self.hop)))
        win, scale, bands, lo, w_lo, w_hi, kpow = _tables(self.sample_rate, self.n_fft)  # shared, read-only
        self._win = win
        self._bin_scale = scale
        self._bands = bands
        self._pairs = (lo, w_lo, w_hi)
        self._kpow = kpow
        self._batch = max(1, (1 << 19) // self.n_fft)  # frames per FFT call (32 at 44.1/48 kHz: 8 MB of windows)
        self._work = np.empty((2 * self._batch, self.n_fft))  # windowed mid frames, then side frames
        self._band_work = np.empty((2 * self._batch, N_BANDS))
        self._k_work = np.empty(self._batch)
        self._valid = BAND_UPPER_HZ < sample_rate / 2.0
        self._meter = LoudnessMeter(self._spec)
        self.reset()

    # -- state ---------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything measured."""
        self._meter.reset()
        self._tail = np.zeros((2, 0))  # M, S samples not yet in a complete frame
        self._samples = 0
        cap = 64
        self._seg_mid = np.zeros((cap, N_BANDS))
        self._seg_side = np.zeros((cap, N_BANDS))
        self._seg_k = np.zeros(cap)
        self._seg_frames = np.zeros(cap, dtype=np.int64)
        self._n_seg = 0  # complete segments stored
        self._cur_mid = np.zeros(N_BANDS)
        self._cur_side = np.zeros(N_BANDS)
        self._cur_k = 0.0
        self._cur_frames = 0

    @property
    def seconds(self) -> float:
        """Audio seen since the last reset, s."""
        return self._samples / self.sample_rate

    # -- input ---------------------------------------------------------------

    def update(self, block: np.ndarray) -> None:
        """Measure the next ``block`` [frames, channels] or [frames] (any real dtype; NaN/Inf measured as 0)."""
        x = self.prepare_block(block)
        if x.shape[0]:
            self.update_prepared(x, mid_side(x), self.peak_work(x.shape[0]), False)

    def prepare_block(self, block: np.ndarray) -> np.ndarray:
        """``block`` as :meth:`update` measures it: float64 [frames, 2], non-finite samples 0, mono doubled."""
        x = np.asarray(block)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"block must be [frames, {self.channels}] (or [frames] for mono), got {x.shape}")
        x = x.astype(np.float64, copy=False)
        if x.shape[0] and not np.isfinite(x).all():  # a copy only when there is something to replace
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        if self.channels == 1:
            x = np.repeat(x, 2, axis=1)
        return x

    def peak_work(self, frames: int) -> np.ndarray:
        """Room for the true peaks of each meter chunk of a block of ``frames`` ([chunks, 2])."""
        return np.empty((-(-frames // self._spec.max_block_size), 2))

    @property
    def frames_seen(self) -> int:
        """Frames measured since the last reset."""
        return self._samples

    def peaks_shareable(self, source: DescriptorAccumulator) -> bool:
        """Whether this accumulator may take the true peaks ``source`` writes for the next block
        (:meth:`update_prepared`, asked before either is fed it): the interpolators' histories are alike --
        this one has seen at least ``TP_TAPS`` frames since its reset and ``source`` saw all of those (both
        are fed the same stream, ``source`` from no later)."""
        return self._samples >= TP_TAPS and source._samples >= self._samples

    def peak_floor(self, sharers: list) -> np.ndarray:
        """The floor of the true peaks this accumulator computes for itself and ``sharers`` (the lowest of
        their true peaks so far, per channel; see :meth:`update_prepared`)."""
        floor = np.full(2, np.inf)
        self._meter.lower_peak_floor(floor)
        for acc in sharers:
            acc._meter.lower_peak_floor(floor)
        return floor

    def update_prepared(
        self, x: np.ndarray, ms: np.ndarray, peaks: np.ndarray, given: bool, floor: np.ndarray | None = None
    ) -> None:
        """:meth:`update` with the per-block work shared between accumulators fed the same samples
        (:class:`inference.matcher.RunningStats`; the same state afterwards as :meth:`update`, bit for bit).

        ``x``: :meth:`prepare_block`'s array (frames > 0); ``ms``: :func:`mid_side` of it; ``peaks`` [chunks, 2]
        (:meth:`peak_work`): with ``given`` False this accumulator's meter writes each chunk's true peaks
        there, exact above ``floor`` (:meth:`peak_floor` of the accumulators that take them; default its own
        true peak so far); with ``given`` True it takes them (only where :meth:`peaks_shareable` says so).
        """
        step = self._spec.max_block_size
        for i, start in enumerate(range(0, x.shape[0], step)):
            self._meter.process_sharing_peaks(x[start : start + step], peaks[i], given, floor)
        self._samples += x.shape[0]
        data = np.concatenate([self._tail, ms], axis=1) if self._tail.shape[1] else ms
        n = self.n_fft
        if data.shape[1] < n:
            self._tail = data if data is not ms else ms.copy()
            return
        count = (data.shape[1] - n) // self.hop + 1
        batch = self._batch
        for i in range(0, count, batch):
            k = min(count, i + batch) - i
            work = self._work[: 2 * k]
            for j in range(k):  # the windowed mid frames, then the side frames
                s0 = (i + j) * self.hop
                np.multiply(data[0, s0 : s0 + n], self._win, out=work[j])
                np.multiply(data[1, s0 : s0 + n], self._win, out=work[k + j])
            self._frames(k)
        self._tail = data[:, count * self.hop :].copy()

    def _frames(self, nf: int) -> None:
        """Band powers of the ``nf`` windowed mid and side frames in ``self._work`` into the segments."""
        work = self._work[: 2 * nf]
        spec = np.fft.rfft(work, axis=1)  # one call for the mid and the side frames
        both = self._band_work[: 2 * nf]
        kk = self._k_work[:nf]
        # band mean squares of M and S (Parseval-scaled bin powers shared between bands, band_matrix);
        # K-weighted L^2 + R^2 = 2 (M^2 + S^2): BS.1770-4 eq. 2 with G_L = G_R = 1
        _band_powers(spec, self._bin_scale, *self._pairs, self._kpow, both, kk)
        bm = both[:nf]
        bs = both[nf:]
        for j in range(bm.shape[0]):
            self._cur_mid += bm[j]
            self._cur_side += bs[j]
            self._cur_k += kk[j]
            self._cur_frames += 1
            if self._cur_frames == self.frames_per_segment:
                self._push_segment()

    def _push_segment(self) -> None:
        if self._n_seg == self._seg_k.shape[0]:
            grow = self._seg_k.shape[0]
            self._seg_mid = np.concatenate([self._seg_mid, np.zeros((grow, N_BANDS))])
            self._seg_side = np.concatenate([self._seg_side, np.zeros((grow, N_BANDS))])
            self._seg_k = np.concatenate([self._seg_k, np.zeros(grow)])
            self._seg_frames = np.concatenate([self._seg_frames, np.zeros(grow, dtype=np.int64)])
        i = self._n_seg
        f = self._cur_frames
        self._seg_mid[i] = self._cur_mid / f
        self._seg_side[i] = self._cur_side / f
        self._seg_k[i] = self._cur_k / f
        self._seg_frames[i] = f
        self._n_seg += 1
        self._cur_mid[:] = 0.0
        self._cur_side[:] = 0.0
        self._cur_k = 0.0
        self._cur_frames = 0

    def flush(self) -> None:
        """End of a file: evaluate the inter-sample peaks after the last sample (the meter's flush)."""
        self._meter.flush_true_peak()

    # -- readout -------------------------------------------------------------

    def descriptors(self) -> Descriptors:
        """The descriptors of everything since the last reset (does not change the running state)."""
        with np.errstate(divide="ignore"):  # once here: _db's own costs ~5 us per call (issue 19)
            return self._descriptors()

    def _descriptors(self) -> Descriptors:
        # integrated, true peak, LRA and the short-term percentiles in one kernel (the values of the meter's
        # readouts one by one, tested; issue 19)
        integrated, lra, tp, st = self._meter.summary(ST_PERCENTILES)
        finite = math.isfinite(integrated)
        with np.errstate(invalid="ignore"):
            st_rel = np.where(np.isfinite(st), st - integrated, np.nan) if finite else np.full(st.shape, np.nan)

        seg_mid = self._seg_mid[: self._n_seg]
        seg_side = self._seg_side[: self._n_seg]
        seg_k = self._seg_k[: self._n_seg]
        seg_f = self._seg_frames[: self._n_seg]
        if self._cur_frames:
            f = self._cur_frames
            seg_mid = np.vstack([seg_mid, self._cur_mid / f])
            seg_side = np.vstack([seg_side, self._cur_side / f])
            seg_k = np.append(seg_k, self._cur_k / f)
            seg_f = np.append(seg_f, f)
        seg_lufs = _LOUDNESS_OFFSET_DB + _db_raw(seg_k)
        keep = seg_lufs > _ABS_GATE_LUFS
        if finite:
            keep &= seg_lufs >= integrated + _LRA_GATE_LU
        if finite and not np.any(keep):  # a short burst the 0.37 s frames did not isolate: use what is not silent
            keep = seg_k > 0.0
        nan_bands = np.full(N_BANDS, np.nan)
        if not finite or not np.any(keep):
            return Descriptors(
                sample_rate=self.sample_rate,
                duration_s=self.seconds,
                segments=0,
                integrated_lufs=integrated,
                true_peak_dbtp=tp,
                plr_db=tp - integrated if finite and math.isfinite(tp) else math.nan,
                lra_lu=lra,
                st_percentiles_lu=st_rel,
                mid_db=nan_bands,
                side_db=nan_bands.copy(),
                mid_spread_db=nan_bands.copy(),
                side_spread_db=nan_bands.copy(),
                width_db=math.nan,
                width_band_db=nan_bands.copy(),
            )
        w = seg_f[keep].astype(np.float64)
        mid_ms = (w @ seg_mid[keep]) / w.sum()
        side_ms = (w @ seg_side[keep]) / w.sum()
        mid_db = np.maximum(_db_raw(mid_ms) - integrated, LEVEL_FLOOR_DB)
        side_db = np.maximum(_db_raw(side_ms) - integrated, LEVEL_FLOOR_DB)
        width_band = np.clip(_db_raw(side_ms) - _db_raw(np.maximum(mid_ms, 1e-300)), WIDTH_FLOOR_DB, WIDTH_CEIL_DB)
        width_band[(side_ms <= 0.0) & (mid_ms <= 0.0)] = WIDTH_FLOOR_DB
        em, es = float(np.sum(mid_ms[self._valid])), float(np.sum(side_ms[self._valid]))
        if em > 0.0:
            width = float(np.clip(10.0 * math.log10(max(es, 1e-300) / em), WIDTH_FLOOR_DB, WIDTH_CEIL_DB))
        else:
            width = WIDTH_CEIL_DB if es > 0.0 else WIDTH_FLOOR_DB

        # spread across time: full-enough segments only (a partial last segment is noisier)
        full = keep & (seg_f * 2 >= self.frames_per_segment)
        if np.count_nonzero(full) >= 2:
            rel_m = np.maximum(_db_raw(seg_mid[full]) - seg_lufs[full, None], LEVEL_FLOOR_DB)
            rel_s = np.maximum(_db_raw(seg_side[full]) - seg_lufs[full, None], LEVEL_FLOOR_DB)
            mid_spread, side_spread = rel_m.std(axis=0), rel_s.std(axis=0)
        else:
            mid_spread, side_spread = np.zeros(N_BANDS), np.zeros(N_BANDS)
        inv = ~self._valid
        for a in (mid_db, side_db, width_band, mid_spread, side_spread):
            a[inv] = np.nan
        return Descriptors(
            sample_rate=self.sample_rate,
            duration_s=self.seconds,
            segments=int(np.count_nonzero(keep)),
            integrated_lufs=integrated,
            true_peak_dbtp=tp,
            plr_db=tp - integrated,
            lra_lu=lra,
            st_percentiles_lu=st_rel,
            mid_db=mid_db,
            side_db=side_db,
            mid_spread_db=mid_spread,
            side_spread_db=side_spread,
            width_db=width,
            width_band_db=width_band,
        )


def compute_descriptors(x: np.ndarray, sample_rate: float) -> Descriptors:
    """Descriptors of a whole buffer ``x`` [frames] or [frames, 1 or 2] (offline: one update, then flush)."""
    a = np.asarray(x)
    acc = DescriptorAccumulator(sample_rate, 1 if a.ndim == 1 else a.shape[1])
    acc.update(a)
    acc.flush()
    return acc.descriptors()
