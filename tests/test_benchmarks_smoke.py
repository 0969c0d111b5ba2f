"""The benchmark code runs (tiny durations); no timing threshold is asserted here."""

from benchmarks.chain_vs_pedalboard import format_table, run


def test_chain_vs_pedalboard_runs():
    r = run(seconds=0.5, blocksize=128, samplerate=48000, rounds=1)
    assert r["chain"]["p50_us"] > 0 and r["chain"]["render_rtf"] > 0
    assert "pedalboard" in r and r["ratio_p50"] > 0  # pedalboard is a dev dependency
    assert "ratio p50" in format_table(r)
