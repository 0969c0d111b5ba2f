"""``mixpilot bench``: latency per block, render real-time factor and inference cost, beside pedalboard.

Usage::

    mixpilot bench [--json PATH] [--quick | --full] [--soak SECONDS]
                   [--samplerates HZ,...] [--blocksizes FRAMES,...] [--seconds S]
                   [--render-seconds S] [--windows N] [--model NAME|PATH|none] [--no-pedalboard]
                   [--scaling-seconds S] [--render-minutes MIN,...] [--no-render-scaling]
    python -m mixpilot.benchmarks.bench ...          (the same without the CLI wiring)

Every number is ``time.perf_counter_ns`` around the real call, after a warm-up
that loads or compiles every kernel (Numba) and session (onnxruntime); nothing
is estimated.  The program is the synthesised demo song
(:func:`mixpilot.demo.synth_demo`, seed 1), stereo, with every stage of the
chain active at :data:`benchmarks.chain_vs_pedalboard.SETTINGS`.

1. **Per block, the real engine**: :meth:`realtime.engine.Engine.process_block`
   (chain, analysis ring, loudness follower, output meter with true peak) set
   up as ``mixpilot play`` sets it up (``max_block_size = max(block, 4096)``,
   follower on; ``SETTINGS`` without ``loudness_gain_db``), ``--seconds`` of
   audio per point (the program looped), for the grid: quick (default) 64, 128
   and 512 frames at 48 kHz; ``--full`` 32, 64, 128, 256, 512, 1024 frames at
   44.1, 48 and 96 kHz.  p50 / p99 / p99.9 / max in µs and in % of the block
   budget (frames / rate).
2. **Chain vs pedalboard** at 128 frames / 48 kHz stereo, alternating rounds
   in one run (:func:`benchmarks.chain_vs_pedalboard.run`, where the
   pedalboard chain and each of its parameters are listed).  ``chain`` in the
   JSON is the bare :meth:`dsp.chain.MixChain.process` and ``ratio_p50`` =
   chain p50 / pedalboard p50 compares chain with chain: the engine's meters
   and follower have no counterpart in the pedalboard chain (the engine's own
   figures are under ``engine``).  ``render_rtf`` beside them is each chain
   over the whole program in 4096-frame blocks.
3. **Whole-file render** (``render``): :func:`realtime.render.render_array`
   on ``--render-seconds`` of the program at 48 kHz, one pass
   (``loudness_mode="follow"``, what ``mixpilot play`` would play; blocks of
   1024, the render default), with ``estimator=None`` and with the estimator
   ``--model`` gives (AI every 0.5 s, the render default).  Real-time factor
   = audio seconds / wall seconds, on one core.
4. **Inference per window** (``inference``): 3 s windows at 48 kHz ending
   every 0.25 s along the program -> :func:`inference.features.extract_features`
   -> ``predict``, for the estimator ``--model`` gives
   (:func:`inference.worker.load_estimator`: the ONNX model, or the heuristic
   when there is no usable model) and for the heuristic; p50 / p99 ms of
   features + predict, and of each part.  One core.
5. ``--soak SECONDS``: the real-time soak of :mod:`benchmarks.soak` (``--soak-busy N``
   spinning processes beside it; ``--soak-rounds N``: the soak and the bare
   callback alternating in N rounds, so that both see the same load;
   ``--soak-blocksize FRAMES``: the period, 128 frames by default).
6. **Scaling** (``--full``; ``scaling`` in the JSON): the bare chain
   (:meth:`dsp.chain.MixChain.process`) and the pedalboard chain per block at
   every block size and rate of the grid (32..1024 frames at 44.1, 48 and
   96 kHz), alternating in rounds in one run
   (:func:`benchmarks.chain_vs_pedalboard.run`, ``--scaling-seconds`` of
   audio per point and chain).  p50 / p99 µs, p50 in % of the block budget,
   and the p50 ratio.
7. **Render vs file length** (``--full``, or ``--render-minutes``;
   ``render_scaling`` in the JSON): ``mixpilot render IN OUT`` from the
   command line in a child process on a synthesised stereo 48 kHz file of 1,
   10 and 60 minutes (written to a temporary folder): the render's own time
   (decode to encode), the child's wall and CPU time and its peak resident
   memory (:mod:`benchmarks.render_scaling`).

"One core": for 3 and 4 every thread of this process is pinned to one CPU
(``os.sched_setaffinity``, Linux; restored afterwards), and onnxruntime runs
one intra-op thread (:func:`inference.model.session_options`).

Exit codes: 0 done; 1 a failure at run time (the soak's stream died, the JSON
cannot be written); 2 bad usage.  Errors are one line ``mixpilot: error: ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "FULL_GRID",
    "HEADLINE",
    "QUICK_GRID",
    "BenchConfig",
    "engine_block_times",
    "format_table",
    "main",
    "one_core",
    "run_bench",
    "stats_us",
    "time_estimator",
]

PROG = "mixpilot"
HEADLINE = (48000, 128)  # the INTERFACE's samplerate / blocksize: chain vs pedalboard, the JSON top level
QUICK_GRID = ((48000, 64), (48000, 128), (48000, 512))
FULL_GRID = tuple((sr, bs) for sr in (44100, 48000, 96000) for bs in (32, 64, 128, 256, 512, 1024))
FULL_RENDER_MINUTES = (1.0, 10.0, 60.0)
RENDER_BLOCK = 1024  # realtime.render default
RENDER_AI_HOP_S = 0.5  # realtime.render / mixpilot render default
WINDOW_HOP_S = 0.25  # inference windows end every 0.25 s (the soak's AI rate)


@dataclass
class BenchConfig:
    """What one bench run measures (``--quick`` defaults; :meth:`full` for ``--full``)."""

    grid: tuple[tuple[int, int], ...] = QUICK_GRID
    seconds: float = 30.0  # audio per grid point (the program is looped)
    program_seconds: float = 30.0  # length of the synthesised program per sample rate
    render_seconds: float = 30.0
    pedalboard_seconds: float = 10.0
    pedalboard_rounds: int = 3
    windows: int = 100
    model: str = "default"
    pedalboard: bool = True
    soak_seconds: float | None = None
    soak_busy: int = 0
    soak_rounds: int = 1
    soak_blocksize: int = 128
    mode: str = "quick"
    scaling_grid: tuple[tuple[int, int], ...] = ()  # chain vs pedalboard per grid point (--full: FULL_GRID)
    scaling_seconds: float = 10.0
    scaling_rounds: int = 2
    render_minutes: tuple[float, ...] = ()  # mixpilot render from the command line (--full: 1, 10, 60 min)
    extra: dict = field(default_factory=dict)

    @classmethod
    def full(cls, **kw) -> BenchConfig:
        kw = {
            "grid": FULL_GRID,
            "seconds": 60.0,
            "pedalboard_seconds": 30.0,
            "windows": 400,
            "mode": "full",
            "scaling_grid": FULL_GRID,
            "render_minutes": FULL_RENDER_MINUTES,
            **kw,
        }
        return cls(**kw)


# --- helpers ---------------------------------------------------------------------------


def stats_us(ns: np.ndarray | Sequence[int], budget_us: float | None = None) -> dict:
    """p50 / p99 / p99.9 / max in µs (and in % of ``budget_us``) of durations in ns."""
    us = np.asarray(ns, dtype=np.float64) / 1000.0
    out = {
        "p50_us": float(np.percentile(us, 50)),
        "p99_us": float(np.percentile(us, 99)),
        "p999_us": float(np.percentile(us, 99.9)),
        "max_us": float(us.max()),
        "blocks": int(us.size),
    }
    if budget_us:
        out["budget_us"] = budget_us
        for k in ("p50", "p99", "p999", "max"):
            out[f"{k}_pct"] = 100.0 * out[f"{k}_us"] / budget_us
    return out


def _ms(ns: list[int]) -> dict:
    ms = np.asarray(ns, dtype=np.float64) / 1e6
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


@contextlib.contextmanager
def one_core():
    """Run the block on one core; yields the CPU number (None where pinning is not available).

    Every thread of this process is pinned to one allowed CPU (Linux
    ``sched_setaffinity``; threads started inside inherit it) and the BLAS
    thread pool is limited to one thread (threadpoolctl, when installed:
    OpenBLAS workers spinning on the same core would otherwise slow the
    measured thread down several times).  On exit both are restored.
    """
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=1))
            limited = True
        except ImportError:
            limited = False
        if not limited or not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"):
            yield None
            return
        try:
            allowed = os.sched_getaffinity(0)
            cpu = max(allowed)  # CPU 0 usually takes the most interrupts
            for tid in os.listdir("/proc/self/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            yield None
            return
        try:
            yield cpu
        finally:
            for tid in os.listdir("/proc/self/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), allowed)


def _programs(sample_rates, seconds: float) -> dict[int, np.ndarray]:
    from mixpilot.demo import synth_demo

    return {sr: np.ascontiguousarray(synth_demo(seconds, sr, seed=1), dtype=np.float32) for sr in sample_rates}


def _engine_params() -> dict:
    from mixpilot.benchmarks.chain_vs_pedalboard import SETTINGS

    return {k: v for k, v in SETTINGS.items() if k not in ("loudness_gain_db", "limiter_ceiling_dbtp")}


# --- 1. per block, the real engine -----------------------------------------------------


def engine_block_times(sample_rate: int, blocksize: int, program: np.ndarray, seconds: float) -> np.ndarray:
    """ns per :meth:`Engine.process_block` call over ``seconds`` of ``program`` (looped), after warm-up."""
    from mixpilot.benchmarks.chain_vs_pedalboard import SETTINGS
    from mixpilot.realtime.engine import Engine

    eng = Engine(
        sample_rate,
        2,
        max_block_size=max(blocksize, 4096),
        params=_engine_params(),
        ceiling_dbtp=SETTINGS["limiter_ceiling_dbtp"],
    )
    eng.warm_up()
    out = np.zeros((blocksize, 2), dtype=np.float32)
    eng.process_block(program[:blocksize], out)  # the stream's exact block shape, then start clean
    eng.reset()
    per_pass = len(program) // blocksize
    if per_pass < 1:
        raise ValueError(f"program of {len(program)} frames is shorter than one block of {blocksize}")
    n = max(1, int(seconds * sample_rate) // blocksize)
    times = np.empty(n, dtype=np.int64)
    clock = time.perf_counter_ns
    process = eng.process_block
    k = 0
    while k < n:
        for i in range(min(per_pass, n - k)):
            blk = program[i * blocksize : (i + 1) * blocksize]
            t0 = clock()
            process(blk, out)
            times[k] = clock() - t0
            k += 1
    return times


# --- 3. whole-file render --------------------------------------------------------------


def _render_rtf(program: np.ndarray, sample_rate: int, estimator) -> dict:
    from mixpilot.realtime.render import render_array

    kw = {"loudness_mode": "follow", "block_size": RENDER_BLOCK, "estimator": estimator, "ai_hop_s": RENDER_AI_HOP_S}
    render_array(program[: min(len(program), sample_rate)], sample_rate, **kw)  # warm: kernels, session
    t0 = time.perf_counter_ns()
    r = render_array(program, sample_rate, **kw)
    wall = (time.perf_counter_ns() - t0) / 1e9
    out = {"rtf": (len(program) / sample_rate) / wall, "wall_s": wall, "passes": len(r.passes)}
    if r.inference is not None:
        out["inference"] = r.inference
    return out


# --- 4. inference per window -----------------------------------------------------------


def _windows(program: np.ndarray, sample_rate: int, n: int) -> list[np.ndarray]:
    """``n`` float32 views of 3 s each, ending every WINDOW_HOP_S along the program (wrapping)."""
    from mixpilot.inference.features import FEATURE_CONFIG, input_window_frames

    w = input_window_frames(sample_rate, FEATURE_CONFIG)
    if len(program) < w:
        program = np.concatenate([np.zeros((w - len(program), program.shape[1]), np.float32), program])
    hop = max(1, round(WINDOW_HOP_S * sample_rate))
    span = len(program) - w + 1
    return [program[s : s + w] for s in ((k * hop) % span for k in range(n))]


def time_estimator(estimator, windows: list[np.ndarray], sample_rate: int) -> dict:
    """features + predict per window: p50/p99 ms of the sum and of each part (after one warm-up window).

    A stream estimator (the target-conditioned default model, the analytic matcher: ``wants_audio``)
    is timed per hop as the worker runs it: the last 0.5 s of each window into its running statistics
    ("features"), then its result ("predict": descriptors readout, conditioning, inference)."""
    from mixpilot.inference.features import extract_features

    tf: list[int] = []
    tp: list[int] = []
    clock = time.perf_counter_ns
    if getattr(estimator, "wants_audio", False):
        hop = int(0.5 * sample_rate)
        estimator.prepare(sample_rate, windows[0].shape[1])
        for win in windows[:6]:  # warm-up: past the matcher's minimum seconds
            estimator.update(np.ascontiguousarray(win[-hop:], dtype=np.float32))
        estimator.values()
        for win in windows:
            h = np.ascontiguousarray(win[-hop:], dtype=np.float32)
            t0 = clock()
            estimator.update(h)
            t1 = clock()
            estimator.values()
            t2 = clock()
            tf.append(t1 - t0)
            tp.append(t2 - t1)
    else:
        estimator.predict(extract_features(windows[0], sample_rate))
        for win in windows:
            t0 = clock()
            f = extract_features(win, sample_rate)
            t1 = clock()
            estimator.predict(f)
            t2 = clock()
            tf.append(t1 - t0)
            tp.append(t2 - t1)
    total = _ms([a + b for a, b in zip(tf, tp)])
    feats, pred = _ms(tf), _ms(tp)
    return {
        "name": getattr(estimator, "name", type(estimator).__name__),
        **total,
        "features_p50_ms": feats["p50_ms"],
        "features_p99_ms": feats["p99_ms"],
        "predict_p50_ms": pred["p50_ms"],
        "predict_p99_ms": pred["p99_ms"],
        "windows": len(windows),
    }


# --- the whole run ---------------------------------------------------------------------


def run_bench(cfg: BenchConfig, *, note: Callable[[str], None] = lambda s: None) -> dict:
    """Measure everything ``cfg`` asks for; returns the JSON document (INTERFACE.md keys first)."""
    from mixpilot.benchmarks import chain_vs_pedalboard as cvp
    from mixpilot.inference.heuristic import HeuristicEstimator
    from mixpilot.inference.worker import load_estimator

    info = cvp.machine_info()
    grid = tuple(dict.fromkeys(((HEADLINE,) if HEADLINE not in cfg.grid else ()) + tuple(cfg.grid)))
    sr0, bs0 = HEADLINE
    rates = sorted({sr for sr, _ in grid} | {sr for sr, _ in cfg.scaling_grid})
    note(f"synthesising {cfg.program_seconds:g} s programs at {', '.join(map(str, rates))} Hz")
    programs = _programs(rates, max(cfg.program_seconds, 1.0))
    prog0 = programs[sr0]
    if cfg.render_seconds > cfg.program_seconds:
        prog_render = _programs([sr0], cfg.render_seconds)[sr0]
    else:
        prog_render = prog0[: round(cfg.render_seconds * sr0)]

    # 1. the engine over the grid
    sweep = []
    for sr, bs in grid:
        note(f"Engine.process_block, {bs} frames @ {sr} Hz")
        s = stats_us(engine_block_times(sr, bs, programs[sr], cfg.seconds), budget_us=1e6 * bs / sr)
        sweep.append({"samplerate": sr, "blocksize": bs, **s})
    engine = next(r for r in sweep if (r["samplerate"], r["blocksize"]) == HEADLINE)

    # 2. bare chain vs pedalboard
    note(f"MixChain.process vs pedalboard, {bs0} frames @ {sr0} Hz, {cfg.pedalboard_rounds} rounds")
    pb_prog = prog0[: max(bs0, round(cfg.pedalboard_seconds * sr0))]
    cmp = cvp.run(
        blocksize=bs0, samplerate=sr0, rounds=cfg.pedalboard_rounds, with_pedalboard=cfg.pedalboard, program=pb_prog
    )

    # 2b. bare chain vs pedalboard over the grid (scaling with block size and rate)
    scaling = []
    for sr, bs in cfg.scaling_grid:
        note(f"MixChain.process vs pedalboard, {bs} frames @ {sr} Hz, {cfg.scaling_rounds} rounds")
        prog = programs[sr][: max(bs, round(cfg.scaling_seconds * sr))]
        c = cvp.run(
            blocksize=bs, samplerate=sr, rounds=cfg.scaling_rounds, with_pedalboard=cfg.pedalboard, program=prog
        )
        budget_us = 1e6 * bs / sr
        row = {
            "samplerate": sr,
            "blocksize": bs,
            "budget_us": budget_us,
            "chain_p50_us": c["chain"]["p50_us"],
            "chain_p99_us": c["chain"]["p99_us"],
            "chain_p50_pct": 100.0 * c["chain"]["p50_us"] / budget_us,
        }
        if "pedalboard" in c:
            row.update(
                pedalboard_p50_us=c["pedalboard"]["p50_us"],
                pedalboard_p99_us=c["pedalboard"]["p99_us"],
                pedalboard_p50_pct=100.0 * c["pedalboard"]["p50_us"] / budget_us,
                ratio_p50=c["ratio_p50"],
            )
        scaling.append(row)

    # the estimators
    warnings: list[str] = []
    estimator = load_estimator(cfg.model, warnings.append)
    heuristic = HeuristicEstimator()
    heuristic.name = "heuristic"

    # 3. whole-file render, one core
    with one_core() as cpu:
        note(f"render_array, {len(prog_render) / sr0:g} s without the AI")
        render = {
            "seconds": len(prog_render) / sr0,
            "samplerate": sr0,
            "block_size": RENDER_BLOCK,
            "mode": "follow (one pass)",
            "ai_hop_s": RENDER_AI_HOP_S,
            "cpu": cpu,
        }
        no_ai = _render_rtf(prog_render, sr0, None)
        render["rtf"] = no_ai["rtf"]
        render["passes"] = no_ai["passes"]
        if estimator is not None:
            note(f"render_array, {len(prog_render) / sr0:g} s with the AI ({estimator.name})")
            ai = _render_rtf(prog_render, sr0, estimator)
            render["rtf_ai"] = ai["rtf"]
            render["estimator"] = estimator.name
            render["ai_inference"] = ai.get("inference")
        else:
            render["rtf_ai"] = None
            render["estimator"] = None

        # 4. inference per window, one core
        note(f"inference, {cfg.windows} windows")
        wins = _windows(prog0, sr0, cfg.windows)
        h = time_estimator(heuristic, wins, sr0)
        m = None
        if estimator is not None and not isinstance(estimator, HeuristicEstimator):
            m = time_estimator(estimator, wins, sr0)
        chosen = m if m is not None else (h if estimator is not None else None)
        inference = {
            "p50_ms": chosen["p50_ms"] if chosen else None,
            "p99_ms": chosen["p99_ms"] if chosen else None,
            "estimator": chosen["name"] if chosen else None,
            "samplerate": sr0,
            "window_s": 3.0,
            "cpu": cpu,
            "model": m,
            "heuristic": h,
            "notes": warnings,
        }

    result = {
        "machine": cvp.machine(info),
        "samplerate": sr0,
        "blocksize": bs0,
        "channels": 2,
        "chain": {k: cmp["chain"][k] for k in ("p50_us", "p99_us", "p999_us", "max_us", "render_rtf")},
    }
    if "pedalboard" in cmp:
        result["pedalboard"] = {
            k: cmp["pedalboard"][k] for k in ("p50_us", "p99_us", "p999_us", "max_us", "render_rtf", "version")
        }
        result["ratio_p50"] = cmp["ratio_p50"]
    result["inference"] = inference
    result.update(
        {
            "mode": cfg.mode,
            "machine_info": info,
            "ratio_note": "chain = bare dsp.chain.MixChain.process (the pedalboard chain's like); "
            "engine = Engine.process_block with meters and follower",
            "compare": {"seconds": cmp["seconds"], "rounds": cmp["rounds"], "render_blocksize": 4096},
            "engine": engine,
            "sweep": sweep,
            "render": render,
        }
    )
    if scaling:
        result["scaling"] = scaling
    if cfg.render_minutes:
        from mixpilot.benchmarks.render_scaling import run_lengths

        result["render_scaling"] = {
            "model": cfg.model,
            "command": "mixpilot render IN OUT --overwrite --json --model MODEL (stereo 48 kHz 24-bit WAV in and out)",
            "rows": run_lengths(cfg.render_minutes, cfg.model, note=note),
        }
    if cfg.soak_seconds is not None:
        from mixpilot.benchmarks.soak import run_soak

        note(f"soak: {cfg.soak_seconds:g} s in real time, AI every 0.25 s, MIDI flood 200 CC/s")
        result["soak"] = run_soak(
            cfg.soak_seconds, blocksize=cfg.soak_blocksize, note=note, busy=cfg.soak_busy, rounds=cfg.soak_rounds
        )
    return result


# --- the table -------------------------------------------------------------------------


def _f(v, fmt: str = ".1f", none: str = "-") -> str:
    return none if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def format_table(r: dict) -> str:
    lines = [
        f"mixpilot bench ({r.get('mode', 'quick')}): {r['machine']}",
        "times: time.perf_counter_ns around each real call, after warm-up",
        "",
        "Per block: Engine.process_block (chain + analysis ring + loudness follower + meters), stereo",
        (
            f"{'rate Hz':>8} {'frames':>6} {'budget us':>10} {'p50 us':>8} {'p99 us':>8} {'p99.9 us':>9} "
            f"{'max us':>8} {'p50 %':>6} {'p99 %':>6} {'p99.9 %':>7} {'max %':>7}"
        ),
    ]
    for s in r["sweep"]:
        lines.append(
            f"{s['samplerate']:>8} {s['blocksize']:>6} {s['budget_us']:>10.1f} {s['p50_us']:>8.1f} "
            f"{s['p99_us']:>8.1f} {s['p999_us']:>9.1f} {s['max_us']:>8.1f} {s['p50_pct']:>6.2f} "
            f"{s['p99_pct']:>6.2f} {s['p999_pct']:>7.2f} {s['max_pct']:>7.2f}"
        )
    from mixpilot.benchmarks.chain_vs_pedalboard import comparison_rows

    lines += [
        "",
        (
            f"Chain vs pedalboard: {r['blocksize']} frames @ {r['samplerate']} Hz stereo, "
            f"{r['compare']['seconds']:g} s x {r['compare']['rounds']} rounds, alternating "
            f"(bare MixChain.process; pedalboard chain in benchmarks/chain_vs_pedalboard.py)"
        ),
    ]
    lines += comparison_rows(r)
    if "ratio_p50" not in r:
        lines.append("no pedalboard figures (--no-pedalboard, or pedalboard is not installed: pip install pedalboard)")
    if r.get("scaling"):
        lines += [
            "",
            "Scaling: bare MixChain.process vs the pedalboard chain per block, stereo, alternating in one run",
            (
                f"{'rate Hz':>8} {'frames':>6} {'budget us':>10} {'mixpilot p50':>13} {'p99':>8} {'p50 %':>6} "
                f"{'pedalboard p50':>15} {'p99':>8} {'p50 %':>6} {'ratio p50':>9}"
            ),
        ]
        for s in r["scaling"]:
            lines.append(
                f"{s['samplerate']:>8} {s['blocksize']:>6} {s['budget_us']:>10.1f} {s['chain_p50_us']:>13.1f} "
                f"{s['chain_p99_us']:>8.1f} {s['chain_p50_pct']:>6.2f} {_f(s.get('pedalboard_p50_us')):>15} "
                f"{_f(s.get('pedalboard_p99_us')):>8} {_f(s.get('pedalboard_p50_pct'), '.2f'):>6} "
                f"{_f(s.get('ratio_p50'), '.2f'):>9}"
            )
    if r.get("render_scaling"):
        rs = r["render_scaling"]
        lines += [
            "",
            f"Render vs file length: mixpilot render from the command line, model {rs['model']}, a child process each",
            (
                f"{'minutes':>8} {'render s':>9} {'x real time':>12} {'passes':>6} {'process s':>10} "
                f"{'CPU s':>8} {'peak RSS MB':>12}"
            ),
        ]
        for row in rs["rows"]:
            lines.append(
                f"{row['minutes']:>8g} {row['render_s']:>9.1f} {row['realtime_factor']:>12.1f} {row['passes']:>6} "
                f"{row['process_s']:>10.1f} {row['process_cpu_s']:>8.1f} {row['peak_rss_mb']:>12.0f}"
            )
    rd = r["render"]
    lines += [
        "",
        (
            f"Whole-file render: render_array, {rd['seconds']:g} s @ {rd['samplerate']} Hz, one pass (follow), "
            f"blocks of {rd['block_size']}, one core"
        ),
        f"  without the AI: {rd['rtf']:8.1f} x real time",
    ]
    if rd.get("rtf_ai") is not None:
        lines.append(
            f"  with the AI:    {rd['rtf_ai']:8.1f} x real time ({rd['estimator']} every {rd['ai_hop_s']:g} s)"
        )
    inf = r["inference"]
    lines += [
        "",
        f"Inference per window: {inf['window_s']:g} s @ {inf['samplerate']} Hz -> features -> predict, one core",
        f"{'':<22}{'total p50':>10}{'p99 ms':>8}{'features p50':>13}{'p99':>7}{'predict p50':>12}{'p99':>7}",
    ]
    for key in ("model", "heuristic"):
        e = inf.get(key)
        if e:
            label = f"{key} ({e['name']})" if key == "model" else key
            lines.append(
                f"{label:<22}{e['p50_ms']:>10.2f}{e['p99_ms']:>8.2f}{e['features_p50_ms']:>13.2f}"
                f"{e['features_p99_ms']:>7.2f}{e['predict_p50_ms']:>12.3f}{e['predict_p99_ms']:>7.3f}"
            )
    for w in inf.get("notes", []):
        lines.append(f"  note: {w}")
    if "soak" in r:
        s = r["soak"]
        cb = s.get("callback_us") or {}
        lines += [
            "",
            (
                f"Soak: {_f(s.get('seconds'))} s real time, {s.get('blocksize')} frames @ {s.get('samplerate')} Hz"
                f" on {s.get('backend')}, AI every {s.get('ai_hop_s')} s, MIDI {s['midi'].get('sent', 0)} CCs "
                f"sent ({s['midi'].get('api') or 'off'})"
            ),
            (
                f"  xruns {s.get('xruns')} | callback p50 {_f(cb.get('p50'))} p99 {_f(cb.get('p99'))} "
                f"p99.9 {_f(s.get('callback_p999_us'))} max {_f(cb.get('max'))} us "
                f"(p99.9 = {_f(s.get('callback_p999_pct'), '.1f')} % of {_f(s.get('budget_us'))} us)"
            ),
            (
                f"  RSS growth {_f(s.get('rss_growth_mb'), '.2f')} MB after {_f(s.get('rss_warmup_s'), 'g')} s "
                f"warm-up | inference runs {(s.get('inference') or {}).get('runs')} "
                f"p99 {_f((s.get('inference') or {}).get('p99_ms'), '.2f')} ms | "
                f"MIDI received {s['midi'].get('messages')}"
            ),
        ]
        b = s.get("bare")
        if b:
            bi = b.get("callback_interval_us") or {}
            lines.append(
                f"  bare callback (outdata.fill(0)), same conditions: xruns {b.get('xruns')} | start interval "
                f"p99.9 {_f(bi.get('p999'))} max {_f(bi.get('max'))} us"
                + (f" | {s['busy_processes']} busy processes beside both" if s.get("busy_processes") else "")
            )
        if s.get("rounds"):
            from mixpilot.benchmarks.soak import format_rounds

            lines.append("  " + format_rounds(s))
        if s.get("error"):
            lines.append(f"  error: {s['error']}")
        for n in s.get("notes", []):
            lines.append(f"  note: {n}")
    return "\n".join(lines)


# --- the command line ------------------------------------------------------------------


class _UsageError(Exception):
    """A bad command line; one line."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{message} (see {self.prog} --help)")


