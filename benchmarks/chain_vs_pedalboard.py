"""Per-block cost of the MixChain next to an equivalent pedalboard chain, measured in one run.

``python -m mixpilot.benchmarks.chain_vs_pedalboard [--seconds 30] [--blocksize 128] [--samplerate 48000]
[--json PATH]``

Both chains process the same synthesised demo song (``mixpilot.demo``), stereo,
block by block, with ``time.perf_counter_ns`` around each real call, after a
warm-up (Numba compiled, JUCE prepared).  The two chains alternate in rounds
(whole program each) and, inside each round, every half second of audio
(:data:`SEGMENT_S`, the states carried on), so that drift and bursts of
machine load hit both alike.  Whole-file real-time factor is the
audio duration over the summed processing time at ``--render-blocksize``.

The pedalboard chain (the same stages with the same settings, in our order):

====================  ==========================================================
ours                  pedalboard
====================  ==========================================================
input_gain_db          ``Gain(gain_db)``
comp_*                 ``Compressor(threshold_db, ratio, attack_ms, release_ms)``
low shelf              ``LowShelfFilter(cutoff_frequency_hz, gain_db, q=0.7071)``
mid bell               ``PeakFilter(cutoff_frequency_hz, gain_db, q)``
high shelf             ``HighShelfFilter(cutoff_frequency_hz, gain_db, q=0.7071)``
presence bell          ``PeakFilter(4500 Hz, gain_db, q=1)``
tone_31hz..tone_16khz  ``LowShelfFilter``, eight ``PeakFilter(q=0.7)``, ``HighShelfFilter``
                       at the tonal-match EQ's frequencies (:func:`dsp.tone.band_filters`)
reverb_send            ``Reverb(room_size, damping, wet_level=send, dry_level=1)``
delay_send             ``Delay(delay_seconds, feedback, mix=send)``
stereo_width,          no pedalboard counterpart (pedalboard has no mid/side
width_low/high         processing); our chain pays for them
output + loudness      ``Gain(gain_db)``
limiter                ``Limiter(threshold_db=ceiling, release_ms)`` — sample-peak,
                       no lookahead and no true-peak detection (ours has both)
====================  ==========================================================
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from mixpilot.demo import synth_demo
from mixpilot.dsp.chain import MixChain
from mixpilot.dsp.spec import ProcessSpec

SETTINGS = {
    "input_gain_db": 2.0,
    "comp_threshold_db": -24.0,
    "comp_ratio": 3.0,
    "comp_attack_ms": 10.0,
    "comp_release_ms": 150.0,
    "low_gain_db": 2.0,
    "low_freq_hz": 120.0,
    "mid_gain_db": -1.5,
    "mid_freq_hz": 1000.0,
    "mid_q": 0.7,
    "high_gain_db": 2.5,
    "high_freq_hz": 8000.0,
    "presence_gain_db": 1.5,
    "presence_freq_hz": 4500.0,
    "presence_q": 1.0,
    "reverb_send": 0.2,
    "reverb_room_size": 0.5,
    "reverb_damping": 0.5,
    "delay_send": 0.1,
    "delay_ms": 250.0,
    "delay_feedback": 0.3,
    "tone_31hz_db": -2.0,
    "tone_63hz_db": 1.0,
    "tone_125hz_db": 0.5,
    "tone_250hz_db": -0.5,
    "tone_500hz_db": -1.0,
    "tone_1khz_db": 0.5,
    "tone_2khz_db": 1.0,
    "tone_4khz_db": -0.5,
    "tone_8khz_db": 1.5,
    "tone_16khz_db": 2.0,
    "stereo_width": 1.1,
    "width_low": 0.8,
    "width_high": 1.2,
    "width_crossover_hz": 150.0,
    "output_gain_db": 0.0,
    "loudness_gain_db": 8.0,
    "limiter_ceiling_dbtp": -1.0,
    "limiter_release_ms": 50.0,
}


def machine_info() -> dict:
    """CPU model, cores and the versions that decide the numbers (for the JSON and the table)."""
    import numba

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
    }
    for mod in ("onnxruntime", "pedalboard"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    return info


def machine(info: dict | None = None) -> str:
    """One line: ``AMD EPYC, 2 cores, Python 3.11.7, numpy 2.4, numba 0.68.1, onnxruntime 1.20, ...``."""
    info = info or machine_info()
    parts = [str(info["cpu"]), f"{info['cores']} cores", f"Python {info['python']}"]
    parts += [f"{k} {info[k]}" for k in ("numpy", "numba", "onnxruntime", "pedalboard") if info.get(k)]
    return ", ".join(parts)


#: The two chains alternate every this many seconds of audio inside each round (:func:`run`).
SEGMENT_S = 0.5


def make_ours(sample_rate: float, blocksize: int) -> MixChain:
    chain = MixChain()
    chain.set_params(SETTINGS)
    chain.prepare(ProcessSpec(sample_rate, max(blocksize, 8192), 2))
    return chain


def _pedalboard_tone(pb, s: dict) -> list:
    """The tonal-match EQ's ten bands as pedalboard filters (same kinds, frequencies, Q and gains)."""
    from mixpilot.dsp.biquad import BELL, LOW_SHELF
    from mixpilot.dsp.tone import TONE_PARAMS, band_filters

    out = []
    for name, (kind, freq, q) in zip(TONE_PARAMS, band_filters()):
        cls = pb.LowShelfFilter if kind == LOW_SHELF else pb.PeakFilter if kind == BELL else pb.HighShelfFilter
        out.append(cls(cutoff_frequency_hz=freq, gain_db=s.get(name, 0.0), q=q))
    return out


