"""Held-out evaluation: MAE per parameter and overall, models vs the heuristic.

Every model and the heuristic baseline are scored on the *same* held-out
examples — a split by song group, so no song contributes windows to both
training and test — in normalised parameter units (0..1 per parameter, as
:func:`dsp.params.normalise` maps the AI-safe range).  Models are scored
through the exported ONNX graph, loaded by :class:`inference.model.OnnxModel`
exactly as the engine loads it, so the numbers describe what ships.

:func:`write_readme_results` puts the table between two markers in
``training/README.md`` and leaves the rest of the file alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixpilot.dsp.params import AI_PARAM_NAMES

__all__ = [
    "mae_report",
    "group_bootstrap",
    "score_exported",
    "finalise",
    "heuristic_predictions",
    "onnx_predictions",
    "results_table",
    "write_readme_results",
    "README_PATH",
    "RESULTS_BEGIN",
    "RESULTS_END",
]

README_PATH = Path(__file__).resolve().parent / "README.md"
RESULTS_BEGIN = "<!-- results:begin (written by python -m mixpilot.training) -->"
RESULTS_END = "<!-- results:end -->"

# short column labels for the markdown table
_SHORT = {
    "input_gain_db": "input gain",
    "comp_ratio": "comp ratio",
    "low_gain_db": "low",
    "mid_gain_db": "mid",
    "high_gain_db": "high",
    "presence_gain_db": "presence",
    "reverb_send": "reverb",
    "delay_send": "delay",
    "stereo_width": "width",
    "output_gain_db": "output gain",
}


def mae_report(
    pred: np.ndarray,
    target: np.ndarray,
    names: Sequence[str] = AI_PARAM_NAMES,
    *,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """``{"held_out_mae": overall, "per_param": {name: mae}, "n_test": n}`` in normalised units.

    With ``groups`` (the song id of each example) also ``"ci95"``: a 95% interval of the
    overall MAE from ``n_boot`` bootstrap resamples of whole songs (windows of one song
    are not independent, so songs are the unit that is resampled).
    """
    p = np.asarray(pred, np.float64)
    y = np.asarray(target, np.float64)
    if p.shape != y.shape or p.ndim != 2 or p.shape[1] != len(names):
        raise ValueError(f"predictions {p.shape} and targets {y.shape} must be [n, {len(names)}]")
    if len(p) == 0:
        raise ValueError("no held-out examples to evaluate")
    err = np.abs(p - y)
    out: dict[str, Any] = {
        "held_out_mae": round(float(err.mean()), 5),
        "per_param": {n: round(float(v), 5) for n, v in zip(names, err.mean(axis=0))},
        "n_test": int(len(p)),
    }
    if groups is not None:
        out["ci95"] = [round(v, 5) for v in group_bootstrap(err.mean(axis=1), groups, n_boot=n_boot, seed=seed)]
    return out


def group_bootstrap(
    values: np.ndarray, groups: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """2.5th and 97.5th percentile of the mean of ``values`` over songs resampled with replacement."""
    v = np.asarray(values, np.float64)
    g = np.asarray(groups)
    if v.shape != g.shape:
        raise ValueError(f"values {v.shape} and groups {g.shape} differ in shape")
    uniq, inv = np.unique(g, return_inverse=True)
    sums = np.bincount(inv, weights=v, minlength=len(uniq))
    counts = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
    means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def heuristic_predictions(features: np.ndarray) -> np.ndarray:
    """The analysis-based baseline (:class:`inference.heuristic.HeuristicEstimator`) on ``[n, 2, M, T]``."""
    from mixpilot.inference.heuristic import HeuristicEstimator

    est = HeuristicEstimator()
    out = np.asarray(est.predict(np.asarray(features, np.float32)), np.float32)
    if out.shape != (len(features), len(AI_PARAM_NAMES)):
        raise ValueError(f"heuristic returned shape {out.shape}")
    return out


def onnx_predictions(
    model_path: str | os.PathLike,
    features: np.ndarray,
    *,
    models_dir: str | os.PathLike | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Predictions of an exported model, loaded and validated by :class:`inference.model.OnnxModel`."""
    from mixpilot.inference.model import MODELS_DIR, OnnxModel

    model = OnnxModel.load(model_path, models_dir=models_dir or MODELS_DIR)
    x = np.asarray(features, np.float32)
    parts = [model.predict(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, len(AI_PARAM_NAMES)), np.float32)


