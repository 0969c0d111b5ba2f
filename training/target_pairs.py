"""Random self-supervised pairs for the target-conditioned model (the DeepAFx-ST recipe, in the descriptor domain).

For pair ``i`` (generator ``default_rng([seed, i])``) from the cached frame
statistics of one track (:mod:`training.target_data`):

* two non-overlapping excerpts **A** and **B** of ``E = min(30 s, (track - 1 s) / 2)``
  (B: 10 s .. E), each within 8 LU of the track's loudness (not a fade or a break);
* a random **master style** (:func:`draw_style`: low shelf, one or two peaks,
  high shelf, each with probability 0.85; side gain 0.55-1.6; a compressor
  with probability 0.5) on A and B, and a random **mix fault**
  (:func:`draw_fault`: low shelf, peak, high shelf, each with probability 0.7,
  side gain 0.45-1.6 with probability 0.7) on A; level plays no part (every
  descriptor the model reads is relative to the loudness);
* the **input** is the faulted A as heard after ``h`` seconds (``h = E`` with
  probability 0.35, else log-uniform 1 s .. E: the real-time case; recipe 4,
  :data:`RECIPES`, draws more late heard parts and heard parts unlike their excerpt), the
  **truth** is the styled A, and the **target** one of

  - ``reference`` (share 0.60): the styled B (tolerance 0), as ``--reference``;
  - ``references`` (0.10): 2-5 excerpts of other tracks with the same style
    (tolerance = their spread), as ``--reference DIR``;
  - ``default`` (0.30): the shipped default profile; then there is no style
    (the truth is A itself, a good master) and no fault with probability 0.5
    (the model must learn to leave a good master alone).

The ranges are our own (a little wider than the evaluation's, which draws with
:mod:`training.match_eval` on test tracks only).  The EQs are RBJ filters
applied in the band-power domain (:func:`training.target_data.synth_descriptors`).

Arrays per pair: the conditioning vector (:func:`inference.target_model.conditioning`),
the full input's and the truth's mid/side band levels (the loss compares the
processed input with the truth), the full input's K-weighted band power
shares (the loudness change an EQ makes), and the band mask of the metric
(bands within 60 dB of the truth's loudest mid band).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from mixpilot.dsp.descriptors import N_BANDS
from mixpilot.inference.target_model import N_CONDITIONING, TargetVector, conditioning

from .target_data import HIGH_SHELF, LOW_SHELF, PEAK, FrameStats, band_power_gain, synth_descriptors

__all__ = ["MODES", "PAIRS_VERSION", "RECIPES", "draw_fault", "draw_style", "heard_unlike_db", "make_pairs"]

#: changes whenever the recipe changes (part of the cached pairs' file name)
PAIRS_VERSION = 3  # 3: the conditioning carries the time spreads (version 2)

MODES = (("reference", 0.60), ("references", 0.10), ("default", 0.30))
#: share of the default-profile pairs whose input has a fault (the rest: a good master, to be left alone)
DEFAULT_FAULT_P = 0.5
ACTIVE_WITHIN_LU = 8.0
EXCERPT_S = 30.0
BAND_FLOOR_DB = 60.0


def _lu(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_style(rng: np.random.Generator) -> dict:
    """Filters ``(kind, f0, gain_db, q)``, a side gain and an optional compressor ``(below_db, ratio)``."""
    f = []
    if rng.uniform() < 0.85:
        f.append((LOW_SHELF, _lu(rng, 40.0, 300.0), float(rng.uniform(-7.0, 7.0)), 0.7071))
    for _ in range(1 + int(rng.uniform() < 0.4)):
        if rng.uniform() < 0.85:
            f.append((PEAK, _lu(rng, 200.0, 6000.0), float(rng.uniform(-6.0, 6.0)), float(rng.uniform(0.5, 2.5))))
    if rng.uniform() < 0.85:
        f.append((HIGH_SHELF, _lu(rng, 2500.0, 12000.0), float(rng.uniform(-7.0, 7.0)), 0.7071))
    comp = (float(rng.uniform(2.0, 12.0)), float(rng.uniform(1.5, 6.0))) if rng.uniform() < 0.5 else None
    return {"filters": f, "width": _lu(rng, 0.55, 1.6), "comp": comp}


def draw_fault(rng: np.random.Generator) -> dict:
    """A mix fault: filters and a side gain (no compressor)."""
    on = rng.uniform(size=4) < 0.7
    f = []
    if on[0]:
        f.append((LOW_SHELF, _lu(rng, 60.0, 400.0), float(rng.uniform(-7.0, 7.0)), 0.7071))
    if on[1]:
        f.append((PEAK, _lu(rng, 250.0, 5000.0), float(rng.uniform(-7.0, 7.0)), float(rng.uniform(0.5, 2.5))))
    if on[2]:
        f.append((HIGH_SHELF, _lu(rng, 3000.0, 12000.0), float(rng.uniform(-7.0, 7.0)), 0.7071))
    return {"filters": f, "width": _lu(rng, 0.45, 1.6) if on[3] else 1.0, "comp": None}


IDENTITY = {"filters": [], "width": 1.0, "comp": None}
CONTENT_P = 0.8  # share of pairs whose track gets a random colour first (draw_content)
#: the recipes make_pairs knows (the version is part of the cached pairs' file name): 3 (the default, the
#: shipped model's) draws the heard length h = E with probability 0.35, else log-uniform ~1.1 s .. E; 4
#: (issue 14, play vs offline; trained and measured, not shipped: training/README.md) draws h = E with 0.35,
#: uniform 10 s .. E (where play is compared with render) with LATE_P, else log-uniform, and for UNLIKE_P of
#: the partial ones takes as A, of CANDIDATES active excerpts, the one whose heard part is least like the whole
#: excerpt (:func:`heard_unlike_db`): the truth is the whole excerpt
RECIPES: dict[int, dict[str, float] | None] = {
    3: None,
    4: {"late_p": 0.25, "unlike_p": 0.3, "candidates": 4},
}
FULL_P = 0.35
LATE_S = 10.0


def _frame_lufs(st: FrameStats) -> np.ndarray:
    kk = 2.0 * (st.km.sum(1) + st.ks.sum(1) + st.koob.sum(1)).astype(np.float64)
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(np.maximum(kk, 1e-30))


class _Track:
    def __init__(self, st: FrameStats) -> None:
        self.st = st
        lf = _frame_lufs(st)
        self.frame_k = 10.0 ** ((lf + 0.691) / 10.0)
        ok = lf > -70.0
        self.lufs = -0.691 + 10.0 * math.log10(max(self.frame_k[ok].mean(), 1e-30)) if np.any(ok) else -math.inf
        fps = 1.0 / st.hop_s
        self.excerpt = int(min(EXCERPT_S * fps, (st.frames - fps) // 2))

    def active(self, start: int, count: int) -> bool:
        m = self.frame_k[start : start + count].mean()
        return m > 0 and -0.691 + 10.0 * math.log10(m) >= self.lufs - ACTIVE_WITHIN_LU

    def pick(self, rng: np.random.Generator, count: int, avoid: tuple[int, int] | None = None) -> int | None:
        n = self.st.frames
        for _ in range(30):
            s = int(rng.integers(0, n - count + 1))
            if avoid is not None and s < avoid[0] + avoid[1] and avoid[0] < s + count:
                continue
            if self.active(s, count):
                return s
        return None


def heard_unlike_db(st: FrameStats, start: int, heard: int, count: int) -> float:
    """RMS over octaves (3 bands each, within 40 dB of the loudest) of the difference of the mid balance
    (band power re the total) of frames ``start .. start+heard`` and ``start .. start+count``."""

    def bal(k: int) -> np.ndarray:
        p = st.pm[start : start + k].astype(np.float64).sum(0)
        p = p[: (len(p) // 3) * 3].reshape(-1, 3).sum(1)
        return 10.0 * np.log10(np.maximum(p / max(p.sum(), 1e-30), 1e-12))

    a, b = bal(heard), bal(count)
    ok = b >= b.max() - 40.0
    return float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2)))


def _gains(proc: dict, content: dict | None = None) -> dict:
    """``proc`` with its band power gains (``eg``, ``og``), times the content colour's when given."""
    if "eg" not in proc:
        proc["eg"], proc["og"] = band_power_gain(proc["filters"])
    if content is None:
        return proc
    return {**proc, "eg": proc["eg"] * content["eg"], "og": proc["og"] * content["og"]}


