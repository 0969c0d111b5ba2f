"""Train the target-conditioned model from the real-music corpus and export it as ONNX with its card.

::

    python -m mixpilot.training.target [--corpus DIR] [--out models_onnx] [--name target]
        [--pairs 60000] [--val-pairs 4000] [--epochs 12] [--seed 0] [--ensemble 3] [--model-share 0.7]
        [--threads 2] [--workdir DIR] [--resume] [--set-default] [--smoke]

Steps (each resumable; ``--workdir``, default ``DIR/target_work``, holds the intermediate files):

1. the frame statistics of every ``train`` and ``validation`` track
   (:mod:`training.target_data`; decoded once);
2. ``--pairs`` self-supervised pairs from the train tracks and ``--val-pairs``
   from the validation tracks (:mod:`training.target_pairs`), saved in chunks of
   20000 as ``pairs_vV_train_SEED_FIRST+N.npz`` / ``pairs_vV_val_SEED_FIRST+N.npz``
   (``V``: the recipe's version; a chunk depends only on the seed and ``FIRST``);
3. training (:class:`TargetNet`, AdamW, cosine decay, the loss below) of
   ``--ensemble`` members from seeds ``SEED, SEED+1, ...`` (exported as one
   graph, :class:`TargetEnsemble`, the mean of their outputs); the state after
   every epoch goes to ``checkpoint.pt`` (``checkpoint_J.pt`` for member J)
   and ``--resume`` continues from it; the epoch with the lowest validation
   loss is kept; ``--model-share`` goes on the card (the product blends the
   model's tone/width moves with the analytic matcher's,
   :func:`inference.model_matcher.model_result`);
4. export: ``OUT/NAME.onnx`` (opset 17, input ``conditioning [batch, N]``,
   output ``params [batch, 13]``), torch-vs-onnxruntime parity, single-call
   latency with the engine's session options, and the card ``OUT/NAME.json``
   (corpus packages and licences, tracks, seed, pairs, training, metrics);
   ``--set-default`` points ``OUT/default.json`` at it.

**Loss** (what the evaluation measures, through a differentiable copy of the
chain, :mod:`training.torch_chain`): the predicted tone gains and widths
change the full input's mid and side band levels by the cascade's power
gain per band; the integrated loudness moves by the K-weighted power-share
average of that gain (so the levels stay relative to the loudness, as the
descriptors are); the loss is, per pair, the RMS over the metric's bands of
the mid error against the truth plus the same for the side, averaged over the
batch.  The model never sees the truth's descriptors as input.

``--smoke`` makes its own signals (two noise "tracks" of different colour),
trains one epoch on a few hundred pairs in a temporary folder, exports and
loads the model back (what the test suite runs).
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mixpilot.dsp.descriptors import N_BANDS
from mixpilot.dsp.params import PARAM_INDEX, PARAMS, normalise
from mixpilot.inference.target_model import (
    CONDITIONING_NAMES,
    CONDITIONING_VERSION,
    INPUT_NAME,
    KIND,
    MODEL_PARAM_NAMES,
    N_CONDITIONING,
    TargetVector,
)

from .target_data import BAND_POINTS_HZ, POINTS_PER_BAND, SAMPLE_RATE
from .target_data import smoke_stats as _smoke_stats
from .torch_chain import ToneResponse, crossover_shares, side_amplitude

__all__ = ["TargetEnsemble", "TargetNet", "chain_loss", "main", "train_target"]

OPSET = 17
PAIRS_CHUNK = 20000  # pairs per cached file
N_OUT = len(MODEL_PARAM_NAMES)
_ROWS = [PARAMS[PARAM_INDEX[n]] for n in MODEL_PARAM_NAMES]
_LO = torch.tensor([p.ai_minimum for p in _ROWS], dtype=torch.float32)
_HI = torch.tensor([p.ai_maximum for p in _ROWS], dtype=torch.float32)
assert all(p.glide in ("db", "linear") for p in _ROWS), "linear normalisation assumed"
_NEUTRAL = np.array([normalise(p.name, p.default) for p in _ROWS])


class TargetNet(nn.Module):
    """MLP on the standardised conditioning vector; sigmoid outputs (normalised parameters, MODEL_PARAM_NAMES)."""

    architecture = "mlp"

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: int = 256, layers: int = 3, dropout: float = 0.1):
        super().__init__()
        self.config = {
            "hidden": hidden,
            "layers": layers,
            "dropout": dropout,
            "inputs": N_CONDITIONING,
            "outputs": N_OUT,
        }
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(np.maximum(std, 1e-3), dtype=torch.float32))
        mods: list[nn.Module] = []
        width = N_CONDITIONING
        for _ in range(layers - 1):
            mods += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
            width = hidden
        head = nn.Linear(width, N_OUT)
        nn.init.zeros_(head.weight)
        with torch.no_grad():  # start at "no move": the neutral parameters
            head.bias.copy_(torch.logit(torch.tensor(_NEUTRAL, dtype=torch.float32).clamp(1e-4, 1 - 1e-4)))
        self.body = nn.Sequential(*mods)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.body((x - self.mean) / self.std)))


class TargetEnsemble(nn.Module):
    """The mean output of several :class:`TargetNet` trained from different seeds (one graph)."""

    architecture = "mlp-ensemble"

    def __init__(self, members: Sequence[TargetNet]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.config = {**members[0].config, "members": len(members)}
        self.register_buffer("mean", members[0].mean.clone())
        self.register_buffer("std", members[0].std.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.members[0](x)
        for m in self.members[1:]:
            out = out + m(x)
        return out * (1.0 / len(self.members))


class ChainLoss(nn.Module):
    """The loss of the module docstring (mid RMS + side RMS per pair, in dB)."""

    def __init__(self, sample_rate: float = SAMPLE_RATE) -> None:
        super().__init__()
        pts = BAND_POINTS_HZ.ravel()
        self.tone = ToneResponse(pts, sample_rate)
        lp2, hp2 = crossover_shares(pts, None, sample_rate)
        self.register_buffer("lp2", torch.tensor(lp2, dtype=torch.float32), persistent=False)
        self.register_buffer("hp2", torch.tensor(hp2, dtype=torch.float32), persistent=False)

    def gains(self, norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mid and side power gain per band [B, N_BANDS] (linear) of normalised parameters [B, N_OUT]."""
        v = _LO + norm * (_HI - _LO)
        tone = self.tone(v[:, :10])  # [B, P]
        amp = side_amplitude(v[:, 10:11], v[:, 11:12], v[:, 12:13], self.lp2, self.hp2)
        gm = tone.view(-1, N_BANDS, POINTS_PER_BAND).mean(-1)
        gs = (tone * amp * amp).view(-1, N_BANDS, POINTS_PER_BAND).mean(-1)
        return gm, gs

    def forward(self, norm: torch.Tensor, b: dict[str, torch.Tensor], per_pair: bool = False):
        gm, gs = self.gains(norm)
        dl = 10.0 * torch.log10((b["k_mid"] * gm).sum(1) + (b["k_side"] * gs).sum(1) + b["k_rest"])[:, None]
        em = b["in_mid"] + 10.0 * torch.log10(gm) - dl - b["truth_mid"]
        es = b["in_side"] + 10.0 * torch.log10(gs) - dl - b["truth_side"]
        mm, ms = b["mask_mid"], b["mask_side"]
        rm = torch.sqrt((em * em * mm).sum(1) / mm.sum(1).clamp(min=1) + 1e-6)
        rs = torch.sqrt((es * es * ms).sum(1) / ms.sum(1).clamp(min=1) + 1e-6)
        if per_pair:
            return rm, rs
        return (rm + rs).mean()


