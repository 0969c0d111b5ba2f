"""The target-conditioned model: the torch copy of the chain against the Numba chain, the frame synthesis
against the descriptors, the conditioning vector, loading/refusing a model, and the training smoke run."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from mixpilot.dsp.chain import MixChain
from mixpilot.dsp.descriptors import N_BANDS, compute_descriptors
from mixpilot.dsp.errors import ModelError
from mixpilot.dsp.spec import ProcessSpec
from mixpilot.inference.target_model import (
    CONDITIONING_NAMES,
    CONDITIONING_NAMES_BY_VERSION,
    MODEL_PARAM_NAMES,
    N_CONDITIONING,
    TargetModel,
    TargetVector,
    conditioning,
)
from mixpilot.training.target_data import (
    HIGH_SHELF,
    LOW_SHELF,
    PEAK,
    band_power_gain,
    frame_stats,
    rbj_power,
    synth_descriptors,
)

SR = 44100


def _sine_gain_db(params: dict, freq_hz: float, stages: tuple[str, ...], channel: str) -> float:
    """Steady-state gain (dB) of the Numba chain for a sine on the mid (L = R) or the side (L = -R)."""
    n = SR * 2
    t = np.arange(n) / SR
    s = 0.25 * np.sin(2 * np.pi * freq_hz * t)
    x = np.stack([s, s if channel == "mid" else -s], axis=1).astype(np.float32)
    ch = MixChain(stages)
    ch.prepare(ProcessSpec(float(SR), max_block_size=n, num_channels=2))
    ch.set_params(params)
    ch.reset()
    y = np.empty_like(x)
    ch.process(x, y)
    tail = slice(n // 2, n)  # settled: the glides (ms) and the filters' transients are over
    src = 0.5 * (x[tail, 0] + x[tail, 1]) if channel == "mid" else 0.5 * (x[tail, 0] - x[tail, 1])
    out = 0.5 * (y[tail, 0] + y[tail, 1]) if channel == "mid" else 0.5 * (y[tail, 0] - y[tail, 1])
    return 10.0 * math.log10(np.mean(out.astype(np.float64) ** 2) / np.mean(src.astype(np.float64) ** 2))


FREQS = (40.0, 90.0, 160.0, 350.0, 1000.0, 3000.0, 7000.0, 12000.0)


def test_torch_tone_and_width_match_the_numba_chain_within_0_1_db():
    torch = pytest.importorskip("torch")
    from mixpilot.training.torch_chain import ToneResponse, crossover_shares, side_amplitude

    gains = [-7.0, 4.0, -3.0, 2.5, -5.0, 5.5, -2.0, 3.0, -6.0, 4.5]
    tone = {
        f"tone_{k}": g
        for k, g in zip(("31hz", "63hz", "125hz", "250hz", "500hz", "1khz", "2khz", "4khz", "8khz", "16khz"), gains)
    }
    widths = {"stereo_width": 1.08, "width_low": 0.6, "width_high": 1.25}
    f = np.array(FREQS)
    resp = ToneResponse(f, SR)(torch.tensor([gains], dtype=torch.float32))[0].numpy()
    lp2, hp2 = crossover_shares(f, None, SR)
    amp = side_amplitude(1.08, 0.6, 1.25, torch.tensor(lp2), torch.tensor(hp2)).numpy()
    tone = {f"{k}_db": v for k, v in tone.items()}
    for i, fr in enumerate(FREQS):
        # reference: the Numba chain itself processing a sine (tone stage alone; tone + widths on the side)
        mid = _sine_gain_db(tone, fr, ("tone",), "mid")
        assert abs(10 * math.log10(resp[i]) - mid) < 0.1, (fr, mid, 10 * math.log10(resp[i]))
        side = _sine_gain_db({**tone, **widths}, fr, ("tone", "width", "width_bands"), "side")
        assert abs(10 * math.log10(resp[i]) + 20 * math.log10(amp[i]) - side) < 0.1, (fr, side)
    # a broadband gain is a constant in dB: output_gain_db through the chain's gain stage
    assert abs(_sine_gain_db({"output_gain_db": -0.8}, 1000.0, ("output_gain",), "mid") + 0.8) < 0.1


def test_rbj_power_matches_pedalboard_filters():
    pb = pytest.importorskip("pedalboard")
    # reference: pedalboard's own (JUCE) filters, measured with an impulse
    n = 1 << 15
    imp = np.zeros((1, n), np.float32)
    imp[0, 0] = 1.0
    f = np.fft.rfftfreq(n, 1 / SR)
    for kind, filt in (
        (LOW_SHELF, pb.LowShelfFilter(cutoff_frequency_hz=150.0, gain_db=5.0)),
        (PEAK, pb.PeakFilter(cutoff_frequency_hz=1500.0, gain_db=-4.0, q=1.3)),
        (HIGH_SHELF, pb.HighShelfFilter(cutoff_frequency_hz=6000.0, gain_db=4.0)),
    ):
        h = np.abs(np.fft.rfft(filt(imp, SR)[0])) ** 2
        ours = rbj_power(kind, filt.cutoff_frequency_hz, filt.gain_db, filt.q, f, SR)
        sel = (f > 20) & (f < 18000)
        assert np.max(np.abs(10 * np.log10(h[sel]) - 10 * np.log10(ours[sel]))) < 0.05


def test_frame_synthesis_matches_the_descriptors_of_processed_audio(rng):
    # reference: dsp.descriptors.compute_descriptors of the audio really processed (RBJ cascade, M/S width)
    from scipy.signal import lfilter

    n = SR * 20
    a = rng.standard_normal((n, 1))
    x = 0.1 * (a + 0.4 * rng.standard_normal((n, 2)))
    x *= (1.0 + 0.6 * np.sin(2 * np.pi * np.arange(n) / (SR * 7)))[:, None]
    st = frame_stats(x, SR)
    filters = [(LOW_SHELF, 120.0, 5.0, 0.7071), (PEAK, 1500.0, -4.0, 1.3), (HIGH_SHELF, 6000.0, 4.0, 0.7071)]
    y = x.copy()
    from mixpilot.dsp.biquad import BELL, rbj_coefficients
    from mixpilot.dsp.biquad import HIGH_SHELF as HS
    from mixpilot.dsp.biquad import LOW_SHELF as LS

    for kind, f0, g, q in filters:
        c = rbj_coefficients({LOW_SHELF: LS, PEAK: BELL, HIGH_SHELF: HS}[kind], f0, g, q, SR)
        y = lfilter(c[:3], [1.0, c[3], c[4]], y, axis=0)
    m, s = 0.5 * (y[:, 0] + y[:, 1]), 0.5 * (y[:, 0] - y[:, 1]) * 1.3
    y = np.stack([m + s, m - s], axis=1)
    d = compute_descriptors(y, SR)
    eg, og = band_power_gain(filters)
    sd = synth_descriptors(st, 0, st.frames, eq_gain=eg, oob_gain=og, width=1.3)
    # loudness-relative levels: equal up to the gating of 0.37 s frames vs 0.4 s blocks (a common offset)
    diff = d.mid_db - sd.mid_db
    assert np.max(np.abs(diff - np.mean(diff))) < 0.3
    assert abs(np.mean(diff)) < 0.3
    assert abs(d.width_db - sd.width_db) < 0.05
    # the spread across time (3 s segments; the level moves by +-0.6 over 7 s): the same definition
    ok = np.isfinite(d.mid_spread_db)
    assert np.max(np.abs(d.mid_spread_db[ok] - sd.mid_spread_db[ok])) < 0.3
    assert np.ptp(d.mid_spread_db[ok]) > 0.1  # not all equal: a real check


def test_conditioning_vector_shape_and_meaning(rng):
    x = 0.1 * rng.standard_normal((SR * 6, 2))
    d = compute_descriptors(x, SR)
    t = TargetVector.from_descriptors([d])
    v = conditioning(d, 6.0, t)
    assert v.shape == (N_CONDITIONING,) == (len(CONDITIONING_NAMES),)
    names = list(CONDITIONING_NAMES)
    # the same input as target: the literal correction is zero, the tolerance 0
    for k in ("d_mid_1000", "d_width_1000", "t_mid_tol_1000"):
        assert abs(v[names.index(k)]) < 1e-6
    assert v[names.index("log10_seconds")] == pytest.approx(math.log10(6.0))
    # version 2 appends the input's and the target's time spreads (the same input: the same numbers)
    for k in ("in_mid_spread_1000", "t_mid_spread_1000"):
        assert v[names.index(k)] == pytest.approx(float(d.mid_spread_db[list(d.bands_hz).index(1000)]), abs=1e-4)
    v1 = conditioning(d, 6.0, t, version=1)
    assert v1.shape == (len(CONDITIONING_NAMES_BY_VERSION[1]),)
    np.testing.assert_array_equal(v1, v[: len(v1)])  # version 1 is the first part of version 2
    # NaN (nothing measured yet) reads as an empty band, never as NaN
    empty = compute_descriptors(np.zeros((SR, 2)), SR)
    assert np.all(np.isfinite(conditioning(empty, 0.0, t)))


def test_training_smoke_exports_a_loadable_model_and_load_refuses_bad_files(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from mixpilot.training import target

    out = tmp_path / "m"
    rc = target.main(["--smoke", "--threads", "1"])
    assert rc == 0
    # a real export in a folder we keep, through the same function
    from mixpilot.inference.profile import Profile
    from mixpilot.training.target import _smoke_stats, export_target, train_target
    from mixpilot.training.target_pairs import make_pairs

    dt = TargetVector.from_profile(Profile.load("default"))
    st = _smoke_stats(1)
    tr, va = make_pairs(st[:2], 128, 1, dt), make_pairs(st[2:], 32, 2, dt)
    model, _ = train_target(tr, va, epochs=1, batch_size=32, hidden=16)
    card = export_target(model, out, "tiny", parity_cond=va["cond"], training_data={"smoke": True}, training={},
                         metrics={}, description="test")  # fmt: skip
    assert card["opset"] >= 17 and card["param_names"] == list(MODEL_PARAM_NAMES)
    m = TargetModel.load(out / "tiny.onnx")
    full = m.predict(va["cond"][0])
    assert full.shape == (len(m.param_names),) and np.all((full >= 0) & (full <= 1))
    # corrupt graph -> ModelError naming the card mismatch
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / "tiny.onnx").write_bytes((out / "tiny.onnx").read_bytes()[:100])
    with pytest.raises(ModelError, match="sha256"):
        TargetModel.load(bad / "tiny.onnx")
    # another conditioning version -> refused
    c = json.loads((out / "tiny.json").read_text())
    c["conditioning"]["version"] = 99
    (bad / "tiny.onnx").write_bytes((out / "tiny.onnx").read_bytes())
    (bad / "tiny.json").write_text(json.dumps(c))
    with pytest.raises(ModelError, match="conditioning"):
        TargetModel.load(bad / "tiny.onnx")


def test_ensemble_is_the_mean_of_its_members_in_torch_and_onnx(tmp_path):
    """TargetEnsemble = the plain mean of its members' outputs (closed form: numpy's mean of the members);
    its ONNX export reproduces torch within 1e-4 (export_target's parity check) and loads as a target model."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from mixpilot.training.target import TargetEnsemble, TargetNet, export_target

    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, len(CONDITIONING_NAMES))).astype(np.float32)
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        net = TargetNet(np.zeros(x.shape[1]), np.ones(x.shape[1]), hidden=8, dropout=0.0)
        torch.nn.init.normal_(net.head.weight, std=0.5)  # the head starts at zero: give the members different outputs
        members.append(net.eval())
    ens = TargetEnsemble(members).eval()
    with torch.no_grad():
        each = np.stack([m(torch.from_numpy(x)).numpy() for m in members])
        got = ens(torch.from_numpy(x)).numpy()
    assert np.ptp(each, axis=0).max() > 1e-3  # the members differ
    np.testing.assert_allclose(got, each.mean(0), rtol=0, atol=1e-6)
    card = export_target(ens, tmp_path, "ens", parity_cond=x, training_data={"smoke": True}, training={},
                         metrics={}, description="test")  # fmt: skip
    assert card["architecture"] == "mlp-ensemble" and card["model_config"]["members"] == 3
    np.testing.assert_allclose(TargetModel.load(tmp_path / "ens.onnx").predict(x)[:, _slots()], got, atol=1e-4)