def _apply(st: FrameStats, start: int, count: int, proc: dict, cue_s: float | None = None):
    eg, og = proc["eg"], proc["og"]
    comp = None
    if proc["comp"] is not None:
        below, ratio = proc["comp"]
        base = synth_descriptors(st, start, count, eq_gain=eg, oob_gain=og, width=proc["width"])
        comp = (base.integrated_lufs - below, ratio)
    kw = {} if cue_s is None else {"cue_segment_s": cue_s}
    return synth_descriptors(st, start, count, eq_gain=eg, oob_gain=og, width=proc["width"], comp=comp, **kw)


def draw_content(rng: np.random.Generator) -> dict:
    """A gentle colour applied to a track before anything else (a 'new' track: the model cannot learn
    a training track's own balance by heart); low shelf +-4 dB, bell +-3 dB, high shelf +-4 dB."""
    f = [
        (LOW_SHELF, _lu(rng, 60.0, 250.0), float(rng.uniform(-4.0, 4.0)), 0.7071),
        (PEAK, _lu(rng, 300.0, 4000.0), float(rng.uniform(-3.0, 3.0)), float(rng.uniform(0.5, 1.5))),
        (HIGH_SHELF, _lu(rng, 3000.0, 10000.0), float(rng.uniform(-4.0, 4.0)), 0.7071),
    ]
    eg, og = band_power_gain(f)
    return {"eg": eg, "og": og}


