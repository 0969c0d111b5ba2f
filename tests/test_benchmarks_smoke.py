"""The benchmark code runs (tiny durations); no timing threshold is asserted here.

Covers ``benchmarks.chain_vs_pedalboard``, ``mixpilot bench`` (:func:`benchmarks.bench.main`:
the INTERFACE.md JSON keys, one-line errors and exit codes), the real-time soak
(:mod:`benchmarks.soak`, 3 s on the session's JACK dummy server, with the MIDI flood when the
engine takes ``midi_in``), :mod:`benchmarks.wake_latency` and the pytest-benchmark suites in
``benchmarks/`` (run once each with ``--benchmark-disable``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixpilot.benchmarks.bench import format_table as bench_table
from mixpilot.benchmarks.bench import main as bench_main
from mixpilot.benchmarks.chain_vs_pedalboard import format_table, run

ROOT = Path(__file__).resolve().parent.parent

# INTERFACE.md, `mixpilot bench --json`
TOP_KEYS = {"machine", "samplerate", "blocksize", "channels", "chain", "pedalboard", "ratio_p50", "inference"}
CHAIN_KEYS = {"p50_us", "p99_us", "p999_us", "max_us", "render_rtf"}
PEDALBOARD_KEYS = {"p50_us", "p99_us", "render_rtf"}
INFERENCE_KEYS = {"p50_ms", "p99_ms"}
SOAK_KEYS = {"seconds", "xruns", "callback_p999_us", "rss_growth_mb"}


def test_chain_vs_pedalboard_runs():
    r = run(seconds=0.5, blocksize=128, samplerate=48000, rounds=1)
    assert r["chain"]["p50_us"] > 0 and r["chain"]["render_rtf"] > 0
    assert "pedalboard" in r and r["ratio_p50"] > 0  # pedalboard is a dev dependency
    assert "ratio p50" in format_table(r)


def test_bench_writes_interface_json(tmp_path, capsys, json_schema):
    path = tmp_path / "bench.json"
    rc = bench_main(
        ["--json", str(path), "--seconds", "0.3", "--render-seconds", "1", "--windows", "2", "--blocksizes", "64,128"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    r = json.loads(path.read_text())
    json_schema("bench", r)  # docs/schemas/bench.schema.json
    assert TOP_KEYS <= r.keys() and "soak" not in r
    assert (r["samplerate"], r["blocksize"], r["channels"]) == (48000, 128, 2)
    assert CHAIN_KEYS <= r["chain"].keys() and PEDALBOARD_KEYS <= r["pedalboard"].keys()
    assert INFERENCE_KEYS <= r["inference"].keys()
    assert r["ratio_p50"] == pytest.approx(r["chain"]["p50_us"] / r["pedalboard"]["p50_us"])
    assert isinstance(r["machine"], str) and r["machine_info"]["cores"] >= 1
    assert {(s["samplerate"], s["blocksize"]) for s in r["sweep"]} == {(48000, 64), (48000, 128)}
    assert all(s["p50_us"] > 0 and s["p50_pct"] > 0 for s in r["sweep"])
    assert r["render"]["rtf"] > 0 and r["render"]["rtf_ai"] > 0  # the heuristic stands in for a missing model
    assert r["inference"]["heuristic"]["windows"] == 2
    assert "ratio p50" in out and "Per block" in out and "Inference per window" in out
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically: no temporary left behind


@pytest.mark.parametrize(
    "argv, code, words",
    [
        (["--soak", "-1"], 2, "--soak"),
        (["--soak", "nan"], 2, "--soak"),
        (["--soak", "60", "--soak-rounds", "0"], 2, "--soak-rounds"),
        (["--soak", "60", "--soak-blocksize", "8"], 2, "--soak-blocksize"),
        (["--soak", "60", "--soak-blocksize", "1024,128"], 2, "--soak-blocksize"),
        (["--quick", "--full"], 2, "not allowed"),
        (["--blocksizes", "128,abc"], 2, "--blocksizes"),
        (["--samplerates", "1000"], 2, "--samplerates"),
        (["--frobnicate"], 2, "unrecognized"),
        (["--json", "{dir}"], 2, "directory"),
        (["--json", "{dir}/missing/b.json"], 1, "does not exist"),
    ],
)
def test_bench_usage_errors_are_one_line(tmp_path, capsys, argv, code, words):
    argv = [a.format(dir=tmp_path) for a in argv]
    assert bench_main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mixpilot: error: ") and words in err[0]


def test_bench_help_exits_zero(capsys):
    assert bench_main(["--help"]) == 0
    assert "--soak" in capsys.readouterr().out


def test_soak_runs_on_jack(jack_server):
    from mixpilot.benchmarks.soak import run_soak
    from mixpilot.realtime.stream import RunOptions

    r = run_soak(4.0)  # the worker starts at the first whole 3 s window
    assert SOAK_KEYS <= r.keys(), r
    assert r["error"] is None, r
    assert r["seconds"] == pytest.approx(4.0, abs=0.1)
    assert r["callback_us"]["p50"] > 0 and r["rss_growth_mb"] is not None
    assert r["inference"]["runs"] > 0  # the AI ran (the model, or the heuristic fallback)
    if "midi_in" in RunOptions.__dataclass_fields__:
        assert r["midi"]["api"] == "jack" and r["midi"]["sent"] > 0, (r["midi"], r.get("notes"))
        assert r["midi"]["messages"] > 0, r["midi"]
    doc = {"machine": "m", "samplerate": 48000, "blocksize": 128, "soak": r}
    assert "Soak:" in _soak_lines(doc)


def test_soak_rounds_alternate_on_jack(jack_server):
    """``rounds``: the soak and the bare callback alternate; the result's counts are the rounds' sums."""
    from mixpilot.benchmarks.soak import format_rounds, run_soak

    r = run_soak(3.0, rounds=2, model="none")
    assert r["error"] is None, r
    assert [x["seconds"] for x in r["rounds"]] == [pytest.approx(1.5, abs=0.1)] * 2
    assert r["seconds"] == pytest.approx(3.0, abs=0.2)
    assert r["xruns"] == sum(x["xruns"] for x in r["rounds"])
    assert r["bare"]["xruns"] == sum(x["bare_xruns"] for x in r["rounds"])
    assert r["bare"]["seconds"] == pytest.approx(3.0, abs=0.2)
    assert r["xruns_minus_bare"] == r["xruns"] - r["bare"]["xruns"]
    assert all(x["load_1min"] >= 0 and x["bare_load_1min"] >= 0 for x in r["rounds"])
    assert format_rounds(r).startswith("2 alternating rounds")


def test_combine_rounds_sums_counts_and_keeps_the_worst_percentiles():
    """Counts add; a percentile cannot be combined from percentiles, so the worst round's is kept."""
    from mixpilot.benchmarks.soak import combine_rounds, format_rounds

    def part(xruns, bare_xruns, p999, rss, sent, load):
        return {
            "seconds": 60.0,
            "xruns": xruns,
            "callback_us": {"p50": 100.0, "p99": 300.0, "p999": p999, "max": 2 * p999},
            "callback_interval_us": {"p99": 2700.0, "p999": 3000.0 + p999, "max": 9000.0},
            "budget_us": 2666.7,
            "rss_growth_mb": rss,
            "inference": {"runs": 230, "p50_ms": 5.0, "p99_ms": p999 / 100, "late": 0},
            "midi": {"api": "jack", "sent": sent, "messages": sent - 1, "applied": sent - 2},
            "end": "finished",
            "error": None,
            "notes": [],
            "load_1min": load,
            "bare": {
                "seconds": 60.0,
                "blocks": 22500,
                "xruns": bare_xruns,
                "load_1min": load + 0.5,
                "callback_interval_us": {"p99": 2680.0, "p999": 2900.0, "max": 8000.0},
                "cpu_awake": True,
            },
        }

    r = combine_rounds([part(3, 1, 500.0, 0.1, 12000, 2.0), part(5, 7, 800.0, 0.3, 12001, 4.0)], 120.0)
    assert (r["seconds"], r["xruns"], r["bare"]["xruns"], r["xruns_minus_bare"]) == (120.0, 8, 8, 0)
    assert r["bare"]["blocks"] == 45000 and r["bare"]["seconds"] == 120.0
    assert r["callback_p999_us"] == 800.0 and r["callback_us"]["max"] == 1600.0
    assert r["callback_p999_pct"] == pytest.approx(100 * 800.0 / 2666.7)
    assert r["rss_growth_mb"] == 0.3 and r["percentiles"] == "worst round"
    assert r["inference"]["runs"] == 460 and r["inference"]["p99_ms"] == 8.0
    assert (r["midi"]["sent"], r["midi"]["messages"], r["midi"]["applied"]) == (24001, 23999, 23997)
    assert [(x["xruns"], x["bare_xruns"]) for x in r["rounds"]] == [(3, 1), (5, 7)]
    assert format_rounds(r) == (
        "2 alternating rounds (xruns mixpilot/bare, load average; percentiles are the worst round's): "
        "3/1 (2.0/2.5), 5/7 (4.0/4.5)"
    )
    assert "load_1min" not in r


