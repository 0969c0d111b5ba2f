"""What an idle CPU costs the callback: warm vs once-per-period calls, with and without the wake-latency request.

``python -m mixpilot.benchmarks.wake_latency [--rounds 8] [--calls 800] [--json PATH]``

One process, the real :class:`realtime.engine.Engine` at 48 kHz / 128 frames (the bench's
settings), interleaved in rounds so that the machine's load falls on every case alike:

``warm``         :meth:`Engine.process_block` back to back (what ``mixpilot bench`` measures)
``cold``         one call per period: ``time.sleep`` of 2.67 ms, then the call (what a callback sees)
``cold_qos0``    the same while a 0 µs request is held on ``/dev/cpu_dma_latency``
                 (:class:`realtime.rtsys.CpuWakeLatency`, what ``play``/``live`` hold while they run)

For each: the call's duration, and for the cold cases the sleep's lateness (how much later than
asked the thread woke: the same wake-up a callback waits for).  Percentiles in µs.  Needs root (or
write access to the device) for ``cold_qos0``; without it that case is left out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

PERIOD_NS = 2_666_667  # 128 frames at 48 kHz


def run(rounds: int = 8, calls: int = 800, sample_rate: int = 48000, blocksize: int = 128) -> dict:
    from mixpilot.benchmarks.bench import _engine_params, _programs
    from mixpilot.benchmarks.chain_vs_pedalboard import SETTINGS
    from mixpilot.realtime.engine import Engine
    from mixpilot.realtime.rtsys import CpuWakeLatency

    prog = _programs([sample_rate], 10.0)[sample_rate]
    eng = Engine(
        sample_rate,
        2,
        max_block_size=4096,
        params=_engine_params(),
        ceiling_dbtp=SETTINGS["limiter_ceiling_dbtp"],
    )
    eng.warm_up()
    out = np.zeros((blocksize, 2), np.float32)
    per = len(prog) // blocksize
    wake = CpuWakeLatency()
    qos_ok, qos_why = wake.hold()
    wake.release()
    cases = ["warm", "cold"] + (["cold_qos0"] if qos_ok else [])
    took: dict[str, list[int]] = {c: [] for c in cases}
    late: dict[str, list[int]] = {c: [] for c in cases if c != "warm"}
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for case in cases:
            if case == "cold_qos0":
                wake.hold()
            try:
                for i in range(calls):
                    blk = prog[(i % per) * blocksize : ((i % per) + 1) * blocksize]
                    if case != "warm":
                        t_s = clock()
                        time.sleep(PERIOD_NS / 1e9)
                        late[case].append(clock() - t_s - PERIOD_NS)
                    t0 = clock()
                    eng.process_block(blk, out)
                    took[case].append(clock() - t0)
            finally:
                wake.release()

    def pct(v: list[int]) -> dict:
        a = np.asarray(v, dtype=np.float64) / 1000.0
        q = np.percentile(a, [50, 99, 99.9])
        return {"p50": round(q[0], 1), "p99": round(q[1], 1), "p999": round(q[2], 1), "max": round(a.max(), 1)}

    return {
        "sample_rate": sample_rate,
        "blocksize": blocksize,
        "rounds": rounds,
        "calls": calls,
        "qos": qos_ok,
        "qos_note": qos_why or None,
        "call_us": {c: pct(v) for c, v in took.items()},
        "wake_late_us": {c: pct(v) for c, v in late.items()},
    }


def format_result(r: dict) -> str:
    lines = [
        f"Engine.process_block, {r['blocksize']} frames @ {r['sample_rate']} Hz, {r['rounds']} rounds x "
        f"{r['calls']} calls per case, interleaved (µs)",
        f"{'case':12s} {'call p50':>9s} {'p99':>8s} {'p99.9':>8s} {'late p50':>9s} {'p99':>8s} {'p99.9':>8s}",
    ]
    for c, s in r["call_us"].items():
        w = r["wake_late_us"].get(c)
        tail = f" {w['p50']:9.1f} {w['p99']:8.1f} {w['p999']:8.1f}" if w else f" {'-':>9s} {'-':>8s} {'-':>8s}"
        lines.append(f"{c:12s} {s['p50']:9.1f} {s['p99']:8.1f} {s['p999']:8.1f}" + tail)
    if not r["qos"]:
        lines.append(f"cold_qos0 left out: {r['qos_note']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mixpilot.benchmarks.wake_latency", description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--calls", type=int, default=800)
    ap.add_argument("--json", metavar="PATH")
    a = ap.parse_args(argv)
    if a.rounds < 1 or a.calls < 1:
        ap.error("--rounds and --calls must be >= 1")
    r = run(a.rounds, a.calls)
    print(format_result(r))
    if a.json:
        from mixpilot.fileio import write_text_atomic

        write_text_atomic(a.json, json.dumps(r, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
