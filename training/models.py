"""PyTorch models that map one log-mel window to the AI parameters.

Every model takes ``features`` of shape ``[batch, 2, n_mels, n_frames]`` — the
log-mel dB spectrogram of mid and side computed by
:func:`inference.features.extract_features` — and returns ``[batch, n_params]``
in 0..1 (the normalised AI parameters, in :data:`dsp.params.AI_PARAM_NAMES`
order).  The fixed input normalisation (per channel and mel band mean and
standard deviation of the dB features, measured on the training set) lives
inside each model as buffers, so the exported ONNX graph takes raw dB
features and nothing outside the graph can normalise differently.

Three models:

:class:`CompactCNN`
    four conv blocks (3x3 conv, batch norm, ReLU, 2x2 max pool), pooled over
    time but not over frequency (EQ targets depend on *where* in the spectrum
    energy sits), concatenated with the per-band mean and spread over time of
    the normalised input (the long-term spectrum and its dynamics, which carry
    level, tilt and compression), then an MLP head.
:class:`PatchTransformer`
    AST-like (Gong et al. 2021, "AST: Audio Spectrogram Transformer"): the
    spectrogram is cut into non-overlapping patches, linearly embedded, given
    a learnt positional embedding and a CLS token, and passed through a few
    pre-norm transformer encoder blocks; the CLS token and the mean of the
    patch tokens (and the same spectral summary) feed an MLP head.  Attention is written out with plain
    matmuls (no fused kernels) so the ONNX export is exact and portable.
:class:`WeightedEnsemble`
    ``w * cnn(x) + (1 - w) * ast(x)`` with one weight per parameter, chosen on
    a validation split (:func:`fit_ensemble_weights`); it is exported as a
    single ONNX graph containing both members.

Output: ``sigmoid(head)`` (default, the shipped models) or ``clamp(head, 0, 1)``
(``output="clamp"``), where training uses the unclamped head
(:meth:`train_output`).  Why the option exists: with L1 loss a sigmoid
saturates for every parameter whose neutral value sits at the edge of its
range (ratio 1, sends 0) — once the logit is far below zero its gradient
vanishes and the model never learns to suggest a send — while the L1
gradient of a linear output never vanishes.  (A probe on the spectral summary
alone cut the reverb MAE from 0.018 to 0.013 that way, but the CNN trained
with it collapsed to constant outputs in a first attempt; not shipped yet.)

Models are rebuilt from ``(architecture, config)`` with :func:`build_model`;
the config is plain JSON and is written into the model card.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from mixpilot.dsp.params import AI_PARAM_NAMES

#: outputs of a window model by default: today's whole AI set (the export's card lists exactly these)
N_PARAMS = len(AI_PARAM_NAMES)

__all__ = [
    "InputNorm",
    "SpectralSummary",
    "CompactCNN",
    "PatchTransformer",
    "WeightedEnsemble",
    "ARCHITECTURES",
    "build_model",
    "count_parameters",
    "feature_stats",
    "fit_ensemble_weights",
]

# Lower bound on the per-band standard deviation (dB) used to normalise inputs:
# a band that is (almost) constant over the training set must not be blown up.
_MIN_STD_DB = 1.0


def feature_stats(features: np.ndarray, *, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Per channel and mel band mean and standard deviation of dB features.

    Parameters
    ----------
    features : np.ndarray [shape=(n, channels, n_mels, n_frames)]
        training features in dB.

    Returns
    -------
    mean, std : np.ndarray [shape=(channels, n_mels)], float32
        statistics over examples and frames (float64 accumulation, chunked so
        a large dataset is never copied); ``std`` is at least 1 dB.
    """
    x = np.asarray(features)
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"features must be [n, channels, n_mels, n_frames] with n > 0, got {x.shape}")
    n, c, m, t = x.shape
    s1 = np.zeros((c, m))
    s2 = np.zeros((c, m))
    for i in range(0, n, chunk):
        block = x[i : i + chunk].astype(np.float64)
        s1 += block.sum(axis=(0, 3))
        s2 += (block * block).sum(axis=(0, 3))
    count = float(n * t)
    mean = s1 / count
    var = np.maximum(s2 / count - mean * mean, 0.0)
    std = np.maximum(np.sqrt(var), _MIN_STD_DB)
    return mean.astype(np.float32), std.astype(np.float32)


