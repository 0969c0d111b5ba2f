"""The segment cue of the opt-in experiment training/target_segments.py (issue 15, session 6)."""

from __future__ import annotations

import numpy as np
import pytest

from mixpilot.dsp.descriptors import N_BANDS, DescriptorAccumulator
from mixpilot.training.target_data import frame_stats, synth_descriptors
from mixpilot.training.target_segments import N_SEG, N_SEG_FEATURES, accumulator_segments, segment_features

SR = 44100


def _music_like(rng, seconds: float) -> np.ndarray:
    n = int(SR * seconds)
    a = rng.standard_normal((n, 1))
    x = 0.1 * (a + 0.4 * rng.standard_normal((n, 2)))
    x *= (1.0 + 0.6 * np.sin(2 * np.pi * np.arange(n) / (SR * 7)))[:, None]
    return x


def test_segment_cue_of_the_frames_is_the_accumulators():
    """What the pairs give the network (synthesised from the frame cache) is what the running accumulator keeps."""
    rng = np.random.default_rng(5)
    x = _music_like(rng, 20.0)
    acc = DescriptorAccumulator(SR, 2)
    acc.update(x)
    live = accumulator_segments(acc)
    st = frame_stats(x, SR)
    synth = segment_features(synth_descriptors(st, 0, st.frames))
    assert live.shape == synth.shape == (7, N_SEG_FEATURES)  # 20 s: 6 segments of 2.97 s and 0.7 of one
    assert np.max(np.abs(live - synth)) < 0.02
    assert np.ptp(live[:, -1]) > 0.5  # the segment levels follow the 7 s swell: a real check
    # a shorter segment length for the cue does not change the long-term descriptors or their 3 s spreads
    d3 = synth_descriptors(st, 0, st.frames)
    d15 = synth_descriptors(st, 0, st.frames, cue_segment_s=1.5)
    assert np.array_equal(d3.mid_db, d15.mid_db) and np.array_equal(d3.mid_spread_db, d15.mid_spread_db)
    assert len(d15.seg_mid_db) in (12, 13)
    # the last N_SEG segments only (a fixed ring in the real-time path)
    assert len(segment_features(d15)) == N_SEG


def test_make_pairs_with_segments_are_the_same_pairs():
    from mixpilot.inference.profile import Profile
    from mixpilot.inference.target_model import TargetVector
    from mixpilot.training.target_pairs import make_pairs

    rng = np.random.default_rng(6)
    st = [frame_stats(_music_like(rng, 24.0) * g, SR) for g in (1.0, 0.5)]
    dt = TargetVector.from_profile(Profile.load("default"))
    a = make_pairs(st, 24, 3, dt)
    b = make_pairs(st, 24, 3, dt, segments=True)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert b["seg_in"].shape == (24, N_SEG, N_SEG_FEATURES)
    assert np.all(b["n_in"] >= 1)
    ref = b["mode"] == 0  # a single reference: its segments; a profile: none
    assert np.all(b["n_ref"][ref] >= 1) and np.all(b["n_ref"][~ref] == 0)
    assert np.all(np.isfinite(b["seg_in"])) and np.all(b["seg_in"][:, :, :N_BANDS] <= 20.0)


def test_segnet_exports_to_onnx_with_and_without_a_reference(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import onnxruntime as ort

    from mixpilot.inference.target_model import N_CONDITIONING
    from mixpilot.training.target_segments import _masks, build_segnet

    torch.manual_seed(0)
    m = build_segnet(np.zeros(N_CONDITIONING), np.ones(N_CONDITIONING), np.full(N_SEG_FEATURES, -40.0),
                     np.full(N_SEG_FEATURES, 10.0), hidden=32, enc=16).eval()  # fmt: skip
    for p in m.head.parameters():  # away from the neutral start, so the parity is not trivial
        torch.nn.init.normal_(p, std=0.3)
    rng = np.random.default_rng(0)
    cond = rng.standard_normal((3, N_CONDITIONING)).astype(np.float32)
    seg = (rng.standard_normal((3, N_SEG, N_SEG_FEATURES)) * 10 - 40).astype(np.float32)
    feed = {"conditioning": cond, "seg_in": seg, "mask_in": _masks([3, 10, 1]), "seg_ref": seg[::-1].copy(),
            "mask_ref": _masks([10, 0, 4])}  # fmt: skip
    path = tmp_path / "seg.onnx"
    names = list(feed)
    torch.onnx.export(m, tuple(torch.from_numpy(feed[n]) for n in names), str(path), dynamo=False, opset_version=17,
                      input_names=names, output_names=["params"],
                      dynamic_axes={n: {0: "batch"} for n in [*names, "params"]})  # fmt: skip
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    with torch.no_grad():
        ref = m(*(torch.from_numpy(feed[n]) for n in names)).numpy()
    assert np.max(np.abs(got - ref)) < 1e-5
    # masked slots do not matter: garbage there gives the same answer
    feed2 = {**feed, "seg_ref": np.where(feed["mask_ref"][..., None] > 0, feed["seg_ref"], 99.0).astype(np.float32)}
    got2 = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed2)[0]
    assert np.max(np.abs(got2 - got)) < 1e-5
