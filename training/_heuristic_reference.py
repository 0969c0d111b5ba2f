"""Derive the constants of :mod:`inference.heuristic` from good synthetic mixes.

Run ``python -m mixpilot.training._heuristic_reference`` and paste the printed block
between ``# BEGIN DERIVED`` and ``# END DERIVED`` in ``inference/heuristic.py``.

Reference statistics come from good mixes only (no faults): ``N_SONGS`` songs
of :func:`training.synth.synth_song` (seed ``REF_SEED``, not used by any
dataset) through :func:`training.synth.mix_good`, ``WINDOWS`` settled windows
each (held to the song's reference as training holds them,
:func:`training.data._synth_window`), features from :func:`inference.features.extract_features`:

* per mel band, the mean and standard deviation of the long-term total
  (mid + side) power spectrum in dB;
* the median total level, side-to-mid ratio and dynamics spread;
* each rule's deadband: the ``DEADBAND_QUANTILE`` quantile of the rule's raw
  estimate over these good windows (a rule acts only on a deviation larger
  than that share of good mixes show).

The rule gains are fixed by design (``RULE_GAIN``), not fitted; the level
rule's gain is ``6 / (6 - deadband)`` so it reaches the full correction at the
edge of the AI range.  For the
record, :func:`main` also prints the normalised MAE on a calibration set
(``build_dataset(CAL_EXAMPLES, seed=CAL_SEED)``, not the evaluation set) of
the shipped rules, of level-only rules (everything else neutral) and of the
neutral vector.
"""

from __future__ import annotations

import sys

import numpy as np

from mixpilot.inference import heuristic as H
from mixpilot.inference.features import FEATURE_CONFIG, extract_features, input_window_frames

from . import synth
from .data import PREROLL_S, _synth_window, build_dataset, neutral_params, normalise_targets

REF_SEED = 1234
N_SONGS = 300
WINDOWS = 2
CAL_SEED = 4321
CAL_EXAMPLES = 1500
DEADBAND_QUANTILE = {
    "input_gain_db": 90.0,
    "low_gain_db": 75.0,
    "mid_gain_db": 75.0,
    "high_gain_db": 75.0,
    "presence_gain_db": 75.0,
    "comp_ratio": 75.0,
    "stereo_width": 75.0,
}
RULE_GAIN = {
    "input_gain_db": 1.0,
    "low_gain_db": 0.5,
    "mid_gain_db": 0.5,
    "high_gain_db": 0.5,
    "presence_gain_db": 0.5,
    "comp_ratio": 0.25,
    "stereo_width": 0.5,
}


def reference_features(n_songs: int = N_SONGS) -> np.ndarray:
    rng = np.random.default_rng(REF_SEED)
    sr = synth.SAMPLE_RATE
    w = input_window_frames(sr, FEATURE_CONFIG)
    feats = []
    for i in range(n_songs):
        mix = synth.mix_good(synth.synth_song(rng, seconds=7.0), rng)
        for _ in range(WINDOWS):
            start = int(rng.integers(int(1.5 * sr), mix.compressed.shape[0] - w))
            pre = int(PREROLL_S * sr)
            # the window as training sees it: held to the song's tonal / stereo reference
            seg = _synth_window(mix, {}, slice(start - pre, start + w), pre)
            feats.append(extract_features(seg[pre:], sr))
        if (i + 1) % 50 == 0:
            print(f"  reference: {i + 1}/{n_songs} songs", file=sys.stderr)
    return np.stack(feats)


def derive(feats: np.ndarray) -> dict:
    a = H.analyse(feats)
    ref = {
        "spectrum_mean": a["spectrum_db"].mean(0),
        "spectrum_std": a["spectrum_db"].std(0),
        "level_db": float(np.median(a["level_db"])),
        "side_mid_db": float(np.median(a["side_mid_db"])),
        "dynamics_db": float(np.median(a["dynamics_db"])),
    }
    est = H.HeuristicEstimator(reference=ref)
    raw = est.raw(a)
    ref["gains"] = {k: (RULE_GAIN[k], float(np.percentile(np.abs(raw[k]), DEADBAND_QUANTILE[k]))) for k in RULE_GAIN}
    # level: the cue is strong, so the rule reaches the full correction at the edge of the AI range
    # (gain = limit / (limit - deadband)) instead of undoing only the excess over the deadband
    dead = ref["gains"]["input_gain_db"][1]
    limit = 6.0
    ref["gains"]["input_gain_db"] = (limit / (limit - dead), dead)
    return ref


def evaluate(ref: dict, ds) -> dict[str, np.ndarray]:
    """Per-parameter normalised MAE on ``ds`` of the shipped rules, level-only rules and neutral."""
    est = H.HeuristicEstimator(reference=ref)
    est.set_gains(ref["gains"])
    a = H.analyse(ds.features)
    out = {"heuristic": np.abs(est.normalise(est.rules(a)) - ds.targets).mean(0)}
    est.set_gains({k: (0.0, 0.0) if k != "input_gain_db" else ref["gains"][k] for k in RULE_GAIN})
    out["level_only"] = np.abs(est.normalise(est.rules(a)) - ds.targets).mean(0)
    out["neutral"] = np.abs(normalise_targets(neutral_params())[None] - ds.targets).mean(0)
    return out


def main() -> None:
    ref = derive(reference_features())
    print("  calibration set...", file=sys.stderr)
    for name, mae in evaluate(ref, build_dataset(CAL_EXAMPLES, seed=CAL_SEED)).items():
        print(f"# {name}: calibration MAE {mae.mean():.4f} per parameter {np.round(mae, 4).tolist()}", file=sys.stderr)
    np.set_printoptions(precision=2, suppress=True, linewidth=100, floatmode="fixed")
    print(f"# derived by training/_heuristic_reference.py: {N_SONGS} songs x {WINDOWS} windows, seed {REF_SEED}")
    print("REFERENCE_SPECTRUM_DB = np.array(" + np.array2string(ref["spectrum_mean"], separator=", ") + ")")
    print("REFERENCE_SPECTRUM_STD_DB = np.array(" + np.array2string(ref["spectrum_std"], separator=", ") + ")")
    print(f"REFERENCE_LEVEL_DB = {ref['level_db']:.2f}")
    print(f"REFERENCE_SIDE_MID_DB = {ref['side_mid_db']:.2f}")
    print(f"REFERENCE_DYNAMICS_DB = {ref['dynamics_db']:.2f}")
    print(f"EQ_RIDGE = {H.EQ_RIDGE}")
    print("RULE_GAINS = {" + ", ".join(f'"{k}": ({g:g}, {d:.3g})' for k, (g, d) in ref["gains"].items()) + "}")


if __name__ == "__main__":
    main()