def _slots() -> list[int]:
    from mixpilot.dsp.params import AI_PARAM_NAMES

    return [AI_PARAM_NAMES.index(n) for n in MODEL_PARAM_NAMES]


def test_shipped_target_model_card_size_opset_and_load():
    from mixpilot.inference.model import MODELS_DIR, sha256_file

    path = MODELS_DIR / "target.onnx"
    if not path.is_file():
        pytest.skip("no shipped target model (python -m mixpilot.training target makes it)")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["sha256"] == sha256_file(path) and card["size_bytes"] == path.stat().st_size
    assert card["opset"] >= 17 and card["size_bytes"] <= 5 * 2**20  # issue 15: opset >= 17, <= 5 MB
    assert card["conditioning"]["names"] == list(CONDITIONING_NAMES_BY_VERSION[card["conditioning"]["version"]])
    data = card["training_data"]
    assert data["packages"] and data["licences"] and card["training"]["seed"] == data["seed"]  # the model card
    m = TargetModel.load("target")
    assert m.model_param_names == MODEL_PARAM_NAMES


def test_shipped_target_model_asks_little_when_the_reference_is_the_input():
    """A reference with the input's own descriptors: the literal correction is 0 dB; the model may discount
    content differences but must not invent a large move (bound: 1.5 dB per band, width 0.9..1.1)."""
    from mixpilot.inference.model import MODELS_DIR
    from mixpilot.inference.profile import Profile

    if not (MODELS_DIR / "target.onnx").is_file():
        pytest.skip("no shipped target model")
    m = TargetModel.load("target")
    w = m.model_share  # the product's move: w x the model's + (1 - w) x the analytic matcher's, which is
    # "no move" here (a zero literal correction: 0 dB, width 1), so w x the model's (dB; widths in log)
    for name in ("default", "dark", "full-range", "dynamic"):
        p = Profile.load(name)  # its mean descriptors stand for an input
        values = m.params(p, 30.0, TargetVector.from_descriptors([p]))
        for n in MODEL_PARAM_NAMES:
            if n.startswith("tone_"):
                assert abs(w * values[n]) <= 1.5, (name, n, values[n])
            else:
                assert 0.9 <= values[n] ** w <= 1.1, (name, n, values[n])


