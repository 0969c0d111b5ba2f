"""The Python API: ``mixpilot.master``, ``mixpilot.analyze`` (realtime/api.py).

References: the command line itself -- ``mixpilot render`` with the same
settings must give the same samples bit for bit (``--bit-depth 32f`` stores
them exactly), and with no option at all the same defaults as
``mixpilot.master(x, sr)``; the layouts INTERFACE.md promises (1-D mono,
[frames, channels]); pyloudnorm (an independent BS.1770-4 meter) for the
delivered loudness.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

import mixpilot
from mixpilot.demo import synth_demo
from mixpilot.realtime.cli import main
from mixpilot.realtime.render import RenderUsageError

SR = 44100


@pytest.fixture(scope="module")
def demo() -> np.ndarray:
    """5 s of the synthesised demo song (stereo float32, about -20 LUFS): the AI has windows to work on."""
    return synth_demo(5.0, SR, seed=3).astype(np.float32)


def test_master_and_render_are_bit_identical_with_the_same_defaults(demo, tmp_path, capsys):
    inp = tmp_path / "in.wav"
    sf.write(str(inp), demo, SR, subtype="FLOAT")
    y, rep = mixpilot.master(demo, SR)
    assert rep.model == "target"  # the shipped default model (target-conditioned) ran, as in the CLI
    assert main(["render", str(inp), str(tmp_path / "cli.wav"), "--bit-depth", "32f", "-q"]) == 0
    z, sr = sf.read(str(tmp_path / "cli.wav"), dtype="float32", always_2d=True)
    assert sr == SR and z.dtype == y.dtype and z.shape == y.shape == demo.shape
    assert np.array_equal(z, y)
    # and with settings given on both sides
    y2, rep2 = mixpilot.master(demo, SR, target_lufs=-18, ceiling_dbtp=-2.0, ai_amount=0.5, params={"low_gain_db": 2})
    (tmp_path / "p.json").write_text(json.dumps({"low_gain_db": 2}))
    argv = ["render", str(inp), str(tmp_path / "cli2.wav"), "--float", "-q", "--target-lufs", "-18"]
    argv += ["--ceiling-dbtp", "-2", "--ai-amount", "0.5", "--params", str(tmp_path / "p.json")]
    assert main(argv) == 0
    z2, _ = sf.read(str(tmp_path / "cli2.wav"), dtype="float32", always_2d=True)
    assert np.array_equal(z2, y2)
    assert not np.array_equal(y, y2)
    assert abs(rep2.output_integrated_lufs - (-18.0)) <= 0.5 and rep2.output_true_peak_dbtp <= -2.0 + 1e-6


def test_layouts_come_back_as_they_went_in(demo):
    mono = demo.mean(axis=1)
    y1, rep1 = mixpilot.master(mono, SR, model="none")
    assert y1.shape == mono.shape and y1.dtype == np.float32 and rep1.output_channels == 1
    y2, _ = mixpilot.master(mono[:, None], SR, model="none")
    assert y2.shape == (mono.size, 1)
    np.testing.assert_array_equal(y2[:, 0], y1)  # 1-D is [frames, 1] squeezed
    ys, reps = mixpilot.master(demo.astype(np.float64), SR, model="none")  # float64 accepted
    assert ys.shape == demo.shape and reps.output_channels == 2
    # pyloudnorm: the delivered loudness (-14 by default), independently measured
    meter = pyloudnorm.Meter(SR, filter_class="DeMan")
    assert abs(meter.integrated_loudness(ys.astype(np.float64)) - (-14.0)) <= 0.5
    surround = np.concatenate([demo, demo[:, :1], np.zeros_like(demo[:, :1]), demo], axis=1)  # 5.1
    y6, rep6 = mixpilot.master(surround, SR, model="none")
    assert y6.shape == demo.shape and rep6.input_channels == 6
    assert any("5.1" in n and "BS.775" in n for n in rep6.notes)


@pytest.mark.parametrize(
    ("audio", "sr", "match"),
    [
        (np.zeros(100, dtype=np.int16), SR, "floating point"),
        (np.zeros((10, 2, 2)), SR, "1-D"),
        (np.zeros((10, 9)), SR, "9 channels"),
        (np.zeros((0, 2)), SR, "empty"),
        (np.zeros((100, 2)), 4000, "4000 Hz"),
        (np.zeros((100, 2)), 44100.5, "integer"),
    ],
)
def test_bad_buffers_are_one_line_errors(audio, sr, match):
    with pytest.raises(RenderUsageError, match=match):
        mixpilot.master(audio, sr, model="none")


def test_bad_settings_are_refused_before_processing():
    with pytest.raises(RenderUsageError, match="target-lufs"):
        mixpilot.master(np.zeros((100, 2)), SR, target_lufs=3.0)
    with pytest.raises(mixpilot.realtime.render.ParameterError, match="bogus"):
        mixpilot.master(np.zeros((100, 2)), SR, params={"bogus": 1.0})


def test_analyze_takes_a_path_or_an_array(demo, tmp_wav, capsys, json_schema):
    path = tmp_wav(demo, SR)
    assert main(["analyze", str(path), "--json"]) == 0
    json_schema("analyze", json.loads(capsys.readouterr().out))  # docs/schemas/analyze.schema.json
    a = mixpilot.analyze(path)
    b = mixpilot.analyze(demo, SR)
    assert a["model"] == b["model"] == "target"
    assert a["loudness"] == b["loudness"] and a["suggestions"] == b["suggestions"]
    assert [s["t"] for s in a["suggestions"]] == [3.0, 4.5]  # every 1.5 s from the first whole 3 s window
    with pytest.raises(RenderUsageError, match="sample_rate"):
        mixpilot.analyze(demo)


def test_analyze_of_a_short_file_analyses_what_exists(tmp_wav, capsys, demo, json_schema):
    path = tmp_wav(demo[: int(1.2 * SR)], SR, "short.wav")
    assert main(["analyze", str(path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    json_schema("analyze", rep)
    assert rep["duration_s"] == pytest.approx(1.2) and rep["suggestions"] == []
    assert rep["loudness"]["max_momentary_lufs"] is not None and math.isfinite(rep["loudness"]["true_peak_dbtp"])
    assert any("the AI needs 3 s" in n for n in rep["notes"])
    assert main(["analyze", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: the AI needs 3 s of audio and the file has 1.20 s" in out


def test_version_and_lazy_import():
    p = subprocess.run([sys.executable, "-m", "mixpilot.realtime.cli", "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == f"mixpilot {mixpilot.__version__} (mixpilot-engine)"
    # import mixpilot loads no kernel module until a name is used
    code = "import sys, mixpilot; print(any(m.startswith('numba') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_render_json_and_the_ai_params_log(demo, tmp_path, capsys, json_schema):
    inp = tmp_path / "in.wav"
    sf.write(str(inp), demo, SR, subtype="FLOAT")
    log = tmp_path / "p.jsonl"
    assert main(["render", str(inp), str(tmp_path / "o.mp3"), "--json", "--params-out", str(log), "-q"]) == 0
    rep = json.loads(capsys.readouterr().out)
    json_schema("render", rep)  # docs/schemas/render.schema.json
    assert rep["format"] == "MP3" and rep["model"] == "target" and rep["ai_updates"] > 0
    lines = [json.loads(s) for s in log.read_text().splitlines()]
    for d in lines:
        json_schema("params-out", d)
    assert {d["source"] for d in lines} == {"user", "ai"}
    # silence: -inf loudness is null in JSON, and still valid
    sf.write(str(tmp_path / "silence.wav"), np.zeros((SR, 2), np.float32), SR)
    assert main(["render", str(tmp_path / "silence.wav"), str(tmp_path / "s.wav"), "--json", "-q"]) == 0
    rep = json.loads(capsys.readouterr().out)
    json_schema("render", rep)
    assert rep["output_integrated_lufs"] is None and rep["input_true_peak_dbtp"] is None


# --- mixpilot.Engine: block by block -----------------------------------------------------------------


def _stream(engine: mixpilot.Engine, x: np.ndarray, block: int) -> np.ndarray:
    """``x`` through ``engine`` in blocks of ``block`` frames, the latency flushed and removed."""
    lat = engine.latency_samples
    padded = np.concatenate([x, np.zeros((lat,) + x.shape[1:], dtype=np.float32)])
    out = np.concatenate([engine.process(padded[i : i + block]) for i in range(0, len(padded), block)])
    return out[lat:]


def test_engine_streams_what_master_follow_delivers(demo):
    # Reference: mixpilot.master(..., loudness_mode="follow"), the offline render of what the real-time
    # engine plays (the shipped AI at the same stream positions, the loudness follower): a stream of
    # blocks through mixpilot.Engine with the same settings gives the same samples, bit for bit, for
    # the render's block size and for any other (the engine is block-size invariant).
    y, rep = mixpilot.master(demo, SR, loudness_mode="follow")
    engine = mixpilot.Engine(SR, 2)
    assert engine.model == rep.model == "target" and engine.notes == []
    assert np.array_equal(_stream(engine, demo, 1024), y)
    engine.reset()
    assert np.array_equal(_stream(engine, demo, 333), y)
    m = engine.meters()
    assert m["integrated_lufs"] == pytest.approx(rep.output_integrated_lufs, abs=0.2)
    assert m["true_peak_dbtp"] <= -1.0 + 0.05
    assert engine.parameter_targets()["loudness_gain_db"] == pytest.approx(m["loudness_gain_db"])
    # settings as master takes them; mono blocks stay 1-D
    mono = demo.mean(axis=1)
    y1, _ = mixpilot.master(mono, SR, loudness_mode="follow", model="none", target_lufs=-20, params={"low_gain_db": 3})
    e1 = mixpilot.Engine(SR, 1, model="none", target_lufs=-20, params={"low_gain_db": 3}, max_block_size=512)
    assert e1.model == "none"
    assert np.array_equal(_stream(e1, mono, 512), y1)
    # a stream estimator (the analytic matcher reads every frame, not feature windows) too
    y2, rep2 = mixpilot.master(demo, SR, loudness_mode="follow", model="matcher")
    e2 = mixpilot.Engine(SR, 2, model="matcher")
    assert e2.model == rep2.model == "matcher"
    assert np.array_equal(_stream(e2, demo, 1024), y2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channels": 3}, "channels must be 1 or 2"),
        ({"sample_rate": 1000}, "outside the supported"),
        ({"target_lufs": 5}, "target"),
        ({"max_block_size": 0}, "block"),
        ({"params": {"nosuch_db": 1}}, "nosuch_db"),
        ({"amount": {"colour": 0.5}}, "colour"),
    ],
)
def test_engine_refuses_bad_settings_in_one_line(kwargs, match):
    args = {"sample_rate": SR, "channels": 2, "model": "none", **kwargs}
    with pytest.raises(mixpilot.MixpilotError, match=match) as info:
        mixpilot.Engine(args.pop("sample_rate"), args.pop("channels"), **args)
    assert "\n" not in str(info.value)


def test_engine_refuses_blocks_it_cannot_take():
    engine = mixpilot.Engine(SR, 2, model="none", max_block_size=256)
    with pytest.raises(RenderUsageError, match="longer than max_block_size 256"):
        engine.process(np.zeros((257, 2), np.float32))
    with pytest.raises(RenderUsageError, match=r"\[frames, 2\]"):
        engine.process(np.zeros(64, np.float32))
