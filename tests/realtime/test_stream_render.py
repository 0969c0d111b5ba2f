"""``mixpilot render`` streams the file from disk in chunks (issue 19): the same samples as in memory.

Reference for every render here: the in-memory path, ``mixpilot.master`` on the decoded array (what
``render`` ran before it streamed), written with ``--bit-depth 32f`` so the file holds the float
master exactly; and for each streamed piece its whole-buffer function (``measure``,
``true_peak_dbtp``, ``quantize``, ``AnalyticMatcher.analyse``).  Files are longer than a chunk
(:data:`realtime.frames.CHUNK_FRAMES`) and of odd lengths, so chunks and blocks straddle.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

import mixpilot
from mixpilot.dsp.meter import LoudnessMeter, TruePeakMeter, measure, true_peak_dbtp
from mixpilot.dsp.spec import ProcessSpec
from mixpilot.realtime import encode, frames, render
from mixpilot.realtime.encode import Quantizer, quantize
from mixpilot.realtime.render import render_file

SR = 44100


def _song(seconds: float, seed: int, channels: int = 2) -> np.ndarray:
    from mixpilot.demo import synth_demo

    x = synth_demo(seconds, SR, seed=seed).astype(np.float32)
    if channels == 1:
        x = x[:, :1]
    return np.ascontiguousarray(x[: len(x) - 1 + len(x) % 2])  # an odd length


def _splits(n: int, sizes: tuple[int, ...]) -> list[slice]:
    out, i, k = [], 0, 0
    while i < n:
        out.append(slice(i, min(n, i + sizes[k % len(sizes)])))
        i += sizes[k % len(sizes)]
        k += 1
    return out


@pytest.fixture
def song_path(tmp_path):
    def write(x: np.ndarray, name: str = "in.wav") -> str:
        p = str(tmp_path / name)
        sf.write(p, x, SR, subtype="FLOAT")
        return p

    return write


def _master_in_memory(x: np.ndarray, **kw) -> np.ndarray:
    y, _ = mixpilot.master(x, SR, **kw)
    return y.reshape(len(y), -1)


@pytest.mark.parametrize(
    "kw",
    [
        {"model": "none", "target_lufs": -9.0},  # several loudness passes: passes 2+ replay the tap from disk
        {"model": "default", "target_lufs": -14.0},  # the AI, with the analytic matcher's whole-file analysis
        {"model": "none", "loudness_mode": "follow"},  # what `play` plays
        {"model": "matcher", "block_size": 333},  # blocks straddle every chunk
    ],
    ids=["search", "default-model", "follow", "blocks-333"],
)
def test_streamed_render_equals_in_memory_master(song_path, tmp_path, kw):
    x = _song(5.3, seed=4)  # 233 729 frames: three and a half chunks
    assert len(x) > 3 * frames.CHUNK_FRAMES and len(x) % 2 == 1
    out = tmp_path / "out.wav"
    rep = render_file(song_path(x), out, bit_depth="32f", **kw)
    y, _ = sf.read(out, dtype="float32", always_2d=True)
    ref = _master_in_memory(x, **kw)
    np.testing.assert_array_equal(y, ref)
    if kw.get("target_lufs") == -9.0:
        assert rep.passes >= 2, "the case should need more than one loudness pass"
    assert sorted(os.listdir(tmp_path)) == ["in.wav", "out.wav"]  # the scratch folder is gone


def test_streamed_mono_and_surround_equal_in_memory(song_path, tmp_path):
    mono = _song(3.1, seed=5, channels=1)
    render_file(song_path(mono, "m.wav"), tmp_path / "m_out.wav", bit_depth="32f", model="none")
    y, _ = sf.read(tmp_path / "m_out.wav", dtype="float32", always_2d=True)
    np.testing.assert_array_equal(y, _master_in_memory(mono[:, 0], model="none"))
    st = _song(3.1, seed=6)
    surround = np.ascontiguousarray(np.concatenate([st, 0.5 * st, 0.25 * st[:, :1]], axis=1))  # 5 channels
    rep = render_file(song_path(surround, "s.wav"), tmp_path / "s_out.wav", bit_depth="32f", model="none")
    y, _ = sf.read(tmp_path / "s_out.wav", dtype="float32", always_2d=True)
    # the BS.775 downmix is a matrix product per chunk: equal to the whole file's within float32 rounding
    np.testing.assert_allclose(y, _master_in_memory(surround, model="none"), rtol=0, atol=1e-6)
    assert any("downmixed" in n for n in rep.notes)


@pytest.mark.parametrize("fmt", ["wav16", "flac", "ogg"])
def test_chunk_size_does_not_change_the_file(song_path, tmp_path, monkeypatch, fmt):
    # the same render with chunks of 65536, 4099 and 1000 frames (decode, scratch files, encoder):
    # byte-identical audio, 16-bit dither included (its sequence runs on across chunks)
    x = _song(4.1, seed=7)
    src = song_path(x)
    ext, depth = {"wav16": (".wav", "16"), "flac": (".flac", None), "ogg": (".ogg", None)}[fmt]
    outs = []
    for chunk in (frames.CHUNK_FRAMES, 4099, 1000):
        for mod in (frames, render, encode):
            monkeypatch.setattr(mod, "CHUNK_FRAMES", chunk)
        out = tmp_path / f"o{chunk}{ext}"
        rep = render_file(src, out, bit_depth=depth, model="none", target_lufs=-10.0)
        outs.append((sf.read(out, dtype="float64")[0], rep.output_integrated_lufs, rep.output_true_peak_dbtp))
    for y, lufs, tp in outs[1:]:
        np.testing.assert_array_equal(y, outs[0][0])
        assert (lufs, tp) == outs[0][1:]


def test_mp3_input_is_read_whole(song_path, tmp_path):
    # libsndfile's MP3 decoder gives other samples after a partial read (audio_io.WHOLE_READ_FORMATS):
    # an MP3 input is decoded whole, and the render is the in-memory master of sf.read's samples
    from mixpilot.realtime.audio_io import AudioReader

    x = _song(3.0, seed=11)
    mp3 = str(tmp_path / "in.mp3")
    sf.write(mp3, 0.5 * x, SR, format="MP3", subtype="MPEG_LAYER_III")
    whole, _ = sf.read(mp3, dtype="float32", always_2d=True)
    with sf.SoundFile(mp3) as f:
        parts = [f.read(4096, dtype="float32", always_2d=True) for _ in range(len(whole) // 4096 + 1)]
    assert not np.array_equal(np.concatenate(parts), whole)  # the decoder's fault, still there
    with pytest.raises(ValueError, match="only whole"):
        AudioReader(mp3)
    render_file(mp3, tmp_path / "o.wav", bit_depth="32f", model="none")
    y, _ = sf.read(tmp_path / "o.wav", dtype="float32", always_2d=True)
    np.testing.assert_array_equal(y, _master_in_memory(whole, model="none"))


def test_streamed_render_never_decodes_the_whole_file(song_path, tmp_path, monkeypatch):
    # the in-memory decoder is not called, and no read asks for more than a chunk
    src = song_path(_song(3.5, seed=8))
    asked = []
    real_read = sf.SoundFile.read

    def read(self, frames=-1, *a, **k):
        asked.append(frames)
        return real_read(self, frames, *a, **k)

    monkeypatch.setattr(sf.SoundFile, "read", read)
    monkeypatch.setattr(render, "read_audio_file", lambda *a: pytest.fail("the whole file was decoded"))
    render_file(src, tmp_path / "o.flac", model="default")
    assert asked and all(0 < f <= frames.CHUNK_FRAMES for f in asked)


def test_scratch_files_are_removed_when_the_render_fails(song_path, tmp_path):
    src = song_path(_song(3.0, seed=9))

    def stop(pass_no, done_s, total_s):
        if pass_no == 1 and done_s > 1.0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_file(src, tmp_path / "o.wav", progress=stop, model="none")
    assert sorted(os.listdir(tmp_path)) == ["in.wav"]


# --- the streamed pieces against their whole-buffer functions -----------------------------------


def test_chunked_meters_equal_whole_buffer_measurements(rng):
    x = (0.3 * rng.standard_normal((100_003, 2))).astype(np.float32)
    x[5000] = 1.7  # an intersample peak to find
    ref = measure(x, SR)
    meter = LoudnessMeter(ProcessSpec(sample_rate=SR, max_block_size=8192, num_channels=2))
    tpm = TruePeakMeter(2)
    for s in _splits(len(x), (8191, 1, 30_000, 77)):
        meter.process(x[s])
        tpm.process(x[s])
    meter.flush_true_peak()
    assert meter.integrated_lufs == ref["integrated_lufs"]
    assert meter.loudness_range_lu == ref["loudness_range_lu"]
    assert meter.true_peak_dbtp == ref["true_peak_dbtp"]
    assert tpm.dbtp() == true_peak_dbtp(x) == ref["true_peak_dbtp"]
    assert TruePeakMeter(2).dbtp() == -np.inf


@pytest.mark.parametrize("bits", [16, 24])
def test_quantizer_blocks_equal_quantize(rng, bits):
    x = (0.5 * rng.standard_normal((70_001, 2))).astype(np.float32)
    q = Quantizer(bits, x.size, dither=bits == 16)
    blocks = np.concatenate([q.block(x[s]) for s in _splits(len(x), (4099, 1, 65536))])
    np.testing.assert_array_equal(blocks, quantize(x, bits, dither=bits == 16))


def test_matcher_whole_file_stats_from_chunks_equal_analyse():
    from mixpilot.inference.matcher import AnalyticMatcher

    x = _song(12.0, seed=10)
    a = AnalyticMatcher.for_target(sample_rate=SR)
    ref = a.analyse(x)
    b = AnalyticMatcher.for_target(sample_rate=SR)
    stats = b.whole_file_stats(SR, 2)
    for s in _splits(len(x), (65536, 1001, 3)):
        stats.update(x[s])
    res = b.analyse_stats(stats)
    assert res.values == ref.values and b.frozen


def test_feed_splits_pieces_into_the_same_blocks(rng):
    # render._feed over pieces of any size calls the engine with the blocks of one array
    from mixpilot.realtime.engine import Engine

    x = (0.3 * rng.standard_normal((20_011, 2))).astype(np.float32)
    outs = []
    for sizes in ((len(x),), (1000, 7, 4096), (1,) * 3 + (5000,)):
        eng = Engine(SR, 2, max_block_size=512, params={"comp_threshold_db": -30.0})
        y = frames.ArrayFrames(np.zeros_like(x))
        pieces = [x[s] for s in _splits(len(x), sizes)] + [np.zeros((eng.latency_samples, 2), np.float32)]
        render._feed(eng, pieces, len(x), 2, np.float32, y.sink(), 512, SR, 1, None)
        outs.append(y.array)
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])