def _positive(kind: type, what: str, lo: float = 0.0, hi: float = math.inf, *, inclusive: bool = False):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not math.isfinite(v) or not (lo <= v if inclusive else lo < v) or v > hi:
            raise argparse.ArgumentTypeError(
                f"{what} must be {'>=' if inclusive else '>'} {lo:g}"
                + (f" and <= {hi:g}" if math.isfinite(hi) else "")
                + f", got {text}"
            )
        return v

    return parse


def _int_in(what: str, lo: int, hi: int):
    def parse(text: str) -> int:
        if not text.strip().isdigit() or not lo <= int(text) <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be an integer {lo}..{hi}, got {text!r}")
        return int(text)

    return parse


def _int_list(what: str, lo: int, hi: int):
    def parse(text: str) -> tuple[int, ...]:
        out = []
        for part in text.split(","):
            part = part.strip()
            if not part.isdigit() or not lo <= int(part) <= hi:
                raise argparse.ArgumentTypeError(
                    f"{what} must be integers {lo}..{hi} separated by commas, got {text!r}"
                )
            out.append(int(part))
        return tuple(out)

    return parse


def _float_list(what: str, lo: float, hi: float):
    def parse(text: str) -> tuple[float, ...]:
        try:
            vals = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            vals = ()
        if not vals or not all(lo <= v <= hi for v in vals):
            raise argparse.ArgumentTypeError(f"{what} must be numbers {lo:g}..{hi:g} separated by commas, got {text!r}")
        return vals

    return parse