def results_table(
    results: Mapping[str, Mapping[str, Any]], *, default: str | None = None, heuristic: str = "heuristic"
) -> str:
    """Markdown table: one row per model (and the heuristic), overall MAE, Δ vs heuristic, per parameter."""
    names = list(AI_PARAM_NAMES)
    head = ["model", "overall", "vs heuristic"] + [_SHORT.get(n, n) for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = results.get(heuristic, {}).get("held_out_mae")
    for label, r in results.items():
        mae = r["held_out_mae"]
        if base and label != heuristic:
            delta = f"{100.0 * (mae - base) / base:+.0f}%"
        else:
            delta = "—"
        shown = f"**{label}** (default)" if label == default else label
        row = [shown, f"{mae:.4f}", delta] + [f"{r['per_param'][n]:.4f}" for n in names]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def write_readme_results(text: str, readme: str | os.PathLike = README_PATH) -> None:
    """Replace what lies between the result markers of ``readme`` with ``text`` (append if absent)."""
    path = Path(readme)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{RESULTS_BEGIN}\n{text.strip()}\n{RESULTS_END}"
    pattern = re.compile(re.escape(RESULTS_BEGIN) + r".*?" + re.escape(RESULTS_END), re.S)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else (old.rstrip() + "\n\n" + block + "\n")

    from mixpilot.fileio import write_text_atomic

    write_text_atomic(path, new)


MODEL_NAMES = ("cnn", "ast", "ensemble")
MAX_SIZE_BYTES = 5 * 1024 * 1024
MAX_LATENCY_MS = 3.0


def score_exported(
    out_dir: str | os.PathLike,
    test_features: np.ndarray,
    test_targets: np.ndarray,
    test_groups: np.ndarray,
    train_targets: np.ndarray,
    *,
    names: Sequence[str] = MODEL_NAMES,
    seed: int = 0,
) -> dict[str, dict]:
    """Held-out reports for the exported models in ``out_dir``, the heuristic and "neutral".

    "neutral" is the training split's per-parameter median for every window:
    no correction, since most targets are the neutral value.  Every report
    carries a song-bootstrap 95% interval.
    """
    results: dict[str, dict] = {}
    kw = {"groups": test_groups, "seed": seed}
    for name in names:
        pred = onnx_predictions(Path(out_dir) / f"{name}.onnx", test_features, models_dir=out_dir)
        results[name] = mae_report(pred, test_targets, **kw)
    results["heuristic"] = mae_report(heuristic_predictions(test_features), test_targets, **kw)
    neutral = np.broadcast_to(np.median(np.asarray(train_targets), axis=0), np.shape(test_targets))
    results["neutral"] = mae_report(neutral, test_targets, **kw)
    return results


def finalise(
    out_dir: str | os.PathLike,
    results: Mapping[str, Mapping[str, Any]],
    *,
    names: Sequence[str] = MODEL_NAMES,
    readme: str | os.PathLike | None = None,
    header: str = "",
) -> tuple[str, dict[str, dict]]:
    """Write the metrics into each card, pick and write the default, optionally the README table.

    The default is the lowest held-out MAE among the models within 5 MB and
    3 ms (p50, one thread) per window.  Returns ``(default, cards)``.
    """
    from mixpilot.training.export import update_card, write_default_pointer

    out = Path(out_dir)
    h = results["heuristic"]["held_out_mae"]
    cards: dict[str, dict] = {}
    for name in names:
        r = results[name]
        metrics = {
            "held_out_mae": r["held_out_mae"],
            "held_out_mae_ci95": r.get("ci95"),
            "per_param": r["per_param"],
            "heuristic_mae": h,
            "heuristic_per_param": results["heuristic"]["per_param"],
            "neutral_mae": results["neutral"]["held_out_mae"],
            "improvement_vs_heuristic": round(1.0 - r["held_out_mae"] / h, 4) if h else None,
            "n_test": r["n_test"],
            "units": "mean absolute error of normalised (0..1) parameters",
        }
        cards[name] = update_card(out / f"{name}.json", metrics=metrics)
    eligible = [
        n for n in names if cards[n]["size_bytes"] <= MAX_SIZE_BYTES and cards[n]["latency_ms_p50"] <= MAX_LATENCY_MS
    ]
    default = min(eligible or list(names), key=lambda n: results[n]["held_out_mae"])
    write_default_pointer(
        out,
        default,
        held_out_mae=results[default]["held_out_mae"],
        heuristic_mae=h,
        reason="lowest held-out MAE within 5 MB and 3 ms per window",
    )
    if readme is not None:
        table = results_table(results, default=default)
        lines = [
            f"- `{n}`: {cards[n]['size_bytes'] / 1024:.0f} KiB, onnxruntime 1 thread "
            f"p50 {cards[n]['latency_ms_p50']:.2f} ms / p99 {cards[n]['latency_ms_p99']:.2f} ms per "
            f"window, torch vs onnxruntime max |diff| {cards[n]['parity_max_abs_diff']:.1e}"
            for n in names
        ]
        write_readme_results(f"{header.strip()}\n\n{table}\n\n" + "\n".join(lines), readme)
    return default, cards


def readme_header(*, n_test: int, n_test_groups: int, n_examples: int, seed: int, dataset: str | None) -> str:
    """The paragraph above the results table."""
    src = f"`{dataset}`" if dataset else "built by `python -m mixpilot.training`"
    return (
        f"Held-out MAE (normalised parameters, 0..1) on {n_test} test windows from {n_test_groups} "
        f"held-out songs; data: {n_examples} examples ({src}), seed {seed}. 95% intervals: bootstrap "
        f"over held-out songs. `heuristic`: `inference.heuristic.HeuristicEstimator` (the fallback); "
        f"`neutral`: the training split's per-parameter median for every window, i.e. no correction "
        f"(most targets are neutral, so this is the bar that MAE alone sets)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mixpilot.training.evaluate --dataset PATH.npz [--out DIR] [--seed S] [--readme PATH]``.

    Re-scores already exported models on the same split ``python -m mixpilot.training``
    used (same dataset and seed) and rewrites their metrics, the default and
    the README table.
    """
    import argparse
    import sys

    from mixpilot.inference.model import MODELS_DIR
    from mixpilot.training import data as tdata

    ap = argparse.ArgumentParser(prog="python -m mixpilot.training.evaluate", description=main.__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=MODELS_DIR)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="results table file (default: training/README.md when --out is models_onnx/)",
    )
    args = ap.parse_args(argv)
    ds = tdata.load_dataset(args.dataset)
    trainval, test = tdata.split_by_group(ds, held_out_fraction=0.2, seed=args.seed)
    train, _ = tdata.split_by_group(trainval, held_out_fraction=0.15, seed=args.seed + 1)
    results = score_exported(args.out, test.features, test.targets, test.groups, train.targets, seed=args.seed)
    readme = args.readme
    if readme is None and args.out.resolve() == MODELS_DIR.resolve():
        readme = README_PATH
    header = readme_header(
        n_test=len(test.features),
        n_test_groups=len(np.unique(test.groups)),
        n_examples=len(ds.features),
        seed=args.seed,
        dataset=str(args.dataset),
    )
    default, _ = finalise(args.out, results, readme=readme, header=header)
    print(results_table(results, default=default), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
