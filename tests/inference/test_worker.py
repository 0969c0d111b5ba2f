"""The inference worker between the analysis ring and the engine.

References: :func:`inference.features.extract_features` on the same audio
taken offline (streaming = offline), the closed-form second difference of a
sine (no click), the glide law of :mod:`dsp.glide` (linear in dB over the
crossfade), and the model files' own failure modes (missing, corrupt,
mismatched card) for the fallback.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from mixpilot.dsp.params import AI_PARAM_NAMES, PARAM_INDEX, normalise
from mixpilot.inference.features import extract_features, input_window_frames
from mixpilot.inference.matcher import AnalyticMatcher
from mixpilot.inference.worker import InferenceWorker, load_estimator
from mixpilot.realtime.engine import Engine
from mixpilot.realtime.render import render_array

SR = 48000


class Fixed:
    """An estimator that always answers the same normalised vector (a stand-in model)."""

    name = "fixed"

    def __init__(self, values: dict[str, float]):
        self.vec = np.array([normalise(n, values.get(n, _neutral(n))) for n in AI_PARAM_NAMES], np.float32)
        self.calls = 0

    def predict(self, features):
        self.calls += 1
        return self.vec


def _neutral(name: str) -> float:
    from mixpilot.dsp.params import PARAMS

    return PARAMS[PARAM_INDEX[name]].default


def test_features_from_the_ring_equal_offline_features(rng):
    # The worker's window, pulled from the ring the audio thread filled block by block, gives the
    # same features as extract_features on the same audio offline (bit-exact).
    x = (0.1 * rng.standard_normal((6 * SR, 2))).astype(np.float32)
    eng = Engine(SR, 2, max_block_size=128, params={"loudness_gain_db": 0.0})
    y = np.zeros((128, 2), np.float32)
    for i in range(0, x.shape[0], 128):
        eng.process_block(x[i : i + 128], y)
    got = []
    w = InferenceWorker(Fixed({}), eng.ring, SR, lambda v, g, e: None)
    w.estimator.predict = lambda f: (got.append(f.copy()), w.estimator.vec)[1]
    for end in (3 * SR, 4 * SR + 77, 6 * SR):
        w.compute(end)
        np.testing.assert_array_equal(got[-1], extract_features(x[:end], SR))
    assert input_window_frames(SR) == 3 * SR


def test_new_targets_glide_in_over_the_crossfade_without_a_click():
    # A 1 kHz sine at -20 dBFS; the "model" asks for +1 dB output and +3 dB low shelf from the first hop.
    # Reference: |second difference| of A sin(w n) is at most 4 A sin^2(w/2); a click would exceed the
    # bound of the largest amplitude reached.  The glide is linear in dB over crossfade_s.
    n = 8 * SR
    t = np.arange(n) / SR
    x = np.repeat((0.1 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)[:, None], 2, axis=1)
    est = Fixed({"output_gain_db": 1.0, "low_gain_db": 3.0})
    res = render_array(
        x, SR, params={"loudness_gain_db": 0.0}, estimator=est, ai_hop_s=0.5, crossfade_s=2.0, block_size=128
    )
    y = res.out[:, 0].astype(np.float64)
    first = res.ai_updates[0][0]
    # the first hop with a whole 3 s window behind it, taking effect AI_APPLY_DELAY_S (0.5 s, one hop) later
    assert first == 3.5
    amp_end = 0.1 * 10 ** (1.0 / 20)  # +1 dB; the low shelf at 120 Hz adds about nothing at 1 kHz
    bound = 4 * amp_end * 1.02 * math.sin(math.pi * 1000.0 / SR) ** 2
    d2 = np.abs(np.diff(y, 2))
    assert d2.max() <= bound, (d2.max(), bound)
    # halfway through the crossfade the output is +0.5 dB; at its end +1 dB (glide linear in dB)
    i0 = int(first * SR)

    def level_db(a, b):
        return 20 * math.log10(np.max(np.abs(y[a:b])) / 0.1)

    mid = i0 + SR
    assert level_db(mid - 48, mid + 48) == pytest.approx(0.5, abs=0.03)
    assert level_db(i0 + 2 * SR + 480, i0 + 2 * SR + 2400) == pytest.approx(1.0, abs=0.02)


def test_the_worker_survives_its_own_exceptions(rng):
    # A model that fails on its second hop: the chain keeps the first targets, the status says so,
    # the next hop recovers.
    class Flaky(Fixed):
        def predict(self, features):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("boom")
            return self.vec

    eng = Engine(SR, 2, max_block_size=128, params={"loudness_gain_db": 0.0})
    published = []
    w = InferenceWorker(Flaky({"low_gain_db": 2.0}), eng.ring, SR, lambda v, g, e: published.append(v), hop_s=0.5)
    eng.ring.write(np.zeros((5 * SR, 2), np.float32))
    assert w.step(3 * SR) is not None
    assert w.step(int(3.5 * SR)) is None and "AI error" in w.status and "boom" in w.status
    assert len(published) == 1
    assert w.step(4 * SR) is not None and "recovered" in w.status
    assert w.stats()["runs"] == 2 and w.stats()["errors"] == 1


def test_threaded_worker_follows_the_ring():
    # The thread computes hops once the audio thread has written them and publishes; fed faster than
    # real time it skips stale hops rather than fall behind, and ends on the newest one.
    eng = Engine(SR, 2, max_block_size=4800, params={"loudness_gain_db": 0.0})
    got = []
    w = InferenceWorker(Fixed({"mid_gain_db": 1.0}), eng.ring, SR, lambda v, g, e: got.append(v), hop_s=0.5)
    w.start()
    try:
        z = np.zeros((4800, 2), np.float32)
        y = np.zeros_like(z)
        import time

        for _ in range(50):  # 5 s of stream, delivered in 0.1 s blocks
            eng.process_block(z, y)
            time.sleep(0.002)
        deadline = time.monotonic() + 5
        while w.last_t_s < 5.0 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        w.stop()
    assert 1 <= w.runs <= 5  # hops at 3.0 .. 5.0 s, stale ones skipped
    assert w.last_t_s == 5.0
    assert got[-1]["mid_gain_db"] == pytest.approx(1.0)


@pytest.fixture
def shipped_model(tmp_path):
    from mixpilot.inference.model import MODELS_DIR, default_model_name

    try:
        name = default_model_name()
    except Exception:
        pytest.skip("no shipped model in models_onnx/ (python -m mixpilot.training makes them)")
    src = MODELS_DIR / f"{name}.onnx"
    dst = tmp_path / "m.onnx"
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), tmp_path / "m.json")
    return dst


def _fallback(spec) -> tuple[object, list[str]]:
    warnings: list[str] = []
    est = load_estimator(str(spec), warnings.append)
    return est, warnings


def test_missing_model_warns_once_and_falls_back(tmp_path):
    est, warnings = _fallback(tmp_path / "nope.onnx")
    assert isinstance(est, AnalyticMatcher) and len(warnings) == 1
    assert "nope.onnx" in warnings[0] and "analytic matcher" in warnings[0]


def test_corrupt_model_warns_once_and_falls_back(shipped_model):
    data = shipped_model.read_bytes()
    shipped_model.write_bytes(data[: len(data) // 3])  # truncated
    est, warnings = _fallback(shipped_model)
    assert isinstance(est, AnalyticMatcher) and len(warnings) == 1 and "corrupt" in warnings[0] and "m." in warnings[0]


def test_mismatched_card_warns_once_and_falls_back(shipped_model):
    card_path = shipped_model.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["param_names"] = list(reversed(card["param_names"]))
    card_path.write_text(json.dumps(card))
    est, warnings = _fallback(shipped_model)
    assert isinstance(est, AnalyticMatcher) and len(warnings) == 1 and "param" in warnings[0]


def test_audio_never_stops_with_a_broken_model(tmp_path, tmp_wav):
    # render with a corrupt model: a note, the analytic matcher (the fallback), and the whole file delivered.
    from mixpilot.realtime.render import render_file

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    (tmp_path / "bad.json").write_text("{}")
    rng = np.random.default_rng(1)
    song = tmp_wav((0.05 * rng.standard_normal((5 * SR, 2))).astype(np.float32), SR, "s.wav")
    rep = render_file(song, tmp_path / "o.wav", model=str(bad))
    assert rep.model == "matcher" and rep.ai_updates >= 1
    assert sum("analytic matcher" in n for n in rep.notes) == 1
    assert rep.frames == 5 * SR


def test_render_passes_reuse_the_first_pass_ai_values(rng):
    # A search render runs several loudness passes over the same input; the AI's values depend only
    # on the input window, so pass 2+ reuse pass 1's (worker.memo).  Reference: a render whose every
    # pass runs the whole chain and computes afresh (no replay, memo disabled by a worker subclass)
    # gives the same samples and updates.
    x = (0.3 * rng.standard_normal((7 * SR, 2))).astype(np.float32)
    est = Fixed({"comp_ratio": 2.0, "input_gain_db": 1.0})
    r = render_array(x, SR, target_lufs=-9.0, estimator=est, ai_hop_s=0.5)
    assert len(r.passes) >= 2, "the test needs a render with more than one loudness pass"
    windows = est.calls
    assert r.inference["runs"] == windows  # the estimator ran once per window of one pass
    assert r.inference["reused"] == windows * (len(r.passes) - 1)

    import mixpilot.inference.worker as wmod

    class NoMemo(wmod.InferenceWorker):
        def __setattr__(self, name, value):
            super().__setattr__(name, None if name == "memo" else value)

    import mixpilot.realtime.render as render_mod

    orig = wmod.InferenceWorker
    wmod.InferenceWorker = NoMemo
    orig_replay = render_mod.REPLAY_MAX_BYTES
    render_mod.REPLAY_MAX_BYTES = 0
    try:
        est2 = Fixed({"comp_ratio": 2.0, "input_gain_db": 1.0})
        ref = render_array(x, SR, target_lufs=-9.0, estimator=est2, ai_hop_s=0.5)
    finally:
        wmod.InferenceWorker = orig
        render_mod.REPLAY_MAX_BYTES = orig_replay
    assert est2.calls == windows * len(ref.passes)
    np.testing.assert_array_equal(r.out, ref.out)
    assert r.ai_updates == ref.ai_updates


def test_reasons_differ_counts_other_aspects_and_real_moves_not_rounding():
    from mixpilot.inference.worker import REASON_STEP, reasons_differ

    a = ("low mids +2.6 dB toward the target", "width x1.26 (side +2.0 dB) toward the target")
    assert not reasons_differ(a, a)
    assert not reasons_differ(a, ("low mids +2.2 dB toward the target", a[1]))  # 0.4 < REASON_STEP: rounding
    assert reasons_differ(a, (f"low mids +{2.6 + REASON_STEP:.1f} dB toward the target", a[1]))
    assert reasons_differ(a, (*a, "mids +2.6 dB toward the target"))  # a new aspect that moves
    assert not reasons_differ(a, (*a, "presence -0.5 dB toward the target"))  # one that barely does
    assert reasons_differ(a, a[:1]) and reasons_differ((), a) and reasons_differ(a, ())  # width x1.26: side +2.0
    assert reasons_differ(a, (*a, "tone left alone")) and not reasons_differ(("tone left alone",), ("tone left alone",))


def test_the_worker_keeps_what_the_matcher_says_and_counts_only_news():
    # a reference of white noise, an input with its top 6 dB down (scipy high shelf, RBJ cookbook): the
    # analytic matcher aiming at the reference says it lifts the top; on a steady input it says so once
    from scipy.signal import lfilter

    from mixpilot.inference.profile import Profile
    from mixpilot.inference.worker import REASON_HOLD_S, reasons_differ, reasons_of

    sr = 48000
    rng = np.random.default_rng(5)
    ref = (0.1 * rng.standard_normal((12 * sr, 2))).astype(np.float32)
    w0, gain = 2 * np.pi * 4000 / sr, 10 ** (-6 / 40)  # RBJ high shelf, -6 dB above 4 kHz, S = 1
    alpha = np.sin(w0) / 2 * np.sqrt(2)
    cw, sa = np.cos(w0), 2 * np.sqrt(gain) * alpha
    b = gain * np.array([(gain + 1) + (gain - 1) * cw + sa, -2 * ((gain - 1) + (gain + 1) * cw),
                         (gain + 1) + (gain - 1) * cw - sa])  # fmt: skip
    a = np.array(
        [(gain + 1) - (gain - 1) * cw + sa, 2 * ((gain - 1) - (gain + 1) * cw), (gain + 1) - (gain - 1) * cw - sa]
    )
    x = lfilter(b / a[0], a / a[0], 0.1 * rng.standard_normal((12 * sr, 2)), axis=0).astype(np.float32)
    est = AnalyticMatcher(Profile.from_audio(ref, sr), sr, 2)
    eng = Engine(sr, 2, max_block_size=1024)
    worker = InferenceWorker(est, eng.ring, sr, lambda v, g, e: None, hop_s=0.5)
    kept: tuple[str, ...] = ()
    news = hops = 0
    kept_t = 0.0
    for end in range(worker.first_end, x.shape[0] + 1, worker.hop_frames):
        eng.ring.write(x[eng.ring.frames_written : end])  # the ring as the audio thread fills it
        worker.step(end)
        words = reasons_of(est)
        due = news == 0 or end / sr - kept_t >= REASON_HOLD_S
        if due and reasons_differ(kept, words):  # the rule, applied here to every hop's words
            kept, news, kept_t = words, news + 1, end / sr
        hops += 1
        assert worker.reasons == kept and worker.reasons_seq == news
    assert any(r.startswith("air +") and r.endswith("toward the target") for r in kept), kept  # the top lifted
    assert 1 <= news < hops / 2, (news, hops)  # a steady input: news is rare, not every hop
