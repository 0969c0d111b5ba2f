"""The training loop: deterministic, AdamW, L1/smooth-L1 on normalised targets.

Determinism: :func:`seed_everything` seeds Python, NumPy and torch and asks
torch for deterministic algorithms; the data order is a NumPy permutation
drawn from a generator seeded with the run's seed, and augmentation draws from
its own seeded torch generator.  The same data, config and seed give the same
weights on the same machine and thread count.

Augmentation (``TrainConfig.augment``) only touches what the targets do not
depend on: a circular shift of the window in time (a window starts at an
arbitrary point of a song) and, with ``time_mask``, one short band of frames
replaced by the window's per-band mean (SpecAugment-style, Park et al. 2019,
but filled with the mean rather than zero so the long-term spectrum and level
— which the EQ and gain targets are read from — are kept).  There is no gain
jitter: the level targets are defined by the absolute level.

Early stopping watches the MAE on a validation split (carved from the
training groups by the caller); the weights of the best epoch are restored.
Progress lines go to stderr.
"""

from __future__ import annotations

import copy
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TextIO

import numpy as np
import torch
from torch import nn

from mixpilot.dsp.params import AI_PARAM_NAMES

__all__ = ["TrainConfig", "TrainResult", "seed_everything", "train_model", "predict", "default_threads"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (recorded in the model card)."""

    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.02
    warmup_epochs: int = 1
    loss: str = "l1"  # "l1" (the metric) or "smooth_l1" (Huber with beta=smooth_l1_beta)
    smooth_l1_beta: float = 0.02
    patience: int = 8  # epochs without a better validation MAE before stopping
    augment: bool = True
    time_mask: int = 8  # frames; 0 = off
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if self.loss not in ("l1", "smooth_l1"):
            raise ValueError(f"loss must be 'l1' or 'smooth_l1', got {self.loss!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.threads < 1:
            raise ValueError("epochs, batch_size and threads must be >= 1")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """What :func:`train_model` returns: the best model and its history."""

    model: nn.Module
    best_epoch: int
    best_val_mae: float
    epochs_run: int
    wall_s: float
    history: list[dict] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch; deterministic torch algorithms where they exist."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - seeds libraries that use the legacy global state
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@torch.no_grad()
def predict(model: nn.Module, features: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Model outputs for ``features [n, 2, M, T]`` as float32 ``[n, n_params]`` (eval mode)."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(features), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(features[i : i + batch_size], dtype=np.float32))
        out.append(model(xb).numpy())
    model.train(was_training)
    if not out:
        n_params = int(getattr(model, "config", {}).get("n_params", len(AI_PARAM_NAMES)))
        return np.zeros((0, n_params), np.float32)
    return np.concatenate(out).astype(np.float32)


def _augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Circular time shift and an optional mean-filled time mask, per example."""
    b, _, _, t = x.shape
    shift = torch.randint(0, t, (b,), generator=gen)
    idx = (torch.arange(t).unsqueeze(0) + shift.unsqueeze(1)) % t  # [B, T]
    x = torch.gather(x, 3, idx[:, None, None, :].expand_as(x))
    if cfg.time_mask > 0 and t > 2 * cfg.time_mask:
        width = torch.randint(0, cfg.time_mask + 1, (b,), generator=gen)
        start = torch.randint(0, t - cfg.time_mask, (b,), generator=gen)
        frames = torch.arange(t).unsqueeze(0)
        mask = (frames >= start.unsqueeze(1)) & (frames < (start + width).unsqueeze(1))  # [B, T]
        mean = x.mean(dim=3, keepdim=True)
        x = torch.where(mask[:, None, None, :], mean, x)
    return x


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up, then cosine decay to 5% of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, p))))


def train_model(
    model: nn.Module,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    cfg: TrainConfig = TrainConfig(),
    *,
    name: str = "model",
    log: TextIO | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place and return it with the weights of its best validation epoch.

    Parameters
    ----------
    train_x, val_x : np.ndarray [shape=(n, 2, n_mels, n_frames)], float32 dB features
    train_y, val_y : np.ndarray [shape=(n, n_params)], normalised targets in 0..1
    cfg : TrainConfig
    name : label used on the progress lines
    log : stream for progress lines (stderr by default)
    """
    log = sys.stderr if log is None else log
    if len(train_x) != len(train_y) or len(val_x) != len(val_y):
        raise ValueError("features and targets must have the same length")
    if len(train_x) == 0:
        raise ValueError("empty training set")
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    order_rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)

    tx = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32))
    ty = torch.from_numpy(np.ascontiguousarray(train_y, dtype=np.float32))
    n = len(tx)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    warmup = min(total, steps_per_epoch * cfg.warmup_epochs)

    decay, no_decay = [], []
    for pname, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or pname.endswith(("pos", "cls")) else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    if cfg.loss == "l1":
        loss_fn: nn.Module = nn.L1Loss()
    else:
        loss_fn = nn.SmoothL1Loss(beta=cfg.smooth_l1_beta)

    best_mae, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    history: list[dict] = []
    t0 = time.perf_counter()
    step = 0
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.from_numpy(order_rng.permutation(n))
        run_loss, seen = 0.0, 0
        te = time.perf_counter()
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            if len(idx) < 2 and n >= 2:  # batch norm needs two examples
                continue
            xb, yb = tx[idx], ty[idx]
            if cfg.augment:
                xb = _augment(xb, cfg, gen)
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, total, warmup, cfg.lr)
            opt.zero_grad(set_to_none=True)
            # training.models: the unclamped head for output="clamp" models (no saturation)
            out = model.train_output(xb) if hasattr(model, "train_output") else model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            run_loss += float(loss.detach()) * len(idx)
            seen += len(idx)
        if len(val_x):
            val_mae = float(np.mean(np.abs(predict(model, val_x) - val_y)))
        else:
            val_mae = float("nan")
        rec = {
            "epoch": epoch,
            "train_loss": run_loss / max(1, seen),
            "val_mae": val_mae,
            "lr": opt.param_groups[0]["lr"],
            "epoch_s": time.perf_counter() - te,
        }
        history.append(rec)
        improved = val_mae < best_mae - 1e-5 or (math.isnan(val_mae) and epoch == cfg.epochs)
        if improved or not len(val_x):
            best_mae, best_epoch = val_mae, epoch
            best_state = copy.deepcopy(model.state_dict())
        print(
            f"[{name}] epoch {epoch:3d}/{cfg.epochs}  loss {rec['train_loss']:.4f}  "
            f"val MAE {val_mae:.4f}{' *' if best_epoch == epoch else '  '}  "
            f"lr {rec['lr']:.2e}  {rec['epoch_s']:.1f}s",
            file=log,
            flush=True,
        )
        if on_epoch is not None:
            on_epoch(rec)
        if len(val_x) and epoch - best_epoch >= cfg.patience:
            print(f"[{name}] early stop: no better validation MAE for {cfg.patience} epochs", file=log, flush=True)
            break
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model,
        best_epoch=best_epoch,
        best_val_mae=float(best_mae),
        epochs_run=epoch,
        wall_s=time.perf_counter() - t0,
        history=history,
    )


def default_threads() -> int:
    """Two threads, or fewer where the machine has fewer cores."""
    return max(1, min(2, os.cpu_count() or 1))