def build_parser(prog: str = f"{PROG} bench") -> argparse.ArgumentParser:
    ap = _Parser(
        prog=prog,
        description="Latency per block, real-time factor, inference latency; "
        "side by side with pedalboard when it is installed.",
    )
    speed = ap.add_mutually_exclusive_group()
    speed.add_argument(
        "--quick", action="store_true", help="64, 128 and 512 frames at 48 kHz (the default; under a minute)"
    )
    speed.add_argument("--full", action="store_true", help="32..1024 frames at 44.1, 48 and 96 kHz, longer runs")
    ap.add_argument("--json", metavar="PATH", help="write the results (INTERFACE.md format) to PATH")
    ap.add_argument(
        "--soak",
        metavar="SECONDS",
        type=_positive(float, "--soak"),
        help="also run the engine in real time this long, AI every 0.25 s, MIDI flood 200 CC/s",
    )
    ap.add_argument(
        "--soak-busy",
        metavar="N",
        type=_positive(int, "--soak-busy", inclusive=True),
        default=0,
        help="with --soak: N spinning processes beside the soak and its bare-callback run (a loaded machine)",
    )
    ap.add_argument(
        "--soak-rounds",
        metavar="N",
        type=_positive(int, "--soak-rounds"),
        default=1,
        help="with --soak: alternate the soak and the bare callback in N rounds of SECONDS/N (same load for both)",
    )
    ap.add_argument(
        "--soak-blocksize",
        metavar="FRAMES",
        type=_int_in("--soak-blocksize", 16, 8192),
        default=128,
        help="with --soak: frames per period of the stream and of the JACK dummy server it starts (default 128)",
    )
    ap.add_argument(
        "--samplerates",
        metavar="HZ,...",
        type=_int_list("--samplerates", 8000, 192000),
        help="sample rates of the per-block grid (overrides --quick/--full)",
    )
    ap.add_argument(
        "--blocksizes",
        metavar="FRAMES,...",
        type=_int_list("--blocksizes", 16, 8192),
        help="block sizes of the per-block grid (overrides --quick/--full)",
    )
    ap.add_argument(
        "--seconds", type=_positive(float, "--seconds"), help="audio per grid point (default 30, --full 60)"
    )
    ap.add_argument(
        "--render-seconds",
        type=_positive(float, "--render-seconds"),
        help="length of the rendered program (default 30)",
    )
    ap.add_argument(
        "--windows", type=_positive(int, "--windows"), help="inference windows per estimator (default 100, --full 400)"
    )
    ap.add_argument(
        "--model",
        default="default",
        metavar="NAME|PATH|none",
        help="estimator for the AI figures (default: the shipped default, else the heuristic)",
    )
    ap.add_argument(
        "--scaling-seconds",
        type=_positive(float, "--scaling-seconds"),
        help="audio per grid point for the chain-vs-pedalboard scaling rows (--full; default 10)",
    )
    ap.add_argument(
        "--render-minutes",
        metavar="MIN,...",
        type=_float_list("--render-minutes", 0.01, 600.0),
        help="render files of these lengths from the command line, time and peak RSS (--full: 1,10,60)",
    )
    ap.add_argument(
        "--no-render-scaling", action="store_true", help="skip the render-vs-length rows (--full renders 71 minutes)"
    )
    ap.add_argument("--no-pedalboard", action="store_true", help="skip the pedalboard chain")
    return ap


