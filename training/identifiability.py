"""How much a single window *can* tell about each EQ fault: a bound on what L1 training can reach.

::

    python -m mixpilot.training.identifiability --dataset out/dataset_16000_v3.npz

For each EQ parameter it takes one direct cue from the window's long-term
mel spectrum (mid + side power, frames averaged, bands averaged in power over
a region): ``low`` = 30-150 Hz minus the 300-3000 Hz body, ``mid`` =
600-1600 Hz minus the mean of 150-400 Hz and 2.5-6 kHz, ``presence`` =
3-6.5 kHz minus 300-2000 Hz, ``high`` = 7-11 kHz minus the body.  It then
scores, on every other example, the conditional *median* of the normalised
target in 40 quantile bins of the cue fitted on the remaining examples --
the L1-optimal predictor from that cue alone -- against the plain median
("neutral").  It also prints the spread of each cue over windows without any
fault: the "noise" a fault of 1-4 dB has to stand out from.

It is a diagnostic for the data definition, not a model: a network sees more
than one cue, but if the best use of the most direct cue barely beats
"no correction", the targets are not identifiable enough for MAE to reward
correcting.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from mixpilot.inference.features import FEATURE_CONFIG

from .data import load_dataset

CUES = ("low_gain_db", "mid_gain_db", "presence_gain_db", "high_gain_db")
N_BINS = 40


def cues(features: np.ndarray) -> dict[str, np.ndarray]:
    """Region-level cues (dB) from features [n, 2, n_mels, frames]."""
    from mixpilot.inference.heuristic import _band_centres_hz

    f = np.asarray(features, np.float64)
    p = 10.0 ** (f[:, 0] / 10.0) + 10.0 ** (f[:, 1] / 10.0)
    spec = p.mean(axis=2)
    fc = _band_centres_hz(FEATURE_CONFIG)

    def reg(lo, hi):
        m = (fc >= lo) & (fc < hi)
        return 10.0 * np.log10(spec[:, m].mean(axis=1))

    body = reg(300, 3000)
    return {
        "low_gain_db": reg(30, 150) - body,
        "mid_gain_db": reg(600, 1600) - 0.5 * (reg(150, 400) + reg(2500, 6000)),
        "presence_gain_db": reg(3000, 6500) - reg(300, 2000),
        "high_gain_db": reg(7000, 11000) - body,
    }


def binned_median_mae(x: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> tuple[float, float]:
    """(neutral MAE, binned conditional-median MAE): fitted on even indices, scored on odd."""
    fit = np.arange(len(x)) % 2 == 0
    q = np.quantile(x[fit], np.linspace(0.0, 1.0, n_bins + 1))
    b = np.clip(np.searchsorted(q, x) - 1, 0, n_bins - 1)
    overall = float(np.median(y[fit]))
    med = np.array([np.median(y[fit & (b == k)]) if np.any(fit & (b == k)) else overall for k in range(n_bins)])
    return float(np.abs(overall - y[~fit]).mean()), float(np.abs(med[b[~fit]] - y[~fit]).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mixpilot.training.identifiability", description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True, help="a dataset saved by training.data.save_dataset")
    args = ap.parse_args(argv)
    ds = load_dataset(args.dataset)
    c = cues(ds.features)
    names = list(ds.param_names)
    referenced = np.array([m.get("referenced", True) for m in ds.meta])
    no_fault = np.array([not m["faults"] for m in ds.meta])
    print(f"{len(ds)} examples; {int(referenced.sum())} from referenced mixes, {int(no_fault.sum())} without faults")
    print("| parameter | cue spread, no-fault referenced windows (std dB) | neutral MAE | conditional-median MAE |")
    print("|---|---|---|---|")
    for n in CUES:
        y = ds.targets[:, names.index(n)]
        spread = float(np.std(c[n][referenced & no_fault]))
        neutral, cond = binned_median_mae(c[n], y)
        print(f"| {n} | {spread:.2f} | {neutral:.4f} | {cond:.4f} |")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