def chain_loss() -> ChainLoss:
    return ChainLoss()


_KEYS = ("in_mid", "in_side", "truth_mid", "truth_side", "k_mid", "k_side", "k_rest", "mask_mid", "mask_side")


def _tensors(p: dict[str, np.ndarray], idx=None) -> dict[str, torch.Tensor]:
    sel = slice(None) if idx is None else idx
    out = {k: torch.from_numpy(np.ascontiguousarray(p[k][sel])).float() for k in _KEYS}
    return out


@torch.no_grad()
def evaluate_pairs(model: nn.Module, loss: ChainLoss, p: dict[str, np.ndarray], batch: int = 4096) -> dict:
    """Mean mid/side RMS error (dB) of ``model`` on pairs, and of the neutral parameters (bypass)."""
    model.eval()
    rms_m, rms_s, neu_m, neu_s = [], [], [], []
    n = len(p["cond"])
    for i in range(0, n, batch):
        sl = slice(i, min(n, i + batch))
        b = _tensors(p, sl)
        out = model(torch.from_numpy(p["cond"][sl]))
        m, s = loss(out, b, per_pair=True)
        rms_m.append(m)
        rms_s.append(s)
        neutral = torch.tensor(_NEUTRAL, dtype=torch.float32).expand(out.shape[0], -1)
        m, s = loss(neutral, b, per_pair=True)
        neu_m.append(m)
        neu_s.append(s)
    cat = lambda xs: torch.cat(xs).numpy()  # noqa: E731
    m, s, nm, ns = cat(rms_m), cat(rms_s), cat(neu_m), cat(neu_s)
    res = {
        "mid_db": float(m.mean()),
        "side_db": float(s.mean()),
        "neutral_mid_db": float(nm.mean()),
        "neutral_side_db": float(ns.mean()),
    }
    mode = p.get("mode")
    if mode is not None:
        from .target_pairs import MODES

        for j, (name, _) in enumerate(MODES):
            sel = mode == j
            if np.any(sel):
                res[f"{name}_mid_db"] = float(m[sel].mean())
                res[f"{name}_neutral_mid_db"] = float(nm[sel].mean())
    return res