def config_from_args(a: argparse.Namespace) -> BenchConfig:
    cfg = BenchConfig.full() if a.full else BenchConfig()
    if a.samplerates or a.blocksizes:
        rates = a.samplerates or tuple(dict.fromkeys(sr for sr, _ in cfg.grid))
        sizes = a.blocksizes or tuple(dict.fromkeys(bs for _, bs in cfg.grid))
        cfg.grid = tuple((sr, bs) for sr in rates for bs in sizes)
    if a.seconds is not None:
        cfg.seconds = a.seconds
        cfg.program_seconds = min(cfg.program_seconds, a.seconds)
        cfg.pedalboard_seconds = min(cfg.pedalboard_seconds, a.seconds)
    if a.render_seconds is not None:
        cfg.render_seconds = a.render_seconds
    if a.windows is not None:
        cfg.windows = a.windows
    if a.scaling_seconds is not None:
        cfg.scaling_seconds = a.scaling_seconds
    if a.render_minutes is not None:
        cfg.render_minutes = a.render_minutes
    if a.no_render_scaling:
        cfg.render_minutes = ()
    cfg.model = a.model
    cfg.pedalboard = not a.no_pedalboard
    cfg.soak_seconds = a.soak
    cfg.soak_busy = a.soak_busy
    cfg.soak_rounds = a.soak_rounds
    cfg.soak_blocksize = a.soak_blocksize
    return cfg