def _soak_lines(doc: dict) -> str:
    """The soak part of the bench table alone (the rest of the table needs a whole run)."""
    full = {
        "sweep": [],
        "compare": {"seconds": 0, "rounds": 0},
        "render": {"seconds": 0, "samplerate": 48000, "block_size": 1024, "rtf": 1.0},
        "inference": {"window_s": 3.0, "samplerate": 48000},
        **doc,
    }
    return bench_table(full)


def test_wake_latency_runs(tmp_path, capsys):
    from mixpilot.benchmarks.wake_latency import main as wake_main

    assert wake_main(["--rounds", "1", "--calls", "20", "--json", str(tmp_path / "w.json")]) == 0
    r = json.loads((tmp_path / "w.json").read_text())
    assert {"warm", "cold"} <= r["call_us"].keys() and r["call_us"]["cold"]["p50"] > 0
    assert ("cold_qos0" in r["call_us"]) == r["qos"]  # the held case only where the device can be written
    assert "cold" in r["wake_late_us"] and "warm" not in r["wake_late_us"]
    assert "late p50" in capsys.readouterr().out


def test_benchmark_suites_run_once():
    """``pytest benchmarks --benchmark-disable``: every benchmark function runs once."""
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks", "-q", "-x", "--benchmark-disable", "-p", "no:cacheprovider"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert " passed" in p.stdout


