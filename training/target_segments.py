"""Opt-in experiment (issue 15): a learnt encoder over per-segment descriptors of the input and the reference.

::

    python -m mixpilot.training.target_segments [--corpus DIR] [--pairs 60000] [--val-pairs 4000]
        [--epochs 12] [--seeds 0,1] [--arch seg|mlp] [--threads 1]

The shipped target model (:mod:`training.target`) reads long-term statistics only: the input's and the
target's band levels, widths and time spreads.  This module gives a network more of the audio: the
**segment cue** — for every full 3 s segment the descriptor accumulator keeps
(:class:`dsp.descriptors.DescriptorAccumulator` stores them all, in time order, so the last
:data:`N_SEG` fit a fixed ring in the real-time path), the mid and side band levels re the segment's
loudness and the segment's loudness re the integrated loudness (:func:`segment_features`,
:data:`N_SEG_FEATURES` numbers) — of the heard input and of a single reference (none for a profile).

:class:`SegNet` encodes each segment (a small MLP, one per set), pools each set (masked mean and
attention pooling, as DeepAFx-ST's encoder pools over time), and matches every input segment to the
reference's segments by learnt attention (which passage of the reference corresponds to which of the
input: the difference of matched segments is processing, the rest content); the pooled codes join the
shipped conditioning vector in the same MLP head, trained with the same pairs
(:func:`training.target_pairs.make_pairs` with ``segments=True``: the same random stream, so the same
pairs as the shipped recipe plus the segment arrays) and the same loss
(:class:`training.target.ChainLoss`).  ``--arch mlp`` trains the shipped recipe's MLP on the same
pairs (the anchor and its seed-to-seed spread).

Pairs with segments are cached as ``WORKDIR/pairs_seg1_vV_SPLIT_SEED_FIRST+N.npz``.  Results: the
validation pair loss per seed (mid / side dB, overall and for the reference pairs), printed as JSON and
recorded in ``training/README.md`` ("Session 6"): on the validation cases the 3-member net was 0.06 dB under
the shipped model (1.71 against 1.77 mid tonal), on the test cases even (1.85 against 1.85).  Nothing here is
shipped or read by the product; :func:`seg_model_render` (``$MIXPILOT_SEG_MODEL``, a ``--save`` file) scores a
trained net through the product's render path with ``match_eval --callable``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mixpilot.dsp.descriptors import N_BANDS

__all__ = ["N_SEG", "N_SEG_FEATURES", "segment_features"]

#: segments kept per set (the most recent; 30 s of 3 s segments)
N_SEG = 10
N_SEG_FEATURES = 2 * N_BANDS + 1
_REL_LO, _REL_HI = -80.0, 20.0


def segment_features(d, n: int = N_SEG) -> np.ndarray:
    """[k <= N_SEG, N_SEG_FEATURES]: the last full segments of descriptors ``d`` (``seg_mid_db``,
    ``seg_side_db`` re the segment loudness, ``seg_level_db`` re the integrated loudness), clipped."""
    m = getattr(d, "seg_mid_db", None)
    if m is None or len(m) == 0:
        return np.zeros((0, N_SEG_FEATURES), np.float32)
    m, s, lv = m[-n:], d.seg_side_db[-n:], d.seg_level_db[-n:]
    f = np.concatenate(
        [np.clip(m, _REL_LO, _REL_HI), np.clip(s, _REL_LO, _REL_HI), np.clip(lv, -30.0, 30.0)[:, None]], 1
    )
    f = np.nan_to_num(f, nan=_REL_LO)
    return f.astype(np.float32)


# ---------------------------------------------------------------------------
# the network (torch only from here)


def _torch():
    import torch
    from torch import nn

    return torch, nn


def build_segnet(mean, std, seg_mean, seg_std, *, hidden=256, enc=64, dropout=0.3):
    torch, nn = _torch()
    from mixpilot.inference.target_model import N_CONDITIONING

    from .target import _NEUTRAL, N_OUT

    class SetEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.phi = nn.Sequential(nn.Linear(N_SEG_FEATURES, enc), nn.GELU(), nn.Linear(enc, enc), nn.GELU())
            self.score = nn.Linear(enc, 1)

        def forward(self, x, m):
            h = self.phi(x)  # [B, S, E]
            cnt = m.sum(1, keepdim=True)
            mean = (h * m[..., None]).sum(1) / cnt.clamp(min=1.0)
            sc = self.score(h)[..., 0].masked_fill(m < 0.5, -1e4)
            a = torch.softmax(sc, 1) * m
            att = (a[..., None] * h).sum(1) / (a.sum(1, keepdim=True) + 1e-6)
            return h, torch.cat([mean, att], 1)

    class SegNet(nn.Module):
        architecture = "mlp+segment-sets"

        def __init__(self) -> None:
            super().__init__()
            self.config = {"hidden": hidden, "enc": enc, "dropout": dropout, "inputs": N_CONDITIONING,
                           "outputs": N_OUT, "segments": N_SEG, "segment_features": N_SEG_FEATURES}  # fmt: skip
            f32 = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
            self.register_buffer("mean", f32(mean))
            self.register_buffer("std", f32(np.maximum(std, 1e-3)))
            self.register_buffer("seg_mean", f32(seg_mean))
            self.register_buffer("seg_std", f32(np.maximum(seg_std, 1e-3)))
            self.enc_in, self.enc_ref = SetEncoder(), SetEncoder()
            self.q = nn.Linear(enc, 32)
            self.k = nn.Linear(enc, 32)
            self.psi = nn.Sequential(nn.Linear(N_SEG_FEATURES + enc, enc), nn.GELU(), nn.Linear(enc, enc), nn.GELU())
            width = N_CONDITIONING + 4 * enc + enc + 1
            self.body = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                                      nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout))  # fmt: skip
            head = nn.Linear(hidden, N_OUT)
            nn.init.zeros_(head.weight)
            with torch.no_grad():
                head.bias.copy_(torch.logit(torch.tensor(_NEUTRAL, dtype=torch.float32).clamp(1e-4, 1 - 1e-4)))
            self.head = head

        def forward(self, cond, seg_in, m_in, seg_ref, m_ref):
            xi = (seg_in - self.seg_mean) / self.seg_std
            xr = (seg_ref - self.seg_mean) / self.seg_std
            hi, pi = self.enc_in(xi, m_in)
            hr, pr = self.enc_ref(xr, m_ref)
            has_ref = (m_ref.sum(1, keepdim=True) > 0.5).float()
            # every input segment matched to the reference's segments (learnt attention)
            sc = torch.matmul(self.q(hi), self.k(hr).transpose(1, 2)) * (1.0 / math.sqrt(32.0))  # [B, Si, Sr]
            sc = sc.masked_fill(m_ref[:, None, :] < 0.5, -1e4)
            a = torch.softmax(sc, 2) * m_ref[:, None, :]
            a = a / (a.sum(2, keepdim=True) + 1e-6)
            matched = torch.matmul(a, xr)  # [B, Si, F]
            d = self.psi(torch.cat([matched - xi, hi], 2))
            cross = (d * m_in[..., None]).sum(1) / m_in.sum(1, keepdim=True).clamp(min=1.0) * has_ref
            z = torch.cat([(cond - self.mean) / self.std, pi, pr * has_ref, cross, has_ref], 1)
            return torch.sigmoid(self.head(self.body(z)))

    return SegNet()


def _masks(n: np.ndarray, size: int = N_SEG) -> np.ndarray:
    return (np.arange(size)[None, :] < np.asarray(n)[:, None]).astype(np.float32)


def _seg_stats(p: dict) -> tuple[np.ndarray, np.ndarray]:
    S = p["seg_in"].shape[1]
    rows = [p["seg_in"][_masks(p["n_in"], S) > 0], p["seg_ref"][_masks(p["n_ref"], S) > 0]]
    x = np.concatenate(rows).astype(np.float64)
    return x.mean(0), x.std(0)


def _inputs(p: dict, sl, torch):
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float()  # noqa: E731
    S = p["seg_in"].shape[1]
    return (t(p["cond"][sl]), t(p["seg_in"][sl]), t(_masks(p["n_in"][sl], S)), t(p["seg_ref"][sl]),
            t(_masks(p["n_ref"][sl], S)))  # fmt: skip


def evaluate(model, p: dict, arch: str, batch: int = 4096) -> dict:
    torch, _ = _torch()
    from .target import ChainLoss, _tensors
    from .target_pairs import MODES

    loss = ChainLoss()
    model.eval()
    ms, ss = [], []
    n = len(p["cond"])
    with torch.no_grad():
        for i in range(0, n, batch):
            sl = slice(i, min(n, i + batch))
            x = _inputs(p, sl, torch)
            out = model(*x) if arch == "seg" else model(x[0])
            m, s = loss(out, _tensors(p, sl), per_pair=True)
            ms.append(m)
            ss.append(s)
    m, s = torch.cat(ms).numpy(), torch.cat(ss).numpy()
    res = {"mid_db": float(m.mean()), "side_db": float(s.mean())}
    for j, (name, _) in enumerate(MODES):
        sel = p["mode"] == j
        res[f"{name}_mid_db"] = float(m[sel].mean())
        res[f"{name}_side_db"] = float(s[sel].mean())
    sel = (p["mode"] == 0) & (p["seconds"] >= 25.0)
    res["reference_25s_mid_db"] = float(m[sel].mean())
    res["reference_25s_n"] = int(sel.sum())
    return res


def train_segnet(train, val, *, epochs=12, batch_size=512, lr=2e-3, weight_decay=1e-3, seed=0, hidden=256,
                 enc=64, dropout=0.3, noise=0.3, seg_noise=0.3,
                 log: Callable[[str], None] = lambda s: None):  # fmt: skip
    """The shipped recipe's optimiser, schedule, noise and early stopping, for :class:`SegNet`."""
    torch, nn = _torch()
    from .target import ChainLoss, _tensors

    torch.manual_seed(seed)
    x = train["cond"].astype(np.float64)
    sm, ssd = _seg_stats(train)
    model = build_segnet(x.mean(0), x.std(0), sm, ssd, hidden=hidden, enc=enc, dropout=dropout)
    loss_fn = ChainLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(train["cond"])
    steps = max(1, n // batch_size)
    total = epochs * steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    order = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    tens = _tensors(train)
    xs = _inputs(train, slice(None), torch)
    best, best_state, history = math.inf, None, []
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.from_numpy(order.permutation(n))
        te = time.monotonic()
        run = 0.0
        for i in range(steps):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            b = {k: v[idx] for k, v in tens.items()}
            c, si, mi, sr, mr = (v[idx] for v in xs)
            if noise > 0:
                c = c + noise * model.std * torch.randn(c.shape, generator=gen)
            if seg_noise > 0:
                si = si + seg_noise * model.seg_std * torch.randn(si.shape, generator=gen)
                sr = sr + seg_noise * model.seg_std * torch.randn(sr.shape, generator=gen)
            loss = loss_fn(model(c, si, mi, sr, mr), b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            run += float(loss.detach())
        ev = evaluate(model, val, "seg")
        v = ev["mid_db"] + ev["side_db"]
        history.append({"epoch": epoch, "train": run / steps, "val_loss": v, **ev})
        if v < best:
            best, best_state = v, copy.deepcopy(model.state_dict())
        log(f"seg epoch {epoch}/{epochs} train {run / steps:.3f} val mid {ev['mid_db']:.3f} side {ev['side_db']:.3f} "
            f"ref {ev['reference_mid_db']:.3f}{' *' if v == best else ''} {time.monotonic() - te:.0f} s")  # fmt: skip
    model.load_state_dict(best_state)
    model.eval()
    return model, history


def load_pairs(corpus: Path, workdir: Path, n: int, val_n: int, seed: int, log, cue_s: float = 3.0):
    from mixpilot.inference.profile import Profile
    from mixpilot.inference.target_model import TargetVector

    from .corpus import load_manifest
    from .target import PAIRS_CHUNK
    from .target_data import cache_corpus, load_cache
    from .target_pairs import PAIRS_VERSION, make_pairs

    default_target = TargetVector.from_profile(Profile.load("default"))
    tracks = cache_corpus(corpus, ("train", "validation"), log=log)
    load_manifest(corpus)
    tr = [t for t in tracks if t["split"] == "train"]
    va = [t for t in tracks if t["split"] == "validation"]
    out = {}
    for split, tl, k_all, s in (("train", tr, n, seed), ("val", va, val_n, seed + 1000)):
        chunks = []
        for first in range(0, k_all, PAIRS_CHUNK):
            k = min(PAIRS_CHUNK, k_all - first)
            tag = "" if cue_s == 3.0 else f"c{cue_s:g}_"
            path = workdir / f"pairs_seg1_{tag}v{PAIRS_VERSION}_{split}_{s}_{first}+{k}.npz"
            if path.is_file():
                z = np.load(path)
                chunks.append({key: z[key] for key in z.files})
                continue
            t0 = time.monotonic()
            chunks.append(make_pairs(load_cache(corpus, tl), k, s, default_target, first=first, log=log, segments=True,
                                     cue_s=None if cue_s == 3.0 else cue_s))  # fmt: skip
            np.savez(path.with_suffix(".tmp.npz"), **chunks[-1])
            os.replace(path.with_suffix(".tmp.npz"), path)
            log(f"{split} pairs: {k} in {time.monotonic() - t0:.0f} s -> {path}")
        out[split] = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
    return out["train"], out["val"]


def accumulator_segments(acc) -> np.ndarray:
    """:func:`segment_features` of a running :class:`dsp.descriptors.DescriptorAccumulator` (its segments,
    gated and selected exactly as its spreads are: kept, at least half full, the last :data:`N_SEG`)."""
    from mixpilot.dsp.descriptors import _ABS_GATE_LUFS, _LOUDNESS_OFFSET_DB, _LRA_GATE_LU, LEVEL_FLOOR_DB, _db

    acc = getattr(acc, "_main", acc)  # inference.matcher.RunningStats: its current accumulator
    n = acc._n_seg
    integrated = acc._meter.integrated_lufs
    if n + acc._cur_frames == 0 or not math.isfinite(integrated):
        return np.zeros((0, N_SEG_FEATURES), np.float32)
    seg_mid, seg_side, seg_k, seg_f = acc._seg_mid[:n], acc._seg_side[:n], acc._seg_k[:n], acc._seg_frames[:n]
    if acc._cur_frames:  # the segment in progress, as the descriptors take it (kept when at least half full)
        f = acc._cur_frames
        seg_mid, seg_side = np.vstack([seg_mid, acc._cur_mid / f]), np.vstack([seg_side, acc._cur_side / f])
        seg_k, seg_f = np.append(seg_k, acc._cur_k / f), np.append(seg_f, f)
    with np.errstate(divide="ignore"):
        seg_l = _LOUDNESS_OFFSET_DB + _db(seg_k)
        keep = (seg_l > _ABS_GATE_LUFS) & (seg_l >= integrated + _LRA_GATE_LU) & (seg_f * 2 >= acc.frames_per_segment)
        rel_m = np.maximum(_db(seg_mid[keep]) - seg_l[keep, None], LEVEL_FLOOR_DB)
        rel_s = np.maximum(_db(seg_side[keep]) - seg_l[keep, None], LEVEL_FLOOR_DB)

    class _D:
        seg_mid_db, seg_side_db, seg_level_db = rel_m, rel_s, seg_l[keep] - integrated

    return segment_features(_D)


def _audio_segments(x: np.ndarray, sample_rate: float, cue_s: float = 3.0) -> np.ndarray:
    """The segment cue of a whole file (``cue_s`` 3: what the accumulator keeps, within 0.01 dB; another
    length through the frame statistics, 44.1 kHz)."""
    from mixpilot.dsp.descriptors import DescriptorAccumulator

    from .target_data import frame_stats, synth_descriptors

    x = np.asarray(x, dtype=np.float64)
    if cue_s != 3.0:
        st = frame_stats(x if x.ndim == 2 and x.shape[1] == 2 else np.repeat(x.reshape(len(x), 1), 2, 1), sample_rate)
        d = synth_descriptors(st, 0, st.frames, cue_segment_s=cue_s)
        return segment_features(d, int(math.ceil(N_SEG * 3.0 / cue_s)))
    acc = DescriptorAccumulator(sample_rate, 1 if x.ndim == 1 or x.shape[1] == 1 else 2)
    acc.update(x if x.ndim == 1 or x.shape[1] == 2 else x[:, 0])
    return accumulator_segments(acc)


class SegTorchModel:
    """A trained :class:`SegNet` (or several, averaged) with ``TargetModel.params``'s contract plus the
    segment cue (torch, in process: the experiment's product-path measurement)."""

    def __init__(self, members, model_share: float = 0.7, name: str = "target-seg") -> None:
        from mixpilot.inference.target_model import CONDITIONING_VERSION, MODEL_PARAM_NAMES

        self.members = members
        self.model_share = model_share
        self.name = name
        self.model_param_names = MODEL_PARAM_NAMES
        self.conditioning_version = CONDITIONING_VERSION
        self.seg_ref = np.zeros((0, N_SEG_FEATURES), np.float32)
        self.seg_in_fn = None
        self.slots = N_SEG

    def params(self, inp, seconds, target) -> dict[str, float]:
        torch, _ = _torch()
        from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, PARAMS, denormalise
        from mixpilot.inference.target_model import conditioning

        c = conditioning(inp, seconds, target, self.conditioning_version)[None]
        si = self.seg_in_fn() if self.seg_in_fn is not None else np.zeros((0, N_SEG_FEATURES), np.float32)
        sr = self.seg_ref
        S = self.slots
        a_in = np.zeros((1, S, N_SEG_FEATURES), np.float32)
        a_ref = np.zeros((1, S, N_SEG_FEATURES), np.float32)
        a_in[0, : len(si)], a_ref[0, : len(sr)] = si[-S:], sr[-S:]
        x = [torch.from_numpy(v) for v in (c, a_in, _masks([len(si)], S), a_ref, _masks([len(sr)], S))]
        with torch.no_grad():
            out = sum(m(*x) for m in self.members).numpy()[0] / len(self.members)
        values = {n: PARAMS[PARAM_INDEX[n]].default for n in AI_PARAM_NAMES}
        for n, v in zip(self.model_param_names, np.clip(out, 0.0, 1.0)):
            i = PARAM_INDEX[n]
            values[n] = min(max(denormalise(n, float(v)), PARAMS[i].ai_minimum), PARAMS[i].ai_maximum)
        return values


_LOADED: dict = {}


def _seg_members(path: Path):
    torch, _ = _torch()
    if str(path) not in _LOADED:
        blob = torch.load(path, weights_only=False)
        ms = []
        for sd in blob["members"]:
            if blob.get("arch", "seg") == "mlp":  # the shipped recipe's net (reads the conditioning only)
                from .target import TargetNet

                net = TargetNet(sd["mean"].numpy(), sd["std"].numpy(), dropout=0.3)
                m = _CondOnly(net)
                net.load_state_dict(sd)
            else:
                m = build_segnet(sd["mean"].numpy(), sd["std"].numpy(), sd["seg_mean"].numpy(),
                                 sd["seg_std"].numpy(), enc=blob["enc"])  # fmt: skip
                m.load_state_dict(sd)
            ms.append(m.eval())
        _LOADED[str(path)] = ms
    pick = os.environ.get("MIXPILOT_SEG_MEMBERS")  # e.g. "0": one member of the saved ones
    ms = _LOADED[str(path)]
    return [ms[int(i)] for i in pick.split(",")] if pick else ms


class _CondOnly:
    def __init__(self, net) -> None:
        self.net = net

    def __call__(self, cond, *rest):
        return self.net(cond)

    def eval(self):
        self.net.eval()
        return self


def seg_model_render(inp: np.ndarray, ref: np.ndarray, sample_rate: int) -> np.ndarray:
    """``mixpilot render IN OUT --reference REF`` with the segment model (``$MIXPILOT_SEG_MODEL``, a file of
    :func:`main` ``--save``) in place of the shipped one: the same ModelMatcher, render path, delivery and ceiling."""
    from mixpilot.inference.model_matcher import ModelMatcher
    from mixpilot.inference.profile import Profile
    from mixpilot.realtime.references import delivery_for
    from mixpilot.realtime.render import render_array

    torch, _ = _torch()
    torch.set_num_threads(1)
    cue_s = float(os.environ.get("MIXPILOT_SEG_CUE", "3"))
    model = SegTorchModel(_seg_members(Path(os.environ["MIXPILOT_SEG_MODEL"])))
    model.slots = int(math.ceil(N_SEG * 3.0 / cue_s))
    model.seg_ref = _audio_segments(ref, sample_rate, cue_s)
    prof = Profile.from_audio(ref, sample_rate)
    target, ceiling, _ = delivery_for(prof, None, None)
    est = ModelMatcher(model, prof)  # type: ignore[arg-type]
    if cue_s == 3.0:  # the running segments (render: the whole input is read before the estimate)
        model.seg_in_fn = lambda: accumulator_segments(est.stats)
    else:
        seg_in = _audio_segments(inp, sample_rate, cue_s)
        model.seg_in_fn = lambda: seg_in
    out = render_array(
        np.ascontiguousarray(inp, dtype=np.float32), sample_rate,
        target_lufs=-14.0 if target is None else target, ceiling_dbtp=-1.0 if ceiling is None else ceiling,
        estimator=est, loudness_mode="search",
    ).out  # fmt: skip
    if est.errors:  # the matcher fell back to the analytic values: not the system measured
        raise RuntimeError(f"segment model failed: {est.last_error}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from .corpus import default_dir

    ap = argparse.ArgumentParser(prog="python -m mixpilot.training.target_segments", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--pairs", type=int, default=60000)
    ap.add_argument("--val-pairs", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--arch", choices=("seg", "mlp"), default="seg")
    ap.add_argument("--enc", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save", type=Path, default=None, help="save the trained members' state dicts here (torch)")
    ap.add_argument("--pairs-only", action="store_true")
    ap.add_argument("--cue-seconds", type=float, default=3.0, help="segment length of the cue (s)")
    ap.add_argument("--seg-noise", type=float, default=0.3, help="input noise on the segments (feature std units)")
    ap.add_argument("--dropout", type=float, default=0.3)
    args = ap.parse_args(argv)
    torch, _ = _torch()
    torch.set_num_threads(max(1, args.threads))

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    corpus = args.corpus or default_dir()
    work = args.workdir or corpus / "target_work"
    work.mkdir(parents=True, exist_ok=True)
    train, val = load_pairs(corpus, work, args.pairs, args.val_pairs, 0, log, args.cue_seconds)
    if args.pairs_only:
        return 0
    from .target import train_target

    results = []
    members = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        t0 = time.monotonic()
        if args.arch == "seg":
            m, hist = train_segnet(train, val, seed=seed, epochs=args.epochs, enc=args.enc, log=log,
                                   seg_noise=args.seg_noise, dropout=args.dropout)  # fmt: skip
        else:
            m, _ = train_target(train, val, epochs=args.epochs, seed=seed, dropout=0.3, weight_decay=1e-3,
                                noise=0.3, log=log)  # fmt: skip
        ev = evaluate(m, val, args.arch)
        members.append(m)
        r = {"arch": args.arch, "seed": seed, "wall_s": round(time.monotonic() - t0, 1),
             **{k: round(v, 4) for k, v in ev.items()}}  # fmt: skip
        results.append(r)
        log(json.dumps(r))
    if len(members) > 1:  # the mean output of the members (the shipped model is such an ensemble)

        class _Mean(torch.nn.Module):
            def __init__(self, ms):
                super().__init__()
                self.ms = torch.nn.ModuleList(ms)

            def forward(self, *x):
                return sum(m(*x) for m in self.ms) / len(self.ms)

        ev = evaluate(_Mean(members).eval(), val, args.arch)
        results.append({"arch": args.arch, "ensemble": len(members), **{k: round(v, 4) for k, v in ev.items()}})
    if args.save is not None:
        torch.save(
            {
                "arch": args.arch,
                "enc": args.enc,
                "cue_s": args.cue_seconds,
                "members": [m.state_dict() for m in members],
            },
            args.save,
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