def train_target(
    train: dict[str, np.ndarray],
    val: dict[str, np.ndarray],
    *,
    epochs: int = 40,
    batch_size: int = 512,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    hidden: int = 256,
    layers: int = 3,
    dropout: float = 0.1,
    noise: float = 0.0,
    checkpoint: Path | None = None,
    resume: bool = False,
    log: Callable[[str], None] = lambda s: None,
) -> tuple[TargetNet, dict]:
    """Train; returns the best model (lowest validation loss) and the history."""
    torch.manual_seed(seed)
    x = train["cond"].astype(np.float64)
    model = TargetNet(x.mean(0), x.std(0), hidden=hidden, layers=layers, dropout=dropout)
    loss_fn = ChainLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(train["cond"])
    steps_per_epoch = max(1, n // batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    start_epoch, best, best_state, history, wall_before = 1, math.inf, None, [], 0.0
    if resume and checkpoint is not None and checkpoint.is_file():
        ck = torch.load(checkpoint, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        start_epoch, best, best_state, history = ck["epoch"] + 1, ck["best"], ck["best_state"], ck["history"]
        wall_before = float(ck.get("wall_s", sum(r["epoch_s"] for r in history)))
        log(f"resumed after epoch {ck['epoch']} (best validation {best:.4f})")
    order = np.random.default_rng(seed)
    for _ in range(start_epoch - 1):  # the same data order as an uninterrupted run
        order.permutation(n)
    cond = torch.from_numpy(train["cond"])
    tens = _tensors(train)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.monotonic()
    for epoch in range(start_epoch, epochs + 1):
        model.train()
        perm = torch.from_numpy(order.permutation(n))
        run, seen = 0.0, 0
        te = time.monotonic()
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            b = {k: v[idx] for k, v in tens.items()}
            xb = cond[idx]
            if noise > 0:  # input noise in units of each feature's spread: no memorising a track's exact numbers
                xb = xb + noise * model.std * torch.randn(xb.shape, generator=gen)
            out = model(xb)
            loss = loss_fn(out, b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            run += float(loss.detach()) * len(idx)
            seen += len(idx)
        ev = evaluate_pairs(model, loss_fn, val)
        vloss = ev["mid_db"] + ev["side_db"]
        rec = {
            "epoch": epoch,
            "train_loss": run / max(seen, 1),
            "val_loss": vloss,
            **ev,
            "epoch_s": time.monotonic() - te,
        }
        history.append(rec)
        if vloss < best:
            best, best_state = vloss, copy.deepcopy(model.state_dict())
        star = " *" if vloss == best else ""
        log(
            f"epoch {epoch:3d}/{epochs} train {rec['train_loss']:.3f} val mid {ev['mid_db']:.3f} "
            f"side {ev['side_db']:.3f} (neutral {ev['neutral_mid_db']:.3f}/{ev['neutral_side_db']:.3f}){star} "
            f"{rec['epoch_s']:.1f} s"
        )
        if checkpoint is not None:
            tmp = checkpoint.with_suffix(".tmp")
            torch.save(
                {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": epoch,
                 "best": best, "best_state": best_state, "history": history,
                 "wall_s": wall_before + time.monotonic() - t0},
                tmp,
            )  # fmt: skip
            os.replace(tmp, checkpoint)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    best_epoch = min(history, key=lambda r: r["val_loss"])["epoch"] if history else 0
    wall = wall_before + time.monotonic() - t0
    return model, {"history": history, "best_epoch": best_epoch, "best_val_loss": best, "wall_s": wall}


# ---------------------------------------------------------------------------
# export


def export_target(
    model: TargetNet | TargetEnsemble,
    out_dir: Path,
    name: str,
    *,
    parity_cond: np.ndarray,
    training_data: dict,
    training: dict,
    metrics: dict,
    description: str,
    model_share: float = 1.0,
) -> dict:
    """``OUT/NAME.onnx`` and its card (atomic writes); returns the card."""
    import onnx
    import onnxruntime as ort

    from mixpilot.inference.model import OUTPUT_NAME, session_options, sha256_file

    from .export import _replace_via_temp, normalisation_table, write_json_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.onnx"
    model.eval()
    dummy = torch.zeros((1, N_CONDITIONING), dtype=torch.float32)

    def write(tmp: str) -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (dummy,),
                tmp,
                dynamo=False,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                do_constant_folding=True,
            )
        onnx.checker.check_model(tmp, full_check=True)

    _replace_via_temp(path, write)
    sess = ort.InferenceSession(str(path), sess_options=session_options(), providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(parity_cond[:256], np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    one = np.concatenate([sess.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + 1]})[0] for i in range(min(32, len(x)))])
    parity = float(max(np.max(np.abs(ref - got)), np.max(np.abs(ref[: len(one)] - one))))
    if not parity <= 1e-4:
        raise RuntimeError(f"{name}: onnxruntime differs from torch by {parity:.3g}")
    feed = {INPUT_NAME: x[:1]}
    for _ in range(50):
        sess.run([OUTPUT_NAME], feed)
    t = np.empty(500)
    for i in range(500):
        t0 = time.perf_counter()
        sess.run([OUTPUT_NAME], feed)
        t[i] = time.perf_counter() - t0
    t *= 1e3
    norm = normalisation_table()
    card = {
        "name": name,
        "kind": KIND,
        "version": "2.0",
        "architecture": model.architecture,
        "description": description,
        "opset": OPSET,
        "conditioning": {"version": CONDITIONING_VERSION, "names": list(CONDITIONING_NAMES)},
        "param_names": list(MODEL_PARAM_NAMES),
        "normalisation": {k: norm[k] for k in MODEL_PARAM_NAMES},
        "input": {"name": INPUT_NAME, "shape": ["batch", N_CONDITIONING], "dtype": "float32",
                  "units": "dB (descriptors re loudness, widths, tolerances), log10 s"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", N_OUT], "dtype": "float32",
                   "units": "normalised 0..1 per param (see normalisation)"},
        "input_normalisation": {"mean": [round(float(v), 5) for v in model.mean],
                                "std": [round(float(v), 5) for v in model.std]},
        "model_config": model.config,
        "model_share": model_share,
        "training_data": training_data,
        "training": training,
        "metrics": metrics,
        "size_bytes": path.stat().st_size,
        "latency_ms_p50": round(float(np.percentile(t, 50)), 4),
        "latency_ms_p99": round(float(np.percentile(t, 99)), 4),
        "latency_machine": f"{platform.machine()}, onnxruntime 1 thread, no spinning",
        "parity_max_abs_diff": parity,
        "sha256": sha256_file(path),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }  # fmt: skip
    write_json_atomic(out_dir / f"{name}.json", card)
    return card


# ---------------------------------------------------------------------------
# command line


def _corpus_card(manifest: dict, tracks: list[dict]) -> dict:
    from collections import Counter

    pk = Counter(t["package"] for t in tracks)
    lic = Counter(t["licence"] for t in tracks)
    versions = {t["package"]: t.get("version", "") for t in tracks}
    return {
        "corpus": "Debian game soundtracks (training/corpus.py)",
        "packages": {p: {"version": versions[p], "tracks": n} for p, n in sorted(pk.items())},
        "licences": dict(sorted(lic.items())),
        "tracks": len(tracks),
        "hours": round(sum(t["duration_s"] for t in tracks) / 3600.0, 3),
        "salt": manifest.get("salt"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    from mixpilot.inference.profile import Profile

    from .corpus import CorpusError, default_dir, load_manifest
    from .target_data import cache_corpus, load_cache
    from .target_pairs import PAIRS_VERSION, RECIPES, make_pairs

    ap = argparse.ArgumentParser(prog="python -m mixpilot.training.target", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "models_onnx")
    ap.add_argument("--name", default="target")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--pairs", type=int, default=60000)
    ap.add_argument("--val-pairs", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--noise", type=float, default=0.3, help="input noise during training (feature std units)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--model-share",
        type=float,
        default=0.7,
        help="the model's share of the tone/width moves in the product (the rest: the analytic matcher's)",
    )
    ap.add_argument(
        "--recipe",
        type=int,
        default=PAIRS_VERSION,
        choices=sorted(RECIPES),
        help=f"pairs recipe (training.target_pairs.RECIPES; default {PAIRS_VERSION}, the shipped model's)",
    )
    ap.add_argument("--ensemble", type=int, default=3, help="members trained from seeds SEED, SEED+1, ...; mean output")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="decoding processes for the frame cache")
    ap.add_argument("--resume", action="store_true", help="continue from WORKDIR/checkpoint.pt")
    ap.add_argument("--set-default", action="store_true", help="point OUT/default.json at the exported model")
    ap.add_argument("--smoke", action="store_true", help="own signals, tiny run, temporary folder")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))

    def log(s: str) -> None:
        print(s, file=sys.stderr, flush=True)

    default_target = TargetVector.from_profile(Profile.load("default"))
    tmp = None
    if args.smoke:
        tmp = tempfile.TemporaryDirectory(prefix="mixpilot-target-smoke-")
        work = out = Path(tmp.name)
        st = _smoke_stats(args.seed)
        train = make_pairs(st[:2], 256, args.seed, default_target)
        val = make_pairs(st[2:], 64, args.seed + 1, default_target)
        data_card = {"smoke": True, "pairs": 256, "seed": args.seed}
        epochs = 1
    else:
        corpus = args.corpus or default_dir()
        pairs_dir = corpus / "target_work"  # the pairs depend only on the corpus, counts and seed: shared
        work = args.workdir or pairs_dir
        for d in (work, pairs_dir):
            d.mkdir(parents=True, exist_ok=True)
        out = args.out
        epochs = args.epochs
        try:
            manifest = load_manifest(corpus)
            tracks = cache_corpus(corpus, ("train", "validation"), workers=args.workers, log=log)
        except CorpusError as exc:
            print(f"training.target: error: {exc}", file=sys.stderr)
            return 1
        tr = [t for t in tracks if t["split"] == "train"]
        va = [t for t in tracks if t["split"] == "validation"]
        pairs = {}
        for split, tl, n, s in (("train", tr, args.pairs, args.seed), ("val", va, args.val_pairs, args.seed + 1000)):
            chunks = []
            for first in range(0, n, PAIRS_CHUNK):
                # fixed chunks of PAIRS_CHUNK pairs, each made by make_pairs(first=...) and cached apart: a chunk
                # depends only on the seed and its first index, so a larger --pairs reuses the chunks already made
                k = min(PAIRS_CHUNK, n - first)
                path = pairs_dir / f"pairs_v{args.recipe}_{split}_{s}_{first}+{k}.npz"
                if path.is_file():
                    z = np.load(path)
                    chunks.append({key: z[key] for key in z.files})
                    log(f"{split} pairs: {path}")
                    continue
                t0 = time.monotonic()
                chunks.append(
                    make_pairs(load_cache(corpus, tl), k, s, default_target, first=first, log=log, recipe=args.recipe)
                )
                np.savez(path.with_suffix(".tmp.npz"), **chunks[-1])
                os.replace(path.with_suffix(".tmp.npz"), path)
                log(f"{split} pairs: {k} in {time.monotonic() - t0:.0f} s -> {path}")
            pairs[split] = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
        train, val = pairs["train"], pairs["val"]
        data_card = {
            **_corpus_card(manifest, tr),
            "validation_tracks": len(va),
            "pairs": args.pairs,
            "val_pairs": args.val_pairs,
            "seed": args.seed,
            "recipe": "training/target_pairs.py (DeepAFx-ST self-supervised pairs in the descriptor domain)",
            "pairs_version": args.recipe,
            "test_split": "never read by training or model selection (training/match_eval.py cases only)",
        }
    members, hists = [], []
    for j in range(max(1, args.ensemble)):
        if args.ensemble > 1:
            log(f"member {j + 1}/{args.ensemble} (seed {args.seed + j})")
        m, h = train_target(
            train,
            val,
            epochs=epochs,
            batch_size=args.batch_size if not args.smoke else 64,
            lr=args.lr,
            weight_decay=args.weight_decay,
            seed=args.seed + j,
            hidden=args.hidden if not args.smoke else 32,
            layers=args.layers,
            dropout=args.dropout,
            noise=args.noise,
            checkpoint=work / ("checkpoint.pt" if j == 0 else f"checkpoint_{j}.pt"),
            resume=args.resume,
            log=log,
        )
        members.append(m)
        hists.append(h)
    hist = hists[0]
    model: TargetNet | TargetEnsemble = members[0]
    best = min(hist["history"], key=lambda r: r["val_loss"])
    if len(members) > 1:
        model = TargetEnsemble(members).eval()
        ev = evaluate_pairs(model, ChainLoss(), val)
        best = {**ev, "val_loss": ev["mid_db"] + ev["side_db"],
                "members_val_loss": [round(min(r["val_loss"] for r in h["history"]), 4) for h in hists]}  # fmt: skip
        hist = {"history": hist["history"], "best_epoch": [h["best_epoch"] for h in hists],
                "wall_s": sum(h["wall_s"] for h in hists)}  # fmt: skip
        log(f"ensemble of {len(members)}: val mid {ev['mid_db']:.3f} side {ev['side_db']:.3f}")
    card = export_target(
        model,
        out,
        args.name,
        parity_cond=val["cond"],
        training_data=data_card,
        training={
            "epochs": epochs,
            "best_epoch": hist["best_epoch"],
            "batch_size": args.batch_size,
            "lr": args.lr,
            "optimiser": f"AdamW, weight decay {args.weight_decay:g}, 200-step warm-up, cosine decay",
            "dropout": args.dropout,
            "input_noise": args.noise,
            "loss": "mid + side RMS band error through training/torch_chain.py",
            "wall_s": round(hist["wall_s"], 1),
            "threads": args.threads,
            "seed": args.seed,
            "ensemble": args.ensemble,
            "hidden": args.hidden,
            "layers": args.layers,
        },
        metrics={
            "validation": {
                k: (round(v, 4) if isinstance(v, float) else v) for k, v in best.items() if isinstance(v, (float, list))
            }
        },  # fmt: skip
        description="target-conditioned tonal-match EQ and widths, learnt from self-supervised pairs of real music",
        model_share=args.model_share,
    )
    if args.set_default and not args.smoke:
        from .export import write_default_pointer

        write_default_pointer(out, args.name, reason="target-conditioned model (issue 15)")
    summary = {"model": str(out / f"{args.name}.onnx"), "size_bytes": card["size_bytes"],
               "latency_ms_p99": card["latency_ms_p99"], "best_epoch": hist["best_epoch"],
               "validation": card["metrics"]["validation"]}  # fmt: skip
    if args.smoke:
        from mixpilot.inference.target_model import TargetModel, conditioning

        m = TargetModel.load(out / f"{args.name}.onnx")
        p = m.params(_smoke_desc(train), 10.0, default_target)
        summary["loaded"] = m.name
        summary["params"] = {k: round(v, 3) for k, v in p.items() if k in MODEL_PARAM_NAMES}
        assert conditioning is not None
        tmp.cleanup()
    print(json.dumps(summary))
    return 0


def _smoke_desc(p: dict):
    class _D:
        mid_db = p["in_mid"][0].astype(np.float64)
        width_band_db = (p["in_side"][0] - p["in_mid"][0]).astype(np.float64)
        width_db = float(np.mean(width_band_db))

    return _D()


if __name__ == "__main__":
    raise SystemExit(main())