def test_bench_scaling_rows_and_render_lengths(capsys):
    # --full's scaling rows (chain vs pedalboard over the grid) and the render-vs-length rows (a child
    # `mixpilot render` per length, its own peak RSS), on a tiny grid and a 1.2 s file
    from mixpilot.benchmarks.bench import BenchConfig, run_bench

    cfg = BenchConfig(
        grid=((48000, 128),),
        seconds=0.2,
        program_seconds=1.0,
        render_seconds=0.5,
        pedalboard_seconds=0.2,
        pedalboard_rounds=1,
        windows=2,
        model="none",
        scaling_grid=((44100, 64), (96000, 256)),
        scaling_seconds=0.2,
        scaling_rounds=1,
        render_minutes=(0.02,),
    )
    r = run_bench(cfg)
    assert [(s["samplerate"], s["blocksize"]) for s in r["scaling"]] == [(44100, 64), (96000, 256)]
    for s in r["scaling"]:
        assert s["chain_p50_us"] > 0 and s["pedalboard_p50_us"] > 0
        assert s["ratio_p50"] == pytest.approx(s["chain_p50_us"] / s["pedalboard_p50_us"])
    (row,) = r["render_scaling"]["rows"]
    assert row["minutes"] == 0.02 and row["render_s"] > 0 and row["passes"] >= 1
    assert 20 < row["peak_rss_mb"] < 4000 and row["process_cpu_s"] > 0
    table = bench_table(r)
    assert "Scaling: bare MixChain.process vs the pedalboard chain" in table
    assert "Render vs file length" in table and "peak RSS MB" in table