def make_pedalboard():
    import pedalboard as pb

    s = SETTINGS
    return pb.Pedalboard(
        [
            pb.Gain(gain_db=s["input_gain_db"]),
            pb.Compressor(
                threshold_db=s["comp_threshold_db"],
                ratio=s["comp_ratio"],
                attack_ms=s["comp_attack_ms"],
                release_ms=s["comp_release_ms"],
            ),
            pb.LowShelfFilter(cutoff_frequency_hz=s["low_freq_hz"], gain_db=s["low_gain_db"], q=0.7071),
            pb.PeakFilter(cutoff_frequency_hz=s["mid_freq_hz"], gain_db=s["mid_gain_db"], q=s["mid_q"]),
            pb.HighShelfFilter(cutoff_frequency_hz=s["high_freq_hz"], gain_db=s["high_gain_db"], q=0.7071),
            pb.PeakFilter(cutoff_frequency_hz=s["presence_freq_hz"], gain_db=s["presence_gain_db"], q=s["presence_q"]),
            *_pedalboard_tone(pb, s),
            pb.Reverb(
                room_size=s["reverb_room_size"], damping=s["reverb_damping"], wet_level=s["reverb_send"], dry_level=1.0
            ),
            pb.Delay(delay_seconds=s["delay_ms"] / 1000.0, feedback=s["delay_feedback"], mix=s["delay_send"]),
            pb.Gain(gain_db=s["output_gain_db"] + s["loudness_gain_db"]),
            pb.Limiter(threshold_db=s["limiter_ceiling_dbtp"], release_ms=s["limiter_release_ms"]),
        ]
    )


def _ours_blocks(chain: MixChain, x: np.ndarray, y: np.ndarray, bs: int, times: list[int]) -> None:
    for i in range(0, len(x) - bs + 1, bs):
        t0 = time.perf_counter_ns()
        chain.process(x[i : i + bs], y[i : i + bs])
        times.append(time.perf_counter_ns() - t0)


def _pb_blocks(board, xt: np.ndarray, sr: float, bs: int, times: list[int]) -> None:
    for i in range(0, xt.shape[1] - bs + 1, bs):
        blk = xt[:, i : i + bs]
        t0 = time.perf_counter_ns()
        board(blk, sr, reset=False)
        times.append(time.perf_counter_ns() - t0)


def percentiles(ns: list[int]) -> dict[str, float]:
    us = np.asarray(ns, dtype=np.float64) / 1000.0
    return {
        "p50_us": float(np.percentile(us, 50)),
        "p99_us": float(np.percentile(us, 99)),
        "p999_us": float(np.percentile(us, 99.9)),
        "max_us": float(us.max()),
    }