def test_heard_unlike_db_sees_a_heard_part_unlike_its_excerpt():
    """target_pairs.heard_unlike_db: ~0 for steady material, large when the balance changes after the heard part."""
    from mixpilot.training.target_data import FrameStats
    from mixpilot.training.target_pairs import heard_unlike_db

    n = 100
    pm = np.ones((n, N_BANDS), np.float32)
    z = np.zeros((n, N_BANDS), np.float32)
    steady = FrameStats(pm=pm, ps=z, km=pm, ks=z, koob=np.zeros((n, 4), np.float32), hop_s=0.186)
    assert heard_unlike_db(steady, 0, 30, n) < 1e-6
    changed = pm.copy()
    changed[50:, : N_BANDS // 2] *= 100.0  # the low half 20 dB up after frame 50
    st = FrameStats(pm=changed, ps=z, km=changed, ks=z, koob=np.zeros((n, 4), np.float32), hop_s=0.186)
    assert heard_unlike_db(st, 0, 30, n) > 5.0
    assert heard_unlike_db(st, 0, 30, n) > heard_unlike_db(st, 0, 80, n)


def test_make_pairs_recipes():
    """Recipe 3 (the default) and the issue-14 recipe 4 make pairs; an unknown recipe is refused."""
    from mixpilot.inference.profile import Profile
    from mixpilot.training.target_data import smoke_stats
    from mixpilot.training.target_pairs import PAIRS_VERSION, make_pairs

    dt = TargetVector.from_profile(Profile.load("default"))
    st = smoke_stats(3)
    assert PAIRS_VERSION == 3
    for recipe in (3, 4):
        p = make_pairs(st, 40, 7, dt, recipe=recipe)
        assert np.all(np.isfinite(p["cond"])) and np.all(p["seconds"] > 1.0)
    with pytest.raises(ValueError, match="recipe"):
        make_pairs(st, 4, 7, dt, recipe=9)
