"""Self-supervised training pairs for the target-conditioned model, synthesised from cached frame statistics.

::

    python -m mixpilot.training.target_data [--corpus DIR] [--splits train,validation] [--workers 2]

**Why frames, not audio.** The model (:mod:`inference.target_model`) reads
long-term descriptors (:mod:`dsp.descriptors`: 1/3-octave mid/side levels re
the integrated loudness, side/mid width), not audio.  The DeepAFx-ST recipe
(two excerpts of one track, a random style on both, a random fault on one)
changes those descriptors in a way that can be computed without touching the
audio again, as long as the processing is linear and time-invariant within a
frame: an EQ multiplies every frame's band power by the band's power gain, a
width gain multiplies the side, a level gain everything.  So each track of
the corpus is decoded **once** (:func:`cache_corpus`) into the statistics the
:class:`~dsp.descriptors.DescriptorAccumulator` keeps per frame — for each
0.37 s frame (16384 samples at 44.1 kHz, hop half a frame, periodic Hann,
Parseval scaling: the accumulator's own definitions) the mid and side power
in each of the 29 bands, the same powers K-weighted (BS.1770-4, for the
loudness), and the K-weighted power outside the bands — about 0.5 kB per
frame, 40 MB for the whole corpus; and any number of pairs is then made in
microseconds each (:func:`synth_descriptors`).

What the frame synthesis approximates (measured in ``tests/training``):
the integrated loudness is gated over the 0.37 s frames instead of the
meter's 0.4 s blocks; an EQ acts on a band as its mean power gain over the
band (7 log-spaced points; the EQs here are smooth over a third of an
octave); a compressor is modelled as a per-frame static gain on the frame's
loudness (no attack/release inside a frame); peaks (PLR) and the limiter are
not synthesised at all.  Against :func:`dsp.descriptors.compute_descriptors`
of the same audio the identity synthesis reads the mid and side band levels
within a few hundredths of a dB.

Cache: ``DIR/target_cache/v1/SHA24.npz`` per track (resumable), tracks
resampled to 44.1 kHz first (soxr HQ), as the evaluation cases are.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixpilot.dsp.descriptors import (
    BAND_LOWER_HZ,
    BAND_UPPER_HZ,
    LEVEL_FLOOR_DB,
    N_BANDS,
    WIDTH_CEIL_DB,
    WIDTH_FLOOR_DB,
    band_matrix,
    frame_length,
    k_weighting_power,
)

__all__ = [
    "CACHE_VERSION",
    "HIGH_SHELF",
    "LOW_SHELF",
    "PEAK",
    "SAMPLE_RATE",
    "smoke_stats",
    "FrameStats",
    "SynthDescriptors",
    "band_power_gain",
    "cache_corpus",
    "frame_stats",
    "load_cache",
    "rbj_power",
    "synth_descriptors",
]

CACHE_VERSION = 1
SAMPLE_RATE = 44100
_LOUDNESS_OFFSET_DB = -0.691
_ABS_GATE_LUFS = -70.0
_REL_GATE_LU = -10.0  # BS.1770-4 relative gate of the integrated loudness
_LRA_GATE_LU = -20.0  # the descriptors' segment gate
SEGMENT_SECONDS = 3.0
POINTS_PER_BAND = 7
#: frequencies (Hz) at which each band's mean power gain is taken: [N_BANDS, POINTS_PER_BAND]
BAND_POINTS_HZ = np.exp(
    np.linspace(np.log(BAND_LOWER_HZ), np.log(BAND_UPPER_HZ), POINTS_PER_BAND + 2)[1:-1].T
)  # fmt: skip
#: where the power outside the bands (below 22 Hz, above 17.8 kHz) is given an EQ's gain
OOB_POINTS_HZ = (15.0, 19000.0)


@dataclass
class FrameStats:
    """Per-frame statistics of one track (module docstring); arrays are float32, one row per frame."""

    pm: np.ndarray  # [n, N_BANDS] mid band power (mean square)
    ps: np.ndarray  # [n, N_BANDS] side band power
    km: np.ndarray  # [n, N_BANDS] K-weighted mid band power
    ks: np.ndarray  # [n, N_BANDS] K-weighted side band power
    koob: np.ndarray  # [n, 4] K-weighted power outside the bands: mid low, mid high, side low, side high
    hop_s: float

    @property
    def frames(self) -> int:
        return int(self.pm.shape[0])


def frame_stats(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> FrameStats:
    """The per-frame statistics of ``x`` [frames, 2] (or [frames]) as the descriptor accumulator frames it."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = np.stack([a, a], axis=1)
    n_fft = frame_length(sample_rate)
    hop = n_fft // 2
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    scale = np.full(n_fft // 2 + 1, 2.0 / (n_fft * float(np.sum(win * win))))
    scale[0] *= 0.5
    scale[-1] *= 0.5
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    bands = band_matrix(sample_rate, n_fft)  # [N_BANDS, bins]
    kpow = k_weighting_power(freqs, sample_rate)
    bt = np.ascontiguousarray(bands.T)
    kbt = bt * kpow[:, None]
    rest = np.clip(1.0 - bands.sum(axis=0), 0.0, 1.0) * kpow
    low = freqs < BAND_LOWER_HZ[0] * 1.5
    oob = np.stack([rest * low, rest * ~low], axis=1)  # [bins, 2]
    mid = 0.5 * (a[:, 0] + a[:, 1])
    side = 0.5 * (a[:, 0] - a[:, 1])
    count = 0 if a.shape[0] < n_fft else (a.shape[0] - n_fft) // hop + 1
    out = {k: np.zeros((count, N_BANDS), np.float32) for k in ("pm", "ps", "km", "ks")}
    koob = np.zeros((count, 4), np.float32)
    if count:
        vm = np.lib.stride_tricks.sliding_window_view(mid, n_fft)[::hop][:count]
        vs = np.lib.stride_tricks.sliding_window_view(side, n_fft)[::hop][:count]
        for i in range(0, count, 64):
            fm = np.fft.rfft(vm[i : i + 64] * win, axis=1)
            fs = np.fft.rfft(vs[i : i + 64] * win, axis=1)
            pm = (fm.real**2 + fm.imag**2) * scale
            ps = (fs.real**2 + fs.imag**2) * scale
            out["pm"][i : i + 64] = pm @ bt
            out["ps"][i : i + 64] = ps @ bt
            out["km"][i : i + 64] = pm @ kbt
            out["ks"][i : i + 64] = ps @ kbt
            koob[i : i + 64, :2] = pm @ oob
            koob[i : i + 64, 2:] = ps @ oob
    return FrameStats(out["pm"], out["ps"], out["km"], out["ks"], koob, hop / sample_rate)


# ---------------------------------------------------------------------------
# EQ power responses (RBJ cookbook, as pedalboard's JUCE filters and our chain use them)

LOW_SHELF, PEAK, HIGH_SHELF = 0, 1, 2


def rbj_power(kind: int, f0_hz: float, gain_db: float, q: float, freqs_hz: np.ndarray, sr: float) -> np.ndarray:
    """``|H(f)|**2`` of an RBJ low shelf / peak / high shelf (gain_db, Q) at ``freqs_hz`` (closed form)."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * f0_hz / sr
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / (2.0 * q)
    if kind == PEAK:
        b = (1.0 + alpha * a, -2.0 * cw, 1.0 - alpha * a)
        d = (1.0 + alpha / a, -2.0 * cw, 1.0 - alpha / a)
    else:
        s = 2.0 * math.sqrt(a) * alpha
        if kind == LOW_SHELF:
            b = (a * ((a + 1) - (a - 1) * cw + s), 2 * a * ((a - 1) - (a + 1) * cw), a * ((a + 1) - (a - 1) * cw - s))
            d = ((a + 1) + (a - 1) * cw + s, -2 * ((a - 1) + (a + 1) * cw), (a + 1) + (a - 1) * cw - s)
        else:
            b = (a * ((a + 1) + (a - 1) * cw + s), -2 * a * ((a - 1) + (a + 1) * cw), a * ((a + 1) + (a - 1) * cw - s))
            d = ((a + 1) - (a - 1) * cw + s, 2 * ((a - 1) - (a + 1) * cw), (a + 1) - (a - 1) * cw - s)
    z = np.exp(-1j * 2.0 * math.pi * np.asarray(freqs_hz, np.float64) / sr)
    h = (b[0] + b[1] * z + b[2] * z * z) / (d[0] + d[1] * z + d[2] * z * z)
    return np.abs(h) ** 2


def band_power_gain(filters: Sequence[tuple[int, float, float, float]], sr: float = SAMPLE_RATE):
    """Mean power gain per band ``[N_BANDS]`` and outside the bands ``[2]`` of a cascade of RBJ filters.

    ``filters``: ``(kind, f0_hz, gain_db, q)`` each; a 0 dB filter is the identity.
    """
    pts = BAND_POINTS_HZ.ravel()
    p = np.ones(pts.shape)
    po = np.ones(2)
    for kind, f0, g, q in filters:
        if g != 0.0:
            p *= rbj_power(kind, f0, g, q, pts, sr)
            po *= rbj_power(kind, f0, g, q, np.array(OOB_POINTS_HZ), sr)
    return p.reshape(N_BANDS, POINTS_PER_BAND).mean(axis=1), po


# ---------------------------------------------------------------------------
# descriptors of a processed excerpt, from its frames


@dataclass
class SynthDescriptors:
    """The descriptors :mod:`inference.target_model` reads, synthesised (same definitions as :class:`Descriptors`)."""

    mid_db: np.ndarray
    side_db: np.ndarray
    width_band_db: np.ndarray
    width_db: float
    integrated_lufs: float
    duration_s: float
    mid_spread_db: np.ndarray | None = None  # std over full 3 s segments of (segment band level - segment loudness)
    side_spread_db: np.ndarray | None = None
    #: per full kept 3 s segment (in time order): band level re the segment's loudness, mid and side
    #: [k, N_BANDS], and the segment's loudness re the integrated loudness [k] (the segment cue,
    #: :mod:`training.target_segments`; the accumulator keeps the same segments)
    seg_mid_db: np.ndarray | None = None
    seg_side_db: np.ndarray | None = None
    seg_level_db: np.ndarray | None = None


def _db(x):
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.asarray(x, dtype=np.float64))


def synth_descriptors(
    st: FrameStats,
    start: int,
    count: int,
    *,
    eq_gain: np.ndarray | None = None,
    oob_gain: np.ndarray | None = None,
    width: float = 1.0,
    level_db: float = 0.0,
    comp: tuple[float, float] | None = None,
    cue_segment_s: float = SEGMENT_SECONDS,
) -> SynthDescriptors:
    """Descriptors of frames ``start .. start+count`` after an EQ (band power gains), a width, a level and a compressor.

    ``comp = (threshold_lufs, ratio)``: each frame's gain is the static curve on its K-weighted loudness
    after EQ, width and level (the frame-rate model of the module docstring).
    """
    sl = slice(start, start + count)
    pm, ps, km, ks, ko = st.pm[sl], st.ps[sl], st.km[sl], st.ks[sl], st.koob[sl]
    eg = np.ones(N_BANDS) if eq_gain is None else eq_gain
    og = np.ones(2) if oob_gain is None else oob_gain
    w2 = width * width
    lv = 10.0 ** (level_db / 10.0)
    kk = lv * 2.0 * ((km + ks * w2) @ eg + ko[:, :2] @ og + (ko[:, 2:] @ og) * w2)
    g = None
    if comp is not None:
        thr, ratio = comp
        lf = _LOUDNESS_OFFSET_DB + _db(np.maximum(kk, 1e-30))
        gr_db = np.maximum(lf - thr, 0.0) * (1.0 - 1.0 / ratio)
        g = 10.0 ** (-gr_db / 10.0)
        kk = kk * g
    # integrated loudness: BS.1770-4 gating over the frames
    lf = _LOUDNESS_OFFSET_DB + _db(np.maximum(kk, 1e-30))
    ok = lf > _ABS_GATE_LUFS
    if not np.any(ok):
        nan = np.full(N_BANDS, np.nan)
        return SynthDescriptors(nan, nan.copy(), nan.copy(), math.nan, -math.inf, count * st.hop_s)
    ungated = _LOUDNESS_OFFSET_DB + _db(kk[ok].mean())
    ok &= lf > ungated + _REL_GATE_LU
    integrated = float(_LOUDNESS_OFFSET_DB + _db(kk[ok].mean()))
    # 3 s segments (frames counted from the excerpt's start), gated as the descriptors gate them
    fps = max(1, int(round(SEGMENT_SECONDS / st.hop_s)))
    starts = np.arange(0, count, fps)
    nf = np.diff(np.append(starts, count)).astype(np.float64)
    seg_k = np.add.reduceat(kk, starts) / nf
    if g is not None:
        pmg, psg = pm * g[:, None], ps * g[:, None]
    else:
        pmg, psg = pm, ps
    seg_m = np.add.reduceat(pmg, starts, axis=0)  # sums; the per-frame mean is sum / nf
    seg_s = np.add.reduceat(psg, starts, axis=0)
    seg_l = _LOUDNESS_OFFSET_DB + _db(np.maximum(seg_k, 1e-30))
    keep = (seg_l > _ABS_GATE_LUFS) & (seg_l >= integrated + _LRA_GATE_LU)
    if not np.any(keep):
        keep = seg_k > 0
    # frame-weighted mean of the segment means = sum over the kept frames / their count
    scale = lv / nf[keep].sum()
    mid_ms = seg_m[keep].sum(0) * (eg * scale)
    side_ms = seg_s[keep].sum(0) * (eg * w2 * scale)
    mid_db = np.maximum(_db(mid_ms) - integrated, LEVEL_FLOOR_DB)
    side_db = np.maximum(_db(side_ms) - integrated, LEVEL_FLOOR_DB)
    wb = np.clip(_db(np.maximum(side_ms, 1e-300)) - _db(np.maximum(mid_ms, 1e-300)), WIDTH_FLOOR_DB, WIDTH_CEIL_DB)
    em, es = float(mid_ms.sum()), float(side_ms.sum())
    width_db = float(np.clip(10.0 * math.log10(max(es, 1e-300) / em), WIDTH_FLOOR_DB, WIDTH_CEIL_DB)) if em > 0 else 0.0
    # spread across time, as the descriptors measure it: full-enough kept segments, their level re their loudness
    full = keep & (nf * 2 >= fps)
    rel_m = np.maximum(_db(seg_m[full] * (eg * lv) / nf[full, None]) - seg_l[full, None], LEVEL_FLOOR_DB)
    rel_s = np.maximum(_db(seg_s[full] * (eg * w2 * lv) / nf[full, None]) - seg_l[full, None], LEVEL_FLOOR_DB)
    if np.count_nonzero(full) >= 2:
        mid_spread, side_spread = rel_m.std(axis=0), rel_s.std(axis=0)
    else:
        mid_spread, side_spread = np.zeros(N_BANDS), np.zeros(N_BANDS)
    cue_l = seg_l[full] - integrated
    if cue_segment_s != SEGMENT_SECONDS:  # the segment cue at another segment length (the spreads stay 3 s)
        cf = max(1, int(round(cue_segment_s / st.hop_s)))
        cs = np.arange(0, count, cf)
        cn = np.diff(np.append(cs, count)).astype(np.float64)
        ck = np.add.reduceat(kk, cs) / cn
        cl = _LOUDNESS_OFFSET_DB + _db(np.maximum(ck, 1e-30))
        ok = (cl > _ABS_GATE_LUFS) & (cl >= integrated + _LRA_GATE_LU) & (cn * 2 >= cf)
        cm = np.add.reduceat(pmg, cs, axis=0)[ok] * (eg * lv) / cn[ok, None]
        cz = np.add.reduceat(psg, cs, axis=0)[ok] * (eg * w2 * lv) / cn[ok, None]
        rel_m = np.maximum(_db(cm) - cl[ok, None], LEVEL_FLOOR_DB)
        rel_s = np.maximum(_db(cz) - cl[ok, None], LEVEL_FLOOR_DB)
        cue_l = cl[ok] - integrated
    return SynthDescriptors(
        mid_db, side_db, wb, width_db, integrated, count * st.hop_s, mid_spread, side_spread,
        rel_m, rel_s, cue_l,
    )  # fmt: skip


# ---------------------------------------------------------------------------
# the cache


def cache_dir(corpus_dir: Path) -> Path:
    return Path(corpus_dir) / "target_cache" / f"v{CACHE_VERSION}"


def _cache_one(args: tuple[str, str, str]) -> tuple[str, float]:
    corpus_dir, rel_path, out = args
    import soxr

    from mixpilot.realtime.audio_io import read_audio

    t0 = time.monotonic()
    x, sr, _ = read_audio(Path(corpus_dir) / rel_path)
    x = x.astype(np.float64)
    if x.shape[1] == 1:
        x = np.repeat(x, 2, axis=1)
    if sr != SAMPLE_RATE:
        x = soxr.resample(x, sr, SAMPLE_RATE, quality="HQ")
    st = frame_stats(x, SAMPLE_RATE)
    tmp = out + ".tmp.npz"
    np.savez(tmp, pm=st.pm, ps=st.ps, km=st.km, ks=st.ks, koob=st.koob, hop_s=st.hop_s)
    os.replace(tmp, out)
    return rel_path, time.monotonic() - t0


def cache_corpus(
    corpus_dir: Path,
    splits: Sequence[str] = ("train", "validation"),
    *,
    workers: int = 1,
    log: Callable[[str], None] = lambda s: None,
) -> list[dict]:
    """Make the per-track frame statistics of the manifest's ``splits`` (resumable); returns the tracks."""
    from mixpilot.training.corpus import load_manifest

    manifest = load_manifest(corpus_dir)
    tracks = [t for t in manifest["tracks"] if t["split"] in splits]
    folder = cache_dir(corpus_dir)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = []
    for t in tracks:
        out = folder / f"{t['sha256'][:24]}.npz"
        if not out.is_file():
            jobs.append((str(corpus_dir), t["path"], str(out)))
    log(f"frame cache: {len(tracks) - len(jobs)} of {len(tracks)} tracks cached, {len(jobs)} to do")
    t0 = time.monotonic()
    if jobs:
        if workers > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(workers) as pool:
                for i, (p, s) in enumerate(pool.imap_unordered(_cache_one, jobs), 1):
                    log(f"[{i}/{len(jobs)}] {p} {s:.1f} s ({time.monotonic() - t0:.0f} s)")
        else:
            for i, job in enumerate(jobs, 1):
                p, s = _cache_one(job)
                log(f"[{i}/{len(jobs)}] {p} {s:.1f} s ({time.monotonic() - t0:.0f} s)")
    return tracks


def load_cache(corpus_dir: Path, tracks: Sequence[dict]) -> list[FrameStats]:
    """The cached frame statistics of ``tracks`` (in order; float64 in memory)."""
    folder = cache_dir(corpus_dir)
    out = []
    for t in tracks:
        z = np.load(folder / f"{t['sha256'][:24]}.npz")
        a = [z[k].astype(np.float64) for k in ("pm", "ps", "km", "ks", "koob")]
        out.append(FrameStats(*a, float(z["hop_s"])))
    return out


def smoke_stats(seed: int) -> list[FrameStats]:
    """Three synthetic 'tracks' (coloured noise with a slow level movement) as frame statistics.

    For the smoke runs and the tests: it needs no torch (``training.target`` imports it).
    """
    rng = np.random.default_rng(seed)
    out = []
    for k in range(3):
        n = SAMPLE_RATE * 25
        w = rng.standard_normal((n, 2))
        spec = np.fft.rfft(w, axis=0)
        f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        tilt = (np.maximum(f, 20.0) / 1000.0) ** (-0.5 - 0.3 * k)
        x = np.fft.irfft(spec * tilt[:, None], n, axis=0)
        x[:, 1] = 0.7 * x[:, 0] + 0.3 * x[:, 1]
        x *= (1.0 + 0.5 * np.sin(np.arange(n) / SAMPLE_RATE))[:, None]
        out.append(frame_stats(0.1 * x / np.std(x), SAMPLE_RATE))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from mixpilot.training.corpus import CorpusError, default_dir

    ap = argparse.ArgumentParser(prog="python -m mixpilot.training.target_data", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=None, help=f"corpus folder (default {default_dir()})")
    ap.add_argument("--splits", default="train,validation", help="comma-separated splits to cache")
    ap.add_argument("--workers", type=int, default=1, help="decoding processes (default 1)")
    args = ap.parse_args(argv)
    corpus = args.corpus or default_dir()
    try:
        tracks = cache_corpus(
            corpus,
            [s for s in args.splits.split(",") if s],
            workers=args.workers,
            log=lambda s: print(s, file=sys.stderr, flush=True),
        )
    except CorpusError as exc:
        print(f"target_data: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"tracks": len(tracks), "cache": str(cache_dir(corpus))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