def _check_json_path(path: str) -> str:
    """Before measuring: the JSON's folder exists and is writable (1), the path is not a folder (2)."""
    p = os.path.abspath(path)
    if os.path.isdir(p):
        raise _UsageError(f"--json {path}: is a directory; give a file name")
    folder = os.path.dirname(p)
    if not os.path.isdir(folder):
        raise RuntimeError(f"--json {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RuntimeError(f"--json {path}: folder {folder} is not writable")
    return p


def main(argv: Sequence[str] | None = None, *, prog: str = f"{PROG} bench") -> int:
    """``mixpilot bench``; returns the exit code (0 done, 1 run-time failure, 2 usage, 130 interrupted)."""
    code = 0
    try:
        try:
            a = build_parser(prog).parse_args(list(argv) if argv is not None else None)
        except SystemExit as exc:  # --help
            return int(exc.code or 0)
        json_path = _check_json_path(a.json) if a.json else None
        cfg = config_from_args(a)

        def note(text: str) -> None:
            print(f"{PROG}: bench: {text}", file=sys.stderr, flush=True)

        result = run_bench(cfg, note=note)
        print(format_table(result), flush=True)
        soak = result.get("soak")
        if soak is not None and soak.get("error"):
            msg, code = f"soak: {soak['error']}", 1
        if json_path:
            from mixpilot.fileio import write_text_atomic

            write_text_atomic(json_path, json.dumps(result, indent=1, default=_json_default) + "\n")
        if code == 0:
            return 0
    except _UsageError as exc:
        msg, code = str(exc), 2
    except KeyboardInterrupt:
        msg, code = "interrupted", 130
    except Exception as exc:  # a failure at run time: one line, never a traceback
        msg = f"{exc}" if isinstance(exc, (RuntimeError, OSError)) else f"{type(exc).__name__}: {exc}"
        code = int(getattr(exc, "exit_code", 1))
        if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
            msg = f"{exc.filename}: {exc.strerror}"
    print(f"{PROG}: error: {' '.join(str(msg).split())}", file=sys.stderr, flush=True)
    return code


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


if __name__ == "__main__":
    raise SystemExit(main())