class InputNorm(nn.Module):
    """``(x - mean) / std`` per channel and mel band, with fixed buffers."""

    def __init__(
        self, channels: int, n_mels: int, mean: np.ndarray | None = None, std: np.ndarray | None = None
    ) -> None:
        super().__init__()
        m = np.zeros((channels, n_mels), np.float32) if mean is None else np.asarray(mean, np.float32)
        s = np.ones((channels, n_mels), np.float32) if std is None else np.asarray(std, np.float32)
        if m.shape != (channels, n_mels) or s.shape != (channels, n_mels):
            raise ValueError(f"normalisation stats must be [{channels}, {n_mels}], got {m.shape} and {s.shape}")
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s)) and np.all(s > 0)):
            raise ValueError("normalisation stats must be finite with std > 0")
        self.register_buffer("mean", torch.from_numpy(m.copy()).reshape(1, channels, n_mels, 1))
        self.register_buffer("inv_std", torch.from_numpy((1.0 / s).astype(np.float32)).reshape(1, channels, n_mels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.inv_std

    def stats(self) -> dict[str, list]:
        """The mean and std as nested lists (for the model card)."""
        mean = self.mean[0, :, :, 0].detach().cpu().numpy()
        std = 1.0 / self.inv_std[0, :, :, 0].detach().cpu().numpy()
        return {"mean_db": np.round(mean, 4).tolist(), "std_db": np.round(std, 4).tolist()}


_DB_TO_LN = math.log(10.0) / 10.0


class SpectralSummary(nn.Module):
    """Long-term statistics of the window that the mixing targets are read from.

    From the raw dB features ``[B, C, M, T]`` (``C`` = mid, side):

    - per band, the mean and spread over time of the normalised dB values
      (spectral balance and its dynamics: EQ, compression);
    - per band, the long-term average power spectrum in dB,
      ``10 log10(mean_t 10^(x/10))`` (energy-weighted, so loud frames count as
      they do in a level meter);
    - per channel, the broadband frame level ``10 log10(sum_m 10^(x/10))``:
      its mean, spread and maximum over time (level, crest, width as the
      side/mid level difference).

    The vector goes through a batch norm (a fixed affine map once exported),
    so every statistic arrives on a comparable scale.  Output ``[B, size]``
    with ``size = 6 * M + 3 * C``.
    """

    def __init__(self, channels: int, n_mels: int) -> None:
        super().__init__()
        self.size = 6 * n_mels + 3 * channels
        self.bn = nn.BatchNorm1d(self.size)

    def forward(self, x_db: torch.Tensor, x_norm: torch.Tensor) -> torch.Tensor:
        mu = x_norm.mean(dim=3, keepdim=True)
        sd = torch.sqrt(((x_norm - mu) ** 2).mean(dim=3) + 1e-6)
        power = torch.exp(x_db * _DB_TO_LN)  # mel power
        ltas = torch.log(power.mean(dim=3) + 1e-10) / _DB_TO_LN  # [B, C, M] dB
        frame = torch.log(power.sum(dim=2) + 1e-10) / _DB_TO_LN  # [B, C, T] dB
        f_mu = frame.mean(dim=2, keepdim=True)
        f_sd = torch.sqrt(((frame - f_mu) ** 2).mean(dim=2) + 1e-6)
        f_max = frame.max(dim=2).values
        v = torch.cat([mu.flatten(1), sd.flatten(1), ltas.flatten(1), f_mu.flatten(1), f_sd, f_max], dim=1)
        return self.bn(v)


OUTPUTS = ("clamp", "sigmoid")


class _Regressor(nn.Module):
    """Shared output handling: ``forward = sigmoid(raw)`` or ``clamp(raw, 0, 1)``."""

    output: str = "sigmoid"
    head: nn.Sequential

    def raw(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.raw(x)
        return torch.sigmoid(r) if self.output == "sigmoid" else torch.clamp(r, 0.0, 1.0)

    def train_output(self, x: torch.Tensor) -> torch.Tensor:
        """What the loss sees: the sigmoid output, or the *unclamped* head for ``output="clamp"``."""
        r = self.raw(x)
        return torch.sigmoid(r) if self.output == "sigmoid" else r

    def set_output_bias(self, values: np.ndarray) -> None:
        """Start the head at ``values`` (e.g. the training targets' median) instead of at 0."""
        v = np.asarray(values, np.float64)
        if self.output == "sigmoid":
            v = np.clip(v, 1e-3, 1 - 1e-3)
            v = np.log(v / (1 - v))
        last = self.head[-1]
        with torch.no_grad():
            last.bias.copy_(torch.as_tensor(v, dtype=last.bias.dtype))


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    return output


class CompactCNN(_Regressor):
    """Small CNN over the log-mel window (see the module docstring)."""

    architecture = "cnn"

    def __init__(
        self,
        *,
        n_mels: int = 64,
        n_frames: int = 128,
        n_params: int = N_PARAMS,
        channels: tuple[int, ...] | list[int] = (16, 32, 64, 96),
        hidden: int = 128,
        dropout: float = 0.1,
        summary: bool = True,
        time_pool: int = 2,
        output: str = "sigmoid",
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.output = _check_output(output)
        channels = tuple(int(c) for c in channels)
        pool = 2 ** len(channels)
        if n_mels < pool or n_frames < pool * time_pool:
            raise ValueError(
                f"CompactCNN with {len(channels)} blocks and time_pool {time_pool} needs "
                f"n_mels >= {pool} and n_frames >= {pool * time_pool}"
            )
        self.config: dict[str, Any] = {
            "n_mels": n_mels,
            "n_frames": n_frames,
            "n_params": n_params,
            "channels": list(channels),
            "hidden": hidden,
            "dropout": dropout,
            "summary": summary,
            "time_pool": time_pool,
            "output": output,
        }
        self.norm = InputNorm(2, n_mels, mean, std)
        # average neighbouring frames first (46 ms resolution is enough for mixing decisions
        # and halves the cost of every conv layer)
        self.time_pool = nn.AvgPool2d((1, time_pool)) if time_pool > 1 else nn.Identity()
        layers: list[nn.Module] = []
        cin = 2
        for cout in channels:
            layers += [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.summary = SpectralSummary(2, n_mels) if summary else None
        n_in = cin * (n_mels // pool) + (self.summary.size if self.summary is not None else 0)
        self.head = nn.Sequential(
            nn.Linear(n_in, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, n_params)
        )

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        xn = self.norm(x)
        h = self.features(self.time_pool(xn))  # [B, C, M/16, T/(16*time_pool)]
        h = h.mean(dim=3).flatten(1)  # pool over time only: keep where in frequency
        if self.summary is not None:
            h = torch.cat([h, self.summary(x, xn)], dim=1)
        return self.head(h)


class _Attention(nn.Module):
    """Multi-head self-attention (Vaswani et al. 2017) with explicit matmuls."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding dim {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, d = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape(-1, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, h, N, dh]
        att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
        out = torch.matmul(att, v).transpose(1, 2).reshape(-1, n, d)
        return self.proj(out)


class _Block(nn.Module):
    """Pre-norm transformer encoder block: x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.mlp(self.ln2(x)))


class PatchTransformer(_Regressor):
    """AST-like transformer over spectrogram patches (see the module docstring)."""

    architecture = "ast"

    def __init__(
        self,
        *,
        n_mels: int = 64,
        n_frames: int = 128,
        n_params: int = N_PARAMS,
        patch: tuple[int, int] | list[int] = (8, 16),
        dim: int = 96,
        depth: int = 3,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        hidden: int = 128,
        dropout: float = 0.1,
        summary: bool = True,
        output: str = "sigmoid",
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.output = _check_output(output)
        pf, pt = (int(patch[0]), int(patch[1]))
        if n_mels < pf or n_frames < pt:
            raise ValueError(f"patch {pf}x{pt} is larger than the input {n_mels}x{n_frames}")
        self.config: dict[str, Any] = {
            "n_mels": n_mels,
            "n_frames": n_frames,
            "n_params": n_params,
            "patch": [pf, pt],
            "dim": dim,
            "depth": depth,
            "heads": heads,
            "mlp_ratio": mlp_ratio,
            "hidden": hidden,
            "dropout": dropout,
            "summary": summary,
            "output": output,
        }
        self.norm = InputNorm(2, n_mels, mean, std)
        self.summary = SpectralSummary(2, n_mels) if summary else None
        self.embed = nn.Conv2d(2, dim, kernel_size=(pf, pt), stride=(pf, pt))
        self.n_tokens = (n_mels // pf) * (n_frames // pt)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, self.n_tokens + 1, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.blocks = nn.Sequential(*[_Block(dim, heads, mlp_ratio, dropout) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim)
        n_in = 2 * dim + (self.summary.size if self.summary is not None else 0)
        self.head = nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, n_params))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        xn = self.norm(x)
        tok = self.embed(xn).flatten(2).transpose(1, 2)  # [B, N, dim]
        cls = self.cls.expand(tok.shape[0], -1, -1)
        h = torch.cat([cls, tok], dim=1) + self.pos
        h = self.ln(self.blocks(h))
        pooled = torch.cat([h[:, 0], h[:, 1:].mean(dim=1)], dim=1)
        if self.summary is not None:
            pooled = torch.cat([pooled, self.summary(x, xn)], dim=1)
        return self.head(pooled)


class WeightedEnsemble(nn.Module):
    """``w * a(x) + (1 - w) * b(x)`` with a weight per output parameter."""

    architecture = "ensemble"

    def __init__(self, a: nn.Module, b: nn.Module, weights: np.ndarray | list[float] | None = None) -> None:
        super().__init__()
        self.a = a
        self.b = b
        n_params = int(getattr(a, "config", {}).get("n_params", N_PARAMS))
        w = np.full(n_params, 0.5, np.float32) if weights is None else np.asarray(weights, np.float32)
        if w.shape != (n_params,) or np.any(w < 0) or np.any(w > 1):
            raise ValueError(f"ensemble weights must be {n_params} values in 0..1, got {w}")
        self.register_buffer("w", torch.from_numpy(w.copy()))
        self.config: dict[str, Any] = {
            "members": [getattr(a, "architecture", "a"), getattr(b, "architecture", "b")],
            "weights": [round(float(v), 4) for v in w],
            "n_params": n_params,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * self.a(x) + (1.0 - self.w) * self.b(x)


ARCHITECTURES: dict[str, type[nn.Module]] = {"cnn": CompactCNN, "ast": PatchTransformer}


def build_model(
    architecture: str,
    config: dict[str, Any] | None = None,
    *,
    mean: np.ndarray | None = None,
    std: np.ndarray | None = None,
) -> nn.Module:
    """A fresh ``cnn`` or ``ast`` model from its JSON config (weights initialised from torch's RNG)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](**dict(config or {}), mean=mean, std=std)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fit_ensemble_weights(pred_a: np.ndarray, pred_b: np.ndarray, target: np.ndarray, *, steps: int = 21) -> np.ndarray:
    """Per-parameter weight ``w`` on a grid 0..1 minimising the MAE of ``w*a + (1-w)*b``.

    Parameters
    ----------
    pred_a, pred_b, target : np.ndarray [shape=(n, n_params)]
        predictions of the two members and the targets on a validation split.

    Returns
    -------
    np.ndarray [shape=(n_params,)], float32
        the weights; ties go to the more even blend (closest to 0.5).
    """
    a = np.asarray(pred_a, np.float64)
    b = np.asarray(pred_b, np.float64)
    y = np.asarray(target, np.float64)
    if not (a.shape == b.shape == y.shape) or a.ndim != 2:
        raise ValueError(f"predictions and targets must share one [n, n_params] shape: {a.shape}, {b.shape}, {y.shape}")
    grid = np.linspace(0.0, 1.0, steps)
    weights = np.empty(a.shape[1], np.float32)
    for j in range(a.shape[1]):
        maes = np.array([np.mean(np.abs(w * a[:, j] + (1 - w) * b[:, j] - y[:, j])) for w in grid])
        # within rounding of the best MAE, prefer the most even blend
        near = np.flatnonzero(maes <= maes.min() + 1e-9)
        weights[j] = grid[near[np.argmin(np.abs(grid[near] - 0.5))]]
    return weights
