"""``python -m mixpilot.training``: synthesise data, train, ensemble, evaluate, export, pick the default.

::

    python -m mixpilot.training [--out models_onnx] [--examples 8000] [--epochs N] [--seed 0]
                       [--real DIR ...] [--dataset PATH.npz] [--save-dataset PATH.npz]
                       [--threads 2] [--workers 1] [--smoke]

Steps (progress on stderr, a JSON summary on stdout):

1. data — :func:`training.data.build_dataset` (procedural songs with known
   faults, plus windows of any ``--real`` folders), or ``--dataset`` to reuse
   one saved by :func:`training.data.save_dataset`;
2. split by song group — 20% of the groups held out for the test set, 15%
   of the rest for validation (early stopping and ensemble weights);
3. train :class:`~training.models.CompactCNN` and
   :class:`~training.models.PatchTransformer` (:func:`training.train.train_model`),
   with the input normalisation measured on the training split;
4. fit the per-parameter ensemble weights on the validation split;
5. export ``cnn``, ``ast`` and ``ensemble`` (ONNX + card), score each through
   :class:`inference.model.OnnxModel` and the heuristic on the test split,
   write the metrics into the cards;
6. the default is the model with the lowest held-out MAE among those within
   the shipping budget (≤ 5 MB, p50 ≤ 3 ms per window on one core); it is
   named in ``<out>/default.json``.  When ``--out`` is the shipped
   ``models_onnx/`` the results table in ``training/README.md`` is rewritten.

``--smoke`` runs the whole path on a tiny dataset for one epoch into a
temporary folder (or ``--out``) and loads every exported model back through
:mod:`inference.model`; it is what ``tests/training/test_smoke.py`` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mixpilot.dsp.params import AI_PARAM_NAMES

__all__ = ["main", "run", "CNN_CONFIG", "AST_CONFIG"]

CNN_CONFIG: dict[str, Any] = {
    "channels": [16, 32, 64, 96],
    "hidden": 128,
    "dropout": 0.1,
    "summary": True,
    "time_pool": 2,
}
AST_CONFIG: dict[str, Any] = {
    "patch": [8, 16],
    "dim": 96,
    "depth": 3,
    "heads": 4,
    "mlp_ratio": 2.0,
    "hidden": 128,
    "dropout": 0.1,
    "summary": True,
}
CNN_TRAIN: dict[str, Any] = {"lr": 2e-3, "weight_decay": 0.02, "loss": "l1"}
AST_TRAIN: dict[str, Any] = {"lr": 1e-3, "weight_decay": 0.05, "loss": "l1"}
SMOKE_EXAMPLES = 32
TEST_FRACTION = 0.2
VAL_FRACTION = 0.15


def _log(msg: str) -> None:
    print(f"[training] {msg}", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m mixpilot.training",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the .onnx models and cards (default: models_onnx/; --smoke: a temp folder)",
    )
    ap.add_argument("--examples", type=int, default=8000, help="synthetic examples to build (default 8000)")
    ap.add_argument("--epochs", type=int, default=40, help="maximum epochs per model (default 40; --smoke: 1)")
    ap.add_argument("--seed", type=int, default=0, help="seed for data, split, init and order (default 0)")
    ap.add_argument(
        "--real",
        type=Path,
        nargs="*",
        default=[],
        metavar="DIR",
        help="folders of real recordings (taken as well mixed) to add to the data",
    )
    ap.add_argument(
        "--dataset",
        type=Path,
        default=None,
        metavar="PATH.npz",
        help="reuse a dataset saved by training.data.save_dataset instead of building one",
    )
    ap.add_argument(
        "--save-dataset",
        type=Path,
        default=None,
        metavar="PATH.npz",
        help="save the built dataset for later --dataset runs",
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training (default 2)")
    ap.add_argument("--workers", type=int, default=1, help="processes for data synthesis (default 1)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs (default 8)")
    ap.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="markdown file for the results table (default: training/README.md when --out is models_onnx/)",
    )
    ap.add_argument(
        "--smoke", action="store_true", help="tiny data, one epoch, export to a temp folder and load back (for tests)"
    )
    return ap


def _data_progress():
    """A ``progress(done, total)`` that logs about every 10%."""
    state = {"next": 0.0, "t0": time.perf_counter()}

    def progress(done: int, total: int) -> None:
        if total and (done / total >= state["next"] or done == total):
            _log(f"data {done}/{total} examples ({time.perf_counter() - state['t0']:.0f}s)")
            state["next"] = done / total + 0.1

    return progress


def run(
    *,
    out: Path | None = None,
    examples: int = 8000,
    epochs: int = 40,
    seed: int = 0,
    real: Sequence[Path] = (),
    dataset: Path | None = None,
    save_dataset: Path | None = None,
    threads: int = 2,
    workers: int = 1,
    batch_size: int = 64,
    patience: int = 8,
    readme: Path | None = None,
    smoke: bool = False,
) -> dict[str, Any]:
    """The whole pipeline (see the module docstring); returns the summary dict."""
    import torch

    from mixpilot.inference.features import FEATURE_CONFIG
    from mixpilot.inference.model import MODELS_DIR, OnnxModel
    from mixpilot.training import data as tdata
    from mixpilot.training.evaluate import README_PATH, finalise, readme_header, results_table, score_exported
    from mixpilot.training.export import export_model
    from mixpilot.training.models import (
        WeightedEnsemble,
        build_model,
        count_parameters,
        feature_stats,
        fit_ensemble_weights,
    )
    from mixpilot.training.train import TrainConfig, predict, train_model

    t_start = time.perf_counter()
    torch.set_num_threads(max(1, threads))
    if smoke:
        examples, epochs = min(examples, SMOKE_EXAMPLES), 1
        if out is None:
            out = Path(tempfile.mkdtemp(prefix="mixpilot-smoke-"))
    out = Path(out) if out is not None else MODELS_DIR
    out.mkdir(parents=True, exist_ok=True)

    # 1. data -----------------------------------------------------------------
    t0 = time.perf_counter()
    if dataset is not None:
        _log(f"loading dataset {dataset}")
        ds = tdata.load_dataset(dataset)
        source = {"dataset": str(dataset)}
    else:
        _log(f"building {examples} examples (seed {seed}, real dirs: {[str(r) for r in real] or 'none'})")
        ds = tdata.build_dataset(
            examples, seed, real_dirs=tuple(real), config=FEATURE_CONFIG, progress=_data_progress(), workers=workers
        )
        source = {"dataset": None}
        if save_dataset is not None:
            tdata.save_dataset(ds, save_dataset)
            _log(f"saved dataset to {save_dataset}")
    data_s = time.perf_counter() - t0
    if tuple(ds.param_names) != AI_PARAM_NAMES:
        raise SystemExit(f"dataset param_names {list(ds.param_names)} != {list(AI_PARAM_NAMES)}")
    if tuple(ds.features.shape[1:]) != FEATURE_CONFIG.shape:
        raise SystemExit(f"dataset features {ds.features.shape[1:]} != feature config shape {FEATURE_CONFIG.shape}")
    n_groups = int(len(np.unique(ds.groups)))
    _log(f"{len(ds.features)} examples from {n_groups} groups ({data_s:.0f}s)")

    # 2. split by song group --------------------------------------------------
    trainval, test = tdata.split_by_group(ds, held_out_fraction=TEST_FRACTION, seed=seed)
    train, val = tdata.split_by_group(trainval, held_out_fraction=VAL_FRACTION, seed=seed + 1)
    _log(f"split: train {len(train.features)}, val {len(val.features)}, test {len(test.features)} examples")
    if len(test.features) == 0 or len(train.features) < 2:
        raise SystemExit("too few examples/groups to split into train and test; build more examples")
    mean, std = feature_stats(train.features)

    # 3. train both architectures ---------------------------------------------
    trained: dict[str, Any] = {}
    for arch, mcfg, tcfg in (("cnn", CNN_CONFIG, CNN_TRAIN), ("ast", AST_CONFIG, AST_TRAIN)):
        cfg = TrainConfig(
            epochs=epochs, batch_size=batch_size, patience=patience, seed=seed, threads=max(1, threads), **tcfg
        )
        torch.manual_seed(seed)
        model = build_model(
            arch,
            {
                "n_mels": FEATURE_CONFIG.n_mels,
                "n_frames": FEATURE_CONFIG.n_frames,
                "n_params": len(AI_PARAM_NAMES),
                **mcfg,
            },
            mean=mean,
            std=std,
        )
        if getattr(model, "output", "sigmoid") == "clamp":
            model.set_output_bias(np.median(train.targets, axis=0))  # start from "no correction"
        _log(f"training {arch}: {count_parameters(model)} parameters")
        res = train_model(model, train.features, train.targets, val.features, val.targets, cfg, name=arch)
        trained[arch] = (res, cfg)
        _log(f"{arch}: best epoch {res.best_epoch}/{res.epochs_run}, val MAE {res.best_val_mae:.4f}, {res.wall_s:.0f}s")

    # 4. ensemble weights on the validation split ---------------------------------
    cnn, ast = trained["cnn"][0].model, trained["ast"][0].model
    if len(val.features):
        weights = fit_ensemble_weights(predict(cnn, val.features), predict(ast, val.features), val.targets)
    else:
        weights = np.full(len(AI_PARAM_NAMES), 0.5, np.float32)
    ensemble = WeightedEnsemble(cnn, ast, weights).eval()
    _log("ensemble weights (cnn share): " + ", ".join(f"{n}={w:.2f}" for n, w in zip(AI_PARAM_NAMES, weights)))

    # 5. export, evaluate on the test split ------------------------------------
    meta = list(getattr(ds, "meta", []) or [])
    styles: dict[str, int] = {}
    real_files: dict[str, int] = {}
    for m in meta:
        if m.get("source", "synth") == "synth":
            styles[str(m.get("style", "?"))] = styles.get(str(m.get("style", "?")), 0) + 1
        else:
            real_files[str(m.get("file", "?"))] = real_files.get(str(m.get("file", "?")), 0) + 1
    training_data = {
        "n_examples": int(len(ds.features)),
        "n_groups": n_groups,
        "n_train": int(len(train.features)),
        "n_val": int(len(val.features)),
        "n_test": int(len(test.features)),
        "seed": seed,
        "synthetic_styles": dict(sorted(styles.items())),
        "real_dirs": [str(r) for r in real],
        "real_files": dict(sorted(real_files.items())),
        "split": f"by song group: {TEST_FRACTION:.0%} of groups held out for test, "
        f"{VAL_FRACTION:.0%} of the rest for validation (seeds {seed}, {seed + 1})",
        "generator": "training.data.build_dataset (synthetic songs and real recordings with known "
        "faults; targets = the AI parameters that undo them)",
        **source,
    }
    rng = np.random.default_rng(seed)
    parity_x = test.features[rng.choice(len(test.features), size=min(8, len(test.features)), replace=False)]
    models = {"cnn": cnn, "ast": ast, "ensemble": ensemble}
    descriptions = {
        "cnn": "compact CNN over the log-mel window (4 conv blocks pooled over time, plus the spectral "
        "summary: per-band mean/spread, long-term power spectrum, frame-level stats; MLP head)",
        "ast": "AST-like transformer over 8x16 spectrogram patches (3 encoder blocks, CLS + mean pool, "
        "plus the spectral summary; MLP head)",
        "ensemble": "per-parameter weighted blend of cnn and ast in one graph (weights fit on validation)",
    }
    cards: dict[str, dict] = {}
    for name, model in models.items():
        if name == "ensemble":
            training = {
                "members": ["cnn", "ast"],
                "weights_cnn": [round(float(w), 4) for w in weights],
                "weights_fit_on": f"validation split ({len(val.features)} examples)",
            }
        else:
            res, cfg = trained[name]
            training = {
                "config": cfg.as_dict(),
                "best_epoch": res.best_epoch,
                "epochs_run": res.epochs_run,
                "best_val_mae": round(res.best_val_mae, 5),
                "wall_s": round(res.wall_s, 1),
                "parameters": count_parameters(model),
            }
        cards[name] = export_model(
            model,
            out,
            name,
            parity_features=parity_x,
            training_data=training_data,
            training=training,
            description=descriptions[name],
        )
        _log(
            f"exported {name}: {cards[name]['size_bytes'] / 1024:.0f} KiB, "
            f"p50 {cards[name]['latency_ms_p50']:.3f} ms, p99 {cards[name]['latency_ms_p99']:.3f} ms, "
            f"torch vs ort {cards[name]['parity_max_abs_diff']:.2e}"
        )

    results = score_exported(out, test.features, test.targets, test.groups, train.targets, seed=seed)
    if readme is None and not smoke and out.resolve() == MODELS_DIR.resolve():
        readme = README_PATH
    header = readme_header(
        n_test=len(test.features),
        n_test_groups=len(np.unique(test.groups)),
        n_examples=len(ds.features),
        seed=seed,
        dataset=str(dataset) if dataset is not None else None,
    )
    default, cards = finalise(out, results, names=list(models), readme=readme, header=header)
    for name in [*models, "heuristic", "neutral"]:
        r = results[name]
        _log(f"{name:>9s}: held-out MAE {r['held_out_mae']:.4f} (95% {r['ci95'][0]:.4f}..{r['ci95'][1]:.4f})")
    _log(f"default model: {default}" + (f"; results table written to {readme}" if readme else ""))
    table = results_table(results, default=default)

    # smoke: everything loads back through the engine's loader
    loaded = {}
    for name in [*models, "default"]:
        m = OnnxModel.load(name, models_dir=out)
        loaded[name] = m.name
    summary = {
        "out": str(out),
        "default": default,
        "results": results,
        "weights_cnn": [round(float(w), 4) for w in weights],
        "cards": {
            n: {
                k: cards[n][k]
                for k in ("size_bytes", "latency_ms_p50", "latency_ms_p99", "parity_max_abs_diff", "sha256")
            }
            for n in models
        },
        "training": {
            n: {
                "best_epoch": trained[n][0].best_epoch,
                "epochs_run": trained[n][0].epochs_run,
                "wall_s": round(trained[n][0].wall_s, 1),
            }
            for n in trained
        },
        "data_s": round(data_s, 1),
        "wall_s": round(time.perf_counter() - t_start, 1),
        "loaded": loaded,
    }
    _log(f"done in {summary['wall_s']:.0f}s\n{table}")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["target"]:  # python -m mixpilot.training target ...: the target-conditioned model (issue 15)
        from .target import main as target_main

        return target_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("python -m mixpilot.training needs PyTorch: pip install -e '.[train]'", file=sys.stderr)
        return 2
    summary = run(
        out=args.out,
        examples=args.examples,
        epochs=args.epochs,
        seed=args.seed,
        real=args.real,
        dataset=args.dataset,
        save_dataset=args.save_dataset,
        threads=args.threads,
        workers=args.workers,
        batch_size=args.batch_size,
        patience=args.patience,
        readme=args.readme,
        smoke=args.smoke,
    )
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