def run(
    seconds: float = 30.0,
    blocksize: int = 128,
    samplerate: int = 48000,
    render_blocksize: int = 4096,
    rounds: int = 3,
    with_pedalboard: bool = True,
    program: np.ndarray | None = None,
) -> dict:
    """Both chains over the same program; ``program`` (float32 [frames, 2]) replaces the synthesised song.

    Returns ``{"chain": {p50_us, p99_us, p999_us, max_us, render_rtf}, "pedalboard": {...},
    "ratio_p50": chain p50 / pedalboard p50, ...}``; ``pedalboard`` and ``ratio_p50`` are missing
    when pedalboard is not installed (or ``with_pedalboard`` is False).
    """
    if program is None:
        program = synth_demo(seconds, samplerate, seed=1)
    x = np.ascontiguousarray(program, dtype=np.float32)
    seconds = len(x) / samplerate
    xt = np.ascontiguousarray(x.T)
    y = np.zeros_like(x)
    ours = make_ours(samplerate, blocksize)
    board = None
    if with_pedalboard:
        try:
            board = make_pedalboard()
        except ImportError:
            board = None
    # warm-up: compile / prepare, then start from clean state
    ours.process(x[:blocksize], y[:blocksize])
    ours.reset()
    if board is not None:
        board(xt[:, :blocksize], samplerate, reset=True)
    t_ours: list[int] = []
    t_pb: list[int] = []
    r_ours = r_pb = 0
    # each round processes the whole program, both chains from a reset; the two alternate every
    # segment (about 0.5 s of audio, whole blocks), carrying their state on, so that a burst of load
    # from elsewhere on the machine (seconds long on a shared VM) falls on both alike
    seg = max(1, round(SEGMENT_S * samplerate / blocksize)) * blocksize
    usable = len(x) - len(x) % blocksize
    for _ in range(rounds):
        ours.reset()
        if board is not None:
            board.reset()
        for s0 in range(0, usable, seg):
            s1 = min(s0 + seg, usable)
            _ours_blocks(ours, x[s0:s1], y[s0:s1], blocksize, t_ours)
            if board is not None:
                _pb_blocks(board, xt[:, s0:s1], samplerate, blocksize, t_pb)
        ours.reset()
        t0 = time.perf_counter_ns()
        for i in range(0, len(x), render_blocksize):
            ours.process(x[i : i + render_blocksize], y[i : i + render_blocksize])
        r_ours += time.perf_counter_ns() - t0
        if board is not None:
            board.reset()
            t0 = time.perf_counter_ns()
            for i in range(0, xt.shape[1], render_blocksize):
                board(xt[:, i : i + render_blocksize], samplerate, reset=False)
            r_pb += time.perf_counter_ns() - t0
    audio_s = rounds * len(x) / samplerate
    result = {
        "machine": machine(),
        "samplerate": samplerate,
        "blocksize": blocksize,
        "channels": 2,
        "seconds": seconds,
        "rounds": rounds,
        "chain": {**percentiles(t_ours), "render_rtf": audio_s / (r_ours / 1e9)},
    }
    if board is not None:
        import pedalboard

        result["pedalboard"] = {
            **percentiles(t_pb),
            "render_rtf": audio_s / (r_pb / 1e9),
            "version": pedalboard.__version__,
        }
        result["ratio_p50"] = result["chain"]["p50_us"] / result["pedalboard"]["p50_us"]
    return result


def comparison_rows(r: dict) -> list[str]:
    """The side-by-side table of a :func:`run` result: header, one row per chain, the p50 ratio."""
    budget_us = r["blocksize"] / r["samplerate"] * 1e6
    lines = [f"{'':<12}{'p50 us':>9}{'p99 us':>9}{'p99.9 us':>10}{'max us':>9}{'p50 %budget':>13}{'render xRT':>12}"]
    for name in ("chain", "pedalboard"):
        if name in r:
            c = r[name]
            lines.append(
                f"{name:<12}{c['p50_us']:>9.1f}{c['p99_us']:>9.1f}{c['p999_us']:>10.1f}{c['max_us']:>9.1f}"
                f"{100 * c['p50_us'] / budget_us:>12.2f}%{c['render_rtf']:>12.0f}"
            )
    if "ratio_p50" in r:
        lines.append(f"ratio p50 (chain / pedalboard): {r['ratio_p50']:.2f}")
    return lines


def format_table(r: dict) -> str:
    budget_us = r["blocksize"] / r["samplerate"] * 1e6
    lines = [
        f"machine: {r['machine']}",
        (
            f"{r['blocksize']} frames @ {r['samplerate']} Hz stereo, {r['seconds']:g} s x {r['rounds']} rounds; "
            f"block budget {budget_us:.1f} us"
        ),
    ]
    return "\n".join(lines + comparison_rows(r))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--blocksize", type=int, default=128)
    ap.add_argument("--samplerate", type=int, default=48000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.blocksize < 1 or args.rounds < 1:
        ap.error("--seconds, --blocksize and --rounds must be positive")
    r = run(args.seconds, args.blocksize, args.samplerate, rounds=args.rounds)
    print(format_table(r))
    if args.json:
        from mixpilot.fileio import write_text_atomic

        write_text_atomic(args.json, json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