def _k_shares(st: FrameStats, start: int, count: int, proc: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """K-weighted power shares of mid bands, side bands and the rest, after ``proc`` (for the loudness change)."""
    eg, og = proc["eg"], proc["og"]
    sl = slice(start, start + count)
    w2 = proc["width"] ** 2
    km = st.km[sl].sum(0) * eg
    ks = st.ks[sl].sum(0) * eg * w2
    ko = float(st.koob[sl, :2].sum(0) @ og + st.koob[sl, 2:].sum(0) @ og * w2)
    tot = km.sum() + ks.sum() + ko
    return km / tot, ks / tot, ko / tot


def make_pairs(
    stats: Sequence[FrameStats],
    n: int,
    seed: int,
    default_target: TargetVector,
    *,
    first: int = 0,
    log: Callable[[str], None] = lambda s: None,
    recipe: int = PAIRS_VERSION,
    segments: bool = False,
    cue_s: float | None = None,
) -> dict[str, np.ndarray]:
    """Pairs ``first .. first+n-1`` of ``seed`` from the tracks ``stats`` (module docstring; ``recipe``:
    :data:`RECIPES`).  ``segments``: also the segment cue of the heard input and of a single reference
    (``seg_in``, ``seg_ref`` [n, N_SEG, N_SEG_FEATURES], ``n_in``, ``n_ref``; :mod:`training.target_segments`;
    ``cue_s``: their segment length, default 3 s);
    the other arrays are the same as without."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown pairs recipe {recipe}: choose from {', '.join(map(str, RECIPES))}")
    rx = RECIPES[recipe]
    tracks = [_Track(s) for s in stats]
    tracks = [t for t in tracks if t.excerpt >= 50 and math.isfinite(t.lufs)]
    if not tracks:
        raise ValueError("no track long enough for pairs")
    out = {
        "cond": np.zeros((n, N_CONDITIONING), np.float32),
        "in_mid": np.zeros((n, N_BANDS), np.float32),
        "in_side": np.zeros((n, N_BANDS), np.float32),
        "truth_mid": np.zeros((n, N_BANDS), np.float32),
        "truth_side": np.zeros((n, N_BANDS), np.float32),
        "k_mid": np.zeros((n, N_BANDS), np.float32),
        "k_side": np.zeros((n, N_BANDS), np.float32),
        "k_rest": np.zeros(n, np.float32),
        "mask_mid": np.zeros((n, N_BANDS), bool),
        "mask_side": np.zeros((n, N_BANDS), bool),
        "mode": np.zeros(n, np.int8),
        "seconds": np.zeros(n, np.float32),
    }
    if segments:
        from .target_segments import N_SEG, N_SEG_FEATURES, segment_features

        ns = N_SEG if cue_s is None else int(math.ceil(N_SEG * 3.0 / cue_s))
        out["seg_in"] = np.zeros((n, ns, N_SEG_FEATURES), np.float32)
        out["seg_ref"] = np.zeros((n, ns, N_SEG_FEATURES), np.float32)
        out["n_in"] = np.zeros(n, np.int8)
        out["n_ref"] = np.zeros(n, np.int8)
    names = [m for m, _ in MODES]
    probs = np.array([p for _, p in MODES])
    i = 0
    attempt = 0
    while i < n:
        rng = np.random.default_rng([seed, first + i, attempt])
        attempt += 1
        tr = tracks[int(rng.integers(len(tracks)))]
        e = tr.excerpt
        heard = 0
        if rx is not None:
            u = rng.uniform()
            if u < FULL_P:
                heard = e
            elif u < FULL_P + rx["late_p"]:
                heard = int(round(rng.uniform(min(LATE_S / tr.st.hop_s, e), e)))
            else:
                heard = int(round(math.exp(rng.uniform(math.log(6.0), math.log(e)))))
            heard = max(6, min(e, heard))  # at least ~1.1 s (6 frames of 0.186 s)
        a = tr.pick(rng, e)
        if a is None:
            continue
        if rx is not None and heard < e and rng.uniform() < rx["unlike_p"]:
            best = heard_unlike_db(tr.st, a, heard, e)
            for _ in range(int(rx["candidates"]) - 1):
                c = tr.pick(rng, e)
                if c is not None and (d := heard_unlike_db(tr.st, c, heard, e)) > best:
                    a, best = c, d
        mode = names[int(rng.choice(len(names), p=probs))]
        ref_d = None
        content = draw_content(rng) if rng.uniform() < CONTENT_P else None
        if mode == "default":
            style = dict(IDENTITY)
            fault = draw_fault(rng) if rng.uniform() < DEFAULT_FAULT_P else dict(IDENTITY)
            target = default_target
        else:
            style, fault = draw_style(rng), draw_fault(rng)
            if mode == "reference":
                nb = int(rng.integers(min(54, e), e + 1))
                b = tr.pick(rng, nb, avoid=(a, e))
                if b is None:
                    continue
                ref_d = _apply(tr.st, b, nb, _gains(style, content), cue_s)
                target = TargetVector.from_descriptors([ref_d])
            else:
                k = int(rng.integers(2, 6))
                items = []
                for _ in range(k):
                    o = tracks[int(rng.integers(len(tracks)))]
                    s = o.pick(rng, o.excerpt)
                    if s is not None:
                        items.append(_apply(o.st, s, o.excerpt, _gains(style, draw_content(rng))))
                if len(items) < 2:
                    continue
                target = TargetVector.from_descriptors(items)
        if rx is None:  # recipe 3: drawn here (its pairs stay as they were)
            heard = e if rng.uniform() < FULL_P else int(round(math.exp(rng.uniform(math.log(6.0), math.log(e)))))
            heard = max(6, min(e, heard))  # at least ~1.1 s (6 frames of 0.186 s)
        fault_c, style_c = _gains(fault, content), _gains(style, content)
        inp_h = _apply(tr.st, a, heard, fault_c, cue_s)
        inp = inp_h if heard == e else _apply(tr.st, a, e, fault_c)
        truth = _apply(tr.st, a, e, style_c)
        if not (np.all(np.isfinite(inp.mid_db)) and np.all(np.isfinite(truth.mid_db))):
            continue
        seconds = heard * tr.st.hop_s + (tr.st.hop_s if heard > 1 else 0.0)
        out["cond"][i] = conditioning(inp_h, seconds, target)
        out["in_mid"][i] = inp.mid_db
        out["in_side"][i] = inp.side_db
        out["truth_mid"][i] = truth.mid_db
        out["truth_side"][i] = truth.side_db
        km, ks, ko = _k_shares(tr.st, a, e, fault_c)
        out["k_mid"][i], out["k_side"][i], out["k_rest"][i] = km, ks, ko
        floor = np.max(truth.mid_db) - BAND_FLOOR_DB
        out["mask_mid"][i] = truth.mid_db >= floor
        out["mask_side"][i] = truth.side_db >= floor
        out["mode"][i] = names.index(mode)
        out["seconds"][i] = seconds
        if segments:
            f = segment_features(inp_h, ns)
            out["seg_in"][i, : len(f)], out["n_in"][i] = f, len(f)
            if ref_d is not None:
                f = segment_features(ref_d, ns)
                out["seg_ref"][i, : len(f)], out["n_ref"][i] = f, len(f)
        i += 1
        if i % 2000 == 0:
            log(f"pairs: {i}/{n}")
    return out
